"""The milter through the real server (issue 14): each verdict of a test milter in Python
(testmilter.py) and of a private rspamd (rspamdfixture.py) as the SMTP client sees it and as
the maildrop keeps it: reject and tempfail with the milter's reply, discard, header changes,
quarantine into the Junk folder, a milter that is down (MilterFailOpen), and GTUBE."""

import re

import pytest

from conftest import HOSTNAME, make_message, queue_id
from dnsfixture import make_dns  # noqa: F401  (fixture)
from rspamdfixture import Rspamd
from testmilter import TestMilter

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@pytest.fixture
def milter():
    started = []

    def start(verdict):
        m = TestMilter(verdict=verdict).start()
        started.append(m)
        return m
    yield start
    for m in started:
        m.stop()


@pytest.fixture
def milter_server(make_dns, make_server):
    """make(spec, **overrides): a server with the milter and the sender checks on (against
    an empty dnsmasq: every check says none)."""
    dns_server = make_dns()

    def make(spec, **overrides):
        config = {"Milter": spec, "VerifySenders": True, "DNSResolver": dns_server.resolver,
                  "MilterTimeoutSeconds": 10}
        config.update(overrides)
        return make_server(overrides=config)
    return make


def send(server, message, recipients=("someone@example.org",)):
    with server.connect() as client:
        client.ehlo("client.sender.test")
        reply = client.transaction("alice@nothing.test", list(recipients), message)
        client.command("QUIT")
    return reply


def test_milter_reject_gets_its_reply_and_nothing_is_kept(milter_server, milter):
    server = milter_server(milter("reject").spec)
    reply = send(server, make_message("rejected"))
    assert reply.code == 550, reply
    assert str(reply).endswith("5.7.1 Rejected by the test milter"), reply
    server.assert_nothing_stored()
    assert "event=milter_verdict client=127.0.0.1" in server.log_text()
    assert "verdict=reject" in server.log_text()


def test_milter_multi_line_reject_reaches_the_client_whole(milter_server, milter):
    server = milter_server(milter("reject_multi").spec)
    with server.connect() as client:
        client.ehlo("client.sender.test")
        reply = client.transaction("alice@nothing.test", ["someone@example.org"],
                                   make_message("rejected twice"))
        assert reply.code == 550, reply
        assert reply.lines == ["5.7.1 Rejected by the test milter", "5.7.1 See the second line"]
        # The session goes on after it.
        assert client.command("NOOP").code == 250
    server.assert_nothing_stored()


def test_milter_tempfail_gets_451(milter_server, milter):
    server = milter_server(milter("tempfail_code").spec)
    reply = send(server, make_message("tempfailed"))
    assert reply.code == 451, reply
    assert "Test milter busy" in str(reply), reply
    server.assert_nothing_stored()


def test_milter_discard_gets_250_and_nothing_is_kept(milter_server, milter):
    server = milter_server(milter("discard").spec)
    queue_id(send(server, make_message("discarded")))
    server.assert_nothing_stored()
    assert re.search(r"event=discarded client=127\.0\.0\.1 id=\S+ by=milter", server.log_text())


def test_milter_header_changes_are_applied_to_the_stored_file(milter_server, milter):
    m = milter("headers")
    server = milter_server(m.spec)
    message = make_message("original subject")
    queue_id(send(server, message))
    stored = server.message().data
    # The milter inserted X-First at 0: above our Authentication-Results, which it saw first.
    assert stored.startswith(b"X-First: inserted\r\n\tfolded\r\nAuthentication-Results: "
                             + HOSTNAME.encode() + b";\r\n"), stored[:200]
    assert b"Subject: changed subject\r\n" in stored
    assert b"original subject" not in stored
    head, body = stored.split(b"\r\n\r\n", 1)
    assert head.endswith(b"X-Test-Milter: checked by the test milter"), head
    assert body == message.split(b"\r\n\r\n", 1)[1]
    assert int(re.search(r",S=(\d+)", server.message().path.name).group(1)) == len(stored)
    # The milter was given our field first.
    headers = [data for cmd, data in m.conversations[0] if cmd == b"L"]
    assert headers[0].startswith(b"Authentication-Results\0" + HOSTNAME.encode()), headers[0]


def test_milter_quarantine_goes_to_the_junk_folder(milter_server, milter):
    server = milter_server(milter("quarantine").spec)
    message = make_message("quarantined")
    queue_id(send(server, message))
    assert server.messages() == []
    [stored] = list((server.maildrop() / ".Junk" / "new").iterdir())
    assert stored.read_bytes().endswith(message)
    assert "verdict=quarantine" in server.log_text()


@pytest.mark.parametrize("fail_open", [True, False])
def test_milter_down(milter_server, milter, fail_open):
    m = milter("accept")
    spec = m.spec
    m.stop()  # nothing listens there any more
    server = milter_server(spec, MilterFailOpen=fail_open)
    reply = send(server, make_message("milter down"))
    log = server.log_text()
    if fail_open:
        queue_id(reply)
        server.message()
        assert re.search(r"level=warn .*event=milter_failed .*action=accept", log), log
    else:
        assert reply.code == 451, reply
        assert str(reply).endswith("4.7.1 Message filter unavailable, try again later"), reply
        server.assert_nothing_stored()
        assert re.search(r"level=warn .*event=milter_failed .*action=tempfail", log), log


def test_milter_that_hangs_is_failed_after_the_timeout(milter_server, milter):
    server = milter_server(milter("hang").spec, MilterTimeoutSeconds=2)
    queue_id(send(server, make_message("slow milter")))
    assert "event=milter_failed" in server.log_text()
    server.message()


def test_milter_sees_every_recipient_copy_rewritten(milter_server, milter):
    server = milter_server(milter("headers").spec)
    queue_id(send(server, make_message("two copies"), recipients=("a@example.org",
                                                                  "b@example.net")))
    for domain in ("example.org", "example.net"):
        stored = server.message(domain).data
        assert stored.startswith(b"X-First: inserted\r\n\tfolded\r\nAuthentication-Results: ")
        assert b"Subject: changed subject\r\n" in stored


# --- rspamd --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    r = Rspamd(tmp_path_factory.mktemp("rspamd")).start()
    yield r
    r.stop()


def test_rspamd_rejects_gtube(milter_server, rspamd):
    server = milter_server(rspamd.spec, MilterTimeoutSeconds=60)
    reply = send(server, make_message("gtube", b"Hello,\r\n" + GTUBE + b"\r\n"))
    assert reply.code == 554, (reply, rspamd.log_tail())
    assert str(reply).endswith("5.7.1 Gtube pattern"), reply
    server.assert_nothing_stored()


def test_rspamd_accepts_a_normal_message_with_its_headers(milter_server, rspamd):
    server = milter_server(rspamd.spec, MilterTimeoutSeconds=60)
    queue_id(send(server, make_message("normal", b"Hello, this is a normal message.\r\n")))
    stored = server.message().data
    assert b"X-Spamd-Result:" in stored or b"X-Rspamd-Queue-Id:" in stored, stored[:600]


def test_milter_on_a_unix_socket(milter_server, open_directory):
    m = TestMilter(verdict="reject", unix_path=str(open_directory / "milter.sock")).start()
    try:
        server = milter_server(m.spec)
        reply = send(server, make_message("unix socket"))
        assert reply.code == 550, reply
        server.assert_nothing_stored()
    finally:
        m.stop()
