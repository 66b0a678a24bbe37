"""The sending tests' own peers work as the other tests assume: the DNS fixture answers MX, A,
null MX and long TXT records exactly, and the SMTP sink unstuffs dots, sees pipelining, speaks
STARTTLS and AUTH PLAIN, and replies as programmed. No mailpopbox involved."""

import smtplib
import socket

import dns.rcode
import dns.rdatatype
import pytest

from conftest import SMTPConnection, insecure_client_context
from dnsfixture import make_dns  # noqa: F401 (fixture)
from sink import DROP, auth_plain, free_port_on, make_sink  # noqa: F401 (fixture)

SINK_IP = "127.0.0.2"


def answers(response, rdtype):
    return [rdata for rrset in response.answer if rrset.rdtype == rdtype for rdata in rrset]


def test_dns_mx_records_come_with_their_preferences(make_dns):
    dns_server = make_dns(mx={"remote.test": [("mx2.remote.test", 20), ("mx1.remote.test", 10)]},
                          hosts={"mx1.remote.test": "127.0.0.2"})
    response = dns_server.query("remote.test", "MX")
    assert response.rcode() == dns.rcode.NOERROR
    found = sorted((r.preference, r.exchange.to_text())
                   for r in answers(response, dns.rdatatype.MX))
    assert found == [(10, "mx1.remote.test."), (20, "mx2.remote.test.")]
    response = dns_server.query("mx1.remote.test", "A")
    assert [r.address for r in answers(response, dns.rdatatype.A)] == ["127.0.0.2"]


def test_dns_name_with_only_an_address_has_no_mx_and_no_error(make_dns):
    dns_server = make_dns(hosts={"amx.test": "127.0.0.4"})
    response = dns_server.query("amx.test", "MX")
    assert response.rcode() == dns.rcode.NOERROR
    assert answers(response, dns.rdatatype.MX) == []
    response = dns_server.query("amx.test", "A")
    assert [r.address for r in answers(response, dns.rdatatype.A)] == ["127.0.0.4"]


def test_dns_null_mx_is_preference_zero_and_the_root(make_dns):
    dns_server = make_dns(null_mx=["nullmx.test"])
    response = dns_server.query("nullmx.test", "MX")
    records = answers(response, dns.rdatatype.MX)
    assert [(r.preference, r.exchange.to_text()) for r in records] == [(0, ".")]


def test_dns_unknown_name_is_nxdomain_not_refused(make_dns):
    dns_server = make_dns()
    assert dns_server.query("nothing.test", "MX").rcode() == dns.rcode.NXDOMAIN


def test_dns_long_txt_record_is_split_and_joins_back(make_dns):
    text = "v=DKIM1; k=rsa; p=" + "A" * 600
    dns_server = make_dns(txt={"sel._domainkey.example.org": text})
    assert dns_server.txt("sel._domainkey.example.org") == text.encode()


def test_sink_records_envelope_parameters_and_unstuffs_dots(make_sink):
    sink = make_sink(SINK_IP, free_port_on([SINK_IP]), extensions=["DSN", "8BITMIME"])
    message = b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\nend\r\n"
    with SMTPConnection(sink.port, host=SINK_IP) as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@example.org> RET=HDRS ENVID=x1").code == 250
        assert client.command("RCPT TO:<b@remote.test> NOTIFY=SUCCESS,FAILURE").code == 250
        assert client.command("DATA").code == 354
        client.send(b"Subject: dots\r\n\r\n..leading dot\r\n...two\r\nend\r\n.\r\n")
        assert client.read_reply().code == 250
    [received] = sink.wait_for(1, timeout=5)
    assert received.data == message
    assert received.mail_from == "a@example.org"
    assert received.mail_parameters == {"RET": "HDRS", "ENVID": "x1"}
    assert received.recipients[0].parameters == {"NOTIFY": "SUCCESS,FAILURE"}
    assert received.tls_version is None and received.auth_user is None
    assert not received.pipelined


def test_sink_sees_pipelined_commands(make_sink):
    sink = make_sink(SINK_IP, free_port_on([SINK_IP]))
    with SMTPConnection(sink.port, host=SINK_IP) as client:
        client.ehlo()
        client.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@remote.test>\r\nDATA\r\n")
        assert [client.read_reply().code for _ in range(3)] == [250, 250, 354]
        client.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
        assert client.read_reply().code == 250
    assert sink.wait_for(1, timeout=5)[0].pipelined


def test_sink_programmed_replies_run_in_order_and_the_last_repeats(make_sink):
    sink = make_sink(SINK_IP, free_port_on([SINK_IP]))
    sink.reply_to_data("451 4.3.0 try later", "250 2.0.0 fine")
    sink.reply_to_rcpt("nobody@remote.test", "550 5.1.1 no such user")
    with smtplib.SMTP(SINK_IP, sink.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPDataError) as first:
            client.sendmail("a@example.org", ["b@remote.test"], b"Subject: 1\r\n\r\nx\r\n")
        assert first.value.smtp_code == 451
        refused = client.sendmail("a@example.org", ["b@remote.test", "nobody@remote.test"],
                                  b"Subject: 2\r\n\r\nx\r\n")
        assert refused == {"nobody@remote.test": (550, b"5.1.1 no such user")}
        client.sendmail("a@example.org", ["b@remote.test"], b"Subject: 3\r\n\r\nx\r\n")
    assert [t.data_reply[:3] for t in sink.transactions] == ["451", "250", "250"]
    assert len(sink.wait_for(2, timeout=5)) == 2


def test_sink_starttls_then_auth_plain_is_required_and_recorded(make_sink, certs):
    sink = make_sink(SINK_IP, free_port_on([SINK_IP]), tls=certs["example.net"],
                     credentials=("relayuser", "relaypass"))
    with SMTPConnection(sink.port, host=SINK_IP) as client:
        features = client.ehlo().lines
        assert "STARTTLS" in features and "AUTH PLAIN" not in features
        client.starttls(context=insecure_client_context())
        assert "AUTH PLAIN" in client.ehlo().lines
        assert client.command("MAIL FROM:<a@example.org>").code == 530
        assert client.command(f"AUTH PLAIN {auth_plain('relayuser', 'wrong')}").code == 535
        assert client.command(f"AUTH PLAIN {auth_plain('relayuser', 'relaypass')}").code == 235
        assert client.command("MAIL FROM:<a@example.org>").code == 250
        assert client.command("RCPT TO:<b@remote.test>").code == 250
        assert client.command("DATA").code == 354
        client.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
        assert client.read_reply().code == 250
    [received] = sink.wait_for(1, timeout=5)
    assert received.tls_version in ("TLSv1.2", "TLSv1.3")
    assert received.auth_user == "relayuser"


def test_sink_stopped_refuses_connections_and_starts_again(make_sink):
    port = free_port_on([SINK_IP])
    sink = make_sink(SINK_IP, port, start=False)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((SINK_IP, port), timeout=2)
    sink.start()
    with SMTPConnection(port, host=SINK_IP) as client:
        assert client.greeting.code == 220
    sink.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((SINK_IP, port), timeout=2)


def test_sink_drop_reply_closes_the_connection_and_records_the_transaction(make_sink):
    sink = make_sink(SINK_IP, free_port_on([SINK_IP]))
    sink.reply_to_data(DROP, "250 2.0.0 ok")
    with SMTPConnection(sink.port, host=SINK_IP) as client:
        client.ehlo()
        client.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@remote.test>\r\nDATA\r\n")
        assert [client.read_reply().code for _ in range(3)] == [250, 250, 354]
        client.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
        assert client.wait_closed(5)
    assert sink.wait_for_transactions(1, timeout=5)[0].accepted is False
    assert sink.delivered == []


def test_sink_without_esmtp_refuses_ehlo_and_takes_helo(make_sink):
    sink = make_sink(SINK_IP, free_port_on([SINK_IP]), esmtp=False)
    with smtplib.SMTP(SINK_IP, sink.port, timeout=10) as client:
        assert client.ehlo()[0] == 500
        assert client.helo()[0] == 250
        client.sendmail("a@example.org", ["b@remote.test"], b"Subject: 1\r\n\r\nx\r\n")
    assert sink.wait_for(1, timeout=5)[0].helo


def test_sink_listens_on_ipv6_loopback(make_sink):
    sink = make_sink("::1", free_port_on(["::1"]))
    with smtplib.SMTP("::1", sink.port, timeout=10) as client:
        client.sendmail("a@example.org", ["b@remote.test"], b"Subject: 1\r\n\r\nx\r\n")
    assert sink.wait_for(1, timeout=5)[0].peer.startswith("[::1]")
