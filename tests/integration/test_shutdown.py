"""SIGTERM (issue 5): the server stops accepting at once, tells idle SMTP sessions "421 4.3.2",
lets a message in DATA finish and be stored, closes POP3 sessions without UPDATE (nothing
deleted without QUIT, RFC 1939 6), and exits with status 0."""

import signal
import socket
import time

import pytest

from conftest import dot_stuff, make_message

from loadutil import TIME_FACTOR
from pop3util import connect_when_unlocked, deliver_many, maildrop_files, pop3_connect

# Generous bounds for "promptly"; the server itself takes milliseconds.
PROMPT_SECONDS = 10.0 * TIME_FACTOR


def sigterm(server):
    server.process.send_signal(signal.SIGTERM)
    return time.monotonic()


def exit_status(server, timeout=PROMPT_SECONDS):
    return server.process.wait(timeout=timeout)


def assert_refused(port):
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def assert_shutting_down(client):
    """The session is told 421 4.3.2 (RFC 5321 3.8) and closed."""
    reply = client.read_reply(timeout=PROMPT_SECONDS)
    assert reply.code == 421 and reply.enhanced == "4.3.2", f"on SIGTERM: {reply}"
    assert client.wait_closed(PROMPT_SECONDS), "not closed after 421"


def start_data(server, subject):
    """A session that has had 354 to DATA. Returns (client, message, bytes for the wire)."""
    client = server.connect()
    client.ehlo()
    assert client.command("MAIL FROM:<sender@example.net.test>").code == 250
    assert client.command("RCPT TO:<someone@example.org>").code == 250
    assert client.command("DATA").code == 354
    message = make_message(subject, b"".join(b"line %d\r\n" % i for i in range(200)))
    return client, message, dot_stuff(message) + b".\r\n"


def test_sigterm_during_data_lets_the_message_finish_and_exits_0(server):
    client, message, wire = start_data(server, "sigterm during data")
    half = len(wire) // 2
    client.send(wire[:half])
    idle = server.connect()
    idle.ehlo()
    sigterm(server)

    # The idle session hears at once; by then the listeners are gone.
    assert_shutting_down(idle)
    assert_refused(server.smtp_port)
    assert_refused(server.pop3_port)

    # The client in DATA takes its time; the server waits for it.
    time.sleep(1.0)
    assert server.alive(), "exited while a message was being received"
    client.send(wire[half:])
    reply = client.read_reply(timeout=PROMPT_SECONDS)
    assert reply.code == 250, f"final dot after SIGTERM: {reply}"
    assert_shutting_down(client)

    assert exit_status(server) == 0
    server.message().split(message)


def test_sigterm_with_idle_sessions_says_421_and_exits_0_promptly(server):
    greeted = server.connect()
    in_transaction = server.connect()
    in_transaction.ehlo()
    assert in_transaction.command("MAIL FROM:<sender@example.net.test>").code == 250
    assert in_transaction.command("RCPT TO:<someone@example.org>").code == 250
    started = sigterm(server)

    assert_shutting_down(greeted)
    assert_shutting_down(in_transaction)
    assert exit_status(server) == 0
    elapsed = time.monotonic() - started
    print(f"\nexit {elapsed * 1000:.0f} ms after SIGTERM with two idle sessions")
    assert elapsed < PROMPT_SECONDS
    server.assert_nothing_stored()


def test_sigterm_in_pop3_transaction_deletes_nothing_and_exits_0(server):
    deliver_many(server, 3)
    files = maildrop_files(server)
    conn = pop3_connect(server)
    conn.ok("DELE 1")
    conn.ok("DELE 3")
    sigterm(server)

    assert conn.wait_closed(PROMPT_SECONDS), "POP3 session not closed on SIGTERM"
    assert b"+OK" not in conn.buffer, f"answered as if QUIT: {bytes(conn.buffer)!r}"
    assert exit_status(server) == 0
    assert maildrop_files(server) == files, "DELE took effect without QUIT"
    server.start()
    with connect_when_unlocked(server) as conn:
        assert conn.command("STAT").startswith(b"+OK 3 ")
        conn.quit()


def test_sigterm_does_not_wait_past_the_data_timeout_for_a_stalled_client(make_server):
    """A client that stops sending in DATA holds the stop only until SMTPDataTimeoutSeconds:
    it gets 421 4.4.2, nothing is stored, and the server exits 0."""
    server = make_server(overrides={"SMTPDataTimeoutSeconds": 2})
    client, _, wire = start_data(server, "stalled in data")
    client.send(wire[:len(wire) // 2])
    started = sigterm(server)

    reply = client.read_reply(timeout=PROMPT_SECONDS)
    assert reply.code == 421 and reply.enhanced == "4.4.2", f"stalled DATA: {reply}"
    assert exit_status(server) == 0
    elapsed = time.monotonic() - started
    print(f"\nexit {elapsed:.1f} s after SIGTERM with a client stalled in DATA (timeout 2 s)")
    assert elapsed < 2 + PROMPT_SECONDS
    server.assert_nothing_stored()
