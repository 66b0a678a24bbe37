"""STARTTLS (RFC 3207): certificate per domain by SNI, state reset, no plaintext injection."""

import os
import re
import select
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import (IO_TIMEOUT, check_trace_headers, insecure_client_context, make_message,
                      queue_id, verifying_client_context)


def peer_names(tls_socket):
    cert = tls_socket.getpeercert()
    common_names = [value for rdn in cert["subject"] for key, value in rdn if key == "commonName"]
    alt_names = sorted(value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS")
    return common_names, alt_names


@pytest.mark.parametrize("domain", ["example.org", "example.net"])
@pytest.mark.parametrize("sni", ["mx.{domain}", "{domain}"])
def test_starttls_sni_picks_the_domain_certificate(server, certs, domain, sni):
    server_hostname = sni.format(domain=domain)
    context = verifying_client_context(certs[domain][0])
    with server.connect() as client:
        client.ehlo()
        tls = client.starttls(server_hostname=server_hostname, context=context)
        common_names, alt_names = peer_names(tls)
        assert common_names == [f"mx.{domain}"]
        assert alt_names == sorted([f"mx.{domain}", domain])
        assert client.command("EHLO client.example.net").code == 250


def test_starttls_without_sni_still_completes(server):
    with server.connect() as client:
        client.ehlo()
        tls = client.starttls(server_hostname=None, context=insecure_client_context())
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert client.command("EHLO client.example.net").code == 250


def test_starttls_unknown_sni_still_completes(server):
    with server.connect() as client:
        client.ehlo()
        client.starttls(server_hostname="unknown.example.com", context=insecure_client_context())
        assert client.command("EHLO client.example.net").code == 250


def test_smtplib_starttls_verifies_with_matching_certificate(server, certs):
    # smtplib sends no SNI for an IP address, so trust both certificates.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    for cert, _ in certs.values():
        context.load_verify_locations(cafile=str(cert))
    message = make_message("smtplib tls")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="tls.example.net",
                      timeout=IO_TIMEOUT) as client:
        client.starttls(context=context)
        client.sendmail("a@elsewhere.example", ["tls@example.org"], message)
    server.message().split(message)


def test_tls_delivery_records_esmtps_version_and_cipher(server, certs):
    message = make_message("over tls")
    with server.connect() as client:
        client.ehlo()
        tls = client.starttls("mx.example.org", verifying_client_context(certs["example.org"][0]))
        client.ehlo("secure.example.net")
        queue = queue_id(client.transaction("a@elsewhere.example", ["tls@example.org"], message))
        version, cipher = tls.version(), tls.cipher()[0]
    headers = server.message().split(message)
    check_trace_headers(headers, "a@elsewhere.example", ["tls@example.org"],
                        helo="secure.example.net", queue=queue, tls=(version, cipher),
                        for_recipient="tls@example.org")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2],
                         ids=["TLSv1.3", "TLSv1.2"])
def test_command_sent_with_the_last_handshake_flight_is_answered(server, version):
    """A client may send its first command right behind its Finished message, in the same
    segment (TLS 1.3 allows it; s_client and pipelining clients do it)."""
    with server.connect() as client:
        client.ehlo()
        assert client.command("STARTTLS").code == 220
        context = insecure_client_context()
        context.minimum_version = context.maximum_version = version
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname="mx.example.org")
        deadline = time.monotonic() + IO_TIMEOUT
        while True:
            assert time.monotonic() < deadline, "handshake did not finish"
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = outgoing.read()
                if pending:
                    client.sock.sendall(pending)
                chunk = client.sock.recv(65536)
                assert chunk, "server closed during the handshake"
                incoming.write(chunk)
        tls.write(b"EHLO eager.example.net\r\n")
        client.sock.sendall(outgoing.read())  # Finished (TLS 1.3) and EHLO in one segment
        received = b""
        client.sock.settimeout(5)
        try:
            while not re.search(rb"(^|\r\n)250 ", received):
                chunk = client.sock.recv(65536)
                assert chunk, f"server closed; got {received!r}"
                incoming.write(chunk)
                try:
                    received += tls.read(65536)
                except ssl.SSLWantReadError:
                    pass
        except socket.timeout:
            pytest.fail(f"no reply to EHLO sent with the handshake's last flight; got {received!r}")


def test_ehlo_after_starttls_does_not_offer_starttls_again(server):
    with server.connect() as client:
        client.ehlo()
        client.starttls()
        reply = client.ehlo()
        assert "STARTTLS" not in [line.split()[0].upper() for line in reply.lines[1:]], reply
        assert client.command("STARTTLS").code == 503


def test_starttls_resets_state_so_mail_needs_ehlo_again(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("RSET").code == 250
        client.starttls()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 503
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250


def test_starttls_in_a_transaction_is_refused_or_resets_it(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        reply = client.command("STARTTLS")
        if reply.code == 220:
            client.sock = insecure_client_context().wrap_socket(client.sock)
            client.ehlo()
            assert client.command("RCPT TO:<x@example.org>").code == 503, "transaction reset"
        else:
            assert reply.code == 503, reply


def test_plaintext_pipelined_after_starttls_is_discarded(server):
    """CVE-2011-0411: commands sent in the clear behind STARTTLS must not run inside TLS."""
    message = make_message("after injection")
    with server.connect() as client:
        client.ehlo()
        client.send(b"STARTTLS\r\nEHLO injected.example\r\nMAIL FROM:<injected@elsewhere.example>"
                    b"\r\n")
        reply = client.read_reply()
        assert reply.code == 220, reply
        time.sleep(0.2)  # give stray plaintext replies a chance to show up before the handshake
        client.sock.setblocking(False)
        try:
            stray = client.sock.recv(4096)
        except BlockingIOError:
            stray = b""
        client.sock.setblocking(True)
        assert stray == b"", f"server answered injected plaintext: {stray!r}"
        client.sock.settimeout(IO_TIMEOUT)
        client.sock = insecure_client_context().wrap_socket(client.sock)
        # Had "EHLO injected" and "MAIL FROM" run, this RCPT would be accepted.
        assert client.command("RCPT TO:<x@example.org>").code == 503
        client.ehlo("honest.example.net")
        queue_id(client.transaction("a@elsewhere.example", ["x@example.org"], message))
    stored = server.message()
    stored.split(message)
    assert b"injected" not in stored.data


def test_tls_handshake_garbage_does_not_hurt_the_server(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("STARTTLS").code == 220
        client.send(os.urandom(4096) + b"\r\nQUIT\r\n")
        client.wait_closed(10)
    with server.connect() as client:
        client.ehlo()
        client.starttls()
        assert client.command("NOOP").code == 250


def test_client_closing_during_handshake_does_not_hurt_the_server(server):
    for _ in range(5):
        with server.connect() as client:
            client.ehlo()
            assert client.command("STARTTLS").code == 220
            client.send(b"\x16\x03\x01\x00")  # a truncated ClientHello, then hang up
    with server.connect() as client:
        client.ehlo()
        client.starttls()
        assert client.command("NOOP").code == 250


def run_s_client(port, servername, cafile, steps):
    """Drives `openssl s_client -starttls smtp` line by line. steps: (line, expects a reply).
    Returns the reply lines seen, the exit status and what s_client said on stderr."""
    command = ["openssl", "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{port}",
               "-servername", servername, "-CAfile", str(cafile), "-verify_return_error",
               "-verify_hostname", servername, "-crlf", "-quiet"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    output = b""
    replies_seen = 0

    def wait_for_reply():
        nonlocal output, replies_seen
        deadline = time.monotonic() + 10
        while True:
            finished = [line for line in output.split(b"\n")[:-1] if line[3:4] == b" "]
            if len(finished) > replies_seen:
                replies_seen += 1
                return
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"s_client: no reply; output so far {output!r}"
            ready, _, _ = select.select([process.stdout], [], [], remaining)
            if ready:
                chunk = os.read(process.stdout.fileno(), 65536)
                assert chunk, f"s_client ended: {output!r} {process.stderr.read()!r}"
                output += chunk

    try:
        for line, expects_reply in steps:
            process.stdin.write(line + b"\n")
            process.stdin.flush()
            if expects_reply:
                wait_for_reply()
        process.stdin.close()
        process.wait(timeout=IO_TIMEOUT)
        output += process.stdout.read()
        errors = process.stderr.read().decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return (output.decode(errors="replace").replace("\r", "").split("\n"), process.returncode,
            errors)


def test_openssl_s_client_starttls_delivers_with_verified_sni_certificate(server, certs):
    lines, _, _ = run_s_client(
        server.smtp_port, "mx.example.net", certs["example.net"][0],
        [(b"EHLO s-client.example", True), (b"MAIL FROM:<a@elsewhere.example>", True),
         (b"RCPT TO:<sclient@example.net>", True), (b"DATA", True),
         (b"Subject: s_client", False), (b"", False), (b"s_client body", False), (b".", True),
         (b"QUIT", True)])
    codes = [line[:3] for line in lines if line[3:4] == " "]
    assert codes == ["250", "250", "250", "354", "250", "221"], lines
    data = server.message("example.net").data
    # Sent without a Message-ID: one is added where the header section ends.
    assert re.search(rb"Subject: s_client\r\nMessage-ID: <[^>\r\n]+@mx\.example\.org>\r\n"
                     rb"\r\ns_client body\r\n$", data), data
    assert b"with ESMTPS" in data


def test_tls_session_ends_with_close_notify(server, certs):
    """RFC 8446 6.1: after 221 the server sends close_notify before closing; OpenSSL 3 clients
    report a bare TCP close as "unexpected eof" (s_client exits with status 1)."""
    lines, status, errors = run_s_client(
        server.smtp_port, "mx.example.org", certs["example.org"][0],
        [(b"EHLO s-client.example", True), (b"QUIT", True)])
    assert [line[:3] for line in lines if line[3:4] == " "] == ["250", "221"], lines
    assert status == 0, errors


def test_swaks_tls_with_sni_delivers(server, certs):
    result = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{server.smtp_port}", "--tls",
         "--tls-sni", "mx.example.org", "--tls-verify", "--tls-ca-path",
         str(certs["example.org"][0]), "--to", "swaks-tls@example.org",
         "--from", "tester@elsewhere.example", "--body", "Over TLS.", "--timeout", "30"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    data = server.message().data
    assert b"Over TLS.\r\n" in data
    assert b"with ESMTPS" in data
