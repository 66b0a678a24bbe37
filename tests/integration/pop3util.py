"""Helpers for the POP3 integration tests: a line-exact POP3 client, logins, SMTP delivery, and
what a maildrop holds as POP3 should list it.

  POP3Connection    raw POP3 over a socket (implicit TLS, plain, or plain then STLS); every read
                    has a deadline, multi-line replies are returned as the octets on the wire
  pop3_ssl, login   poplib over implicit TLS, logged in as mailbox@DOMAIN
  deliver           one message in over SMTP (the real server), asserting 250
  maildrop_files    the files POP3 should list: new/, cur/ and legacy "*.msg", by arrival
  expected_uidl     the UIDL the server derives from a file name
  seed_legacy       a "*.msg" file as the original Go mailpopbox wrote it
  connect_when_unlocked  log in, retrying while a dropped session's lock is still held
  vm_rss_kib        the server's resident memory, for streaming and backpressure checks
"""

import os
import poplib
import re
import socket
import ssl
import time
import uuid
from pathlib import Path

from conftest import IO_TIMEOUT, ConnectionClosed, insecure_client_context, make_message, queue_id

GREETING = b"+OK mailpopbox ready"
AUTH_FAILED = b"-ERR [AUTH] invalid credentials"
IN_USE = b"-ERR [IN-USE] maildrop locked"


def user(domain="example.org"):
    return f"mailbox@{domain}"


def password(domain="example.org"):
    """default_server_entries in conftest gives each Server this MailboxPassword."""
    return f"password-{domain}"


def stls_port(server):
    return server.config.get("POP3STLSPort", 0)


# --- the raw POP3 client -----------------------------------------------------------------------

class POP3Connection:
    """Line-exact POP3. tls=True wraps the socket at once (POP3Port with a certificate);
    tls=False stays plain (the STLS port, or POP3Port without certificates) until stls()."""

    def __init__(self, port, tls=True, server_hostname=None, host="127.0.0.1",
                 timeout=IO_TIMEOUT, read_greeting=True, context=None):
        self.timeout = timeout
        self.raw_sock = socket.create_connection((host, port), timeout=timeout)
        self.sock = self.raw_sock
        self.buffer = bytearray()
        if tls:
            self.sock = (context or insecure_client_context()).wrap_socket(
                self.raw_sock, server_hostname=server_hostname)
        self.greeting = self.read_line() if read_greeting else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def abort(self):
        """Drops the connection without QUIT: TCP close with no TLS close_notify, as a client
        that loses its network or crashes."""
        try:
            self.raw_sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        except OSError:
            pass
        try:
            self.raw_sock.close()
        except OSError:
            pass
        if self.sock is not self.raw_sock:
            try:
                self.sock.close()
            except OSError:
                pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete reply; have {bytes(self.buffer[:200])!r}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            raise TimeoutError(f"no complete reply; have {bytes(self.buffer[:200])!r}") from None
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError) as error:
            raise ConnectionClosed(f"{error}; have {bytes(self.buffer[:200])!r}") from None
        if not chunk:
            raise ConnectionClosed(
                f"server closed the connection; have {bytes(self.buffer[:200])!r}")
        self.buffer += chunk

    def read_line(self, timeout=None):
        """One CRLF-terminated line, without the CRLF."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        start = 0
        while True:
            end = self.buffer.find(b"\r\n", start)
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[:end + 2]
                return line
            start = max(0, len(self.buffer) - 1)
            self._fill(deadline)

    def read_multiline_raw(self, timeout=None):
        """The octets of a multi-line response body as sent (still dot-stuffed), up to but not
        including the terminating ".\\r\\n"."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        start = 0
        while True:
            if self.buffer.startswith(b".\r\n"):
                del self.buffer[:3]
                return b""
            end = self.buffer.find(b"\r\n.\r\n", start)
            if end >= 0:
                body = bytes(self.buffer[:end + 2])
                del self.buffer[:end + 5]
                return body
            start = max(0, len(self.buffer) - 4)
            self._fill(deadline)

    def command(self, line, timeout=None):
        """Sends one command line; returns the status line."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.read_line(timeout)

    def multiline(self, line, timeout=None):
        """Sends a command that answers with a multi-line response. Returns (status, raw body);
        raw body is None when the status is not +OK."""
        status = self.command(line, timeout)
        if not status.startswith(b"+OK"):
            return status, None
        return status, self.read_multiline_raw(timeout)

    def ok(self, line, timeout=None):
        status = self.command(line, timeout)
        assert status.startswith(b"+OK"), f"{line!r}: {status!r}"
        return status

    def login(self, domain="example.org", secret=None):
        self.ok(f"USER {user(domain)}")
        return self.ok(f"PASS {password(domain) if secret is None else secret}")

    def retr(self, number):
        status, raw = self.multiline(f"RETR {number}")
        assert status.startswith(b"+OK"), f"RETR {number}: {status!r}"
        return dot_unstuff(raw)

    def uidl_map(self):
        """{message number: unique id} from UIDL."""
        status, raw = self.multiline("UIDL")
        assert status.startswith(b"+OK"), f"UIDL: {status!r}"
        return parse_scan_listing(raw, int_values=False)

    def list_map(self):
        status, raw = self.multiline("LIST")
        assert status.startswith(b"+OK"), f"LIST: {status!r}"
        return parse_scan_listing(raw, int_values=True)

    def stls(self, server_hostname=None, context=None):
        status = self.command("STLS")
        assert status.startswith(b"+OK"), f"STLS: {status!r}"
        assert not self.buffer, f"plaintext after the +OK to STLS: {bytes(self.buffer)!r}"
        self.sock.settimeout(self.timeout)
        self.sock = (context or insecure_client_context()).wrap_socket(
            self.sock, server_hostname=server_hostname)
        return self.sock

    def quit(self):
        status = self.command("QUIT")
        self.wait_closed()
        return status

    def wait_closed(self, timeout=10.0):
        """True when the server closes the connection within timeout."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
        except ConnectionClosed:
            return True
        except (TimeoutError, OSError):
            return False


def dot_unstuff(raw):
    """RFC 1939 3: a line of a multi-line response that starts with '.' has had one more '.'
    put in front of it."""
    if raw is None:
        return None
    return re.sub(rb"(?m)^\.", b"", raw)


def parse_scan_listing(raw, int_values):
    listing = {}
    for line in raw.split(b"\r\n")[:-1]:
        number, value = line.split(b" ", 1)
        listing[int(number)] = int(value) if int_values else value.decode()
    return listing


def pop3_connect(server, domain="example.org", login=True, **kwargs):
    """A POP3Connection to the server's implicit-TLS POP3 port, logged in unless told not."""
    conn = POP3Connection(server.pop3_port, **kwargs)
    assert conn.greeting.startswith(b"+OK"), conn.greeting
    if login:
        conn.login(domain)
    return conn


# --- poplib ------------------------------------------------------------------------------------

def pop3_ssl(server, server_hostname=None, context=None):
    """poplib over implicit TLS, not logged in."""
    return poplib.POP3_SSL("127.0.0.1", server.pop3_port, timeout=IO_TIMEOUT,
                           context=context or InsecureContextWithHostname(server_hostname))


class InsecureContextWithHostname:
    """poplib passes server_hostname=host ("127.0.0.1"); this wrapper sends the SNI name a test
    asks for instead (or none)."""

    def __init__(self, server_hostname):
        self.context = insecure_client_context()
        self.server_hostname = server_hostname

    def wrap_socket(self, sock, server_hostname=None, **kwargs):
        return self.context.wrap_socket(sock, server_hostname=self.server_hostname, **kwargs)


def login(server, domain="example.org"):
    client = pop3_ssl(server)
    client.user(user(domain))
    client.pass_(password(domain))
    return client


# --- SMTP in -----------------------------------------------------------------------------------

def deliver(server, message, recipient="someone@example.org", mail_from="sender@example.net.test",
            mail_params=""):
    """One message over SMTP; returns the queue id."""
    with server.connect() as client:
        client.ehlo("client.example.net")
        reply = client.transaction(mail_from, [recipient], message, mail_params)
        client.command("QUIT")
    return queue_id(reply)


def deliver_many(server, count, domain="example.org", prefix="message"):
    """count small messages, one SMTP transaction each (distinct mtimes are not needed: the
    server orders by mtime, then by name)."""
    sent = []
    with server.connect() as client:
        client.ehlo("client.example.net")
        for i in range(count):
            message = make_message(f"{prefix} {i}", f"body of {prefix} {i}\r\n".encode())
            queue_id(client.transaction("sender@example.net.test", [f"rcpt{i}@{domain}"], message))
            sent.append(message)
        client.command("QUIT")
    return sent


# --- the maildrop as POP3 lists it ----------------------------------------------------------------

def maildrop_files(server, domain="example.org"):
    """Regular files POP3 serves: new/, cur/ and "*.msg" in the maildrop root (dotfiles
    excluded), oldest mtime first, then by name."""
    root = server.maildrop(domain)
    files = []
    for sub in ("new", "cur"):
        directory = root / sub
        if directory.is_dir():
            files += [p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")]
    if root.is_dir():
        files += [p for p in root.iterdir()
                  if p.is_file() and p.name.endswith(".msg") and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, natural_key(p.name)))


def natural_key(name):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", name) if part]


def expected_uidl(path):
    """Maildir: the unique part of the name (before ":2,", without ",S=" / ",W=" sizes).
    Legacy: the name without ".msg" (what the original server said)."""
    name = Path(path).name
    if Path(path).parent.name not in ("new", "cur") and name.endswith(".msg"):
        return name[:-len(".msg")]
    base = name.split(":", 1)[0]
    while True:
        match = re.match(r"^(.*),[SW]=\d+$", base)
        if not match:
            return base
        base = match.group(1)


def seed_legacy(server, body, domain="example.org", name=None, mtime=None):
    """A message as the original Go server stored it: "<id>.msg" directly in MaildropPath,
    "Delivered-To" and "Return-Path" lines, then the received data (CRLF, unstuffed)."""
    root = server.maildrop(domain)
    root.mkdir(parents=True, exist_ok=True)
    name = name or f"{uuid.uuid4()}.msg"
    data = (f"Delivered-To: <someone@{domain}>\r\nReturn-Path: <old@example.com>\r\n"
            .encode() + body)
    path = root / name
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def vm_rss_kib(pid):
    """Resident set size of pid in KiB, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def connect_when_unlocked(server, domain="example.org", within=10.0):
    """Logs in, retrying while the answer is [IN-USE] (a dropped session's lock goes when the
    server notices the close). Returns the logged-in POP3Connection."""
    deadline = time.monotonic() + within
    while True:
        conn = POP3Connection(server.pop3_port)
        conn.ok(f"USER {user(domain)}")
        reply = conn.command(f"PASS {password(domain)}")
        if reply.startswith(b"+OK"):
            return conn
        conn.close()
        assert reply == IN_USE, reply
        assert time.monotonic() < deadline, f"maildrop still locked after {within} s"
        time.sleep(0.1)
