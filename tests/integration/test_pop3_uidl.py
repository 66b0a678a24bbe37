"""Unique ids and message numbers (RFC 1939 7 UIDL, 5 message numbers): ids derived from the
Maildir name, unique, stable across sessions, restarts and other readers' renames, never
reused; numbers in arrival order."""

import email

from conftest import make_message
from pop3util import deliver, deliver_many, expected_uidl, maildrop_files, pop3_connect


def uidls(server, domain="example.org"):
    with pop3_connect(server, domain) as conn:
        listing = conn.uidl_map()
        conn.quit()
    return listing


def test_uidl_is_the_maildir_unique_name(server):
    deliver_many(server, 3)
    files = maildrop_files(server)
    assert uidls(server) == {i: expected_uidl(p) for i, p in enumerate(files, 1)}


def test_uidl_values_are_unique_and_valid(server):
    deliver_many(server, 30)
    listing = uidls(server)
    assert len(listing) == 30
    assert len(set(listing.values())) == 30
    for value in listing.values():
        # RFC 1939 7: 1 to 70 characters from 0x21 to 0x7E.
        assert 1 <= len(value) <= 70 and all(0x21 <= ord(c) <= 0x7E for c in value), value


def test_uidl_is_stable_across_sessions(server):
    deliver_many(server, 5)
    assert uidls(server) == uidls(server)


def test_uidl_is_stable_across_a_restart(server):
    deliver_many(server, 5)
    before = uidls(server)
    server.restart()
    assert uidls(server) == before


def test_remaining_messages_keep_their_uidl_after_a_deletion(server):
    deliver_many(server, 4)
    before = uidls(server)
    with pop3_connect(server) as conn:
        conn.ok("DELE 2")
        conn.quit()
    assert list(uidls(server).values()) == [before[1], before[3], before[4]]


def test_uidl_of_a_deleted_message_is_not_reused(server):
    deliver_many(server, 3)
    deleted = set(uidls(server).values())
    with pop3_connect(server) as conn:
        for number in (1, 2, 3):
            conn.ok(f"DELE {number}")
        conn.quit()
    deliver_many(server, 3, prefix="later")
    assert not deleted & set(uidls(server).values())


def test_uidl_survives_another_reader_moving_the_file_to_cur(server):
    """A Maildir reader renames new/X to cur/X:2,S; the id must not change, or POP3 clients
    download the message again."""
    deliver_many(server, 2)
    before = uidls(server)
    first = maildrop_files(server)[0]
    first.rename(server.maildrop() / "cur" / (first.name + ":2,S"))
    assert uidls(server) == before


def test_message_numbers_follow_arrival_order(server):
    for i in range(6):
        deliver(server, make_message(f"order {i}"))
    with pop3_connect(server) as conn:
        subjects = [email.message_from_bytes(conn.retr(n))["Subject"] for n in range(1, 7)]
    assert subjects == [f"order {i}" for i in range(6)]


def test_message_numbers_are_fixed_for_the_session(server):
    deliver_many(server, 3)
    with pop3_connect(server) as conn:
        before = conn.uidl_map()
        conn.ok("DELE 1")
        deliver(server, make_message("arrives mid-session"))
        assert conn.command("UIDL 2") == f"+OK 2 {before[2]}".encode()
        assert conn.command("UIDL 3") == f"+OK 3 {before[3]}".encode()
        assert conn.command("UIDL 4").startswith(b"-ERR")
