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


def b_tags(message):
    """The first 8 characters of b= of each DKIM-Signature, top to bottom (folding removed)."""
    fields = re.findall(rb"(?im)^DKIM-Signature:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", message)
    return [rfc2045_value(re.search(rb"(?:^|;)b=([^;]{8})", re.sub(rb"\s+", b"", f)).group(1)
                          .decode()) for f in fields]


def b_tag(message):
    return b_tags(message)[0]


def rfc2045_value(value):
    """A value as RFC 8601 writes it: a token, or a quoted-string when it holds a tspecial
    (RFC 2045 5.1: "/" and "=" of base64 among them)."""
    return f'"{value}"' if re.search(r'[()<>@,;:\\"/\[\]?= ]', value) else value


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


# --- SPF ---------------------------------------------------------------------------------------

def test_spf_fail_is_recorded_and_dkim_alignment_still_passes_dmarc(world, keys):
    start, _ = world
    server = start()
    message = sign(message_from("sender.test"), "sel1", "sender.test", keys["sel1"][0])
    queue_id(send(server, message, mail_from="bounce@fail.test"))
    assert authres_of(server.message().data) == expected(
        "spf=fail smtp.mailfrom=bounce@fail.test",
        f"spf=none smtp.helo={CLIENT_HELO}",
        f"dkim=pass header.d=sender.test header.s=sel1 header.b={b_tag(message)}",
        "dmarc=pass (p=reject dis=none) header.from=sender.test")


def test_spf_softfail_without_dkim_or_dmarc(world):
    start, _ = world
    server = start()
    message = message_from("soft.test")
    queue_id(send(server, message, mail_from="bob@soft.test"))
    assert authres_of(server.message().data) == expected(
        "spf=softfail smtp.mailfrom=bob@soft.test",
        f"spf=none smtp.helo={CLIENT_HELO}",
        "dkim=none",
        "dmarc=none header.from=soft.test")


def test_spf_none_and_null_sender_uses_postmaster_at_helo(world):
    start, _ = world
    server = start()
    message = message_from("nothing.test")
    queue_id(send(server, message, mail_from="", helo="sender.test"))
    # RFC 7208 2.4: with a null MAIL FROM the identity is postmaster@HELO; the HELO name
    # sender.test has a record passing 127.0.0.1.
    assert authres_of(server.message().data) == expected(
        "spf=pass smtp.mailfrom=postmaster@sender.test",
        "spf=pass smtp.helo=sender.test",
        "dkim=none",
        "dmarc=none header.from=nothing.test")


# --- DKIM --------------------------------------------------------------------------------------

def test_dkim_fail_when_the_body_was_changed(world, keys):
    start, _ = world
    server = start()
    signed = sign(message_from("sender.test"), "sel1", "sender.test", keys["sel1"][0])
    message = signed.replace(b"Hello.\r\n", b"Hello, changed.\r\n")
    queue_id(send(server, message))
    assert authres_of(server.message().data) == expected(
        "spf=pass smtp.mailfrom=alice@sender.test",
        f"spf=none smtp.helo={CLIENT_HELO}",
        "dkim=fail (body hash did not verify) header.d=sender.test header.s=sel1 "
        f"header.b={b_tag(message)}",
        "dmarc=pass (p=reject dis=none) header.from=sender.test")


def test_dkim_several_signatures_in_their_order(world, keys):
    start, _ = world
    server = start()
    once = sign(message_from("sender.test"), "sel1", "sender.test", keys["sel1"][0])
    twice = sign(once, "sel2", "sender.test", keys["sel2"][0])
    message = sign(twice, "key", "other.test", keys["other"][0])
    # Top to bottom: other.test, sel2, sel1.
    tags = b_tags(message)
    queue_id(send(server, message, mail_from="bounce@other.test"))
    assert authres_of(server.message().data) == expected(
        "spf=fail smtp.mailfrom=bounce@other.test",
        f"spf=none smtp.helo={CLIENT_HELO}",
        f"dkim=pass header.d=other.test header.s=key header.b={tags[0]}",
        f"dkim=pass header.d=sender.test header.s=sel2 header.b={tags[1]}",
        f"dkim=pass header.d=sender.test header.s=sel1 header.b={tags[2]}",
        "dmarc=pass (p=reject dis=none) header.from=sender.test")


# --- DMARC -------------------------------------------------------------------------------------

def test_dmarc_fail_with_p_reject_gets_550_and_nothing_is_kept(world):
    start, _ = world
    server = start()
    reply = send(server, message_from("fail.test"), mail_from="alice@fail.test")
    assert reply.code == 550, reply
    assert str(reply).endswith("5.7.1 DMARC policy of fail.test rejects this message "
                               "(SPF and DKIM not aligned)"), reply
    server.assert_nothing_stored()
    assert "event=dmarc_rejected client=127.0.0.1" in server.log_text()


def test_dmarc_fail_with_p_reject_goes_to_junk_when_dmarc_reject_is_off(world):
    start, _ = world
    server = start(DMARCReject=False)
    queue_id(send(server, message_from("fail.test"), mail_from="alice@fail.test"))
    assert server.messages() == []
    [stored] = list((server.maildrop() / ".Junk" / "new").iterdir())
    assert authres_of(stored.read_bytes()) == expected(
        "spf=fail smtp.mailfrom=alice@fail.test",
        f"spf=none smtp.helo={CLIENT_HELO}",
        "dkim=none",
        "dmarc=fail (p=reject dis=quarantine) header.from=fail.test")


def test_dmarc_quarantine_goes_to_the_junk_folder_which_pop3_does_not_serve(world):
    from pop3util import pop3_connect
    start, _ = world
    server = start()
    message = message_from("quar.test")
    queue_id(send(server, message, mail_from="alice@quar.test"))
    assert server.messages() == []
    junk = server.maildrop() / ".Junk"
    files = list((junk / "new").iterdir())
    assert len(files) == 1
    assert (junk / "maildirfolder").is_file()
    assert (junk / "cur").is_dir() and (junk / "tmp").is_dir()
    data = files[0].read_bytes()
    assert data.endswith(message)
    assert int(re.search(r",S=(\d+)", files[0].name).group(1)) == len(data)
    assert authres_of(data) == expected(
        "spf=fail smtp.mailfrom=alice@quar.test",
        f"spf=none smtp.helo={CLIENT_HELO}",
        "dkim=none",
        "dmarc=fail (p=quarantine dis=quarantine) header.from=quar.test")
    assert re.search(r"event=verified .* dmarc=fail folder=Junk", server.log_text())
    with pop3_connect(server) as pop:
        assert pop.command(b"STAT").startswith(b"+OK 0 0"), "POP3 sees the Junk folder"


# --- forged fields, DNS down, who is checked -----------------------------------------------------

def test_forged_authentication_results_claiming_our_hostname_are_removed(world):
    start, _ = world
    server = start()
    forged = (b"Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=x@soft.test\r\n"
              b"Authentication-Results: other.example; dkim=pass header.d=soft.test\r\n"
              b"authentication-results: MX.Example.ORG 1;\r\n\tdmarc=pass header.from=soft.test\r\n")
    message = message_from("soft.test", extra=forged)
    queue_id(send(server, message, mail_from="bob@soft.test"))
    stored = server.message().data
    kept = message.replace(forged, b"Authentication-Results: other.example; dkim=pass "
                                   b"header.d=soft.test\r\n")
    assert stored.endswith(kept), stored
    ours = authres_of(stored)
    assert "softfail" in ours
    assert stored.lower().count(b"authentication-results: mx.example.org") == 1
    assert b"MX.Example.ORG" not in stored


def test_dns_down_is_temperror_and_the_message_is_accepted(world):
    start, dns_server = world
    server = start()
    dns_server.stop()
    queue_id(send(server, message_from("sender.test")))
    assert authres_of(server.message().data) == expected(
        "spf=temperror smtp.mailfrom=alice@sender.test",
        f"spf=temperror smtp.helo={CLIENT_HELO}",
        "dkim=none",
        "dmarc=temperror header.from=sender.test")


def test_verify_senders_off_writes_no_header(world):
    start, _ = world
    server = start(VerifySenders=False)
    message = message_from("fail.test")
    queue_id(send(server, message, mail_from="alice@fail.test"))
    stored = server.message().data
    assert stored.startswith(b"Return-Path: ")
    assert b"Authentication-Results" not in stored
    assert "event=verified" not in server.log_text()


@pytest.mark.parametrize("port", ["submission", "mx"])
def test_the_owners_authenticated_mail_is_not_checked(world, port):
    from sink import authenticated, transaction, wait_until
    start, _ = world
    server = start()
    message = make_message("from the owner", extra_headers=b"Date: Mon, 24 Nov 2025 10:00:00 +0000\r\n"
                           ).replace(b"From: sender@example.net", b"From: mailbox@example.org")
    with authenticated(server, port=server.smtp_port if port == "mx" else None) as client:
        reply = transaction(client, "mailbox@example.org", ["note@example.org"], message)
        assert reply.code == 250, reply
    [stored] = wait_until(lambda: server.messages(), 10, "nothing stored")
    assert b"Authentication-Results" not in stored.data
    assert "event=verified" not in server.log_text()


# --- the head rewrite: big messages, several maildrops -------------------------------------------

def test_a_one_megabyte_message_gets_its_head_rewritten_through_the_file(world, keys):
    start, _ = world
    server = start()
    body = b"".join(b"line %07d of a big message, long enough to count\r\n" % i
                    for i in range(20000))
    assert len(body) > 1_000_000
    forged = b"Authentication-Results: mx.example.org; dkim=pass\r\n"
    message = sign(message_from("sender.test", body=body, extra=forged), "sel1", "sender.test",
                   keys["sel1"][0])
    queue_id(send(server, message))
    stored = server.message()
    assert authres_of(stored.data).startswith(
        "Authentication-Results: mx.example.org;\r\n\tspf=pass smtp.mailfrom=alice@sender.test;")
    assert "dkim=pass header.d=sender.test" in authres_of(stored.data)
    assert stored.data.endswith(message.replace(forged, b""))
    assert int(re.search(r",S=(\d+)", stored.path.name).group(1)) == len(stored.data)
    assert list((server.maildrop() / "tmp").iterdir()) == []


def test_two_target_domains_both_copies_rewritten(world, keys):
    start, _ = world
    server = start()
    message = sign(message_from("sender.test"), "sel1", "sender.test", keys["sel1"][0])
    queue_id(send(server, message, recipients=("a@example.org", "b@example.org",
                                               "c@example.net")))
    org, net = server.message("example.org"), server.message("example.net")
    for stored in (org, net):
        assert authres_of(stored.data).endswith(
            "dmarc=pass (p=reject dis=none) header.from=sender.test\r\n")
        assert stored.data.endswith(message)
        assert int(re.search(r",S=(\d+)", stored.path.name).group(1)) == len(stored.data)
    assert org.data.count(b"Delivered-To:") == 2 and net.data.count(b"Delivered-To:") == 1


# --- DNSBL -------------------------------------------------------------------------------------

@pytest.fixture
def dnsbl_world(make_dns, make_server):
    dns_server = make_dns(hosts={"1.0.0.127.bl.test": "127.0.0.2"},
                          txt={"1.0.0.127.bl.test": "Listed for testing, see http://bl.test/"})

    def start(zones):
        return make_server(overrides={"DNSBLZones": zones, "DNSResolver": dns_server.resolver})
    return start


def test_dnsbl_listed_client_gets_554_at_rcpt_but_postmaster_is_accepted(dnsbl_world):
    server = dnsbl_world(["clean.test", "bl.test"])
    with server.connect() as client:
        client.ehlo(CLIENT_HELO)
        assert client.command("MAIL FROM:<alice@sender.test>").code == 250
        reply = client.command("RCPT TO:<someone@example.org>")
        assert reply.code == 554, reply
        assert str(reply).endswith("5.7.1 Service unavailable; client [127.0.0.1] listed by "
                                   "bl.test: Listed for testing, see http://bl.test/"), reply
        assert client.command("RCPT TO:<postmaster@example.org>").code == 250
        assert client.command("DATA").code == 354
        client.send(make_message("to the postmaster") + b".\r\n")
        queue_id(client.read_reply())
        client.command("QUIT")
    assert "event=dnsbl_listed client=127.0.0.1 zone=bl.test" in server.log_text()
    server.message()


def test_dnsbl_not_listed_client_is_served(dnsbl_world):
    server = dnsbl_world(["clean.test"])
    queue_id(send(server, make_message("not listed")))
    assert "dnsbl_listed" not in server.log_text()
