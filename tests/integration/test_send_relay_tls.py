"""The smarthost and its TLS: with credentials (or OutboundRelayCAFile) the smarthost's
certificate must chain to a trusted CA and name the configured host before the password is
sent; a certificate that does not, or a login the smarthost refuses, defers the mail (it stays
in the queue, no bounce) and is logged as an error. Without credentials the smarthost is
treated like an MX host: opportunistic TLS, certificate unchecked."""

import base64
import subprocess

import pytest

from dnsfixture import make_dns  # noqa: F401 (fixture)
from sink import (SMARTHOST_IP, SINK_IPS, free_port_on, make_sink,  # noqa: F401 (fixtures)
                  maildrop_reports, outgoing_message, queue_listing, sending_server, submit,
                  wait_until)

SMARTHOST = "smarthost.test"
USER, PASSWORD = "relay-user", "relay-secret"
RECIPIENT = "bob@remote.test"


@pytest.fixture
def smarthost_world(make_dns, make_sink, sending_server):
    """smarthost_world(cert, ca_file=None, credentials=True, sink_password=PASSWORD,
    start=True) -> (server, smarthost): a sink at SMARTHOST_IP with STARTTLS on cert, which
    the server (resolving smarthost.test to it) uses as OutboundRelayHost."""
    def factory(cert, ca_file=None, credentials=True, sink_password=PASSWORD, start=True):
        port = free_port_on(SINK_IPS)
        dns_server = make_dns(hosts={SMARTHOST: SMARTHOST_IP})
        smarthost = make_sink(SMARTHOST_IP, port, tls=cert,
                              credentials=(USER, sink_password) if credentials else None)
        overrides = {"OutboundRelayHost": f"{SMARTHOST}:{port}"}
        if credentials:
            overrides.update(OutboundRelayUser=USER, OutboundRelayPassword=PASSWORD)
        if ca_file:
            overrides["OutboundRelayCAFile"] = str(ca_file)
        server = sending_server(dns=dns_server, outbound_port=port, overrides=overrides,
                                start=start)
        return server, smarthost

    return factory


def recipient_line(server, address=RECIPIENT):
    """The recipient's line in `mailpopbox queue` ("PENDING <bob@...>  last error"), or None
    once the message left the queue."""
    for line in queue_listing(server).splitlines():
        if f"<{address}>" in line:
            return line.strip()
    return None


def attempts(server):
    """The attempt count of the (only) queued entry, 0 when there is none."""
    for line in queue_listing(server).splitlines():
        if " attempts " in line:
            return int(line.split(" attempts ")[1].split()[0])
    return 0


def wait_for_deferrals(server, count=2, timeout=30.0):
    """Waits until the entry was tried `count` times and is still queued; returns its
    recipient line."""
    wait_until(lambda: attempts(server) >= count, timeout,
               f"{count} attempts; the queue shows:\n{queue_listing(server)}", interval=0.2)
    line = recipient_line(server)
    assert line is not None, f"the message left the queue:\n{queue_listing(server)}"
    return line


def log_lines(server, *fragments):
    return [line for line in server.log_text().splitlines()
            if all(fragment in line for fragment in fragments)]


def assert_password_never_sent(smarthost):
    encoded = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    assert smarthost.client_lines("AUTH") == [], smarthost.dialogue()
    assert smarthost.failed_logins == []
    dialogue = smarthost.dialogue()
    assert PASSWORD not in dialogue and encoded not in dialogue, dialogue
    # Nothing after STARTTLS: the handshake ended the session, and there was no second try
    # in clear text either.
    assert [line.split()[0] for line in smarthost.client_lines("")] in \
        (["EHLO", "STARTTLS"] * n for n in range(1, 20)), dialogue


def assert_deferred_for(server, smarthost, reason):
    """The message was tried and kept: PENDING with the TLS reason as its last error, no
    report in the maildrop, an error-level log line naming the reason."""
    line = wait_for_deferrals(server)
    assert line.startswith("PENDING") and reason in line, line
    assert smarthost.delivered == []
    assert maildrop_reports(server) == []
    assert log_lines(server, "level=error", "event=tls_failed", f"host={SMARTHOST}", reason), \
        server.log_text()[-3000:]
    assert log_lines(server, "event=deferred", "status=4."), server.log_text()[-3000:]


def test_smarthost_with_a_certificate_from_the_given_ca_gets_auth_and_the_mail(
        smarthost_world, test_ca):
    server, smarthost = smarthost_world(test_ca.issue(SMARTHOST), ca_file=test_ca.cert)
    message, message_id = outgoing_message("verified smarthost")
    submit(server, [RECIPIENT], message)
    [received] = smarthost.wait_for(1)
    assert received.message_id == message_id
    assert received.tls_version in ("TLSv1.2", "TLSv1.3")
    assert received.auth_user == USER


def test_smarthost_certificate_from_a_ca_the_system_does_not_trust_gets_no_password(
        smarthost_world, test_ca):
    # No OutboundRelayCAFile: the system's store, which does not know the test CA.
    server, smarthost = smarthost_world(test_ca.issue(SMARTHOST))
    submit(server, [RECIPIENT], outgoing_message("unknown ca")[0])
    assert_deferred_for(server, smarthost, "unable to get local issuer certificate")
    assert_password_never_sent(smarthost)


def test_smarthost_self_signed_certificate_gets_no_password(smarthost_world, test_ca, certs):
    server, smarthost = smarthost_world(certs["example.net"], ca_file=test_ca.cert)
    submit(server, [RECIPIENT], outgoing_message("self-signed smarthost")[0])
    assert_deferred_for(server, smarthost, "self-signed certificate")
    assert_password_never_sent(smarthost)


def test_smarthost_certificate_for_another_name_gets_no_password(smarthost_world, test_ca):
    server, smarthost = smarthost_world(test_ca.issue("other.test"), ca_file=test_ca.cert)
    submit(server, [RECIPIENT], outgoing_message("wrong name")[0])
    assert_deferred_for(server, smarthost, "hostname mismatch")
    assert_password_never_sent(smarthost)


def test_ca_file_without_credentials_still_checks_the_smarthost(smarthost_world, test_ca):
    server, smarthost = smarthost_world(test_ca.issue("other.test"), ca_file=test_ca.cert,
                                        credentials=False)
    submit(server, [RECIPIENT], outgoing_message("checked, no login")[0])
    assert_deferred_for(server, smarthost, "hostname mismatch")


def test_smarthost_without_credentials_or_ca_file_is_opportunistic(smarthost_world, certs):
    # Nothing secret is sent: like an MX host, an unchecked certificate beats plain text.
    server, smarthost = smarthost_world(certs["example.net"], credentials=False)
    message, message_id = outgoing_message("opportunistic smarthost")
    submit(server, [RECIPIENT], message)
    [received] = smarthost.wait_for(1)
    assert received.message_id == message_id
    assert received.tls_version in ("TLSv1.2", "TLSv1.3")


def test_wrong_smarthost_password_defers_and_keeps_the_message(smarthost_world, test_ca):
    server, smarthost = smarthost_world(test_ca.issue(SMARTHOST), ca_file=test_ca.cert,
                                        sink_password="the-real-password")
    submit(server, [RECIPIENT], outgoing_message("wrong password")[0])
    line = wait_for_deferrals(server)
    assert line.startswith("PENDING") and "535 5.7.8" in line, line
    assert len(smarthost.failed_logins) >= 2, smarthost.dialogue()
    assert smarthost.delivered == []
    assert maildrop_reports(server) == [], "a bounce was written for the operator's password"
    assert log_lines(server, "level=error", "event=relay_auth_failed", f'host="{SMARTHOST}"',
                     "code=535"), server.log_text()[-3000:]
    assert log_lines(server, "event=deferred", "status=4.7.8"), server.log_text()[-3000:]
    assert PASSWORD not in server.log_text()


def test_unreadable_ca_file_stops_the_server_and_fails_the_check(smarthost_world, test_ca,
                                                                   tmp_path):
    missing = tmp_path / "no-such-ca.pem"
    server, _ = smarthost_world(test_ca.issue(SMARTHOST), ca_file=missing, start=False)
    served = subprocess.run([str(server.binary), str(server.config_path)], capture_output=True,
                            timeout=30, stdin=subprocess.DEVNULL)
    assert served.returncode != 0
    assert f"OutboundRelayCAFile: cannot load {missing}".encode() in served.stderr, \
        served.stderr
    checked = subprocess.run([str(server.binary), "check", str(server.config_path)],
                             capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert checked.returncode == 1
    assert f"error: OutboundRelayCAFile: cannot load {missing}".encode() in checked.stdout, \
        checked.stdout
