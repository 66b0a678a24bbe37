#!/usr/bin/python3
"""mkmaildrop: writes a Maildir of COUNT messages of exactly SIZE octets each (CRLF lines, as
mailpopbox stores them), in new/, named like Dovecot's and mailpopbox's deliveries with the
",S=" size hint, owned by UID:GID.

    mkmaildrop.py DIR COUNT SIZE UID GID
"""
import os
import sys


def message(i, size):
    head = (
        f"Return-Path: <sender{i}@example.net>\r\n"
        f"Received: from client.example.net (localhost [127.0.0.1])\r\n"
        f"\tby mx.example.org with SMTP; Mon, 01 Jan 2024 00:00:00 +0000\r\n"
        f"From: Sender {i} <sender{i}@example.net>\r\n"
        f"To: <shop{i}@example.org>\r\n"
        f"Subject: benchmark message {i}\r\n"
        f"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
        f"Message-ID: <{i}.bench@example.net>\r\n"
        f"\r\n"
    ).encode()
    line = (b"abcdefghijklmnopqrstuvwxyz0123456789" * 3)[:76] + b"\r\n"
    body = bytearray()
    # A dot at the start of some lines, so RETR exercises dot-stuffing.
    n = 0
    while len(head) + len(body) + len(line) <= size:
        body += (b"." + line[1:]) if n % 16 == 5 else line
        n += 1
    rest = size - len(head) - len(body)
    if rest >= 2:
        body += b"x" * (rest - 2) + b"\r\n"
    elif rest == 1:
        # Lengthen the last line by one octet: every message ends with CRLF.
        body[-2:] = b"x\r\n"
    data = head + bytes(body)
    assert len(data) == size and data.endswith(b"\r\n"), (len(data), size)
    return data


def main():
    d, count, size, uid, gid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    for sub in ("", "/new", "/cur", "/tmp"):
        os.makedirs(d + sub, exist_ok=True)
        os.chown(d + sub, uid, gid)
        os.chmod(d + sub, 0o700)
    for i in range(count):
        data = memoryview(message(i, size))
        name = f"{1700000000 + i}.M{i % 1000000}P4242Q{i}.bench,S={size}"
        path = f"{d}/new/{name}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
        os.chown(path, uid, gid)
    os.sync()
    with open(f"{d}/.mkmaildrop-v2", "w") as f:
        f.write(f"{count} {size}\n")


if __name__ == "__main__":
    main()
