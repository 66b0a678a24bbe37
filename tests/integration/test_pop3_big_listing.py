"""LIST and UIDL of a big maildrop (issue 12): the listing is written as the client reads it,
in parts (Dovecot's way), not built whole in memory; it is complete and correct however many
parts it takes, and a client that does not read it does not make the server hold it."""
import time

from loadutil import _is_asan_build
from pop3util import expected_uidl, pop3_connect, vm_rss_kib

MESSAGES = 100_000
# A long host part makes each UIDL line ~75 octets (a unique-id of at most 70, RFC 1939 7):
# some 7 MB of listing in all.
HOST = "big-listing.example.org.mailpopbox.test"


def seed_big_maildrop(server, count):
    """count Maildir messages of different sizes in new/, written directly (not delivered:
    that would take minutes). Returns {unique id: size}."""
    maildrop = server.maildrop()
    for sub in ("tmp", "new", "cur"):
        (maildrop / sub).mkdir(parents=True, exist_ok=True)
    sizes = {}
    for i in range(count):
        path = maildrop / "new" / f"{1700000000 + i}.M{i:06d}P4242Q{i}.{HOST}"
        body = b"Subject: %d\r\n\r\n" % i + b"x" * (i % 97) + b"\r\n"
        path.write_bytes(body)
        sizes[expected_uidl(path)] = len(body)
    return sizes


def test_list_and_uidl_of_a_big_maildrop_are_complete_and_correct(server):
    sizes = seed_big_maildrop(server, MESSAGES)
    with pop3_connect(server, timeout=120) as conn:
        assert conn.command("STAT") == f"+OK {MESSAGES} {sum(sizes.values())}".encode()
        listing = conn.list_map()
        uidls = conn.uidl_map()
        # Pipelined after the listing: answered after its terminator, in order.
        assert conn.command("NOOP") == b"+OK"
        conn.quit()
    assert sorted(listing) == list(range(1, MESSAGES + 1))
    assert sorted(uidls) == list(range(1, MESSAGES + 1))
    assert sorted(uidls.values()) == sorted(sizes)
    for number, uidl in uidls.items():
        assert listing[number] == sizes[uidl], (number, uidl)


def test_a_big_listing_not_read_by_the_client_is_not_held_by_the_server(server):
    """The old way built the whole UIDL reply (7.5 MB here) in memory and queued it; now at
    most a few parts wait for the client, and the rest is written as it reads."""
    sizes = seed_big_maildrop(server, MESSAGES)
    pid = server.process.pid
    with pop3_connect(server, timeout=120) as conn:
        conn.ok("STAT")
        rss_before = vm_rss_kib(pid)
        conn.send(b"UIDL\r\n")
        time.sleep(1.5)  # the client reads nothing: the kernel's buffers fill, then ours
        rss_waiting = vm_rss_kib(pid)
        status = conn.read_line()
        assert status.startswith(b"+OK"), status
        raw = conn.read_multiline_raw()
        assert conn.command("NOOP") == b"+OK"
    lines = raw.split(b"\r\n")[:-1]
    assert len(lines) == MESSAGES
    assert sorted(line.split(b" ", 1)[1].decode() for line in lines) == sorted(sizes)
    if not _is_asan_build():  # ASan's allocator keeps freed memory in quarantine
        grown = rss_waiting - rss_before
        assert grown < 3 * 1024, f"the server grew by {grown} KiB for an unread listing"
