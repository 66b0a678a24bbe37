"""The far side of outbound mail, for the sending tests: a programmable SMTP sink that plays a
remote MX host or a smarthost, the setup of a server that sends, and the owner's submission
client.

  Sink(ip, port, ...)     ESMTP server on one loopback address, in threads: configurable
                          extensions (PIPELINING, 8BITMIME, SIZE, STARTTLS, AUTH PLAIN, DSN,
                          SMTPUTF8), programmable replies (reply_to_greeting/mail/rcpt/data,
                          DROP to hang up), an RFC 821 mode (esmtp=False), IPv4 or IPv6;
                          every transaction recorded; .start() / .stop() / .wait_for(n)
  Transaction             one MAIL..DATA as the sink saw it (parameters, dot-unstuffed data,
                          TLS version, AUTH user, whether RCPT came pipelined)
  free_port_on(ips)       one port free on every given loopback address (the server's
                          OutboundPort is one number for all MX hosts, so each host is an IP)
  make_sink               fixture: make_sink(ip, port, start=True, ...) -> Sink, stopped in
                          teardown
  sending_server          fixture: a conftest Server with SubmissionPort, SubmissionTLSPort,
                          SpoolPath, DNSResolver, OutboundPort and QueueRetryBaseSeconds 1
  outbound                fixture: outbound(...) -> (server, sink) where remote.test's only MX
                          host is the sink (needs make_dns from dnsfixture imported too)
  authenticated, transaction, submit, outgoing_message   the owner's side of submission
  wait_for_report, delivery_status, recipient_status     RFC 3464 reports in a maildrop
  queue_listing, wait_until_dequeued                     `mailpopbox queue`, to know when the
                                                         server is done with a message

Test modules import the fixtures they use (and those these depend on) by name.
"""

import base64
import email
import email.policy
import re
import select
import socket
import ssl
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest

from conftest import IO_TIMEOUT, SMTPConnection, dot_stuff, free_port, insecure_client_context

SINK_HOSTNAME = "sink.test"
DEFAULT_EXTENSIONS = ("PIPELINING", "8BITMIME", "SIZE 52428800", "ENHANCEDSTATUSCODES",
                      "SMTPUTF8")
SESSION_TIMEOUT = 30.0       # a silent client is dropped after this long
MAX_COMMAND_LINE = 4096      # generous: RFC 5321 4.5.3.1.4 says 512 with extensions
MAX_DATA_LINE = 1 << 20      # the sink records, it does not enforce RFC 5321 4.5.3.1.6
PIPELINING_GRACE = 0.3       # how long MAIL's reply waits to see whether RCPT is already sent
DROP = "drop the connection"  # a programmed "reply": close the connection without replying


# --- what the sink records -----------------------------------------------------------------------

def parse_parameters(text):
    """ESMTP parameters after the address: {"NOTIFY": "SUCCESS", "SMTPUTF8": True}."""
    parameters = {}
    for word in text.split():
        key, equals, value = word.partition("=")
        parameters[key.upper()] = value if equals else True
    return parameters


@dataclass
class Recipient:
    address: str
    parameters: dict
    reply: str


@dataclass
class Transaction:
    peer: str
    helo: str
    tls_version: object          # None when the session was plaintext
    auth_user: object            # the authcid of a successful AUTH, or None
    mail_from: str
    mail_parameters: dict
    recipients: list = field(default_factory=list)   # every RCPT, accepted or not
    pipelined: bool = False      # RCPT was already sent before MAIL's reply
    data: bytes = b""            # the message as sent, dot-unstuffed, CRLF line ends
    data_reply: str = ""

    @property
    def accepted(self):
        return self.data_reply.startswith("2")

    @property
    def accepted_recipients(self):
        return [r.address for r in self.recipients if r.reply.startswith("2")]

    def message(self):
        return email.message_from_bytes(self.data, policy=email.policy.default)

    @property
    def message_id(self):
        return self.message()["Message-ID"]


class _Replies:
    """A programmed sequence of replies: each used once in order, the last one repeats."""

    def __init__(self, default):
        self.default = default
        self.sequences = {}
        self.lock = threading.Lock()

    def program(self, key, replies):
        assert replies, "give at least one reply"
        for reply in replies:
            assert reply == DROP or re.match(r"^[2-5]\d\d[ -]", reply + " "), \
                f"not an SMTP reply: {reply!r}"
        with self.lock:
            self.sequences[key] = list(replies)

    def next(self, key):
        with self.lock:
            sequence = self.sequences.get(key)
            if not sequence:
                return self.default
            return sequence.pop(0) if len(sequence) > 1 else sequence[0]


# --- the sink ------------------------------------------------------------------------------------

class Sink:
    """An SMTP server on ip:port that records what it is sent and replies as programmed.

    extensions:  EHLO keywords always offered (DEFAULT_EXTENSIONS unless given); add "DSN".
    tls:         (cert path, key path): STARTTLS offered until the session is encrypted.
    credentials: (user, password): AUTH PLAIN offered (only inside TLS when tls is given) and
                 required before MAIL (a smarthost).
    esmtp:       False makes EHLO "500 command not recognized" (an RFC 821 server).
    Replies programmed as DROP close the connection instead.
    """

    def __init__(self, ip, port, extensions=DEFAULT_EXTENSIONS, tls=None, credentials=None,
                 esmtp=True):
        self.ip = ip
        self.port = port
        self.family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        self.address = f"[{ip}]:{port}" if self.family == socket.AF_INET6 else f"{ip}:{port}"
        self.extensions = list(extensions)
        self.credentials = credentials
        self.esmtp = esmtp
        self.tls_context = None
        if tls:
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(str(tls[0]), str(tls[1]))
        self.greeting_replies = _Replies("220 sink.test ESMTP ready")
        self.mail_replies = _Replies("250 2.1.0 sender ok")
        self.rcpt_replies = _Replies("250 2.1.5 recipient ok")
        self.data_replies = _Replies("250 2.0.0 message accepted")
        self.transactions = []          # every transaction that reached the end of DATA
        self.connections = 0
        self.finished_sessions = 0      # connections that are over (either side closed)
        self.plaintext_injections = 0   # bytes sent after STARTTLS before the handshake
        self.failed_logins = []
        self.log = []                   # (peer, "C: ..." / "S: ...") for failure messages
        self.changed = threading.Condition()
        self.listener = None
        self.accept_thread = None
        self.sessions = set()
        self.stopping = threading.Event()

    # programming the replies

    def reply_to_greeting(self, *replies):
        self.greeting_replies.program(None, replies)

    def reply_to_mail(self, *replies):
        self.mail_replies.program(None, replies)

    def reply_to_rcpt(self, address, *replies):
        """Replies to RCPT TO:<address> (case-insensitive), in order, the last one repeating."""
        self.rcpt_replies.program(address.lower(), replies)

    def reply_to_data(self, *replies):
        """Replies at the end of DATA, in order, the last one repeating."""
        self.data_replies.program(None, replies)

    # process control

    def start(self):
        assert self.listener is None, "already listening"
        self.stopping.clear()
        listener = socket.socket(self.family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.ip, self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self.listener = listener
        self.accept_thread = threading.Thread(target=self._accept_loop, daemon=True,
                                              name=f"sink-{self.address}")
        self.accept_thread.start()
        return self

    def stop(self):
        """Stops listening and drops every open session (the host goes down)."""
        if self.listener is None:
            return
        self.stopping.set()
        self.accept_thread.join(timeout=5)
        self.listener.close()
        self.listener = None
        for session in list(self.sessions):
            session.abort()
        for session in list(self.sessions):
            session.thread.join(timeout=5)

    @property
    def running(self):
        return self.listener is not None

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                sock, peer = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.changed:
                self.connections += 1
                self.changed.notify_all()
            session = _Session(self, sock, f"[{peer[0]}]:{peer[1]}" if ":" in peer[0]
                               else f"{peer[0]}:{peer[1]}")
            self.sessions.add(session)
            session.thread.start()

    # what was received

    @property
    def delivered(self):
        """Transactions whose DATA got a 2xx reply."""
        with self.changed:
            return [t for t in self.transactions if t.accepted]

    def _record(self, transaction):
        with self.changed:
            self.transactions.append(transaction)
            self.changed.notify_all()

    def wait_for(self, count=1, timeout=20.0):
        """Waits until `count` transactions were accepted; returns them all."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                accepted = [t for t in self.transactions if t.accepted]
                if len(accepted) >= count:
                    return accepted
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"sink {self.address}: {len(accepted)} of {count} message(s) accepted "
                        f"after {timeout}s; {len(self.transactions)} transaction(s), "
                        f"{self.connections} connection(s); last of the dialogue:\n"
                        + self.dialogue(40))
                self.changed.wait(remaining)

    def wait_for_transactions(self, count=1, timeout=20.0):
        """Waits until `count` transactions reached the end of DATA, accepted or not."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.transactions) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"sink {self.address}: {len(self.transactions)} of {count} "
                        f"transaction(s) after {timeout}s; {self.connections} connection(s):\n"
                        + self.dialogue(40))
                self.changed.wait(remaining)
            return list(self.transactions)

    def with_message_id(self, message_id):
        return [t for t in self.delivered if t.message_id == message_id]

    def client_lines(self, prefix):
        """What clients sent that starts with prefix (case-insensitive), in order."""
        with self.changed:
            return [line[3:] for _, line in self.log
                    if line.startswith("C: ") and line[3:].upper().startswith(prefix.upper())]

    def server_lines(self, prefix):
        """What the sink replied that starts with prefix, in order."""
        with self.changed:
            return [line[3:] for _, line in self.log
                    if line.startswith("S: ") and line[3:].startswith(prefix)]

    def dialogue(self, last=None):
        with self.changed:
            entries = self.log[-last:] if last else list(self.log)
        return "\n".join(f"  {peer} {line}" for peer, line in entries) or "  (nothing)"

    def _note(self, peer, line):
        with self.changed:
            self.log.append((peer, line))


class _Closed(Exception):
    pass


class _Session:
    """One SMTP connection to the sink (runs in its own thread)."""

    def __init__(self, sink, sock, peer):
        self.sink = sink
        self.sock = sock
        self.peer = peer
        self.buffer = b""
        self.tls_version = None
        self.auth_user = None
        self.helo = ""
        self.transaction = None
        self.thread = threading.Thread(target=self.run, daemon=True, name=f"sink-{peer}")

    def abort(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def run(self):
        try:
            self.sock.settimeout(SESSION_TIMEOUT)
            greeting = self.sink.greeting_replies.next(None)
            self.reply(greeting)
            if not greeting.startswith("2"):
                return
            while True:
                line = self.read_line(MAX_COMMAND_LINE)
                self.sink._note(self.peer, "C: " + line.decode("utf-8", "replace"))
                if not self.dispatch(line.decode("utf-8", "replace")):
                    return
        except (_Closed, OSError, ssl.SSLError):
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sink.sessions.discard(self)
            with self.sink.changed:
                self.sink.finished_sessions += 1
                self.sink.changed.notify_all()

    # I/O

    def reply(self, text):
        """One reply; a text with newlines becomes a multi-line reply. DROP closes instead."""
        if text == DROP:
            self.sink._note(self.peer, "S: <connection dropped>")
            raise _Closed()
        code, lines = text[:3], text[4:].split("\n")
        wire = "".join(f"{code}{'-' if i < len(lines) - 1 else ' '}{line}\r\n"
                       for i, line in enumerate(lines))
        self.sink._note(self.peer, "S: " + wire.rstrip().replace("\r\n", " / "))
        self.sock.sendall(wire.encode())

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _Closed()
        self.buffer += chunk

    def read_line(self, limit):
        while b"\r\n" not in self.buffer:
            if len(self.buffer) > limit:
                raise _Closed()
            self.fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def more_input_within(self, seconds):
        """True when the client has sent more than we have read (so it did not wait for the
        reply to what we read last)."""
        if self.buffer:
            return True
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        readable, _, _ = select.select([self.sock], [], [], seconds)
        return bool(readable)

    # commands

    def dispatch(self, line):
        verb, _, argument = line.partition(" ")
        verb = verb.upper()
        handler = {
            "EHLO": self.cmd_ehlo, "HELO": self.cmd_helo, "STARTTLS": self.cmd_starttls,
            "AUTH": self.cmd_auth, "MAIL": self.cmd_mail, "RCPT": self.cmd_rcpt,
            "DATA": self.cmd_data, "RSET": self.cmd_rset, "NOOP": self.cmd_noop,
            "QUIT": self.cmd_quit,
        }.get(verb)
        if handler is None:
            self.reply("500 5.5.2 command not recognized")
            return True
        return handler(argument.strip())

    def offers_starttls(self):
        return self.sink.tls_context is not None and self.tls_version is None

    def offers_auth(self):
        if self.sink.credentials is None or self.auth_user is not None:
            return False
        return self.sink.tls_context is None or self.tls_version is not None

    def cmd_ehlo(self, argument):
        if not self.sink.esmtp:
            self.reply("500 5.5.1 command not recognized")
            return True
        self.helo = argument
        self.transaction = None
        keywords = list(self.sink.extensions)
        if self.offers_starttls():
            keywords.append("STARTTLS")
        if self.offers_auth():
            keywords.append("AUTH PLAIN")
        self.reply("\n".join([f"250 {SINK_HOSTNAME} hello {argument}"] + keywords))
        return True

    def cmd_helo(self, argument):
        self.helo = argument
        self.transaction = None
        self.reply(f"250 {SINK_HOSTNAME}")
        return True

    def cmd_starttls(self, argument):
        if not self.offers_starttls():
            self.reply("502 5.5.1 STARTTLS not offered")
            return True
        self.reply("220 2.0.0 ready to start TLS")
        if self.buffer:  # RFC 3207 5 / CVE-2011-0411: plaintext pipelined past STARTTLS
            self.sink.plaintext_injections += 1
            self.buffer = b""
        self.sock = self.sink.tls_context.wrap_socket(self.sock, server_side=True)
        self.tls_version = self.sock.version()
        self.helo = ""
        self.transaction = None
        return True

    def cmd_auth(self, argument):
        mechanism, _, initial = argument.partition(" ")
        if not self.offers_auth() or mechanism.upper() != "PLAIN":
            self.reply("504 5.5.4 AUTH mechanism not offered")
            return True
        if not initial:
            self.reply("334 ")
            initial = self.read_line(MAX_COMMAND_LINE).decode("ascii", "replace").strip()
        if initial == "*":
            self.reply("501 5.0.0 AUTH cancelled")
            return True
        try:
            authzid, authcid, password = base64.b64decode(initial, validate=True).split(b"\0")
        except ValueError:
            self.reply("501 5.5.2 cannot decode AUTH PLAIN")
            return True
        user, expected_password = self.sink.credentials
        if authcid.decode("utf-8", "replace") == user and \
                password.decode("utf-8", "replace") == expected_password:
            self.auth_user = user
            self.reply("235 2.7.0 authenticated")
        else:
            self.sink.failed_logins.append(authcid.decode("utf-8", "replace"))
            self.reply("535 5.7.8 bad credentials")
        return True

    def cmd_mail(self, argument):
        match = re.match(r"(?i)^FROM:\s*<([^>]*)>\s*(.*)$", argument)
        if not match:
            self.reply("501 5.5.4 syntax: MAIL FROM:<address>")
            return True
        if self.transaction is not None:
            self.reply("503 5.5.1 nested MAIL")
            return True
        if self.sink.credentials is not None and self.auth_user is None:
            self.reply("530 5.7.0 authentication required")
            return True
        pipelined = "PIPELINING" in self.sink.extensions and \
            self.more_input_within(PIPELINING_GRACE)
        reply = self.sink.mail_replies.next(None)
        if reply.startswith("2"):
            self.transaction = Transaction(
                peer=self.peer, helo=self.helo, tls_version=self.tls_version,
                auth_user=self.auth_user, mail_from=match.group(1),
                mail_parameters=parse_parameters(match.group(2)), pipelined=pipelined)
        self.reply(reply)
        return True

    def cmd_rcpt(self, argument):
        match = re.match(r"(?i)^TO:\s*<([^>]*)>\s*(.*)$", argument)
        if not match:
            self.reply("501 5.5.4 syntax: RCPT TO:<address>")
            return True
        if self.transaction is None:
            self.reply("503 5.5.1 MAIL first")
            return True
        reply = self.sink.rcpt_replies.next(match.group(1).lower())
        self.transaction.recipients.append(
            Recipient(match.group(1), parse_parameters(match.group(2)), reply))
        self.reply(reply)
        return True

    def cmd_data(self, argument):
        if self.transaction is None:
            self.reply("503 5.5.1 MAIL first")
            return True
        if not self.transaction.accepted_recipients:
            self.reply("554 5.5.1 no valid recipients")
            self.transaction = None
            return True
        self.reply("354 end data with <CR><LF>.<CR><LF>")
        lines = []
        while True:
            line = self.read_line(MAX_DATA_LINE)
            if line == b".":
                break
            if line.startswith(b"."):  # RFC 5321 4.5.2: the client doubled a leading dot
                line = line[1:]
            lines.append(line + b"\r\n")
        transaction, self.transaction = self.transaction, None
        transaction.data = b"".join(lines)
        transaction.data_reply = self.sink.data_replies.next(None)
        self.sink._note(self.peer, f"C: <{len(transaction.data)} octets of data>")
        # Record before replying, so a test woken by the record never races the reply.
        self.sink._record(transaction)
        self.reply(transaction.data_reply)
        return True

    def cmd_rset(self, argument):
        self.transaction = None
        self.reply("250 2.0.0 reset")
        return True

    def cmd_noop(self, argument):
        self.reply("250 2.0.0 ok")
        return True

    def cmd_quit(self, argument):
        self.reply("221 2.0.0 bye")
        return False


def free_port_on(ips):
    """A TCP port that was free on every address in ips (IPv4 or IPv6) a moment ago."""
    for _ in range(50):
        candidate = free_port()
        try:
            for ip in ips:
                family = socket.AF_INET6 if ":" in ip else socket.AF_INET
                with socket.socket(family, socket.SOCK_STREAM) as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind((ip, candidate))
        except OSError:
            continue
        return candidate
    raise AssertionError(f"no port free on all of {ips}")


@pytest.fixture
def make_sink():
    """make_sink(ip, port, start=True, **options) -> Sink; every sink is stopped in teardown."""
    made = []

    def factory(ip, port, start=True, **options):
        sink = Sink(ip, port, **options)
        made.append(sink)
        return sink.start() if start else sink

    yield factory
    for sink in made:
        sink.stop()


# --- the server under test, set up for sending -------------------------------------------------

OWNER = "mailbox@example.org"


def password(domain="example.org"):
    """conftest's default_server_entries gives each Server this MailboxPassword."""
    return f"password-{domain}"


@pytest.fixture
def sending_server(make_server, tmp_path):
    """sending_server(dns=None, outbound_port=25, overrides=None, servers=None, start=True)
    -> conftest Server with SubmissionPort and SubmissionTLSPort on free ports, a SpoolPath in
    the test's directory, DNSResolver pointing at dns, OutboundPort, and quick retries
    (QueueRetryBaseSeconds 1) unless overrides say otherwise."""
    count = [0]

    def factory(dns=None, outbound_port=25, overrides=None, servers=None, start=True):
        count[0] += 1
        config = {
            "SubmissionPort": free_port(),
            "SubmissionTLSPort": free_port(),
            "SpoolPath": str(tmp_path / f"spool{count[0]}"),
            "OutboundPort": outbound_port,
            "QueueRetryBaseSeconds": 1,
            "QueueLifetimeSeconds": 600,
        }
        if dns is not None:
            config["DNSResolver"] = dns.resolver
        config.update(overrides or {})
        server = make_server(overrides=config, servers=servers, start=start)
        if start:
            # A key the server does not know is only warned about: the test would run against
            # defaults and could pass for the wrong reason.
            unknown = [line for line in server.log_text().splitlines() if "unknown_key" in line]
            assert not unknown, "\n".join(unknown)
        return server

    return factory


# The usual remote world: remote.test has one MX host, mx1.remote.test, played by a sink.
REMOTE_DOMAIN = "remote.test"
MX1 = ("mx1.remote.test", "127.0.0.2")
MX2 = ("mx2.remote.test", "127.0.0.3")
A_ONLY = ("amx.test", "127.0.0.4")       # a domain with an address and no MX
SMARTHOST_IP = "127.0.0.5"
SINK_IPS = (MX1[1], MX2[1], A_ONLY[1], SMARTHOST_IP)


@pytest.fixture
def outbound(make_dns, make_sink, sending_server):
    """outbound(sink_options=None, overrides=None, servers=None, start_sink=True)
    -> (server, sink): remote.test's only MX host is a sink on 127.0.0.2 and the server
    resolves through a DNS fixture that says so. Needs make_dns imported next to it."""
    def factory(sink_options=None, overrides=None, servers=None, start_sink=True):
        port = free_port_on(SINK_IPS)
        dns_server = make_dns(mx={REMOTE_DOMAIN: [(MX1[0], 10)]}, hosts={MX1[0]: MX1[1]})
        sink = make_sink(MX1[1], port, start=start_sink, **(sink_options or {}))
        server = sending_server(dns=dns_server, outbound_port=port, overrides=overrides,
                                servers=servers)
        return server, sink

    return factory


def auth_plain(user, secret, authzid=""):
    """RFC 4616 2: base64 of authzid NUL authcid NUL passwd."""
    return base64.b64encode(f"{authzid}\0{user}\0{secret}".encode()).decode()


def authenticated(server, port=None, domain="example.org", implicit_tls=False):
    """An SMTPConnection to the server (the SubmissionPort unless port is given), after
    EHLO, STARTTLS (or implicit TLS), EHLO and a successful AUTH PLAIN as mailbox@domain."""
    port = port or (server.config["SubmissionTLSPort"] if implicit_tls
                    else server.config["SubmissionPort"])
    if implicit_tls:
        client = SMTPConnection(port, read_greeting=False)
        client.sock = insecure_client_context().wrap_socket(client.sock)
        client.greeting = client.read_reply()
    else:
        client = SMTPConnection(port)
        client.ehlo("owner.example.org")
        client.starttls()
    try:
        assert client.greeting.code == 220, f"greeting {client.greeting}"
        client.ehlo("owner.example.org")
        reply = client.command(f"AUTH PLAIN {auth_plain(f'mailbox@{domain}', password(domain))}")
        assert reply.code == 235, f"AUTH PLAIN as mailbox@{domain}: {reply}"
    except BaseException:
        client.close()
        raise
    return client


def transaction(client, mail_from, recipients, message, mail_parameters="",
                rcpt_parameters=""):
    """MAIL (with parameters), RCPT for each (with parameters), DATA and the message; asserts
    each step before the final dot succeeds and returns the final reply."""
    suffix = f" {mail_parameters}" if mail_parameters else ""
    reply = client.command(f"MAIL FROM:<{mail_from}>{suffix}")
    assert reply.code == 250, f"MAIL FROM:<{mail_from}>{suffix}: {reply}"
    suffix = f" {rcpt_parameters}" if rcpt_parameters else ""
    for recipient in recipients:
        reply = client.command(f"RCPT TO:<{recipient}>{suffix}")
        assert reply.code == 250, f"RCPT TO:<{recipient}>{suffix}: {reply}"
    reply = client.command("DATA")
    assert reply.code == 354, f"DATA: {reply}"
    client.send(dot_stuff(message) + b".\r\n")
    return client.read_reply()


def submit(server, recipients, message, mail_from=OWNER, **parameters):
    """One authenticated submission on the SubmissionPort; asserts the 250."""
    with authenticated(server) as client:
        reply = transaction(client, mail_from, recipients, message, **parameters)
        assert reply.code == 250, f"message not accepted for sending: {reply}"
        client.command("QUIT")
    return reply


def outgoing_message(subject="Hello", sender="Owner Name <mailbox@example.org>",
                     to="Bob <bob@remote.test>", body=b"Hello from the owner.\r\n",
                     extra_headers=b"", date=True, message_id=None):
    """A message as a mail client submits it, with a unique Message-ID (returned too).
    date=False / message_id=False leave those headers out."""
    if message_id is None:
        message_id = f"<{uuid.uuid4().hex}@owner.example.org>"
    headers = [f"From: {sender}", f"To: {to}", f"Subject: {subject}"]
    if date:
        headers.append("Date: Mon, 24 Nov 2025 10:00:00 +0000")
    if message_id:
        headers.append(f"Message-ID: {message_id}")
    head = "".join(h + "\r\n" for h in headers).encode("utf-8") + extra_headers
    return head + b"\r\n" + body, message_id


def queue_listing(server):
    """What `mailpopbox queue CONFIG.json` prints (asserting it succeeds)."""
    result = subprocess.run([str(server.binary), "queue", str(server.config_path)],
                            capture_output=True, text=True, timeout=IO_TIMEOUT)
    assert result.returncode == 0, f"mailpopbox queue exited {result.returncode}: {result.stderr}"
    return result.stdout


def wait_until_dequeued(server, needle, timeout=15.0):
    """Until `mailpopbox queue` no longer mentions needle (a queue id or an address): from
    then on the server makes no more attempts for it, so a test can count what arrived."""
    wait_until(lambda: needle not in queue_listing(server), timeout,
               f"{needle} still in the queue:\n{queue_listing(server)}", interval=0.1)


def wait_until(predicate, timeout, what, interval=0.05):
    """Polls predicate() until it returns something truthy; returns that, or fails naming
    `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {timeout}s: {what}")
        time.sleep(interval)


# --- delivery status notifications in the maildrop ----------------------------------------------

def parsed(stored):
    return email.message_from_bytes(stored.data, policy=email.policy.default)


def maildrop_reports(server, domain="example.org"):
    """Every multipart/report message in the domain's maildrop, parsed."""
    reports = []
    for stored in server.messages(domain):
        message = parsed(stored)
        if message.get_content_type() == "multipart/report":
            reports.append(message)
    return reports


def wait_for_report(server, domain="example.org", timeout=20.0):
    """The first multipart/report that appears in the domain's maildrop."""
    return wait_until(lambda: maildrop_reports(server, domain), timeout,
                      f"no multipart/report in {domain}'s maildrop; it holds "
                      f"{[parsed(m)['Subject'] for m in server.messages(domain)]}")[0]


def delivery_status(report):
    """RFC 3464 2.1: (per-message fields, [per-recipient fields, ...]) of a report, each a
    {lower-case name: value} dict."""
    parts = [part for part in report.walk()
             if part.get_content_type() == "message/delivery-status"]
    assert len(parts) == 1, f"{len(parts)} message/delivery-status parts in the report"
    blocks = parts[0].get_payload()
    assert isinstance(blocks, list) and len(blocks) >= 2, \
        f"delivery-status needs per-message and per-recipient fields: {parts[0]}"
    fields = [{name.lower(): str(value).strip() for name, value in block.items()}
              for block in blocks]
    return fields[0], fields[1:]


def recipient_status(report, address):
    """The per-recipient fields whose Final-Recipient is address."""
    _, recipients = delivery_status(report)
    for fields in recipients:
        final = fields.get("final-recipient", "")
        if final.split(";", 1)[-1].strip().lower() == address.lower():
            return fields
    raise AssertionError(f"no Final-Recipient {address} in {recipients}")
