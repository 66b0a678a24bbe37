"""Sender verification through the real server (issue 14): SPF, DKIM and DMARC verdicts in the
Authentication-Results field we prepend, DMARC enforcement (550, the Junk folder), forged
fields removed, DNS failures as temperror, the DNSBL check at RCPT, and the head rewrite of
large messages and of several maildrops. DNS is dnsmasq on loopback (dnsfixture.py), DKIM
signatures are made by dkimpy (python3-dkim) with keys made here."""

import base64
import re
import subprocess

import dkim
import pytest

from conftest import HOSTNAME, make_message, queue_id
from dnsfixture import make_dns  # noqa: F401  (fixture)

CLIENT_HELO = "client.sender.test"


def rsa_key(directory, name):
    """(private key PEM bytes, DKIM TXT record) of a fresh 2048-bit RSA key."""
    private = directory / f"{name}.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(private), "2048"], check=True,
                   capture_output=True, timeout=60)
    der = subprocess.run(["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True, timeout=60).stdout
    return private.read_bytes(), "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("verify-keys")
    return {"sel1": rsa_key(directory, "sel1"), "sel2": rsa_key(directory, "sel2"),
            "other": rsa_key(directory, "other")}


def records(keys):
    """The sender domains of these tests and their SPF, DKIM and DMARC records."""
    return {
        # SPF pass for 127.0.0.1, DKIM keys, DMARC p=reject.
        "sender.test": "v=spf1 ip4:127.0.0.1 -all",
        "sel1._domainkey.sender.test": keys["sel1"][1],
        "sel2._domainkey.sender.test": keys["sel2"][1],
        "_dmarc.sender.test": "v=DMARC1; p=reject",
        # SPF fail, DMARC p=reject.
        "fail.test": "v=spf1 ip4:192.0.2.1 -all",
        "_dmarc.fail.test": "v=DMARC1; p=reject",
        # SPF fail, DMARC p=quarantine.
        "quar.test": "v=spf1 ip4:192.0.2.1 -all",
        "_dmarc.quar.test": "v=DMARC1; p=quarantine",
        # SPF softfail, no DMARC.
        "soft.test": "v=spf1 ~all",
        # A key of another domain (a third-party signature).
        "key._domainkey.other.test": keys["other"][1],
        "other.test": "v=spf1 -all",
    }


@pytest.fixture
def world(make_dns, make_server, keys):
    """(server, dns): VerifySenders on, every lookup to the test's dnsmasq."""
    dns_server = make_dns(txt=records(keys))

    def start(**overrides):
        config = {"VerifySenders": True, "DNSResolver": dns_server.resolver}
        config.update(overrides)
        return make_server(overrides=config)
    return start, dns_server


def message_from(domain, subject="verify", body=b"Hello.\r\n", extra=b""):
    message = make_message(subject, body, extra)
    return message.replace(b"From: sender@example.net\r\n",
                           f"From: Alice <alice@{domain}>\r\n".encode(), 1)


def sign(message, selector, domain, key):
    return dkim.sign(message, selector.encode(), domain.encode(), key,
                     include_headers=[b"from", b"to", b"subject", b"message-id"]) + message


def send(server, message, mail_from="alice@sender.test", recipients=("someone@example.org",),
         helo=CLIENT_HELO):
    with server.connect() as client:
        client.ehlo(helo)
        reply = client.transaction(mail_from, list(recipients), message)
        client.command("QUIT")
    return reply


def authres_of(stored):
    """The Authentication-Results field at the top of a stored file, exactly (with its CRLF)."""
    match = re.match(rb"Authentication-Results: [^\r]*\r\n(?:\t[^\r]*\r\n)*", stored)
    assert match, f"no Authentication-Results at the top: {stored[:300]!r}"
    return match.group(0).decode()


def expected(*resinfos):
    return ("Authentication-Results: " + HOSTNAME + ";\r\n\t" + ";\r\n\t".join(resinfos) +
            "\r\n")


def b_tag(message):
    return re.search(rb"\bb=([A-Za-z0-9+/]{8})", message.split(b"bh=", 1)[1]).group(1).decode()


def test_spf_dkim_dmarc_pass(world, keys):
    start, _ = world
    server = start()
    message = sign(message_from("sender.test"), "sel1", "sender.test", keys["sel1"][0])
    queue_id(send(server, message))
    stored = server.message().data
    assert stored.endswith(message)
    assert authres_of(stored) == expected(
        "spf=pass smtp.mailfrom=alice@sender.test",
        f"spf=none smtp.helo={CLIENT_HELO}",
        f"dkim=pass header.d=sender.test header.s=sel1 header.b={b_tag(message)}",
        "dmarc=pass (p=reject dis=none) header.from=sender.test")
    # Our field first, then our trace headers, then the message as received.
    assert re.match(rb"Authentication-Results: .*?\r\nReturn-Path: <alice@sender.test>\r\n",
                    stored, re.S)
    assert re.search(r"event=verified client=127\.0\.0\.1 id=\S+ spf=pass dkim=pass dmarc=pass "
                     r"folder=INBOX", server.log_text())
