"""DKIM (RFC 6376): mail from a domain with DKIMSelector/DKIMKeyPath leaves signed with
rsa-sha256 and relaxed/relaxed canonicalization, after send-as and after Date/Message-ID were
added, and a real verifier (python3-dkim) accepts it with the key `mailpopbox dkim-keygen`
printed, served by the test DNS."""

import re
import subprocess

import dkim
import pytest

from dnsfixture import dkim_dnsfunc, make_dns  # noqa: F401 (fixture)
from sink import (MX1, SINK_IPS, authenticated, free_port_on, make_sink,  # noqa: F401
                  outgoing_message, sending_server, submit, transaction)

SELECTOR = "sel"
DOMAIN = "example.org"
KEY_RECORD = f"{SELECTOR}._domainkey.{DOMAIN}"


def txt_record_from(output):
    """The TXT record text in dkim-keygen's output: on the line holding "v=DKIM1", its quoted
    strings joined (zone-file style), or the bare text from "v=DKIM1" on."""
    lines = [line for line in output.splitlines()
             if "v=DKIM1" in line and not line.lstrip().startswith(";")]
    assert len(lines) == 1, f"no single v=DKIM1 record line in dkim-keygen's output:\n{output}"
    quoted = re.findall(r'"([^"]*)"', lines[0])
    text = "".join(quoted) if quoted else lines[0]
    record = text[text.find("v=DKIM1"):].strip().rstrip(")").strip()
    assert re.search(r"\bp=[A-Za-z0-9+/=]{300,}", record), f"no 2048-bit p= in {record!r}"
    return record


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory, mailpopbox_bin):
    """(key file, TXT record) from `mailpopbox dkim-keygen example.org sel KEYFILE`."""
    key = tmp_path_factory.mktemp("dkim") / f"{DOMAIN}.{SELECTOR}.pem"
    result = subprocess.run([str(mailpopbox_bin), "dkim-keygen", DOMAIN, SELECTOR, str(key)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"dkim-keygen exited {result.returncode}: {result.stderr}"
    assert key.is_file() and b"PRIVATE KEY" in key.read_bytes()
    return key, txt_record_from(result.stdout)


@pytest.fixture
def signing_world(make_dns, make_sink, sending_server, dkim_key):
    """(server, sink, dns): example.org signs with the key; remote.test's MX is the sink; the
    DNS serves the public key."""
    key, record = dkim_key
    port = free_port_on(SINK_IPS)
    dns_server = make_dns(mx={"remote.test": [(MX1[0], 10)]}, hosts={MX1[0]: MX1[1]},
                          txt={KEY_RECORD: record})
    sink = make_sink(MX1[1], port)

    def with_dkim(entries):
        for entry in entries:
            if entry["Domain"] == DOMAIN:
                entry["DKIMSelector"] = SELECTOR
                entry["DKIMKeyPath"] = str(key)
        return entries

    server = sending_server(dns=dns_server, outbound_port=port, servers=with_dkim)
    return server, sink, dns_server


def signature_tags(data):
    """The tags of the one DKIM-Signature header: {"a": "rsa-sha256", ...}."""
    signatures = re.findall(rb"(?mi)^DKIM-Signature:((?:.*\r\n)(?:[ \t].*\r\n)*)", data)
    assert len(signatures) == 1, f"{len(signatures)} DKIM-Signature headers:\n{data[:2000]!r}"
    value = re.sub(rb"\s+", b"", signatures[0]).decode()
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)


def assert_verifies(received, dns_server):
    assert dkim.verify(received.data, dnsfunc=dkim_dnsfunc(dns_server)), \
        f"python3-dkim rejects the signature:\n{received.data.decode('utf-8', 'replace')}"


def test_dkim_keygen_record_is_served_by_the_test_dns(signing_world):
    _, _, dns_server = signing_world
    record = dns_server.txt(KEY_RECORD)
    assert record and record.startswith(b"v=DKIM1")


def test_dkim_signature_verifies_with_the_published_key(signing_world):
    server, sink, dns_server = signing_world
    message, _ = outgoing_message("signed")
    submit(server, ["bob@remote.test"], message)
    [received] = sink.wait_for(1)
    assert_verifies(received, dns_server)


def test_dkim_signature_verifies_for_a_body_with_dots_blank_lines_and_trailing_space(
        signing_world):
    server, sink, dns_server = signing_world
    body = (b".starts with a dot\r\n..two dots\r\ntrailing space   \r\n\ttab line\t\r\n"
            b"\r\n\r\n\r\n")
    message, _ = outgoing_message("awkward body", body=body)
    submit(server, ["bob@remote.test"], message)
    [received] = sink.wait_for(1)
    assert received.data.endswith(body)
    assert_verifies(received, dns_server)


def test_dkim_signature_is_rsa_sha256_relaxed_over_the_key_headers(signing_world):
    server, sink, _ = signing_world
    message, _ = outgoing_message("signature tags")
    submit(server, ["bob@remote.test"], message)
    [received] = sink.wait_for(1)
    tags = signature_tags(received.data)
    assert tags.get("v") == "1", tags
    assert tags.get("a") == "rsa-sha256", tags
    assert tags.get("c") == "relaxed/relaxed", tags
    assert tags.get("d") == DOMAIN, tags
    assert tags.get("s") == SELECTOR, tags
    signed = {name.lower() for name in tags.get("h", "").split(":")}
    assert {"from", "to", "subject", "date", "message-id"} <= signed, tags.get("h")


def test_dkim_signature_covers_the_send_as_rewrite(signing_world):
    server, sink, dns_server = signing_world
    message, _ = outgoing_message("Re: order [sendas:shop]")
    submit(server, ["bob@remote.test"], message)
    [received] = sink.wait_for(1)
    assert received.mail_from == "shop@example.org"
    assert "shop@example.org" in str(received.message()["From"])
    assert_verifies(received, dns_server)


def test_dkim_signature_covers_the_added_date_and_message_id(signing_world):
    server, sink, dns_server = signing_world
    message, _ = outgoing_message("no date, no id", date=False, message_id=False)
    submit(server, ["bob@remote.test"], message)
    [received] = sink.wait_for(1)
    signed = {name.lower() for name in signature_tags(received.data).get("h", "").split(":")}
    assert {"date", "message-id"} <= signed
    assert_verifies(received, dns_server)


def test_mail_from_a_domain_without_a_key_is_not_signed(signing_world):
    server, sink, _ = signing_world
    message, _ = outgoing_message("from example.net", sender="Net <mailbox@example.net>")
    with authenticated(server, domain="example.net") as client:
        assert transaction(client, "mailbox@example.net", ["bob@remote.test"],
                           message).code == 250
    [received] = sink.wait_for(1)
    assert b"dkim-signature:" not in received.data.lower()
