"""Outbound delivery: MX hosts in preference order (RFC 5321 5.1), the implicit MX when there
is none, a smarthost instead, opportunistic STARTTLS, PIPELINING (RFC 2920), and retries of
temporary failures with per-recipient state."""

import time

from dnsfixture import make_dns  # noqa: F401 (fixture)
from sink import (A_ONLY, MX1, MX2, OWNER, SMARTHOST_IP, SINK_IPS, free_port_on,  # noqa: F401
                  make_sink, outbound, outgoing_message, sending_server, submit)

DOMAIN = "remote.test"


def two_mx_world(make_dns, make_sink, sending_server, start=(True, True)):
    """remote.test with MX 10 mx1 (127.0.0.2) and MX 20 mx2 (127.0.0.3), listed backwards so
    the server has to sort them; a sink per host (started or not)."""
    port = free_port_on(SINK_IPS)
    dns_server = make_dns(mx={DOMAIN: [(MX2[0], 20), (MX1[0], 10)]},
                          hosts={MX1[0]: MX1[1], MX2[0]: MX2[1]})
    sinks = [make_sink(ip, port, start=up) for (_, ip), up in zip((MX1, MX2), start)]
    server = sending_server(dns=dns_server, outbound_port=port)
    return server, sinks


def test_delivery_goes_to_the_mx_with_the_lowest_preference(make_dns, make_sink, sending_server):
    server, (first, second) = two_mx_world(make_dns, make_sink, sending_server)
    message, message_id = outgoing_message("preference")
    submit(server, ["bob@remote.test"], message)
    [received] = first.wait_for(1)
    assert received.message_id == message_id
    assert second.connections == 0


def test_first_mx_dead_second_mx_gets_the_message(make_dns, make_sink, sending_server):
    server, (first, second) = two_mx_world(make_dns, make_sink, sending_server,
                                           start=(False, True))
    message, message_id = outgoing_message("first mx dead")
    submit(server, ["bob@remote.test"], message)
    [received] = second.wait_for(1)
    assert received.message_id == message_id
    assert received.accepted_recipients == ["bob@remote.test"]


def test_first_mx_temporary_failure_second_mx_gets_the_message(make_dns, make_sink,
                                                               sending_server):
    server, (first, second) = two_mx_world(make_dns, make_sink, sending_server)
    first.reply_to_greeting("421 4.3.2 mx1 is busy")
    message, message_id = outgoing_message("first mx busy")
    submit(server, ["bob@remote.test"], message)
    [received] = second.wait_for(1)
    assert received.message_id == message_id


def test_domain_without_mx_is_delivered_to_its_address(make_dns, make_sink, sending_server):
    port = free_port_on(SINK_IPS)
    dns_server = make_dns(hosts={A_ONLY[0]: A_ONLY[1]})
    sink = make_sink(A_ONLY[1], port)
    server = sending_server(dns=dns_server, outbound_port=port)
    message, message_id = outgoing_message("implicit mx", to=f"carol@{A_ONLY[0]}")
    submit(server, [f"carol@{A_ONLY[0]}"], message)
    [received] = sink.wait_for(1)
    assert received.message_id == message_id
    assert received.accepted_recipients == [f"carol@{A_ONLY[0]}"]


def test_smarthost_gets_everything_with_auth_plain_over_starttls(make_dns, make_sink,
                                                                 sending_server, certs):
    port = free_port_on(SINK_IPS)
    dns_server = make_dns(mx={DOMAIN: [(MX1[0], 10)]}, hosts={MX1[0]: MX1[1]})
    mx = make_sink(MX1[1], port)
    smarthost = make_sink(SMARTHOST_IP, port, tls=certs["example.net"],
                          credentials=("relay-user", "relay-secret"))
    server = sending_server(dns=dns_server, outbound_port=port, overrides={
        "OutboundRelayHost": f"{SMARTHOST_IP}:{port}",
        "OutboundRelayUser": "relay-user",
        "OutboundRelayPassword": "relay-secret",
    })
    message, message_id = outgoing_message("via the smarthost")
    submit(server, ["bob@remote.test", "dave@elsewhere.test"], message)
    [received] = smarthost.wait_for(1)
    assert received.message_id == message_id
    assert sorted(received.accepted_recipients) == ["bob@remote.test", "dave@elsewhere.test"]
    assert received.tls_version in ("TLSv1.2", "TLSv1.3")
    assert received.auth_user == "relay-user"
    assert smarthost.failed_logins == []
    assert mx.connections == 0


def test_delivery_uses_starttls_when_the_remote_offers_it(outbound, certs):
    server, sink = outbound(sink_options={"tls": certs["example.net"]})
    message, _ = outgoing_message("opportunistic tls")
    submit(server, ["bob@remote.test"], message)
    [received] = sink.wait_for(1)
    assert received.tls_version in ("TLSv1.2", "TLSv1.3")
    assert sink.plaintext_injections == 0


def test_delivery_pipelines_when_the_remote_offers_pipelining(outbound):
    server, sink = outbound()
    message, _ = outgoing_message("pipelined")
    submit(server, ["bob@remote.test", "erin@remote.test"], message)
    [received] = sink.wait_for(1)
    assert sorted(received.accepted_recipients) == ["bob@remote.test", "erin@remote.test"]
    assert received.pipelined, "MAIL's reply was awaited before RCPT was sent:\n" + \
        sink.dialogue()


def test_delivery_does_not_pipeline_when_the_remote_does_not_offer_it(outbound):
    server, sink = outbound(sink_options={"extensions": ["8BITMIME", "ENHANCEDSTATUSCODES"]})
    message, _ = outgoing_message("not pipelined")
    submit(server, ["bob@remote.test"], message)
    [received] = sink.wait_for(1)
    assert not received.pipelined


def test_451_at_data_is_retried_and_then_delivered_once(outbound):
    server, sink = outbound()
    sink.reply_to_data("451 4.3.0 try again later", "250 2.0.0 accepted")
    message, message_id = outgoing_message("deferred once")
    submit(server, ["bob@remote.test"], message)
    [received] = sink.wait_for(1, timeout=20)
    assert received.message_id == message_id
    attempts = [t for t in sink.transactions if t.message_id == message_id]
    assert [t.data_reply[:3] for t in attempts] == ["451", "250"]
    time.sleep(2)  # a few more retry periods: nothing more may arrive
    assert len(sink.with_message_id(message_id)) == 1


def test_retry_sends_only_to_the_recipient_that_was_deferred(outbound):
    server, sink = outbound()
    sink.reply_to_rcpt("later@remote.test", "450 4.2.1 mailbox busy", "250 2.1.5 ok")
    message, message_id = outgoing_message("one deferred recipient")
    submit(server, ["now@remote.test", "later@remote.test"], message)
    delivered = sink.wait_for(2, timeout=20)
    assert [t.accepted_recipients for t in delivered] == [["now@remote.test"],
                                                          ["later@remote.test"]]
    assert all(t.message_id == message_id for t in delivered)
    time.sleep(2)
    assert len(sink.delivered) == 2, sink.dialogue()
