"""SMTP in, POP3 out, byte for byte (RFC 1939 3 and 7): dot-stuffing on the wire, sizes equal
to what RETR delivers, TOP's line counting, and a 40 MB message streamed without the server's
memory growing with it."""

import hashlib
import smtplib
import threading
import time

import pytest

from conftest import IO_TIMEOUT, dot_stuff, make_message
from pop3util import deliver, dot_unstuff, maildrop_files, pop3_connect, vm_rss_kib

EIGHT_BIT = bytes(b for b in range(1, 256) if b not in (0x0A, 0x0D))

# Lines that a careless stuffer or unstuffer gets wrong, on both the SMTP and the POP3 side.
TRICKY_BODY = (b".\r\n"                      # a line that is just "." (the terminator itself)
               b"..\r\n"                     # just "..": "..." on the wire
               b"...\r\n"
               b".leading dot\r\n"
               b"..two leading dots\r\n"
               b" .space then dot\r\n"
               b"middle . dot\r\n"
               b"\r\n"
               b".\r\n"
               b"8-bit: " + EIGHT_BIT + b"\r\n"
               b"caf\xc3\xa9 \xe2\x82\xac \xff\xfe\r\n"
               b"last line.\r\n")


def send_with_smtplib(server, message, recipient="someone@example.org"):
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=IO_TIMEOUT) as client:
        client.ehlo("client.example.net")
        assert client.has_extn("8bitmime")
        refused = client.sendmail("sender@example.net.test", [recipient], message,
                                  mail_options=["BODY=8BITMIME"])
        assert refused == {}


@pytest.fixture
def tricky(server):
    """The default server holding one message with TRICKY_BODY, sent by smtplib."""
    message = make_message("tricky", TRICKY_BODY)
    send_with_smtplib(server, message)
    [path] = maildrop_files(server)
    assert path.read_bytes().endswith(message), "the store changed the message"
    return server, path, message


def test_retr_returns_exactly_the_stored_file(tricky):
    server, path, _ = tricky
    with pop3_connect(server) as conn:
        assert conn.retr(1) == path.read_bytes()


def test_smtp_to_pop3_round_trip_keeps_every_octet(tricky):
    server, _, message = tricky
    with pop3_connect(server) as conn:
        delivered = conn.retr(1)
    assert delivered.endswith(message)
    assert delivered[:-len(message)].endswith(b"\r\n")  # only whole trace header lines before


def test_retr_dot_stuffs_lines_that_start_with_a_dot(tricky):
    server, path, _ = tricky
    with pop3_connect(server) as conn:
        status, raw = conn.multiline("RETR 1")
    assert status.startswith(b"+OK")
    assert raw == dot_stuff(path.read_bytes())
    assert b"\r\n...\r\n" in raw and b"\r\n..\r\n" in raw and b"\r\n....\r\n" in raw


def test_list_size_equals_file_size_and_retr_octets(tricky):
    server, path, _ = tricky
    with pop3_connect(server) as conn:
        size = conn.list_map()[1]
        assert conn.command("LIST 1") == f"+OK 1 {size}".encode()
        assert conn.command("STAT") == f"+OK 1 {size}".encode()
        delivered = conn.retr(1)
    assert size == path.stat().st_size == len(delivered)


def test_retr_ends_with_crlf_dot_crlf(tricky):
    server, _, _ = tricky
    with pop3_connect(server) as conn:
        conn.send("RETR 1\r\nNOOP\r\n")
        assert conn.read_line().startswith(b"+OK")
        conn.read_multiline_raw()
        # The next octets are the NOOP reply: nothing between the terminator and it.
        assert conn.read_line().startswith(b"+OK")


def stored_parts(path):
    data = path.read_bytes()
    split = data.index(b"\r\n\r\n") + 4
    return data[:split], data[split:]


def test_top_zero_returns_the_header_section_and_blank_line(tricky):
    server, path, _ = tricky
    headers, _ = stored_parts(path)
    with pop3_connect(server) as conn:
        status, raw = conn.multiline("TOP 1 0")
    assert status.startswith(b"+OK")
    assert dot_unstuff(raw) == headers


def test_top_two_returns_two_body_lines_dot_stuffed(tricky):
    server, path, _ = tricky
    headers, _ = stored_parts(path)
    with pop3_connect(server) as conn:
        status, raw = conn.multiline("TOP 1 2")
    assert status.startswith(b"+OK")
    assert raw == dot_stuff(headers) + b"..\r\n...\r\n"
    assert dot_unstuff(raw) == headers + b".\r\n..\r\n"


def test_top_with_more_lines_than_the_body_returns_the_whole_message(tricky):
    server, path, _ = tricky
    with pop3_connect(server) as conn:
        status, raw = conn.multiline("TOP 1 100000")
    assert status.startswith(b"+OK")
    assert dot_unstuff(raw) == path.read_bytes()


def test_top_counts_empty_body_lines(tricky):
    server, path, _ = tricky
    headers, body = stored_parts(path)
    with pop3_connect(server) as conn:
        _, raw = conn.multiline("TOP 1 8")
    assert dot_unstuff(raw) == headers + b"".join(body.split(b"\r\n")[i] + b"\r\n"
                                                  for i in range(8))


def test_top_does_not_mark_or_change_the_message(tricky):
    server, path, _ = tricky
    with pop3_connect(server) as conn:
        conn.multiline("TOP 1 0")
        assert conn.retr(1) == path.read_bytes()
        conn.quit()
    assert maildrop_files(server) == [path]


def test_message_of_only_dot_lines_round_trips(server):
    message = b"Subject: dots\r\n\r\n" + b".\r\n" * 50 + b"..\r\n" * 50
    deliver(server, message)
    [path] = maildrop_files(server)
    with pop3_connect(server) as conn:
        status, raw = conn.multiline("RETR 1")
    assert raw == dot_stuff(path.read_bytes())
    assert dot_unstuff(raw) == path.read_bytes()


def test_long_lines_round_trip(server):
    body = b"".join(bytes([0x41 + i % 26]) * 998 + b"\r\n" for i in range(200))
    deliver(server, make_message("long lines", body))
    [path] = maildrop_files(server)
    with pop3_connect(server) as conn:
        assert conn.retr(1) == path.read_bytes()


# --- a 40 MB message -----------------------------------------------------------------------------

BIG_SIZE = 40 * 1000 * 1000


def big_message():
    """About BIG_SIZE octets of varied 8-bit lines, one in 50 starting with '.'."""
    lines = []
    for i in range(1000):
        prefix = b"." if i % 50 == 0 else b""
        lines.append(prefix + b"%06d " % i + EIGHT_BIT[(i * 7) % 200:][:180] + b"\r\n")
    block = b"".join(lines)
    header = (b"From: big@example.test\r\nTo: owner@example.org\r\nSubject: big\r\n"
              b"Message-ID: <big@example.test>\r\n\r\n")
    chunks = [header]
    size = len(header)
    counter = 0
    while size < BIG_SIZE - len(block) - 100:
        marker = b"block %08d\r\n" % counter
        chunks += [marker, block]
        size += len(marker) + len(block)
        counter += 1
    chunks.append(b"the end\r\n")
    return b"".join(chunks)


class RSSSampler(threading.Thread):
    """Samples VmRSS of pid every few milliseconds until stopped; keeps the peak."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.samples = 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                self.peak = max(self.peak, vm_rss_kib(self.pid))
                self.samples += 1
            except (OSError, AssertionError):
                return
            self.stopping.wait(0.005)

    def stop(self):
        self.stopping.set()
        self.join(10)
        return self.peak


def test_40_mb_message_round_trips_and_retr_streams(server, record_property):
    message = big_message()
    with server.connect(timeout=120) as client:
        client.ehlo("client.example.net")
        reply = client.transaction("big@example.test", ["owner@example.org"], message,
                                   "BODY=8BITMIME")
        assert reply.code == 250, f"40 MB message refused: {reply}"
    [path] = maildrop_files(server)
    stored = path.read_bytes()
    assert stored.endswith(message)
    expected_digest = hashlib.sha256(stored).hexdigest()
    del stored, message

    pid = server.process.pid
    with pop3_connect(server, timeout=120) as conn:
        assert conn.list_map() == {1: path.stat().st_size}
        time.sleep(0.2)
        baseline = vm_rss_kib(pid)
        sampler = RSSSampler(pid)
        sampler.start()
        started = time.monotonic()
        conn.send("RETR 1\r\n")
        status = conn.read_line()
        assert status.startswith(b"+OK"), status
        # A slow reader first: a server that reads the whole file into its output buffer
        # instead of waiting for the socket to drain shows it here.
        time.sleep(1.0)
        raw = conn.read_multiline_raw(timeout=120)
        elapsed = time.monotonic() - started
        peak = sampler.stop()
        conn.quit()
    delivered = dot_unstuff(raw)
    del raw
    growth_mib = (peak - baseline) / 1024
    report = (f"RETR of {len(delivered)} octets in {elapsed:.1f}s; server VmRSS baseline "
              f"{baseline / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB (+{growth_mib:.1f} MiB, "
              f"{sampler.samples} samples)")
    print(report)
    record_property("pop3_retr_40mb_rss", report)
    assert len(delivered) == path.stat().st_size
    assert hashlib.sha256(delivered).hexdigest() == expected_digest
    assert growth_mib < 30, f"server memory grew with the message: {report}"


def test_pipelined_retrs_to_a_client_that_does_not_read_keep_memory_bounded(server):
    """Backpressure: 2,000 RETRs of a 1 MB message sent at once to a client that reads
    nothing; the server may not queue the replies in memory."""
    deliver(server, make_message("1 MB", (b"w" * 998 + b"\r\n") * 1000))
    pid = server.process.pid
    conn = pop3_connect(server)
    baseline = vm_rss_kib(pid)
    conn.send(b"RETR 1\r\n" * 2000)
    time.sleep(1.0)
    growth_mib = (vm_rss_kib(pid) - baseline) / 1024
    conn.abort()
    print(f"server VmRSS growth with 2,000 unread RETRs queued: {growth_mib:.1f} MiB")
    assert growth_mib < 30
