"""Authenticated submission (RFC 6409 on SubmissionPort, RFC 8314 on SubmissionTLSPort, and the
MX port after STARTTLS): AUTH PLAIN (RFC 4954/4616) only inside TLS, who may send as whom, and
where a submitted message goes."""

import smtplib

import pytest

from conftest import IO_TIMEOUT, SMTPConnection, insecure_client_context
from dnsfixture import make_dns  # noqa: F401 (fixture)
from sink import (MX1, OWNER, auth_plain, authenticated, free_port_on,  # noqa: F401 (fixtures)
                  make_sink, outbound, outgoing_message, password, sending_server, submit,
                  transaction, wait_until)


def port_of(server, kind):
    return server.config["SubmissionPort"] if kind == "submission" else server.smtp_port


@pytest.fixture
def server(outbound):
    server, _ = outbound()
    return server


@pytest.mark.parametrize("kind", ["submission", "mx"])
def test_auth_is_advertised_only_after_starttls(server, kind):
    with SMTPConnection(port_of(server, kind)) as client:
        before = client.ehlo().lines
        assert "STARTTLS" in before
        assert not [line for line in before if line.upper().startswith("AUTH")], before
        client.starttls()
        after = client.ehlo().lines
        assert "AUTH PLAIN" in after, after


@pytest.mark.parametrize("kind", ["submission", "mx"])
def test_auth_before_starttls_gets_538_5_7_11(server, kind):
    with SMTPConnection(port_of(server, kind)) as client:
        client.ehlo()
        reply = client.command(f"AUTH PLAIN {auth_plain(OWNER, password())}")
        assert reply.code == 538, reply
        assert reply.enhanced == "5.7.11", reply


def test_auth_with_a_bad_password_gets_535_5_7_8(server):
    with SMTPConnection(server.config["SubmissionPort"]) as client:
        client.ehlo()
        client.starttls()
        client.ehlo()
        reply = client.command(f"AUTH PLAIN {auth_plain(OWNER, 'not-the-password')}")
        assert reply.code == 535, reply
        assert reply.enhanced == "5.7.8", reply


def test_auth_with_another_domains_password_gets_535(server):
    with SMTPConnection(server.config["SubmissionPort"]) as client:
        client.ehlo()
        client.starttls()
        client.ehlo()
        reply = client.command(f"AUTH PLAIN {auth_plain(OWNER, password('example.net'))}")
        assert reply.code == 535, reply


@pytest.mark.parametrize("authzid", ["", OWNER])
def test_auth_with_the_mailbox_password_gets_235_2_7_0(server, authzid):
    with SMTPConnection(server.config["SubmissionPort"]) as client:
        client.ehlo()
        client.starttls()
        client.ehlo()
        reply = client.command(f"AUTH PLAIN {auth_plain(OWNER, password(), authzid)}")
        assert reply.code == 235, reply
        assert reply.enhanced == "2.7.0", reply


def test_auth_with_an_authzid_of_another_domain_gives_no_right_to_it(server):
    with SMTPConnection(server.config["SubmissionPort"]) as client:
        client.ehlo()
        client.starttls()
        client.ehlo()
        reply = client.command(
            f"AUTH PLAIN {auth_plain(OWNER, password(), authzid='mailbox@example.net')}")
        if reply.code == 235:
            mail = client.command("MAIL FROM:<mailbox@example.net>")
            assert mail.code == 550, f"authzid of example.net sends as it: {mail}"
        else:
            assert reply.code == 535, reply


def test_second_auth_after_success_gets_503(server):
    with authenticated(server) as client:
        reply = client.command(f"AUTH PLAIN {auth_plain(OWNER, password())}")
        assert reply.code == 503, reply  # RFC 4954 4


def test_auth_plain_takes_the_credentials_after_a_334_prompt(server):
    with SMTPConnection(server.config["SubmissionPort"]) as client:
        client.ehlo()
        client.starttls()
        client.ehlo()
        reply = client.command("AUTH PLAIN")
        assert reply.code == 334, reply
        reply = client.command(auth_plain(OWNER, password()))
        assert reply.code == 235, reply


def test_mail_before_auth_on_the_submission_port_gets_530_5_7_0(server):
    with SMTPConnection(server.config["SubmissionPort"]) as client:
        client.ehlo()
        client.starttls()
        client.ehlo()
        reply = client.command(f"MAIL FROM:<{OWNER}>")
        assert reply.code == 530, reply
        assert reply.enhanced == "5.7.0", reply


def test_mail_before_starttls_on_the_submission_port_gets_530(server):
    with SMTPConnection(server.config["SubmissionPort"]) as client:
        client.ehlo()
        reply = client.command(f"MAIL FROM:<{OWNER}>")
        assert reply.code == 530, reply


def test_submission_ehlo_advertises_dsn(server):
    with authenticated(server) as client:
        assert "DSN" in client.ehlo().lines


def test_implicit_tls_submission_port_sends_to_the_remote(outbound):
    server, sink = outbound()
    message, message_id = outgoing_message("over 465")
    with smtplib.SMTP_SSL("127.0.0.1", server.config["SubmissionTLSPort"],
                          local_hostname="owner.example.org", timeout=IO_TIMEOUT,
                          context=insecure_client_context()) as client:
        client.ehlo()
        assert "PLAIN" in client.esmtp_features.get("auth", "").upper().split()
        client.login(OWNER, password())
        assert client.sendmail(OWNER, ["bob@remote.test"], message) == {}
    [received] = sink.wait_for(1)
    assert received.message_id == message_id
    assert received.accepted_recipients == ["bob@remote.test"]


@pytest.mark.parametrize("mail_from", ["owner@example.net", "owner@remote.test"])
def test_authenticated_mail_from_another_domain_gets_550_5_7_1(server, mail_from):
    with authenticated(server) as client:
        reply = client.command(f"MAIL FROM:<{mail_from}>")
        assert reply.code == 550, reply
        assert reply.enhanced == "5.7.1", reply


def test_authenticated_mail_from_any_local_part_is_sent_with_that_sender(outbound):
    server, sink = outbound()
    message, message_id = outgoing_message("any local part",
                                           sender="Shop <orders-2026@example.org>")
    submit(server, ["bob@remote.test"], message, mail_from="orders-2026@example.org")
    [received] = sink.wait_for(1)
    assert received.mail_from == "orders-2026@example.org"
    assert received.message_id == message_id


@pytest.mark.parametrize("recipient", ["friend@example.net", "note-to-self@example.org"])
def test_submission_to_a_local_domain_lands_in_its_maildrop_not_at_a_remote(
        make_dns, make_sink, sending_server, recipient):
    port = free_port_on([MX1[1]])
    # Both local domains point at the sink: a server that sent them out would be caught there.
    dns_server = make_dns(mx={"example.org": [(MX1[0], 10)], "example.net": [(MX1[0], 10)]},
                          hosts={MX1[0]: MX1[1]})
    sink = make_sink(MX1[1], port)
    server = sending_server(dns=dns_server, outbound_port=port)
    domain = recipient.split("@")[1]
    message, message_id = outgoing_message("to a local domain", to=recipient)
    submit(server, [recipient], message)
    stored = wait_until(lambda: server.messages(domain), 10,
                        f"nothing in {domain}'s maildrop")
    assert len(stored) == 1
    assert message_id.encode() in stored[0].data
    assert sink.connections == 0, sink.dialogue()


def test_the_mx_port_relays_for_the_authenticated_owner(outbound):
    server, sink = outbound()
    message, message_id = outgoing_message("through the MX port")
    with authenticated(server, port=server.smtp_port) as client:
        reply = transaction(client, OWNER, ["bob@remote.test"], message)
        assert reply.code == 250, reply
    [received] = sink.wait_for(1)
    assert received.message_id == message_id



def test_submission_to_local_and_remote_recipients_goes_both_ways(outbound):
    server, sink = outbound()
    message, message_id = outgoing_message("both ways")
    submit(server, ["friend@example.net", "bob@remote.test"], message)
    [received] = sink.wait_for(1)
    assert received.accepted_recipients == ["bob@remote.test"]
    stored = wait_until(lambda: server.messages("example.net"), 10,
                        "nothing in example.net's maildrop")
    assert len(stored) == 1 and message_id.encode() in stored[0].data
