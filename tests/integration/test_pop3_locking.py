"""The maildrop lock (RFC 1939 8, RFC 2449 [IN-USE]): one TRANSACTION session per maildrop;
SMTP delivery goes on while it is held, and what arrives shows up in the next session."""

import base64

from conftest import make_message
from pop3util import (IN_USE, POP3Connection, connect_when_unlocked, deliver, deliver_many,
                      maildrop_files, password, pop3_connect, user)


def try_login(server, domain="example.org"):
    """A new connection; returns (connection, PASS reply)."""
    conn = POP3Connection(server.pop3_port)
    conn.ok(f"USER {user(domain)}")
    return conn, conn.command(f"PASS {password(domain)}")


def test_second_concurrent_session_gets_in_use(server):
    deliver_many(server, 1)
    with pop3_connect(server):
        second, reply = try_login(server)
        with second:
            assert reply == IN_USE


def test_second_session_via_auth_plain_gets_in_use(server):
    with pop3_connect(server):
        with POP3Connection(server.pop3_port) as second:
            token = base64.b64encode(f"\0{user()}\0{password()}".encode()).decode()
            assert second.command(f"AUTH PLAIN {token}") == IN_USE


def test_new_session_works_after_the_first_quits(server):
    deliver_many(server, 2)
    first = pop3_connect(server)
    first.quit()
    first.close()
    with pop3_connect(server) as second:
        assert second.command("STAT").startswith(b"+OK 2 ")


def test_refused_session_stays_in_authorization_and_can_retry(server):
    """RFC 1939 7 (PASS): when the maildrop cannot be locked the server stays in AUTHORIZATION."""
    deliver_many(server, 1)
    first = pop3_connect(server)
    second, reply = try_login(server)
    with second:
        assert reply == IN_USE
        assert second.command("STAT").startswith(b"-ERR")  # not in TRANSACTION
        first.quit()
        first.close()
        second.login()
        assert second.command("STAT").startswith(b"+OK 1 ")


def test_dropped_connection_releases_the_lock(server):
    first = pop3_connect(server)
    first.abort()
    with connect_when_unlocked(server, within=10) as conn:
        assert conn.command("STAT").startswith(b"+OK")


def test_lock_is_per_maildrop(server):
    with pop3_connect(server, "example.org"):
        with pop3_connect(server, "example.net") as other:
            assert other.command("STAT") == b"+OK 0 0"


def test_failed_login_does_not_take_the_lock(server):
    with POP3Connection(server.pop3_port) as bad:
        bad.ok(f"USER {user()}")
        assert bad.command("PASS wrong").startswith(b"-ERR [AUTH]")
        with pop3_connect(server) as good:
            assert good.command("STAT").startswith(b"+OK")


def test_smtp_delivery_works_while_a_session_holds_the_lock(server):
    deliver_many(server, 1)
    with pop3_connect(server) as conn:
        assert conn.command("STAT").startswith(b"+OK 1 ")
        deliver(server, make_message("during the session"))  # asserts 250
        assert len(maildrop_files(server)) == 2


def test_message_delivered_during_a_session_is_not_in_that_session(server):
    deliver_many(server, 1)
    with pop3_connect(server) as conn:
        stat = conn.command("STAT")
        deliver(server, make_message("during the session"))
        assert conn.command("STAT") == stat
        assert conn.command("LIST 2").startswith(b"-ERR")
        conn.quit()


def test_message_delivered_during_a_session_is_in_the_next_one(server):
    deliver_many(server, 1)
    with pop3_connect(server) as conn:
        deliver(server, make_message("during the session", b"new one\r\n"))
        conn.quit()
    with pop3_connect(server) as conn:
        assert conn.command("STAT").startswith(b"+OK 2 ")
        assert conn.retr(2).endswith(b"new one\r\n")


def test_quit_deletes_only_what_the_session_marked(server):
    """A message that arrives during the session is not removed by that session's UPDATE."""
    deliver_many(server, 2)
    with pop3_connect(server) as conn:
        conn.ok("DELE 1")
        conn.ok("DELE 2")
        deliver(server, make_message("arrived late", b"keep me\r\n"))
        assert conn.quit().startswith(b"+OK")
    [left] = maildrop_files(server)
    assert left.read_bytes().endswith(b"keep me\r\n")
