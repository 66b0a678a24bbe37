#!/usr/bin/python3
"""pushwait: waits until MAILDIR (the destination Dovecot's) holds COUNT messages, counted in
new/ and cur/ by base name (a file moved new/ -> cur/ counts once); the push throughput row
(issue 13). Timed from this tool's start, which bench/run runs right after starting the
mailpopbox whose maildrop holds the messages (so its start-up is included).
Prints key=value: pushed, seconds, rate, bounded (1: SECONDS ran out first).

    pushwait.py MAILDIR COUNT SECONDS
"""
import os
import sys
import time


def count(maildir):
    names = set()
    for sub in ("new", "cur"):
        try:
            with os.scandir(os.path.join(maildir, sub)) as it:
                names.update(e.name.split(":", 1)[0] for e in it)
        except FileNotFoundError:
            pass
    return len(names)


def main():
    maildir, wanted, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    start = time.monotonic()
    n = count(maildir)
    while n < wanted and time.monotonic() - start < seconds:
        time.sleep(0.005)
        n = count(maildir)
    elapsed = time.monotonic() - start
    print(f"pushed={n} seconds={elapsed:.3f} rate={n / elapsed:.1f} "
          f"bounded={0 if n >= wanted else 1}")
    sys.exit(0 if n >= wanted else 1)


if __name__ == "__main__":
    main()
