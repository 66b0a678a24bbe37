#!/usr/bin/python3
"""pushwait: waits until MAILDIR (the destination Dovecot's) holds COUNT messages, counted in
new/ and cur/ by base name (a file moved new/ -> cur/ counts once); the push throughput row
(issue 13). Timed from this tool's start, which bench/run runs right after starting the
mailpopbox whose maildrop holds the messages (so its start-up is included).
Prints key=value: pushed, seconds, rate, bounded (1: SECONDS ran out first), first_seconds
(when the first message appeared) and steady_rate (the messages after the first over the time
after it: the rate without mailpopbox's start-up and first connection).

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
    first = start if n else None
    while n < wanted and time.monotonic() - start < seconds:
        time.sleep(0.005)
        n = count(maildir)
        if n and first is None:
            first = time.monotonic()
    end = time.monotonic()
    elapsed = end - start
    steady = (n - 1) / (end - first) if first is not None and n > 1 and end > first else 0
    print(f"pushed={n} seconds={elapsed:.3f} rate={n / elapsed:.1f} "
          f"bounded={0 if n >= wanted else 1} "
          f"first_seconds={(first - start) if first is not None else elapsed:.3f} "
          f"steady_rate={steady:.1f}")
    sys.exit(0 if n >= wanted else 1)


if __name__ == "__main__":
    main()
