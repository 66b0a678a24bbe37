#!/usr/bin/python3
"""idleconns: opens COUNT connections to a loopback port and holds them idle.

smtp mode: each connection is established once the server's 220 greeting arrived.
pop3s mode: each connection is established once the TLS handshake finished and the +OK
greeting arrived. When all are open (or have failed), writes "established=N failed=M" to
READY_FILE and holds them until killed or HOLD seconds passed. Connects one at a time;
every step has a timeout.

    idleconns.py smtp|pop3s PORT COUNT READY_FILE HOLD_SECONDS
"""
import os
import signal
import socket
import ssl
import sys
import time


def main():
    mode, port, count, ready, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    held, failed = [], 0
    deadline = time.monotonic() + 300
    for _ in range(count):
        if time.monotonic() > deadline or failed > 50:
            failed += count - len(held) - failed
            break
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=15)
            if mode == "pop3s":
                s = ctx.wrap_socket(s, server_hostname="mx.example.org")
            greeting = s.recv(512)
            want = b"220" if mode == "smtp" else b"+OK"
            if not greeting.startswith(want):
                raise OSError(f"unexpected greeting {greeting[:60]!r}")
            held.append(s)
        except (OSError, ssl.SSLError) as e:
            failed += 1
            print(f"idleconns: connection {len(held) + failed}: {e}", file=sys.stderr)
    tmp = ready + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"established={len(held)} failed={failed}\n")
    os.rename(tmp, ready)
    time.sleep(hold)


if __name__ == "__main__":
    main()
