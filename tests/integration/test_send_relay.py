"""No open relay: without AUTH, none of the classic relay tricks gets a message to a remote
host. Tricks whose address really is local (percent hack, bang path, quoted local part) may be
delivered into the maildrop; the sink playing remote.test's MX must see no connection at all,
and once the queue holds nothing for the victim, nothing more can go out."""

import time

import pytest

from conftest import SMTPConnection, dot_stuff
from dnsfixture import make_dns  # noqa: F401 (fixture)
from sink import (MX1, auth_plain, make_sink, outbound, outgoing_message,  # noqa: F401 (fixtures)
                  sending_server, wait_until_dequeued)

SETTLE = 0.5  # for a connection already under way to reach the sink

TRICKS = {
    "remote_recipient": ("attacker@elsewhere.test", "victim@remote.test"),
    "local_mail_from": ("mailbox@example.org", "victim@remote.test"),
    "percent_hack": ("attacker@elsewhere.test", "victim%remote.test@example.org"),
    "bang_path": ("attacker@elsewhere.test", "remote.test!victim@example.org"),
    "quoted_local_part": ("attacker@elsewhere.test", '"victim@remote.test"@example.org'),
    "source_route": ("attacker@elsewhere.test", "@example.org:victim@remote.test"),
    "source_route_two_hops": ("attacker@elsewhere.test",
                              "@example.org,@example.net:victim@remote.test"),
    "address_literal": ("attacker@elsewhere.test", f"victim@[{MX1[1]}]"),
    "trailing_dot_domain": ("attacker@elsewhere.test", "victim@remote.test."),
}


def try_to_relay(client, mail_from, recipient):
    """MAIL, RCPT and, when the recipient is accepted, DATA; returns the replies."""
    replies = [client.command(f"MAIL FROM:<{mail_from}>")]
    if replies[-1].code != 250:
        return replies
    replies.append(client.command(f"RCPT TO:<{recipient}>"))
    if replies[-1].code == 250:
        replies.append(client.command("DATA"))
        if replies[-1].code == 354:
            message, _ = outgoing_message("relay test", to="victim@remote.test")
            client.send(dot_stuff(message) + b".\r\n")
            replies.append(client.read_reply())
    client.command("RSET")
    return replies


def assert_refused(replies):
    """MAIL or RCPT got a permanent refusal."""
    assert replies[-1].code >= 500 and len(replies) <= 2, [str(r) for r in replies]


def assert_nothing_reached_the_remote(server, sink, replies):
    wait_until_dequeued(server, "victim")
    time.sleep(SETTLE)
    assert sink.connections == 0, \
        f"relayed! replies {[str(r) for r in replies]}; the sink saw:\n{sink.dialogue()}"


@pytest.mark.parametrize("trick", list(TRICKS))
def test_unauthenticated_relay_trick_reaches_no_remote(outbound, trick):
    server, sink = outbound()
    mail_from, recipient = TRICKS[trick]
    with SMTPConnection(server.smtp_port) as client:
        client.ehlo("attacker.elsewhere.test")
        replies = try_to_relay(client, mail_from, recipient)
    if trick in ("remote_recipient", "local_mail_from", "address_literal"):
        assert_refused(replies)
    assert_nothing_reached_the_remote(server, sink, replies)


def test_unauthenticated_relay_after_starttls_reaches_no_remote(outbound):
    server, sink = outbound()
    with SMTPConnection(server.smtp_port) as client:
        client.ehlo("attacker.elsewhere.test")
        client.starttls()
        client.ehlo("attacker.elsewhere.test")
        replies = try_to_relay(client, "mailbox@example.org", "victim@remote.test")
    assert_refused(replies)
    assert_nothing_reached_the_remote(server, sink, replies)


def test_failed_auth_does_not_open_the_relay(outbound):
    server, sink = outbound()
    with SMTPConnection(server.config["SubmissionPort"]) as client:
        client.ehlo("attacker.elsewhere.test")
        client.starttls()
        client.ehlo("attacker.elsewhere.test")
        assert client.command(f"AUTH PLAIN {auth_plain('mailbox@example.org', 'guess')}").code \
            == 535
        replies = try_to_relay(client, "mailbox@example.org", "victim@remote.test")
    assert_refused(replies)
    assert_nothing_reached_the_remote(server, sink, replies)
