"""Outbound delivery: MX hosts in preference order (RFC 5321 5.1), the implicit MX when there
is none, a smarthost instead, opportunistic STARTTLS, PIPELINING (RFC 2920), and retries of
temporary failures with per-recipient state."""

import hashlib
import time

from dnsfixture import make_dns  # noqa: F401 (fixture)
from conftest import queue_id
from sink import (A_ONLY, DROP, MX1, MX2, SMARTHOST_IP, SINK_IPS, free_port_on,  # noqa: F401
                  make_sink, outbound, outgoing_message, queue_listing, sending_server, submit,
                  wait_until, wait_until_dequeued)

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
                                                                 sending_server, test_ca):
    port = free_port_on(SINK_IPS)
    dns_server = make_dns(mx={DOMAIN: [(MX1[0], 10)]}, hosts={MX1[0]: MX1[1]})
    mx = make_sink(MX1[1], port)
    # Named by its address: the certificate names that address (an iPAddress
    # subjectAltName, RFC 5280 4.2.1.6).
    smarthost = make_sink(SMARTHOST_IP, port, tls=test_ca.issue(SMARTHOST_IP),
                          credentials=("relay-user", "relay-secret"))
    server = sending_server(dns=dns_server, outbound_port=port, overrides={
        "OutboundRelayHost": f"{SMARTHOST_IP}:{port}",
        "OutboundRelayUser": "relay-user",
        "OutboundRelayPassword": "relay-secret",
        "OutboundRelayCAFile": str(test_ca.cert),
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
    queue = queue_id(submit(server, ["bob@remote.test"], message))
    [received] = sink.wait_for(1, timeout=20)
    assert received.message_id == message_id
    wait_until_dequeued(server, queue)
    attempts = [t for t in sink.transactions if t.message_id == message_id]
    assert [t.data_reply[:3] for t in attempts] == ["451", "250"]


def test_retry_sends_only_to_the_recipient_that_was_deferred(outbound):
    server, sink = outbound()
    sink.reply_to_rcpt("later@remote.test", "450 4.2.1 mailbox busy", "250 2.1.5 ok")
    message, message_id = outgoing_message("one deferred recipient")
    queue = queue_id(submit(server, ["now@remote.test", "later@remote.test"], message))
    sink.wait_for(2, timeout=20)
    wait_until_dequeued(server, queue)
    delivered = sink.delivered
    assert [t.accepted_recipients for t in delivered] == [["now@remote.test"],
                                                          ["later@remote.test"]]
    assert all(t.message_id == message_id for t in delivered)


def test_mx_host_without_an_address_is_skipped_for_the_next(make_dns, make_sink,
                                                             sending_server):
    port = free_port_on(SINK_IPS)
    dns_server = make_dns(mx={DOMAIN: [("ghost.remote.test", 10), (MX2[0], 20)]},
                          hosts={MX2[0]: MX2[1]})
    sink = make_sink(MX2[1], port)
    server = sending_server(dns=dns_server, outbound_port=port)
    message, message_id = outgoing_message("first mx has no address")
    submit(server, ["bob@remote.test"], message)
    assert sink.wait_for(1)[0].message_id == message_id


def test_message_to_two_domains_reaches_each_domains_host(make_dns, make_sink, sending_server):
    port = free_port_on(SINK_IPS)
    dns_server = make_dns(mx={DOMAIN: [(MX1[0], 10)]},
                          hosts={MX1[0]: MX1[1], A_ONLY[0]: A_ONLY[1]})
    remote = make_sink(MX1[1], port)
    other = make_sink(A_ONLY[1], port)
    server = sending_server(dns=dns_server, outbound_port=port)
    message, message_id = outgoing_message("two domains")
    submit(server, ["bob@remote.test", f"carol@{A_ONLY[0]}"], message)
    assert remote.wait_for(1)[0].accepted_recipients == ["bob@remote.test"]
    assert other.wait_for(1)[0].accepted_recipients == [f"carol@{A_ONLY[0]}"]
    assert {t.message_id for t in remote.delivered + other.delivered} == {message_id}


def test_dns_error_keeps_the_message_queued_for_retry(outbound):
    # elsewhere.invalid is outside the test DNS's zones: it answers REFUSED, a temporary error.
    server, sink = outbound()
    message, _ = outgoing_message("dns trouble", to="dave@elsewhere.invalid")
    submit(server, ["dave@elsewhere.invalid"], message)
    time.sleep(2)  # attempts at 0 s and 1 s (QueueRetryBaseSeconds 1)
    assert server.messages("example.org") == [], "bounced on a temporary DNS error"
    assert "dave@elsewhere.invalid" in queue_listing(server)


def test_body_8bitmime_is_declared_to_the_remote(outbound):
    server, sink = outbound()
    body = "Grüße aus dem Laden.\r\n".encode("utf-8")
    message, _ = outgoing_message("eight bit", body=body,
                                  extra_headers=b"MIME-Version: 1.0\r\nContent-Type: text/plain;"
                                                b" charset=utf-8\r\nContent-Transfer-Encoding:"
                                                b" 8bit\r\n")
    submit(server, ["bob@remote.test"], message, mail_parameters="BODY=8BITMIME")
    [received] = sink.wait_for(1)
    assert received.mail_parameters.get("BODY") == "8BITMIME", received.mail_parameters
    assert received.data.endswith(b"\r\n\r\n" + body)


def test_smtputf8_message_is_sent_as_smtputf8(outbound):
    server, sink = outbound()
    message, _ = outgoing_message("utf8 address", to="Jörg <jörg@remote.test>")
    submit(server, ["jörg@remote.test"], message, mail_parameters="SMTPUTF8")
    [received] = sink.wait_for(1)
    assert received.mail_parameters.get("SMTPUTF8") is True, received.mail_parameters
    assert received.accepted_recipients == ["jörg@remote.test"]


def test_smarthost_password_is_never_sent_without_tls(make_dns, make_sink, sending_server):
    port = free_port_on(SINK_IPS)
    dns_server = make_dns()
    smarthost = make_sink(SMARTHOST_IP, port, credentials=("relay-user", "relay-secret"))
    server = sending_server(dns=dns_server, outbound_port=port, overrides={
        "OutboundRelayHost": f"{SMARTHOST_IP}:{port}",
        "OutboundRelayUser": "relay-user",
        "OutboundRelayPassword": "relay-secret",
    })
    message, _ = outgoing_message("no tls at the smarthost")
    submit(server, ["bob@remote.test"], message)
    wait_until(lambda: smarthost.finished_sessions >= 1, 10, "the smarthost was never tried")
    assert smarthost.client_lines("AUTH") == [], smarthost.dialogue()
    assert smarthost.delivered == []


def test_connection_lost_at_end_of_data_is_retried(outbound):
    server, sink = outbound()
    sink.reply_to_data(DROP, "250 2.0.0 accepted")
    message, message_id = outgoing_message("the remote hung up")
    submit(server, ["bob@remote.test"], message)
    [received] = sink.wait_for(1, timeout=20)
    assert received.message_id == message_id
    assert [t.data_reply for t in sink.transactions] == [DROP, "250 2.0.0 accepted"]


def test_delivery_falls_back_to_helo_when_ehlo_is_refused(outbound):
    # RFC 5321 3.2: a client SHOULD try HELO when the server does not take EHLO.
    server, sink = outbound(sink_options={"esmtp": False})
    message, message_id = outgoing_message("to an RFC 821 server")
    submit(server, ["bob@remote.test"], message)
    [received] = sink.wait_for(1)
    assert received.message_id == message_id
    assert received.mail_parameters == {}, "ESMTP parameters sent after HELO"


def test_domain_with_only_an_ipv6_address_is_delivered_over_ipv6(make_dns, make_sink,
                                                                 sending_server):
    port = free_port_on(["::1", *SINK_IPS])
    dns_server = make_dns(mx={DOMAIN: [("mx6.remote.test", 10)]},
                          hosts={"mx6.remote.test": "::1"})
    sink = make_sink("::1", port)
    server = sending_server(dns=dns_server, outbound_port=port)
    message, message_id = outgoing_message("over ipv6")
    submit(server, ["bob@remote.test"], message)
    [received] = sink.wait_for(1)
    assert received.message_id == message_id


def test_large_message_arrives_byte_exact(outbound):
    server, sink = outbound()
    line = b"%06d " + b"0123456789abcdef" * 4 + b"\r\n"
    body = b"".join((b"." if i % 7 == 0 else b"") + line % i for i in range(40000))  # ~2.8 MB
    message, _ = outgoing_message("large", body=body)
    submit(server, ["bob@remote.test"], message)
    [received] = sink.wait_for(1, timeout=30)
    assert received.data.endswith(b"\r\n\r\n" + body), \
        f"body differs (sha256 {hashlib.sha256(received.data).hexdigest()[:16]})"


def test_hundred_recipients_are_each_delivered_once(outbound):
    server, sink = outbound()
    recipients = [f"user{i:03d}@remote.test" for i in range(100)]
    message, message_id = outgoing_message("to many")
    queue = queue_id(submit(server, recipients, message))
    wait_until_dequeued(server, queue, timeout=30)
    got = [r for t in sink.delivered for r in t.accepted_recipients]
    assert sorted(got) == recipients, f"{len(got)} deliveries for 100 recipients"
    assert {t.message_id for t in sink.delivered} == {message_id}


def test_twenty_messages_are_each_delivered_once(outbound):
    server, sink = outbound()
    ids, queues = [], []
    for i in range(20):
        message, message_id = outgoing_message(f"message {i}")
        queues.append(queue_id(submit(server, ["bob@remote.test"], message)))
        ids.append(message_id)
    sink.wait_for(20, timeout=30)
    for queue in queues:
        wait_until_dequeued(server, queue)
    assert sorted(t.message_id for t in sink.delivered) == sorted(ids)
