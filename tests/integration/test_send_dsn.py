"""Delivery Status Notifications: permanent failures, null MX (RFC 7505) and expiry put an
RFC 3464 report into the sender domain's maildrop; RFC 3461 NOTIFY decides which reports are
made and is passed on to a remote that offers DSN."""

import re
import time

from conftest import queue_id
from dnsfixture import make_dns  # noqa: F401 (fixture)
from sink import (SINK_IPS, authenticated, delivery_status,  # noqa: F401 (fixtures)
                  free_port_on, maildrop_reports, make_sink, outbound, outgoing_message,
                  recipient_status, sending_server, submit, transaction, wait_for_report,
                  wait_until, wait_until_dequeued)

STATUS_RE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


def test_550_gives_an_rfc3464_report_in_the_sender_maildrop(outbound):
    server, sink = outbound()
    sink.reply_to_rcpt("nobody@remote.test", "550 5.1.1 no such user here")
    message, message_id = outgoing_message("to nobody", to="nobody@remote.test")
    submit(server, ["nobody@remote.test"], message)
    report = wait_for_report(server)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    per_message, _ = delivery_status(report)
    assert per_message.get("reporting-mta", "").startswith("dns;"), per_message
    fields = recipient_status(report, "nobody@remote.test")
    assert fields.get("action") == "failed", fields
    assert STATUS_RE.match(fields.get("status", "")) and fields["status"].startswith("5."), \
        fields
    assert re.match(r"(?i)^smtp;\s*550\b.*no such user here", fields.get("diagnostic-code", "")), \
        fields
    assert fields.get("remote-mta", "").lower().startswith("dns;"), fields
    assert fields["final-recipient"].lower().startswith("rfc822;"), fields
    assert message_id in report.as_string(), "the report neither quotes nor attaches the message"


def test_550_is_not_retried(outbound):
    server, sink = outbound(overrides={"QueueRetryBaseSeconds": 1})
    sink.reply_to_rcpt("nobody@remote.test", "550 5.1.1 no such user")
    message, _ = outgoing_message("to nobody", to="nobody@remote.test")
    queue = queue_id(submit(server, ["nobody@remote.test"], message))
    wait_for_report(server)
    wait_until_dequeued(server, queue)
    assert len(sink.client_lines("RCPT")) == 1, sink.dialogue()
    assert len(maildrop_reports(server)) == 1


def test_report_names_only_the_failed_recipient(outbound):
    server, sink = outbound()
    sink.reply_to_rcpt("nobody@remote.test", "550 5.1.1 no such user")
    message, message_id = outgoing_message("one good one bad")
    submit(server, ["bob@remote.test", "nobody@remote.test"], message)
    [received] = sink.wait_for(1)
    assert received.accepted_recipients == ["bob@remote.test"]
    report = wait_for_report(server)
    _, recipients = delivery_status(report)
    finals = [fields.get("final-recipient", "").split(";")[-1].strip() for fields in recipients]
    assert finals == ["nobody@remote.test"], recipients


def test_report_goes_to_the_sender_domain_maildrop(outbound):
    server, sink = outbound()
    sink.reply_to_rcpt("nobody@remote.test", "550 5.1.1 no such user")
    message, _ = outgoing_message("from example.net", sender="Net Owner <mailbox@example.net>")
    with authenticated(server, domain="example.net") as client:
        assert transaction(client, "mailbox@example.net", ["nobody@remote.test"],
                           message).code == 250
    report = wait_for_report(server, domain="example.net")
    assert recipient_status(report, "nobody@remote.test")["action"] == "failed"
    assert maildrop_reports(server, "example.org") == []


def test_multiline_550_reply_is_reported_in_full(outbound):
    server, sink = outbound()
    sink.reply_to_rcpt("nobody@remote.test",
                       "550 5.1.1 no such user here\nsee https://help.remote.test/550")
    message, _ = outgoing_message("to nobody", to="nobody@remote.test")
    submit(server, ["nobody@remote.test"], message)
    fields = recipient_status(wait_for_report(server), "nobody@remote.test")
    assert fields["status"] == "5.1.1", fields
    diagnostic = " ".join(fields.get("diagnostic-code", "").split())
    assert "no such user here" in diagnostic and "help.remote.test" in diagnostic, fields


def test_550_at_end_of_data_gives_a_report(outbound):
    server, sink = outbound()
    sink.reply_to_data("554 5.7.1 message refused as spam")
    message, _ = outgoing_message("refused at data")
    submit(server, ["bob@remote.test"], message)
    report = wait_for_report(server)
    fields = recipient_status(report, "bob@remote.test")
    assert fields["action"] == "failed"
    assert fields["status"].startswith("5."), fields
    assert "554" in fields.get("diagnostic-code", ""), fields


def test_null_mx_fails_at_once_with_a_report(make_dns, make_sink, sending_server):
    port = free_port_on(SINK_IPS)
    dns_server = make_dns(null_mx=["nullmx.test"])
    # Retries an hour apart: a report within seconds means no retry was waited for.
    server = sending_server(dns=dns_server, outbound_port=port,
                            overrides={"QueueRetryBaseSeconds": 3600})
    message, _ = outgoing_message("to a domain that takes no mail", to="x@nullmx.test")
    submit(server, ["x@nullmx.test"], message)
    report = wait_for_report(server, timeout=15)
    fields = recipient_status(report, "x@nullmx.test")
    assert fields["action"] == "failed", fields
    assert fields["status"].startswith("5."), fields  # RFC 7505 4.2 suggests 5.1.10


def test_expired_message_gives_a_failed_report(outbound):
    server, sink = outbound(overrides={"QueueRetryBaseSeconds": 1, "QueueLifetimeSeconds": 3})
    sink.reply_to_rcpt("slow@remote.test", "451 4.3.0 come back later")
    message, _ = outgoing_message("never accepted", to="slow@remote.test")
    submit(server, ["slow@remote.test"], message)
    report = wait_for_report(server, timeout=30)
    fields = recipient_status(report, "slow@remote.test")
    assert fields["action"] == "failed", fields
    assert STATUS_RE.match(fields.get("status", "")), fields
    assert "451" in fields.get("diagnostic-code", ""), fields


def test_notify_success_gives_a_delivered_report(outbound):
    # The sink does not offer DSN, so the server itself reports the success (RFC 3461 6.2.2).
    server, sink = outbound()
    message, _ = outgoing_message("tell me when delivered")
    submit(server, ["bob@remote.test"], message, mail_parameters="RET=HDRS ENVID=order-17",
           rcpt_parameters="NOTIFY=SUCCESS ORCPT=rfc822;bob@remote.test")
    sink.wait_for(1)
    report = wait_for_report(server)
    fields = recipient_status(report, "bob@remote.test")
    assert fields.get("action") in ("delivered", "relayed"), fields
    assert fields.get("status", "").startswith("2."), fields
    per_message, _ = delivery_status(report)
    assert per_message.get("original-envelope-id") == "order-17", per_message
    assert re.sub(r"\s+", "", fields.get("original-recipient", "")).lower() == \
        "rfc822;bob@remote.test", fields


def test_notify_never_gives_no_report(outbound):
    server, sink = outbound()
    sink.reply_to_rcpt("nobody@remote.test", "550 5.1.1 no such user")
    message, _ = outgoing_message("no news wanted", to="nobody@remote.test")
    queue = queue_id(submit(server, ["nobody@remote.test"], message,
                            rcpt_parameters="NOTIFY=NEVER"))
    wait_until(lambda: sink.server_lines("550"), 10, "the sink never refused the recipient")
    wait_until_dequeued(server, queue)
    time.sleep(0.5)  # a report would be written as the message leaves the queue
    assert maildrop_reports(server) == []
    assert server.messages("example.org") == []


def test_no_report_without_notify_success_for_a_delivered_message(outbound):
    server, sink = outbound()
    message, _ = outgoing_message("ordinary")
    queue = queue_id(submit(server, ["bob@remote.test"], message))
    sink.wait_for(1)
    wait_until_dequeued(server, queue)
    time.sleep(0.5)  # a report would be written as the message leaves the queue
    assert maildrop_reports(server) == []


def test_dsn_parameters_are_passed_on_to_a_remote_that_offers_dsn(outbound):
    server, sink = outbound(sink_options={"extensions": ["PIPELINING", "8BITMIME", "DSN"]})
    message, _ = outgoing_message("dsn all the way")
    submit(server, ["bob@remote.test"], message, mail_parameters="RET=HDRS ENVID=order-18",
           rcpt_parameters="NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@remote.test")
    [received] = sink.wait_for(1)
    assert received.mail_parameters.get("RET") == "HDRS", received.mail_parameters
    assert received.mail_parameters.get("ENVID") == "order-18", received.mail_parameters
    parameters = received.recipients[0].parameters
    assert set(parameters.get("NOTIFY", "").upper().split(",")) == {"SUCCESS", "FAILURE"}, \
        parameters
    assert parameters.get("ORCPT", "").lower() == "rfc822;bob@remote.test", parameters


def test_ret_hdrs_report_carries_only_the_headers(outbound):
    server, sink = outbound()
    sink.reply_to_rcpt("nobody@remote.test", "550 5.1.1 no such user")
    message, message_id = outgoing_message("headers only", to="nobody@remote.test",
                                           body=b"SECRET-BODY-MARKER\r\n")
    submit(server, ["nobody@remote.test"], message, mail_parameters="RET=HDRS")
    report = wait_for_report(server)
    types = [part.get_content_type() for part in report.walk()]
    assert "text/rfc822-headers" in types, types
    assert "message/rfc822" not in types, types
    assert message_id in report.as_string()
    assert "SECRET-BODY-MARKER" not in report.as_string()


def test_nonexistent_recipient_domain_gives_a_report(outbound):
    # nowhere.test is inside the test DNS's zone and does not exist: NXDOMAIN is permanent.
    server, sink = outbound(overrides={"QueueRetryBaseSeconds": 3600})
    message, _ = outgoing_message("to a domain that does not exist", to="x@nowhere.test")
    submit(server, ["x@nowhere.test"], message)
    report = wait_for_report(server, timeout=15)
    fields = recipient_status(report, "x@nowhere.test")
    assert fields["action"] == "failed", fields
    assert fields["status"].startswith("5."), fields


def test_message_larger_than_the_remote_size_limit_gives_a_report_unsent(outbound):
    server, sink = outbound(sink_options={"extensions": ["PIPELINING", "SIZE 1000"]})
    message, _ = outgoing_message("too big for them", body=(b"y" * 70 + b"\r\n") * 40)
    submit(server, ["bob@remote.test"], message)
    report = wait_for_report(server)
    fields = recipient_status(report, "bob@remote.test")
    assert fields["action"] == "failed", fields
    assert fields["status"].startswith("5."), fields  # RFC 3463: 5.3.4 message too big
    assert sink.client_lines("DATA") == [], "sent although over the advertised SIZE (RFC 1870)"


def test_utf8_address_to_a_remote_without_smtputf8_gives_a_report(outbound):
    server, sink = outbound(sink_options={"extensions": ["PIPELINING", "8BITMIME"]})
    message, _ = outgoing_message("utf8 address", to="jörg@remote.test")
    submit(server, ["jörg@remote.test"], message, mail_parameters="SMTPUTF8")
    report = wait_for_report(server)
    _, recipients = delivery_status(report)
    assert [fields["action"] for fields in recipients] == ["failed"], recipients
    assert recipients[0]["status"].startswith("5."), recipients
    assert sink.delivered == [], "RFC 6531 3.2: not sent to a server without SMTPUTF8"
