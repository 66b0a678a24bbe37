#!/usr/bin/python3
"""throughput: inbound durable throughput with Postfix's smtp-source.

Runs `smtp-source -c -N -s SESSIONS -m COUNT -l SIZE` against 127.0.0.1:PORT (-N: a different
local part for every message), then waits until COUNT files are in MAILDIR/new (+ cur), i.e.
until the server's queue has drained into the Maildir. Prints key=value: sent (smtp-source's
exit status 0 means every message got its 250), bounded (1: stopped at the time bound before
every message was stored), stored, seconds (from start to the last file
in the Maildir), rate (stored/seconds), source_seconds (smtp-source alone), accept_rate
(COUNT/source_seconds: the rate of 250 replies to DATA; only when every message got one, for a
server that queues before it delivers this is its queue's intake, not its delivery) and listen_drops
(connection attempts the kernel dropped meanwhile because a listen queue was full; each costs the
client a SYN retransmission, 1 s or more). Bounded by SECONDS.

    throughput.py PORT MAILDIR COUNT SESSIONS SIZE SECONDS LOG [MESSAGE]

With MESSAGE (a file), every message is that file (smtp-source -F) instead of SIZE octets of
smtp-source's own making: the sender-verification rows send one DKIM-signed message.
"""
import os
import subprocess
import sys
import time


def stored(maildir):
    """Messages in new/ and cur/, by base name: a file a server moves from new/ to cur/ (the
    push engine with KeepCopy marks a pushed message so) while the two are listed counts once."""
    names = set()
    for sub in ("new", "cur"):
        try:
            with os.scandir(os.path.join(maildir, sub)) as it:
                names.update(e.name.split(":", 1)[0] for e in it)
        except FileNotFoundError:
            pass
    return len(names)


def listen_drops():
    """The kernel's count of connection attempts dropped because a listen queue was full."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for head, vals in zip(lines[::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            return int(dict(zip(head.split()[1:], vals.split()[1:])).get("ListenDrops", 0))
    return 0


def main():
    port, maildir, count, sessions, size, seconds, log = (
        int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
        float(sys.argv[6]), sys.argv[7])
    content = ["-F", sys.argv[8]] if len(sys.argv) > 8 else ["-l", str(size)]
    before = stored(maildir)
    drops_before = listen_drops()
    cmd = ["smtp-source", "-c", "-N", "-s", str(sessions), "-m", str(count), *content,
           "-M", "client.example.net", "-f", "sender@example.net", "-t", "rcpt@example.org",
           f"127.0.0.1:{port}"]
    with open(log, "ab") as logf:
        start = time.monotonic()
        p = subprocess.Popen(cmd, stdout=logf, stderr=logf)
        bounded = 0
        try:
            rc = p.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
            bounded = 1
        source_end = time.monotonic()
    deadline = start + seconds
    n = stored(maildir) - before
    while n < count and time.monotonic() < deadline:
        time.sleep(0.01)
        n = stored(maildir) - before
    end = time.monotonic()
    # Anything still arriving after we stopped waiting is counted as not stored.
    if n < count:
        bounded = 1
    print(f"sent={count if rc == 0 else 0} source_rc={rc} bounded={bounded} stored={n} seconds={end - start:.3f} "
          f"rate={n / (end - start):.1f} source_seconds={source_end - start:.3f} "
          f"listen_drops={listen_drops() - drops_before}"
          + (f" accept_rate={count / (source_end - start):.1f}" if rc == 0 else ""))
    sys.exit(0 if rc == 0 and n == count else 1)


if __name__ == "__main__":
    main()
