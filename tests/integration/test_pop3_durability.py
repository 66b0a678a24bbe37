"""Deletion happens only in UPDATE (RFC 1939 6): after QUIT, durably; a dropped connection, a
crash of the server or an idle timeout deletes nothing."""

import signal
import socket
import time

from conftest import make_message

from pop3util import (POP3Connection, connect_when_unlocked, deliver, deliver_many,
                      maildrop_files, pop3_connect)


def test_dele_then_dropped_connection_deletes_nothing(server):
    deliver_many(server, 3)
    files = maildrop_files(server)
    conn = pop3_connect(server)
    conn.ok("DELE 1")
    conn.ok("DELE 3")
    conn.abort()
    time.sleep(0.5)
    assert maildrop_files(server) == files
    with connect_when_unlocked(server) as conn:
        assert conn.command("STAT").startswith(b"+OK 3 ")


def test_dele_then_server_killed_deletes_nothing(server):
    deliver_many(server, 3)
    files = maildrop_files(server)
    conn = pop3_connect(server)
    conn.ok("DELE 1")
    conn.ok("DELE 2")
    conn.ok("DELE 3")
    server.kill(signal.SIGKILL)
    conn.close()
    assert maildrop_files(server) == files
    server.start()
    with pop3_connect(server) as conn:
        assert conn.command("STAT").startswith(b"+OK 3 ")
        conn.quit()
    assert maildrop_files(server) == files


def test_dele_then_server_stopped_deletes_nothing(server):
    """SIGTERM (graceful stop) ends sessions without UPDATE too."""
    deliver_many(server, 2)
    files = maildrop_files(server)
    conn = pop3_connect(server)
    conn.ok("DELE 1")
    server.stop()
    conn.close()
    assert maildrop_files(server) == files


def test_dele_and_quit_remove_the_files_before_the_reply(server):
    deliver_many(server, 3)
    files = maildrop_files(server)
    with pop3_connect(server) as conn:
        conn.ok("DELE 1")
        conn.ok("DELE 3")
        assert conn.command("QUIT").startswith(b"+OK")
        # No waiting: the +OK to QUIT means the unlinks are done.
        assert maildrop_files(server) == [files[1]]
        assert not files[0].exists() and not files[2].exists()


def test_quit_after_deleting_everything_empties_the_maildrop(server):
    deliver_many(server, 4)
    with pop3_connect(server) as conn:
        for number in range(1, 5):
            conn.ok(f"DELE {number}")
        assert conn.quit().startswith(b"+OK")
    assert maildrop_files(server) == []
    with pop3_connect(server) as conn:
        assert conn.command("STAT") == b"+OK 0 0"


def test_deleted_messages_stay_deleted_after_a_restart(server):
    deliver_many(server, 2)
    with pop3_connect(server) as conn:
        conn.ok("DELE 1")
        conn.quit()
    server.restart()
    with pop3_connect(server) as conn:
        assert conn.command("STAT").startswith(b"+OK 1 ")


def test_idle_timeout_closes_the_connection_without_deleting(make_server):
    server = make_server({"POP3IdleTimeoutSeconds": 2})
    deliver_many(server, 2)
    files = maildrop_files(server)
    conn = pop3_connect(server)
    conn.ok("DELE 1")
    started = time.monotonic()
    assert conn.wait_closed(15), "not closed 15 s after a 2 s idle timeout"
    waited = time.monotonic() - started
    assert waited >= 1.5, f"closed after {waited:.1f}s, before the 2 s timeout"
    conn.close()
    assert maildrop_files(server) == files
    with connect_when_unlocked(server) as again:  # and the lock went with it
        assert again.command("STAT").startswith(b"+OK 2 ")


def test_idle_timeout_applies_before_login(make_server):
    server = make_server({"POP3IdleTimeoutSeconds": 2})
    with POP3Connection(server.pop3_port) as conn:
        assert conn.wait_closed(15)


def test_activity_resets_the_idle_timer(make_server):
    server = make_server({"POP3IdleTimeoutSeconds": 2})
    with pop3_connect(server) as conn:
        for _ in range(4):  # 4 s in all, never 2 s idle
            time.sleep(1.0)
            assert conn.command("NOOP").startswith(b"+OK")


def test_connection_dropped_in_the_middle_of_retr_deletes_nothing(server):
    body = b"".join(b"%07d " % i + b"z" * 90 + b"\r\n" for i in range(50000))  # ~5 MB
    deliver(server, make_message("big", body))
    deliver_many(server, 1)
    files = maildrop_files(server)
    conn = pop3_connect(server)
    conn.ok("DELE 2")
    conn.send("RETR 1\r\n")
    assert conn.read_line().startswith(b"+OK")
    conn._fill(time.monotonic() + 10)  # some of the message, then vanish
    conn.abort()
    with connect_when_unlocked(server) as again:
        assert again.command("STAT").startswith(b"+OK 2 ")
    assert maildrop_files(server) == files
    assert server.alive()


def test_idle_timeout_closes_a_connection_that_never_starts_tls(make_server):
    server = make_server({"POP3IdleTimeoutSeconds": 2})
    with socket.create_connection(("127.0.0.1", server.pop3_port), timeout=15) as sock:
        started = time.monotonic()
        assert sock.recv(100) == b"", "the server sent something before the TLS handshake"
        assert time.monotonic() - started < 14
