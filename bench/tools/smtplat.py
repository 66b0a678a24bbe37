#!/usr/bin/python3
"""smtplat: SMTP latency, one session at a time.

COUNT times: connect, read the greeting, EHLO, then time one transaction from MAIL FROM to the
reply to the end of DATA (a message of about SIZE octets to a different local part each time),
then QUIT. Prints key=value: n, failed, median_ms, p99_ms, min_ms, max_ms, and session_median_ms
(connect to the reply to QUIT). Bounded by COUNT and by SECONDS.

    smtplat.py PORT COUNT SIZE SECONDS
"""
import socket
import sys
import time


def reply(f):
    """Reads one (possibly multi-line) SMTP reply; returns (code, text)."""
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise OSError("connection closed")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), b"".join(lines)


def expect(f, code):
    got, text = reply(f)
    if got != code:
        raise OSError(f"expected {code}, got {text[:200]!r}")


def percentile(sorted_values, p):
    # Nearest-rank percentile.
    k = max(0, min(len(sorted_values) - 1, int(-(-p * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


def main():
    port, count, size, seconds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"ABCD\r\n"
    body = line * (size // len(line))
    samples, sessions, failed = [], [], 0
    deadline = time.monotonic() + seconds
    for i in range(count):
        if time.monotonic() > deadline or failed > 20:
            break
        try:
            t0 = time.perf_counter()
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            f = s.makefile("rb")
            expect(f, 220)
            s.sendall(b"EHLO client.example.net\r\n")
            expect(f, 250)
            msg = (f"From: <lat{i}@example.net>\r\nTo: <lat{i}@example.org>\r\n"
                   f"Subject: latency {i}\r\nMessage-ID: <lat{i}.{t0}@example.net>\r\n\r\n").encode() + body + b".\r\n"
            t1 = time.perf_counter()
            s.sendall(f"MAIL FROM:<lat{i}@example.net>\r\n".encode())
            expect(f, 250)
            s.sendall(f"RCPT TO:<lat{i}@example.org>\r\n".encode())
            expect(f, 250)
            s.sendall(b"DATA\r\n")
            expect(f, 354)
            s.sendall(msg)
            expect(f, 250)
            t2 = time.perf_counter()
            s.sendall(b"QUIT\r\n")
            expect(f, 221)
            t3 = time.perf_counter()
            f.close()
            s.close()
            samples.append((t2 - t1) * 1000)
            sessions.append((t3 - t0) * 1000)
        except OSError as e:
            failed += 1
            print(f"smtplat: message {i}: {e}", file=sys.stderr)
    if not samples:
        print(f"n=0 failed={failed}")
        sys.exit(1)
    samples.sort()
    sessions.sort()
    print(f"n={len(samples)} failed={failed} median_ms={percentile(samples, 50):.3f} "
          f"p99_ms={percentile(samples, 99):.3f} min_ms={samples[0]:.3f} max_ms={samples[-1]:.3f} "
          f"session_median_ms={percentile(sessions, 50):.3f}")


if __name__ == "__main__":
    main()
