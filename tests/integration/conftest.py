"""Integration test harness: starts the real mailpopbox binary on loopback and talks to it.

Fixtures
  certs          two self-signed certificates (example.org and example.net), made once per run
  test_ca        a CertificateAuthority: .cert to trust, .issue(name) -> (cert path, key path)
  make_server    factory: make_server(overrides={...}, servers=[...], tls=True) -> running Server
  server         a running Server with the default two-domain config

Helpers (import them with `from conftest import ...`)
  SMTPConnection  a raw, line-exact SMTP client with bounded waits (for what smtplib hides)
  dot_stuff, parse_stored, ...

The binary is $MAILPOPBOX_BIN (default: build/src/mailpopbox). Its stderr goes to a log file
that is attached to the report of a failing test. A server that crashes, or whose log shows a
sanitizer report, fails the test in teardown.
"""

import itertools
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HOSTNAME = "mx.example.org"
DOMAINS = ("example.org", "example.net")
# Every wait is bounded; these are generous so a sanitizer build on a slow machine passes.
IO_TIMEOUT = 30.0
START_TIMEOUT = 20.0
STOP_GRACE_SECONDS = 5.0
DEFAULT_MAX_MESSAGE_SIZE = 40960000

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer",
)


_ports_given = set()


def _ephemeral_low():
    """The lowest port the kernel picks for an outgoing connection's local end."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Listening ports come from below the ephemeral range: a port picked inside it can be taken
# as the local end of any outgoing connection (a client of an earlier test, the push engine)
# between the pick and the server's bind, which failed a CI run with "Address already in use".
_PORT_LOW = 10000
_port_cursor = _PORT_LOW + (os.getpid() * 7919) % 5000


def port_is_free(port, kinds=(socket.SOCK_STREAM,)):
    """True when port can be bound on 127.0.0.1 for every socket kind in kinds right now."""
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port(kinds=(socket.SOCK_STREAM,)):
    """A port that was free on 127.0.0.1 a moment ago (for each socket kind in kinds), below
    the kernel's ephemeral range, and never handed out before by this process (so one config
    never gets two equal ports, and a port a stopped server left in TIME_WAIT is not reused)."""
    global _port_cursor
    high = _ephemeral_low() - 1
    if high - _PORT_LOW < 1000:  # an unusual range: fall back to the kernel's choice
        for _ in range(1000):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            if port not in _ports_given and port_is_free(port, kinds):
                _ports_given.add(port)
                return port
        raise RuntimeError("no fresh free port after 1000 tries")
    for _ in range(high - _PORT_LOW + 1):
        port = _port_cursor
        _port_cursor = _PORT_LOW if _port_cursor >= high else _port_cursor + 1
        if port not in _ports_given and port_is_free(port, kinds):
            _ports_given.add(port)
            return port
    raise RuntimeError(f"no free port between {_PORT_LOW} and {high}")


def dot_stuff(message):
    """RFC 5321 4.5.2: a line beginning with '.' gets one more '.' on the wire."""
    assert message == b"" or message.endswith(b"\r\n"), "test messages end with CRLF"
    return re.sub(rb"(?m)^\.", b"..", message)


MESSAGE_IDS = itertools.count(1)


def make_message(subject, body=b"Hello.\r\n", extra_headers=b""):
    """A small RFC 5322 message with CRLF line ends and, unless extra_headers gives one, a
    unique Message-ID (as real mail has: one without gets one added when it is stored, see
    test_message_id.py, and these messages must be stored byte for byte)."""
    if isinstance(subject, str):
        subject = subject.encode()
    if not re.search(rb"(?im)^message-id[ \t]*:", extra_headers):
        extra_headers = (b"Message-ID: <test-%d.%d@example.net>\r\n"
                         % (os.getpid(), next(MESSAGE_IDS))) + extra_headers
    return (b"From: sender@example.net\r\nTo: someone@example.org\r\nSubject: " + subject +
            b"\r\n" + extra_headers + b"\r\n" + body)


# --- the raw SMTP client -----------------------------------------------------------------------

@dataclass
class Reply:
    code: int
    lines: list = field(default_factory=list)  # text after "NNN-" / "NNN ", one per line

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def enhanced(self):
        """The RFC 3463 enhanced status code of the first line, or ''."""
        match = re.match(r"(\d\.\d{1,3}\.\d{1,3})(?:\s|$)", self.lines[0] if self.lines else "")
        return match.group(1) if match else ""

    def __str__(self):
        return " / ".join(f"{self.code} {line}" for line in self.lines) or str(self.code)


class ConnectionClosed(Exception):
    pass


class SMTPConnection:
    """Line-exact SMTP over a socket (plain or after STARTTLS). Every read has a deadline."""

    def __init__(self, port, host="127.0.0.1", timeout=IO_TIMEOUT, read_greeting=True):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buffer = b""
        self.greeting = self.read_reply() if read_greeting else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete reply; have {self.buffer[:200]!r}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError(f"no complete reply; have {self.buffer[:200]!r}") from None
        except (ConnectionResetError, ssl.SSLError) as error:
            raise ConnectionClosed(f"{error}; have {self.buffer[:200]!r}") from None
        if not chunk:
            raise ConnectionClosed(f"server closed the connection; have {self.buffer[:200]!r}")
        self.buffer += chunk

    def read_line(self, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while b"\r\n" not in self.buffer:
            self._fill(deadline)
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def read_reply(self, timeout=None):
        """One complete (possibly multi-line) reply."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        lines = []
        while True:
            line = self.read_line(max(0.0, deadline - time.monotonic()))
            match = re.match(rb"^(\d{3})([ -])(.*)$|^(\d{3})$", line)
            assert match, f"malformed reply line {line!r}"
            if match.group(4):
                return Reply(int(match.group(4)), lines + [""])
            lines.append(match.group(3).decode("utf-8", "replace"))
            if match.group(2) == b" ":
                return Reply(int(match.group(1)), lines)

    def command(self, line, timeout=None):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.read_reply(timeout)

    def ehlo(self, name="client.example.net"):
        reply = self.command(f"EHLO {name}")
        assert reply.code == 250, f"EHLO: {reply}"
        return reply

    def starttls(self, server_hostname=None, context=None):
        """STARTTLS, then the TLS handshake. Returns the SSLSocket."""
        reply = self.command("STARTTLS")
        assert reply.code == 220, f"STARTTLS: {reply}"
        assert self.buffer == b"", f"plaintext after the 220 to STARTTLS: {self.buffer!r}"
        if context is None:
            context = insecure_client_context()
        self.sock.settimeout(self.timeout)
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        return self.sock

    def transaction(self, mail_from, recipients, message, mail_params=""):
        """MAIL, RCPT for each, DATA, the dot-stuffed message, '.'. Returns the final reply.
        Asserts every step before the final dot succeeds."""
        reply = self.command(f"MAIL FROM:<{mail_from}>{(' ' + mail_params) if mail_params else ''}")
        assert reply.code == 250, f"MAIL FROM:<{mail_from}>: {reply}"
        for recipient in recipients:
            reply = self.command(f"RCPT TO:<{recipient}>")
            assert reply.code == 250, f"RCPT TO:<{recipient}>: {reply}"
        reply = self.command("DATA")
        assert reply.code == 354, f"DATA: {reply}"
        self.send(dot_stuff(message) + b".\r\n")
        return self.read_reply()

    def wait_closed(self, timeout=10.0):
        """True when the server closes the connection within timeout (data before EOF is kept
        in self.buffer)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
        except ConnectionClosed:
            return True
        except (TimeoutError, OSError):
            return False


def bounds_constant(name):
    """The value of `#define NAME number` in src/bounds.h, for tests about a compiled-in
    limit."""
    match = re.search(rf"^#define {name} (\d+)$", (REPO_ROOT / "src" / "bounds.h").read_text(),
                      re.MULTILINE)
    assert match, f"{name} not in src/bounds.h"
    return int(match.group(1))


def insecure_client_context():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def verifying_client_context(cert_path):
    """Trusts exactly cert_path (self-signed) and checks the host name."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(cert_path))
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


QUEUED_RE = re.compile(r"^2\.0\.0 Ok: queued as (\S+)")


def queue_id(reply):
    """The queue id from '250 2.0.0 Ok: queued as ID'."""
    assert reply.code == 250, f"message not accepted: {reply}"
    match = QUEUED_RE.match(reply.lines[0])
    assert match, f"250 reply is not '2.0.0 Ok: queued as <id>': {reply}"
    return match.group(1)


# --- what is stored ----------------------------------------------------------------------------

# "<sec>.M<usec>P<pid>Q<counter>.<host>" (store/maildrop_delivery.c) has its microseconds and
# counter unpadded, so names do not sort by time: "M9983" after "M13001" within one second.
MAILDIR_NAME = re.compile(r"^(\d+)\.M(\d+)P(\d+)Q(\d+)")


def maildir_order(path):
    """Sort key of a Maildir file by the time its name records; other names as they are."""
    return MAILDIR_NAME.sub(lambda m: f"{m[1]}.M{int(m[2]):06d}P{m[3]}Q{int(m[4]):020d}",
                            path.name)


@dataclass
class StoredMessage:
    path: Path
    data: bytes

    def split(self, body):
        """Asserts the file is trace headers followed by exactly `body`; returns the headers as
        a list of (name, unfolded value)."""
        assert self.data.endswith(body), (
            f"{self.path.name}: stored bytes do not end with the message "
            f"(stored {len(self.data)} bytes, message {len(body)} bytes)")
        return parse_trace_headers(self.data[:len(self.data) - len(body)])


def parse_trace_headers(prefix):
    """The prepended trace headers: CRLF-terminated header fields, folded lines allowed."""
    assert prefix.endswith(b"\r\n"), f"trace headers do not end with CRLF: {prefix[-80:]!r}"
    assert b"\n" not in prefix.replace(b"\r\n", b""), f"bare LF in trace headers: {prefix!r}"
    text = prefix.decode("utf-8")
    unfolded = re.sub(r"\r\n(?=[ \t])", "", text)
    headers = []
    for line in unfolded.split("\r\n")[:-1]:
        match = re.match(r"^([!-9;-~]+):[ \t]*(.*)$", line)
        assert match, f"not a header field: {line!r} in {text!r}"
        headers.append((match.group(1), match.group(2)))
    return headers


def header_values(headers, name):
    return [value for key, value in headers if key.lower() == name.lower()]


RFC5322_DATE_RE = re.compile(
    r";\s*((?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),\s*)?\d{1,2}\s+"
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+\d{4}\s+"
    r"\d{2}:\d{2}(?::\d{2})?\s+[+-]\d{4})")


def check_trace_headers(headers, mail_from, recipients, helo, queue, tls=None, for_recipient=None):
    """Asserts the trace headers of a stored message (see issue 2)."""
    names = [name.lower() for name, _ in headers]
    assert names.count("return-path") == 1, headers
    assert names.count("received") == 1, headers
    assert header_values(headers, "Return-Path") == [f"<{mail_from}>"], headers
    delivered = [value.strip("<>") for value in header_values(headers, "Delivered-To")]
    assert sorted(delivered) == sorted(recipients), headers
    received = header_values(headers, "Received")[0]
    assert f"from {helo}" in received, received
    assert "[127.0.0.1]" in received, received
    assert f"by {HOSTNAME}" in received, received
    if tls is None:
        assert re.search(r"\bwith ESMTP\b(?!S)", received), received
    else:
        assert "with ESMTPS" in received, received
        version, cipher = tls
        assert version in received, f"TLS version {version} not in {received}"
        assert cipher in received, f"TLS cipher {cipher} not in {received}"
    assert f"id {queue}" in received, received
    if for_recipient is not None:
        assert f"for <{for_recipient}>".lower() in received.lower(), received
    date = RFC5322_DATE_RE.search(received)
    assert date, f"no RFC 5322 date after ';' in {received}"
    when = parsedate_to_datetime(date.group(1))
    assert abs(time.time() - when.timestamp()) < 3600, f"odd date {date.group(1)}"
    return received


# --- the server --------------------------------------------------------------------------------

class Server:
    """One mailpopbox process with its config, certificates, maildrops and log."""

    def __init__(self, binary, directory, config, name):
        self.binary = binary
        self.directory = directory
        self.config = config
        self.name = name
        self.config_path = directory / "config.json"
        self.log_path = directory / "mailpopbox.log"
        self.smtp_port = config["SMTPPort"]
        self.pop3_port = config["POP3Port"]
        self.maildrops = {s["Domain"].lower(): Path(s["MaildropPath"]) for s in config["Servers"]}
        self.process = None
        self.problems = []  # found when stopping: crashes, sanitizer reports
        self.config_path.write_text(json.dumps(config, indent=2))

    # process control

    LISTEN_KEYS = ("SMTPPort", "POP3Port", "SubmissionPort", "SubmissionTLSPort", "POP3STLSPort")

    def start(self):
        assert self.process is None or self.process.poll() is not None, "already running"
        # A port free a moment ago may since have become some client's ephemeral port; on the
        # first start only (restarts must keep their ports), try again with fresh ones.
        attempts = 1 if getattr(self, "started", False) else 3
        for attempt in range(attempts):
            with open(self.log_path, "ab") as log:
                start_offset = log.tell()
                log.write(f"--- starting {self.binary} {self.config_path}\n".encode())
                log.flush()
                self.process = subprocess.Popen(
                    [str(self.binary), str(self.config_path)], stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, cwd=self.directory)
            try:
                self.wait_ready()
                self.started = True
                return self
            except AssertionError:
                startup_log = self.log_path.read_bytes()[start_offset:].decode(errors="replace")
                if attempt + 1 == attempts or "Address already in use" not in startup_log:
                    raise
                self.process.wait(timeout=10)
                for key in self.LISTEN_KEYS:
                    if self.config.get(key):
                        self.config[key] = free_port()
                self.smtp_port = self.config["SMTPPort"]
                self.pop3_port = self.config["POP3Port"]
                self.config_path.write_text(json.dumps(self.config, indent=2))
        return self

    def wait_ready(self):
        """Until the SMTP port greets, says goodbye to QUIT and closes (so the probe no longer
        counts against connection limits)."""
        deadline = time.monotonic() + START_TIMEOUT
        last_error = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"mailpopbox exited with {self.process.returncode} while starting:\n"
                    f"{self.log_text()}")
            try:
                with SMTPConnection(self.smtp_port, timeout=5) as probe:
                    assert probe.greeting.code == 220, f"greeting {probe.greeting}"
                    probe.command("QUIT")
                    probe.wait_closed(5)
                return
            except (ConnectionRefusedError, ConnectionClosed, TimeoutError, OSError) as error:
                last_error = error
                time.sleep(0.05)
        raise AssertionError(f"SMTP port {self.smtp_port} not ready after {START_TIMEOUT}s "
                             f"({last_error}):\n{self.log_text()}")

    def kill(self, sig=signal.SIGKILL):
        """Sends sig; for SIGKILL/SIGTERM also waits until the process is gone."""
        self.process.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            try:
                self.process.wait(timeout=STOP_GRACE_SECONDS + 5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self._check_exit(expected=(0, -sig))

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_GRACE_SECONDS."""
        if self.process is None or self.process.poll() is not None:
            if self.process is not None:
                self._check_exit(expected=(0, -signal.SIGTERM, -signal.SIGKILL))
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            warnings.warn(f"{self.name}: mailpopbox did not stop within "
                          f"{STOP_GRACE_SECONDS}s of SIGTERM; sent SIGKILL")
            self.process.kill()
            self.process.wait(timeout=10)
        self._check_exit(expected=(0, -signal.SIGTERM, -signal.SIGKILL))

    def restart(self):
        self.stop()
        return self.start()

    def _check_exit(self, expected):
        code = self.process.returncode
        if code not in expected:
            self.problems.append(f"mailpopbox exited with status {code}")
        log = self.log_text()
        for marker in SANITIZER_MARKERS:
            if marker in log:
                self.problems.append(f"sanitizer report in the log ({marker!r})")
                break

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # clients

    def connect(self, **kwargs):
        return SMTPConnection(self.smtp_port, **kwargs)

    # storage

    def maildrop(self, domain="example.org"):
        return self.maildrops[domain]

    def messages(self, domain="example.org"):
        """Messages in new/ of the domain's Maildir, oldest first (maildir_order)."""
        new = self.maildrop(domain) / "new"
        if not new.is_dir():
            return []
        return [StoredMessage(path, path.read_bytes())
                for path in sorted(new.iterdir(), key=maildir_order) if path.is_file()]

    def message(self, domain="example.org"):
        """The one message in new/ (asserts there is exactly one)."""
        stored = self.messages(domain)
        assert len(stored) == 1, f"expected one message in {domain}'s new/, found {len(stored)}"
        return stored[0]

    def maildir_files(self, domain="example.org"):
        """Every file in tmp/, new/ and cur/."""
        found = []
        for sub in ("tmp", "new", "cur"):
            directory = self.maildrop(domain) / sub
            if directory.is_dir():
                found += [p for p in directory.iterdir() if p.is_file()]
        return found

    def assert_nothing_stored(self, domain=None, settle=2.0):
        """No message in new/ or cur/ of any (or the given) maildrop, and tmp/ empties within
        `settle` seconds (a refused message's temporary file may be removed just after the
        reply)."""
        domains = [domain] if domain else list(self.maildrops)
        deadline = time.monotonic() + settle
        while True:
            leftovers = [p for d in domains for p in self.maildir_files(d)]
            delivered = [p for p in leftovers if p.parent.name != "tmp"]
            assert not delivered, f"stored although refused: {delivered}"
            if not leftovers:
                return
            if time.monotonic() >= deadline:
                raise AssertionError(f"left behind in tmp/: {leftovers}")
            time.sleep(0.05)


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def mailpopbox_bin():
    binary = Path(os.environ.get("MAILPOPBOX_BIN", REPO_ROOT / "build" / "src" / "mailpopbox"))
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(f"mailpopbox binary not found at {binary} (build it, or set MAILPOPBOX_BIN)")
    return binary.resolve()


def make_certs(directory):
    """domain -> (cert path, key path) for every DOMAINS entry, made in directory: self-signed,
    CN mx.DOMAIN, SAN mx.DOMAIN and DOMAIN."""
    made = {}
    for domain in DOMAINS:
        cert = directory / f"{domain}.crt"
        key = directory / f"{domain}.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", str(key), "-out", str(cert), "-subj", f"/CN=mx.{domain}",
             "-addext", f"subjectAltName=DNS:mx.{domain},DNS:{domain}"],
            check=True, capture_output=True, timeout=60)
        made[domain] = (cert, key)
    return made


class CertificateAuthority:
    """A certificate authority made for the test run: `cert` is its certificate (the file to
    trust), issue(name) a key and certificate it signs for name (a DNS name or an IP address,
    put in subjectAltName), made once per name."""

    def __init__(self, directory):
        self.directory = directory
        self.cert = directory / "ca.crt"
        self.key = directory / "ca.key"
        self.issued = {}
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-nodes", "-days", "2", "-keyout", self.key, "-out", self.cert,
                      "-subj", "/CN=mailpopbox test CA",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def issue(self, name):
        """(cert path, key path) for name, signed by this CA."""
        if name not in self.issued:
            base = self.directory / name.replace(":", "_")
            kind = "IP" if re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", name) else "DNS"
            extensions = base.with_suffix(".ext")
            extensions.write_text(f"subjectAltName={kind}:{name}\nbasicConstraints=CA:FALSE\n"
                                  "extendedKeyUsage=serverAuth\n")
            self._openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                          base.with_suffix(".key"), "-out", base.with_suffix(".csr"),
                          "-subj", f"/CN={name}")
            self._openssl("x509", "-req", "-in", base.with_suffix(".csr"), "-CA", self.cert,
                          "-CAkey", self.key, "-set_serial", str(len(self.issued) + 2),
                          "-days", "2", "-extfile", extensions,
                          "-out", base.with_suffix(".crt"))
            self.issued[name] = (base.with_suffix(".crt"), base.with_suffix(".key"))
        return self.issued[name]

    @staticmethod
    def _openssl(*arguments):
        subprocess.run(["openssl", *map(str, arguments)], check=True, capture_output=True,
                       timeout=60)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    """A CertificateAuthority for the run (nothing on the machine trusts it)."""
    return CertificateAuthority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """domain -> (cert path, key path), made once per run (see make_certs)."""
    return make_certs(tmp_path_factory.mktemp("certs"))


def default_server_entries(directory, certs, tls=True):
    blocked = {"example.org": ["spam@example.org"], "example.net": ["blocked@example.net"]}
    entries = []
    for domain in DOMAINS:
        entry = {
            "Domain": domain,
            "MailboxPassword": f"password-{domain}",
            "MaildropPath": str(directory / f"maildrop-{domain}"),
            "BlockedAddresses": blocked[domain],
        }
        if tls:
            cert, key = certs[domain]
            entry["TLSKeyPath"] = str(key)
            entry["TLSCertPath"] = str(cert)
        entries.append(entry)
    return entries


def server_config(directory, certs, overrides=None, servers=None, tls=True):
    """The config of a test server living in directory: free loopback ports, generous limits,
    both DOMAINS with their maildrops in directory. overrides and servers as for make_server."""
    config = {
        "SMTPPort": free_port(),
        "POP3Port": free_port(),
        "Hostname": HOSTNAME,
        "ListenAddress": "127.0.0.1",
        "MaxMessageSize": DEFAULT_MAX_MESSAGE_SIZE,
        "MaxRecipients": 100,
        "SMTPCommandTimeoutSeconds": 60,
        "SMTPDataTimeoutSeconds": 60,
        "MaxConnections": 1000,
        "MaxConnectionsPerIP": 20,
        # Sending: our own ports and spool, never the defaults (587, 465,
        # /var/spool/mailpopbox) shared with anything else on the machine.
        "SubmissionPort": free_port(),
        "SubmissionTLSPort": free_port(),
        "SpoolPath": str(directory / "spool"),
        # The sender checks ask DNS: off unless a test gives them its own resolver
        # (dnsfixture.py), so no test asks the machine's resolver.
        "VerifySenders": False,
    }
    entries = default_server_entries(directory, certs, tls)
    config["Servers"] = servers(entries) if servers else entries
    for key, value in (overrides or {}).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


@pytest.fixture
def make_server(request, tmp_path, mailpopbox_bin, certs):
    """make_server(overrides=None, servers=None, tls=True, start=True) -> Server.

    overrides: top-level config keys to set (None removes a key). servers: a function
    (default_entries) -> entries, to change the Servers list."""
    made = []
    request.node.mailpopbox_servers = made

    def factory(overrides=None, servers=None, tls=True, start=True):
        directory = tmp_path / f"server{len(made)}"
        directory.mkdir()
        config = server_config(directory, certs, overrides, servers, tls)
        server = Server(mailpopbox_bin, directory, config, name=f"server{len(made)}")
        made.append(server)
        if start:
            server.start()
        return server

    yield factory

    problems = []
    for server in made:
        server.stop()
        for problem in dict.fromkeys(server.problems):
            problems.append(f"{server.name}: {problem}")
    if problems:
        logs = "\n".join(f"--- {s.name} log ---\n{s.log_text()[-20000:]}" for s in made)
        pytest.fail("\n".join(problems) + "\n" + logs, pytrace=False)


@pytest.fixture
def server(make_server):
    return make_server()


@pytest.fixture
def open_directory():
    """A directory every user can enter, for what an unprivileged user must reach (pytest's
    tmp_path is root-only)."""
    directory = Path(tempfile.mkdtemp(prefix="mailpopbox-open-", dir="/tmp"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attaches each server's log to the report of a failing test; turns skips into failures
    when MAILPOPBOX_NO_SKIPS=1."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("MAILPOPBOX_NO_SKIPS") == "1" and not hasattr(report, "wasxfail"):
        # scripts/test sets MAILPOPBOX_NO_SKIPS: there, a skipped test is an install or
        # environment bug (a missing tool, no root, no loopback addresses), never a pass.
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, and skips are failures under scripts/test: {reason}"
    if report.failed and report.when == "call":
        for server in getattr(item, "mailpopbox_servers", []):
            log = server.log_text()
            if len(log) > 20000:
                log = "... (earlier lines cut)\n" + log[-20000:]
            report.sections.append((f"mailpopbox log ({server.name})", log))


def require_tool(name, package):
    """The path of the program NAME; fails the test (never skips it) when it is missing, naming
    the Debian PACKAGE that scripts/install-deps should have installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (Debian package {package}, in scripts/install-deps)",
                    pytrace=False)
    return path
