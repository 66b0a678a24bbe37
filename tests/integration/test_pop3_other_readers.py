"""Other programs touching the Maildir while mailpopbox serves it (a Maildir reader moving
new/X to cur/X:2,S, a cleanup removing a file): POP3 answers stay well-formed, moved messages
keep their identity, and nothing is lost or resurrected."""

import pytest

from conftest import ConnectionClosed
from pop3util import deliver_many, dot_unstuff, maildrop_files, pop3_connect


def move_to_cur(server, path, flags="S"):
    moved = server.maildrop() / "cur" / f"{path.name}:2,{flags}"
    path.rename(moved)
    return moved


def test_message_moved_to_cur_before_the_session_is_served_and_deleted(server):
    deliver_many(server, 2)
    moved = move_to_cur(server, maildrop_files(server)[0])
    with pop3_connect(server) as conn:
        assert conn.command("STAT").startswith(b"+OK 2 ")
        assert conn.retr(1) == moved.read_bytes()
        conn.ok("DELE 1")
        conn.quit()
    assert not moved.exists()
    assert len(maildrop_files(server)) == 1


def test_message_moved_during_the_session_is_deleted_at_quit(server):
    """DELE'd in new/, moved to cur/ by another reader before QUIT: still removed."""
    deliver_many(server, 2)
    first = maildrop_files(server)[0]
    with pop3_connect(server) as conn:
        conn.ok("DELE 1")
        moved = move_to_cur(server, first)
        assert conn.quit().startswith(b"+OK")
    assert not moved.exists(), "a deleted message came back from cur/"
    assert len(maildrop_files(server)) == 1


def test_retr_of_a_message_moved_during_the_session_is_well_formed(server):
    """The message is still there under its new name: RETR returns it, or at least refuses
    with -ERR; a +OK followed by a dropped connection loses the session (and its DELEs)."""
    deliver_many(server, 2)
    first = maildrop_files(server)[0]
    with pop3_connect(server) as conn:
        conn.ok("DELE 2")
        moved = move_to_cur(server, first)
        status = conn.command("RETR 1")
        if status.startswith(b"+OK"):
            try:
                raw = conn.read_multiline_raw()
            except ConnectionClosed:
                pytest.fail(f"{status!r}, then the server closed the connection")
            assert dot_unstuff(raw) == moved.read_bytes()
        else:
            assert status.startswith(b"-ERR"), status
        assert conn.command("NOOP").startswith(b"+OK"), "session lost"


def test_retr_of_a_message_removed_during_the_session_gets_err(server):
    """RFC 1939 5 (RETR): -ERR when the message cannot be sent; the session goes on, so the
    DELEs already given are not lost."""
    deliver_many(server, 3)
    files = maildrop_files(server)
    with pop3_connect(server) as conn:
        conn.ok("DELE 3")
        files[1].unlink()
        assert conn.command("RETR 2").startswith(b"-ERR")
        assert conn.retr(1) == files[0].read_bytes()
        assert conn.quit().startswith(b"+OK")
    assert maildrop_files(server) == [files[0]]


def test_top_of_a_message_removed_during_the_session_gets_err(server):
    deliver_many(server, 2)
    files = maildrop_files(server)
    with pop3_connect(server) as conn:
        files[0].unlink()
        assert conn.command("TOP 1 0").startswith(b"-ERR")
        assert conn.command("NOOP").startswith(b"+OK")


def test_pipelined_retr_and_top_of_a_removed_message_send_only_the_err(server):
    """The "+OK" of RETR/TOP is written only once the file is open (issue 12): a pipelined
    batch gets exactly one -ERR for each, never a "+OK" before it, and the next command's
    reply follows right after."""
    deliver_many(server, 2)
    files = maildrop_files(server)
    with pop3_connect(server) as conn:
        files[0].unlink()
        conn.send(b"RETR 1\r\nTOP 1 0\r\nLIST 2\r\n")
        assert conn.read_line() == b"-ERR [SYS/TEMP] message unavailable"
        assert conn.read_line() == b"-ERR [SYS/TEMP] message unavailable"
        assert conn.read_line() == f"+OK 2 {files[1].stat().st_size}".encode()
        assert conn.retr(2) == files[1].read_bytes()


def test_dele_of_a_message_removed_during_the_session_still_signs_off(server):
    deliver_many(server, 2)
    files = maildrop_files(server)
    with pop3_connect(server) as conn:
        conn.ok("DELE 1")
        files[0].unlink()
        assert conn.quit().startswith(b"+OK")
    assert maildrop_files(server) == [files[1]]
    assert server.alive()
