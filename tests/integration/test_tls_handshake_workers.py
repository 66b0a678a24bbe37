"""TLS handshakes run on the worker pool (src/net/handshake.c): the event loop hands
each step of a server handshake to a worker and waits for the socket in between. These tests
drive the paths that design adds: a ClientHello that arrives in pieces (the step ends wanting
more and the socket is watched again), clients that stall or leave in the middle, and SIGTERM
while handshakes are pending (the server still exits 0, and the sanitizer build checks nothing
leaks)."""

import signal
import socket
import ssl
import time

from conftest import bounds_constant
from loadutil import TIME_FACTOR

IO_TIMEOUT = 10 * TIME_FACTOR


def client_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def client_hello(server_hostname="mx.example.org"):
    """The bytes of a client's first flight (its ClientHello), made without a socket."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def handshake_in_pieces(sock, server_hostname, piece=7, pause=0.02):
    """A client handshake over sock through memory BIOs, sending every flight in small pieces
    with pauses, so each server step sees a partial record. Returns the SSLObject."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    sock.settimeout(IO_TIMEOUT)
    while True:
        try:
            tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        data = outgoing.read()
        for i in range(0, len(data), piece):
            sock.sendall(data[i:i + piece])
            time.sleep(pause)
        if done:
            return tls, incoming, outgoing
        chunk = sock.recv(65536)
        assert chunk, "the server closed during the handshake"
        incoming.write(chunk)


def read_line(sock, tls, incoming):
    buffer = b""
    while b"\r\n" not in buffer:
        try:
            buffer += tls.read(4096)
            continue
        except ssl.SSLWantReadError:
            pass
        chunk = sock.recv(65536)
        assert chunk, f"closed; got {buffer!r}"
        incoming.write(chunk)
    return buffer


def test_pop3_implicit_tls_handshake_in_small_pieces_completes(server):
    with socket.create_connection(("127.0.0.1", server.config["POP3Port"]), IO_TIMEOUT) as s:
        tls, incoming, _ = handshake_in_pieces(s, "mx.example.org")
        assert read_line(s, tls, incoming).startswith(b"+OK")


def test_smtp_starttls_handshake_in_small_pieces_completes(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("STARTTLS").code == 220
        sock = client.sock
        tls, incoming, outgoing = handshake_in_pieces(sock, "mx.example.org")
        tls.write(b"EHLO pieces.example\r\n")
        sock.sendall(outgoing.read())
        assert read_line(sock, tls, incoming).startswith(b"250")


def test_submissions_greets_only_after_the_handshake(server):
    with socket.create_connection(("127.0.0.1", server.config["SubmissionTLSPort"]),
                                  IO_TIMEOUT) as s:
        s.settimeout(0.5)
        try:
            early = s.recv(100)
        except socket.timeout:
            early = b""
        assert early == b"", "the server sent something before the TLS handshake"
        s.settimeout(IO_TIMEOUT)
        with client_context().wrap_socket(s, server_hostname="mx.example.org") as tls:
            assert tls.recv(100).startswith(b"220 ")


def test_many_clients_leaving_mid_handshake_do_not_hurt_the_server(server):
    hello = client_hello()
    for round_number in range(16):  # below MaxConnectionsPerIP (20)
        port = server.config["POP3Port"] if round_number % 2 else server.config["SubmissionTLSPort"]
        with socket.create_connection(("127.0.0.1", port), IO_TIMEOUT) as s:
            s.sendall(hello)  # a whole ClientHello: the server's step runs, then we are gone
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # The server frees those connections as their handshake steps come back from the workers;
    # until then they count against MaxConnectionsPerIP, so the check may need a retry.
    deadline = time.monotonic() + IO_TIMEOUT
    while True:
        try:
            with socket.create_connection(("127.0.0.1", server.config["POP3Port"]),
                                          IO_TIMEOUT) as s:
                with client_context().wrap_socket(s, server_hostname="mx.example.org") as tls:
                    assert tls.recv(100).startswith(b"+OK")
            break
        except (ssl.SSLError, ConnectionError):
            assert time.monotonic() < deadline, "the server did not recover"
            time.sleep(0.1)
    assert server.alive()
    # Logged, as far as the log's budget for failed handshakes goes. A handshake's failure is
    # logged when its step comes back from a worker of its own event loop, which may be after
    # the probe above got through on another loop: wait for the lines, within a bound.
    expected = min(16, bounds_constant("TLS_FAILURE_LOG_BURST"))
    deadline = time.monotonic() + IO_TIMEOUT
    while server.log_text().count("event=tls_failed client=") < expected:
        assert time.monotonic() < deadline, "the abandoned handshakes"
        time.sleep(0.1)


def test_sigterm_with_handshakes_pending_exits_0_promptly(server):
    stalled = []
    # Connected, nothing sent: waiting for a ClientHello.
    for key in ("POP3Port", "SubmissionTLSPort"):
        stalled.append(socket.create_connection(("127.0.0.1", server.config[key]), IO_TIMEOUT))
    # After STARTTLS, nothing sent.
    starttls = server.connect()
    starttls.ehlo()
    assert starttls.command("STARTTLS").code == 220
    # Half a ClientHello.
    half = socket.create_connection(("127.0.0.1", server.config["POP3Port"]), IO_TIMEOUT)
    hello = client_hello()
    half.sendall(hello[:len(hello) // 2])
    stalled.append(half)
    time.sleep(0.3)

    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=IO_TIMEOUT) == 0
    for s in stalled:
        s.settimeout(IO_TIMEOUT)
        assert s.recv(100) == b"", "a stalled handshake was not closed"
        s.close()
    starttls.close()
