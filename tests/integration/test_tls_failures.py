"""Failed TLS handshakes on the server's ports are logged with OpenSSL's reason (a protocol
version we do not speak, no shared cipher, an alert the client sent), and under a budget
(TLS_FAILURE_LOG_BURST lines per TLS_FAILURE_LOG_INTERVAL_SECONDS, src/bounds.h) so a scanner
cannot flood the log: the failures held back are counted in an event=tls_failed_suppressed
line."""

import re
import ssl
import time
import warnings

import pytest

from conftest import (SMTPConnection, bounds_constant, insecure_client_context,
                      verifying_client_context)
from pop3util import POP3Connection
from sink import wait_until


BURST = bounds_constant("TLS_FAILURE_LOG_BURST")
INTERVAL = bounds_constant("TLS_FAILURE_LOG_INTERVAL_SECONDS")


def old_protocols_only():
    """A client that speaks only TLS 1.0 and 1.1 (RFC 8996 deprecated both)."""
    context = insecure_client_context()
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


def cbc_suite_only():
    context = insecure_client_context()
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-SHA:@SECLEVEL=0")
    return context


def fail_pop3_handshake(server, context):
    with pytest.raises((ssl.SSLError, ConnectionError)):
        POP3Connection(server.pop3_port, context=context).close()


def failures(server):
    """(client, module, reason) of every event=tls_failed line so far."""
    return re.findall(r'module=(\w+) event=tls_failed client=(\S+) reason="([^"]*)"',
                      server.log_text())


def wait_for_failure(server, module, reason):
    return wait_until(lambda: [f for f in failures(server) if f[0] == module and f[2] == reason],
                      10, f"no {module} tls_failed line with reason {reason!r}:\n"
                      f"{server.log_text()[-3000:]}")


def test_tls10_and_tls11_client_is_logged_as_unsupported_protocol(server):
    fail_pop3_handshake(server, old_protocols_only())
    wait_for_failure(server, "pop3", "unsupported protocol")


def test_no_shared_cipher_is_logged_as_such(server):
    fail_pop3_handshake(server, cbc_suite_only())
    wait_for_failure(server, "pop3", "no shared cipher")


def test_no_shared_cipher_after_starttls_on_submission_is_logged(server):
    with SMTPConnection(server.config["SubmissionPort"]) as client:
        client.ehlo()
        with pytest.raises((ssl.SSLError, ConnectionError)):
            client.starttls(context=cbc_suite_only())
    wait_for_failure(server, "smtp", "no shared cipher")


def test_alert_from_the_client_is_logged(server, test_ca):
    # The client trusts only the test CA, which did not sign the server's certificate: it
    # ends the handshake with an alert, which the server names.
    with SMTPConnection(server.smtp_port) as client:
        client.ehlo()
        with pytest.raises(ssl.SSLError):
            client.starttls(server_hostname="mx.example.org",
                            context=verifying_client_context(test_ca.cert))
    wait_for_failure(server, "smtp", "tlsv1 alert unknown ca")


def accounted(server):
    """(lines written, failures counted in summaries)."""
    log = server.log_text()
    summaries = [int(n) for n in re.findall(r"event=tls_failed_suppressed count=(\d+)", log)]
    return len(failures(server)), sum(summaries)


def test_a_flood_of_failed_handshakes_writes_a_bounded_number_of_lines(server):
    attempts = 10 * BURST
    started = time.monotonic()
    for _ in range(attempts):
        fail_pop3_handshake(server, old_protocols_only())
    elapsed = time.monotonic() - started
    # Every interval the flood touched may write its burst.
    allowed = BURST * (int(elapsed // INTERVAL) + 2)
    assert allowed < attempts, f"the flood took {elapsed:.1f}s: too slow to test the limit"
    # The next interval: one more failure is written, with the count of those held back.
    time.sleep(INTERVAL + 0.5)
    fail_pop3_handshake(server, old_protocols_only())
    wait_until(lambda: sum(accounted(server)) >= attempts + 1, 10,
               f"failures accounted for: {accounted(server)} of {attempts + 1}")
    written, summarised = accounted(server)
    assert written + summarised == attempts + 1, (written, summarised)
    assert written <= allowed + 1, f"{written} tls_failed lines for {attempts + 1} failures"
    # The summary comes just before the line that ended the silence.
    lines = server.log_text().splitlines()
    last = max(i for i, line in enumerate(lines) if "event=tls_failed " in line)
    assert any("event=tls_failed_suppressed" in line for line in lines[last - 3:last]), \
        "\n".join(lines[last - 3:last + 1])
