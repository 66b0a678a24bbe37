#!/usr/bin/python3
"""pushlat: push latency (issue 13), from the 250 after DATA to the message being a file in
the destination Dovecot's Maildir.

Sends COUNT messages of about SIZE octets over one SMTP session to 127.0.0.1:PORT at RATE
messages per second (each on its schedule, i / RATE seconds after the first; a late one goes
at once), each with its own Message-ID, and notes when its 250 came. A second thread scans
MAILDIR/new and MAILDIR/cur (Dovecot's) every 2 ms and reads the Message-ID of each new file.
Prints key=value: n (messages seen at Dovecot), lost (250 but not seen by the end), failed
(no 250), median_ms, p99_ms, max_ms. Bounded by SECONDS after the last 250.

    pushlat.py PORT MAILDIR COUNT RATE SIZE SECONDS
"""
import os
import re
import socket
import sys
import threading
import time

MESSAGE_ID_RE = re.compile(rb"(?im)^message-id:[ \t]*(<[^>\r\n]*>)")


def percentile(sorted_values, p):
    # Nearest-rank percentile, as smtplat.py.
    k = max(0, min(len(sorted_values) - 1, int(-(-p * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


def reply(f):
    while True:
        line = f.readline()
        if not line:
            raise OSError("connection closed")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), line


def expect(f, code):
    got, line = reply(f)
    if got != code:
        raise OSError(f"expected {code}, got {line[:200]!r}")


class Watcher(threading.Thread):
    """Notes the monotonic time at which each Message-ID first appears in the Maildir."""

    def __init__(self, maildir):
        super().__init__(daemon=True)
        self.maildir = maildir
        self.seen = {}
        self.known = set()
        self.done = threading.Event()

    def scan(self):
        for sub in ("new", "cur"):
            try:
                entries = list(os.scandir(os.path.join(self.maildir, sub)))
            except FileNotFoundError:
                continue
            for entry in entries:
                base = entry.name.split(":", 1)[0]
                if base in self.known:
                    continue
                now = time.monotonic()
                try:
                    with open(entry.path, "rb") as f:
                        head = f.read(8192)
                except FileNotFoundError:  # moved new/ -> cur/: seen there next scan
                    continue
                self.known.add(base)
                match = MESSAGE_ID_RE.search(head)
                if match:
                    self.seen.setdefault(match.group(1).decode(), now)

    def run(self):
        while not self.done.is_set():
            self.scan()
            time.sleep(0.002)


def main():
    port, maildir, count, rate, size, seconds = (int(sys.argv[1]), sys.argv[2], int(sys.argv[3]),
                                                 float(sys.argv[4]), int(sys.argv[5]),
                                                 float(sys.argv[6]))
    watcher = Watcher(maildir)
    watcher.scan()  # what is there already is not ours
    watcher.seen.clear()
    watcher.start()
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"ABCD\r\n"
    body = line * max(1, size // len(line))
    tag = f"{os.getpid()}.{time.time():.0f}"
    accepted, failed = {}, 0
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    expect(f, 220)
    s.sendall(b"EHLO client.example.net\r\n")
    expect(f, 250)
    start = time.monotonic()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        message_id = f"<push{i}.{tag}@example.net>"
        msg = (f"From: <push{i}@example.net>\r\nTo: <push{i}@example.org>\r\n"
               f"Subject: push latency {i}\r\nMessage-ID: {message_id}\r\n\r\n").encode() \
            + body + b".\r\n"
        try:
            s.sendall(f"MAIL FROM:<push{i}@example.net>\r\n".encode())
            expect(f, 250)
            s.sendall(f"RCPT TO:<push{i}@example.org>\r\n".encode())
            expect(f, 250)
            s.sendall(b"DATA\r\n")
            expect(f, 354)
            s.sendall(msg)
            expect(f, 250)
            accepted[message_id] = time.monotonic()
        except OSError as e:
            failed += 1
            print(f"pushlat: message {i}: {e}", file=sys.stderr)
            break
    try:
        s.sendall(b"QUIT\r\n")
        s.close()
    except OSError:
        pass
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not all(m in watcher.seen for m in accepted):
        time.sleep(0.01)
    watcher.done.set()
    watcher.join(timeout=5)
    samples = sorted((watcher.seen[m] - t) * 1000 for m, t in accepted.items()
                     if m in watcher.seen)
    lost = len(accepted) - len(samples)
    if not samples:
        print(f"n=0 lost={lost} failed={failed}")
        sys.exit(1)
    print(f"n={len(samples)} lost={lost} failed={failed} median_ms={percentile(samples, 50):.1f} "
          f"p99_ms={percentile(samples, 99):.1f} max_ms={samples[-1]:.1f}")


if __name__ == "__main__":
    main()
