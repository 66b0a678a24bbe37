#!/usr/bin/python3
"""signedmsg: the message and DNS records of the sender-verification rows (issue 14).

Writes into DIR:
  message.eml   a SIZE-octet message from sender@example.net, DKIM-signed (rsa-sha256,
                relaxed/relaxed, d=example.net s=bench) with a key made for this run
  dnsmasq.conf  dnsmasq records that make every check pass for a client on 127.0.0.1:
                SPF (example.net and the HELO name client.example.net), the DKIM key and a
                DMARC record with p=reject, so each message costs the full work of all three

    signedmsg.py DIR SIZE
"""
import base64
import subprocess
import sys
from pathlib import Path

import dkim

DOMAIN = "example.net"
SELECTOR = "bench"
TXT_CHUNK = 255  # RFC 1035 3.3.14: one character-string holds at most 255 octets


def txt_record(name, text):
    chunks = [text[i:i + TXT_CHUNK] for i in range(0, len(text), TXT_CHUNK)]
    return f"txt-record={name}," + ",".join(f'"{chunk}"' for chunk in chunks)


def main():
    out, size = Path(sys.argv[1]), int(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    key = out / "dkim.key"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                   stderr=subprocess.DEVNULL)
    public = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
                            check=True, capture_output=True).stdout

    p = base64.b64encode(public).decode()
    headers = (f"From: Sender <sender@{DOMAIN}>\r\nTo: rcpt@example.org\r\n"
               f"Subject: bench\r\nDate: Wed, 02 Dec 2026 12:00:00 +0000\r\n"
               f"Message-ID: <bench.1@{DOMAIN}>\r\n\r\n")
    line = "x" * 76 + "\r\n"
    body_len = max(0, size - len(headers) - 600)  # about 600 octets of DKIM-Signature
    body = (line * (body_len // len(line) + 1))[:body_len - body_len % len(line)]
    message = (headers + body).encode()
    signature = dkim.sign(message, SELECTOR.encode(), DOMAIN.encode(), key.read_bytes(),
                          canonicalize=(b"relaxed", b"relaxed"),
                          include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    (out / "message.eml").write_bytes(signature.replace(b"\r\n", b"\n") +
                                      message.replace(b"\r\n", b"\n"))
    (out / "dnsmasq.conf").write_text("\n".join([
        txt_record(DOMAIN, "v=spf1 ip4:127.0.0.0/8 -all"),
        txt_record(f"client.{DOMAIN}", "v=spf1 ip4:127.0.0.0/8 -all"),
        txt_record(f"{SELECTOR}._domainkey.{DOMAIN}", f"v=DKIM1; k=rsa; p={p}"),
        txt_record(f"_dmarc.{DOMAIN}", "v=DMARC1; p=reject"),
    ]) + "\n")


if __name__ == "__main__":
    main()
