"""Switching from the original Go mailpopbox: its maildrop is a flat directory of "<id>.msg"
files. They are served beside the Maildir messages, with the original's UIDL (the name without
".msg") so clients do not download them again, and DELE removes them.

The original wrote "Delivered-To" and "Return-Path" lines, then its "Received" trace (CRLF),
then the message data as Go's textproto.Reader.ReadDotBytes returned it, which turns CRLF line
ends into bare LF; its POP3 side wrote files through textproto's DotWriter, which turns them
back into CRLF. Older versions named files "<uuid>.msg", newer ones "m.<unix nanos>.<hex>.msg".
"""

import time

from conftest import make_message
from pop3util import (deliver, deliver_many, dot_unstuff, expected_uidl, maildrop_files,
                      pop3_connect, seed_legacy)

LEGACY_NAMES = ("0b7c6a4e-3f7d-4f5e-9a59-2f0c1e1d9b11.msg",
                "m.1700000000123456789.deadbeef.msg")


def seeded(server, mtime_base=None):
    """Two legacy messages (CRLF text, one per naming style), older than anything delivered
    now, then two Maildir messages over SMTP."""
    base = mtime_base or time.time() - 3600
    legacy = [seed_legacy(server, make_message(f"legacy {i}", f"old body {i}\r\n".encode()),
                          name=name, mtime=base + i)
              for i, name in enumerate(LEGACY_NAMES)]
    deliver_many(server, 2, prefix="maildir")
    return legacy


def test_legacy_and_maildir_messages_are_all_listed(server):
    legacy = seeded(server)
    files = maildrop_files(server)
    assert len(files) == 4 and files[:2] == legacy
    with pop3_connect(server) as conn:
        assert conn.command("STAT") == (
            f"+OK 4 {sum(p.stat().st_size for p in files)}".encode())
        assert conn.list_map() == {i: p.stat().st_size for i, p in enumerate(files, 1)}


def test_legacy_uidl_is_the_name_without_msg(server):
    seeded(server)
    with pop3_connect(server) as conn:
        listing = conn.uidl_map()
    assert listing[1] == "0b7c6a4e-3f7d-4f5e-9a59-2f0c1e1d9b11"
    assert listing[2] == "m.1700000000123456789.deadbeef"
    assert [listing[3], listing[4]] == [expected_uidl(p) for p in maildrop_files(server)[2:]]


def test_legacy_retr_returns_the_file_exactly(server):
    legacy = seeded(server)
    with pop3_connect(server) as conn:
        for number, path in enumerate(legacy, 1):
            status, raw = conn.multiline(f"RETR {number}")
            assert status.startswith(b"+OK")
            assert dot_unstuff(raw) == path.read_bytes()


def test_legacy_messages_are_listed_in_arrival_order_with_maildir_ones(server):
    """A legacy file newer than a Maildir message comes after it."""
    deliver(server, make_message("maildir first"))
    later = time.time() + 60
    path = seed_legacy(server, make_message("legacy later"), mtime=later)
    with pop3_connect(server) as conn:
        assert conn.uidl_map()[2] == path.name[:-len(".msg")]


def test_dele_and_quit_remove_the_legacy_file(server):
    legacy = seeded(server)
    with pop3_connect(server) as conn:
        conn.ok("DELE 1")
        conn.ok("DELE 2")
        assert conn.quit().startswith(b"+OK")
    assert not legacy[0].exists() and not legacy[1].exists()
    assert len(maildrop_files(server)) == 2


def test_legacy_and_maildir_messages_can_all_be_emptied(server):
    seeded(server)
    with pop3_connect(server) as conn:
        for number in range(1, 5):
            conn.ok(f"DELE {number}")
        conn.quit()
    assert maildrop_files(server) == []
    assert not list(server.maildrop().glob("*.msg"))


def test_legacy_dele_without_quit_keeps_the_file(server):
    legacy = seeded(server)
    conn = pop3_connect(server)
    conn.ok("DELE 1")
    conn.abort()
    time.sleep(0.3)
    assert legacy[0].exists()


def test_legacy_uidl_is_stable_across_a_restart(server):
    seeded(server)
    with pop3_connect(server) as conn:
        before = conn.uidl_map()
        conn.quit()
    server.restart()
    with pop3_connect(server) as conn:
        assert conn.uidl_map() == before


def test_other_files_in_the_maildrop_root_are_not_messages(server):
    seeded(server)
    root = server.maildrop()
    (root / "notes.txt").write_bytes(b"not mail\r\n")
    (root / ".hidden.msg").write_bytes(b"Subject: hidden\r\n\r\n")
    (root / "subdir.msg").mkdir()
    with pop3_connect(server) as conn:
        assert conn.command("STAT").startswith(b"+OK 4 ")


def test_original_format_with_lf_body_is_served_with_crlf(server):
    """The original's real files: CRLF trace lines, then the data with bare LF line ends."""
    body = (b"Received: from client.example.net (127.0.0.1)\r\n        by mx.example.org "
            b"(mailpopbox) with ESMTP id m.1700000000123456789.deadbeef\r\n        for "
            b"<someone@example.org>\r\n        (using PLAINTEXT);\r\n        Tue, 14 Nov 2023 "
            b"22:13:20 +0000\r\n"
            b"From: a@example.com\nTo: someone@example.org\nSubject: lf\n\nline one\n.\n"
            b".dot first\nlast\n")
    seed_legacy(server, body, name=LEGACY_NAMES[1])
    with pop3_connect(server) as conn:
        status, raw = conn.multiline("RETR 1")
    assert status.startswith(b"+OK")
    assert b"\n" not in raw.replace(b"\r\n", b""), "bare LF sent"
    assert raw.endswith(b"\r\nlast\r\n")
    assert b"\r\n..\r\n..dot first\r\n" in raw, "dot-leading lines not stuffed"


def test_original_format_with_lf_body_has_exact_list_size(server):
    """RFC 1939 5 (LIST), 11: the size is the octets RETR sends (before dot-stuffing), so a
    file whose LF line ends go out as CRLF counts one more octet per line."""
    body = b"From: a@example.com\nSubject: lf\n\nline one\n.\nline three\n"
    path = seed_legacy(server, body, name=LEGACY_NAMES[1])
    with pop3_connect(server) as conn:
        size = conn.list_map()[1]
        stat = conn.command("STAT")
        delivered = conn.retr(1)
    assert len(delivered) == path.stat().st_size + body.count(b"\n")
    assert size == len(delivered), (
        f"LIST says {size} octets, RETR sent {len(delivered)} (file {path.stat().st_size})")
    assert stat == f"+OK 1 {len(delivered)}".encode()


def test_legacy_file_without_final_line_end_ends_with_crlf_dot_crlf(server):
    path = seed_legacy(server, b"Subject: no final newline\r\n\r\nlast line", name="x.msg")
    with pop3_connect(server) as conn:
        conn.send("RETR 1\r\nNOOP\r\n")
        assert conn.read_line().startswith(b"+OK")
        raw = conn.read_multiline_raw()
        assert raw == path.read_bytes() + b"\r\n"
        assert conn.read_line().startswith(b"+OK")  # NOOP: the response ended where it should


def test_legacy_file_without_final_line_end_has_exact_list_size(server):
    path = seed_legacy(server, b"Subject: no final newline\r\n\r\nlast line", name="x.msg")
    with pop3_connect(server) as conn:
        size = conn.list_map()[1]
        delivered = conn.retr(1)
    assert size == len(delivered), (
        f"LIST says {size} octets, RETR sent {len(delivered)} (file {path.stat().st_size})")

