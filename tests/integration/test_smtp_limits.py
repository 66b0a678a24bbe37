"""Limits (RFC 5321 4.5.3): line length, timeouts, connection caps, garbage. Never a crash."""

import random
import re
import socket
import time

from conftest import ConnectionClosed, SMTPConnection, make_message, queue_id
from pop3util import POP3Connection


def assert_still_serving(server):
    assert server.alive(), "mailpopbox died"
    with server.connect() as client:
        client.ehlo()
        message = make_message("still alive")
        queue_id(client.transaction("a@elsewhere.example", ["alive@example.org"], message))
    assert any(stored.data.endswith(message) for stored in server.messages())


def test_command_line_over_limit_is_500_5_5_2(server):
    with server.connect() as client:
        client.ehlo()
        reply = client.command("NOOP " + "x" * 3000)
        assert (reply.code, reply.enhanced) == (500, "5.5.2"), reply
        assert client.command("NOOP").code == 250, "the session continues"


def test_long_but_allowed_command_line_is_accepted(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("NOOP " + "x" * 1000).code == 250


def test_megabyte_command_line_is_refused_without_harm(server):
    with server.connect() as client:
        client.ehlo()
        # The line is dropped as it streams in and refused once its CRLF arrives; the session
        # goes on with its one error counted.
        client.send(b"MAIL FROM:<" + b"a" * (1024 * 1024) + b"@example.net>\r\n")
        reply = client.read_reply()
        assert (reply.code, reply.enhanced) == (500, "5.5.2"), reply
        assert client.command("NOOP").code == 250
    assert_still_serving(server)


def test_nul_bytes_in_commands_are_500_or_501(server):
    with server.connect() as client:
        client.ehlo()
        for line in (b"NO\x00OP", b"\x00", b"MAIL FROM:<a\x00b@elsewhere.example>",
                     b"EHLO \x00host"):
            reply = client.command(line)
            assert reply.code in (500, 501), f"{line!r}: {reply}"
        assert client.command("NOOP").code == 250
    assert_still_serving(server)


def test_nul_byte_in_recipient_is_refused(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        reply = client.command(b"RCPT TO:<victim@gmail.com\x00@example.org>")
        assert reply.code in (500, 501, 550, 553), reply
        assert client.command("DATA").code == 503, "no recipient may have been accepted"


def test_command_timeout_is_421_4_4_2_then_close(make_server):
    server = make_server({"SMTPCommandTimeoutSeconds": 2})
    with server.connect() as client:
        started = time.monotonic()
        reply = client.read_reply(timeout=15)
        elapsed = time.monotonic() - started
        assert (reply.code, reply.enhanced) == (421, "4.4.2"), reply
        assert 1.5 <= elapsed <= 10, f"timed out after {elapsed:.1f}s, configured 2s"
        assert client.wait_closed(5), "server must close after 421"


def test_command_timeout_restarts_with_each_command(make_server):
    server = make_server({"SMTPCommandTimeoutSeconds": 2})
    with server.connect() as client:
        for _ in range(4):
            time.sleep(1)
            assert client.command("NOOP").code == 250
        client.ehlo()
        queue_id(client.transaction("a@elsewhere.example", ["slow@example.org"],
                                    make_message("slow client")))


def test_partial_command_line_times_out(make_server):
    server = make_server({"SMTPCommandTimeoutSeconds": 2})
    with server.connect() as client:
        client.send(b"EHLO never-finished")
        reply = client.read_reply(timeout=15)
        assert (reply.code, reply.enhanced) == (421, "4.4.2"), reply
        assert client.wait_closed(5)


def test_data_timeout_is_421_and_nothing_is_stored(make_server):
    server = make_server({"SMTPCommandTimeoutSeconds": 30, "SMTPDataTimeoutSeconds": 2})
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("RCPT TO:<stalled@example.org>").code == 250
        assert client.command("DATA").code == 354
        client.send(b"Subject: stalled\r\n\r\nsome of the body\r\n")
        started = time.monotonic()
        reply = client.read_reply(timeout=20)
        elapsed = time.monotonic() - started
        assert reply.code == 421, reply
        assert 1.5 <= elapsed <= 15, f"timed out after {elapsed:.1f}s, configured 2s"
        assert client.wait_closed(5)
    server.assert_nothing_stored(settle=5.0)


def test_slow_data_that_keeps_arriving_is_not_cut(make_server):
    server = make_server({"SMTPCommandTimeoutSeconds": 30, "SMTPDataTimeoutSeconds": 2})
    message = make_message("trickle", b"".join(b"line %d\r\n" % n for n in range(4)))
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("RCPT TO:<trickle@example.org>").code == 250
        assert client.command("DATA").code == 354
        for line in message.split(b"\r\n")[:-1]:
            client.send(line + b"\r\n")
            time.sleep(0.5)
        client.send(b".\r\n")
        queue_id(client.read_reply())
    server.message().split(message)


def test_data_trickled_past_the_whole_data_deadline_is_421_and_nothing_is_stored(make_server):
    """Each byte restarts the DATA idle timeout, so a whole DATA transfer has a deadline too:
    SMTPDataTimeoutSeconds + MaxMessageSize / 16384 octets per second (SMTP_DATA_MIN_RATE),
    here 2 s + 1 s. A byte every half second never lets the idle timeout fire; without the
    deadline this client would hold its slot for as long as it likes."""
    server = make_server({"SMTPCommandTimeoutSeconds": 30, "SMTPDataTimeoutSeconds": 2,
                          "MaxMessageSize": 1000})
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("RCPT TO:<trickle@example.org>").code == 250
        assert client.command("DATA").code == 354
        started = time.monotonic()
        reply = None
        while reply is None and time.monotonic() - started < 20:
            try:
                client.send(b"x")
                reply = client.read_reply(timeout=0.5)
            except TimeoutError:
                continue
            except OSError:  # closed: the reply is what was read last
                reply = client.read_reply(timeout=5)
        elapsed = time.monotonic() - started
        assert reply is not None, f"still in DATA after {elapsed:.0f} s of trickling"
        assert (reply.code, reply.enhanced) == (421, "4.4.2"), reply
        assert client.wait_closed(5)
    server.assert_nothing_stored(settle=5.0)
    assert re.search(r"event=timeout client=127\.0\.0\.1 state=\d+ reason=data_deadline",
                     server.log_text())


def test_connections_over_per_ip_cap_get_421_4_7_0(make_server):
    server = make_server({"MaxConnectionsPerIP": 3})
    held = [server.connect() for _ in range(3)]
    try:
        for client in held:
            assert client.greeting.code == 220
        with server.connect() as extra:
            assert (extra.greeting.code, extra.greeting.enhanced) == (421, "4.7.0"), extra.greeting
            assert extra.wait_closed(5), "server must close after 421"
        held.pop().close()
        deadline = time.monotonic() + 10
        while True:  # the server notices the closed connection shortly
            with server.connect() as again:
                if again.greeting.code == 220:
                    break
            assert time.monotonic() < deadline, "a slot never came free"
            time.sleep(0.1)
    finally:
        for client in held:
            client.close()


def test_connections_over_total_cap_get_421(make_server):
    """MaxConnections 4: the MX port gets 3 (a tenth, rounded up, is kept for POP3 and
    submission); the fourth slot is the owner's, and past it POP3 is refused too. The held
    connections are new, so none is shed to make room."""
    server = make_server({"MaxConnections": 4, "MaxConnectionsPerIP": 100})
    held = []
    try:
        for _ in range(3):
            held.append(server.connect())
            assert held[-1].greeting.code == 220
        with server.connect() as extra:
            assert (extra.greeting.code, extra.greeting.enhanced) == (421, "4.7.0"), extra.greeting
            assert extra.wait_closed(5)
        owner = POP3Connection(server.pop3_port)
        held.append(owner)
        assert owner.greeting.startswith(b"+OK"), owner.greeting
        with POP3Connection(server.pop3_port, tls=False, read_greeting=False) as extra:
            assert extra.wait_closed(5), "a fifth connection was let in"
    finally:
        for client in held:
            client.close()


def test_binary_garbage_does_not_crash_the_server(server):
    rng = random.Random(2024)
    for _ in range(5):
        with server.connect() as client:
            garbage = bytes(rng.randrange(256) for _ in range(64 * 1024))
            try:
                client.send(garbage)
                client.send(b"\r\nQUIT\r\n")
                client.wait_closed(10)
            except OSError:
                pass  # the server may hang up on a noisy client
    assert_still_serving(server)


def test_garbage_lines_get_replies_and_session_survives(server):
    rng = random.Random(7)
    with server.connect() as client:
        client.ehlo()
        for _ in range(5):
            line = bytes(rng.choice(range(1, 256)) for _ in range(100)).replace(b"\r", b"") \
                .replace(b"\n", b"")
            reply = client.command(line)
            assert 500 <= reply.code <= 504, reply
        assert client.command("NOOP").code == 250


def test_too_many_errors_end_the_session_without_harm(server):
    smtp_max_errors = 20  # src/bounds.h
    with server.connect() as client:
        replies = []
        ended = False
        try:
            for _ in range(100):
                replies.append(client.command("BOGUS").code)
        except (ConnectionClosed, BrokenPipeError, ConnectionResetError):
            ended = True
        assert ended, f"the session was not ended after {len(replies)} errors"
        # The 421 that follows the last 500 may be lost to the reset our next BOGUS causes.
        assert replies[:smtp_max_errors] == [500] * smtp_max_errors, replies
        assert replies[smtp_max_errors:] in ([], [421]), replies
    assert_still_serving(server)


def test_client_that_never_reads_replies_does_not_hurt_others(server):
    flood = socket.create_connection(("127.0.0.1", server.smtp_port), timeout=5)
    try:
        flood.setblocking(False)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                flood.send(b"NOOP\r\n" * 1000)
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                break  # the server hung up: fine
        with SMTPConnection(server.smtp_port) as other:
            other.ehlo()
            assert other.command("NOOP").code == 250
    finally:
        flood.close()
    assert_still_serving(server)
