#!/usr/bin/python3
"""soak: crash torture and disk-full runs against the real mailpopbox binary, as a tool.

Crash mode (the default) starts mailpopbox on loopback with both test domains, a submission
port and a local SMTP sink as its smarthost (OutboundRelayHost), then runs at the same time:

  - inbound SMTP clients delivering to example.org, example.net or both (one message stored in
    each maildrop);
  - a submission client (STARTTLS, AUTH PLAIN) sending to one or two remote recipients and
    sometimes also to a local one, so the queue delivers to the sink and the maildrop is
    written on the submission path;
  - one POP3 client per maildrop: UIDL, RETR of every message it has not seen yet (checked),
    DELE of some, then QUIT, or now and then a dropped connection instead of QUIT;

and SIGKILLs the server --kills times at random intervals, restarting it (same ports, same
directories) after each kill. Then it lets the queue drain to the sink, reads every maildrop
over POP3 and from the disk, and classifies every delivery unit (definitions below). It prints a
summary table and exits 1 when anything was lost, duplicated, partial or refused, or when the
run did not finish in its time bound.

Disk-full mode (--disk-full; needs root) puts both maildrops and the spool on a small tmpfs,
fills it with inbound deliveries and submissions (the sink down, so the spool keeps them) until
the server answers 4xx, restarts the server once while the disk is full, checks over POP3 that
no partial message is ever served and nothing refused was kept, frees the space (POP3 DELE,
the sink up so the queue drains), and checks that service is normal again (250, stored, sent).

The seed is printed; --seed N replays the same choices (message sizes, recipients, kill
intervals, POP3 decisions); the exact interleaving still depends on the scheduler.
"""

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))

from conftest import (ConnectionClosed, Server, SMTPConnection, dot_stuff,  # noqa: E402
                      free_port, make_certs, server_config)
from pop3util import IN_USE, POP3Connection, expected_uidl, password, user  # noqa: E402
from sink import OWNER, Sink, authenticated  # noqa: E402

DEFINITIONS = """\
definitions (every message carries a unique X-Soak-Id, also in its Subject and first body line,
and X-Soak-Sum, the SHA-256 of its body; a delivery unit is one message at one destination:
the example.org maildrop, the example.net maildrop, or one remote recipient at the sink):

  acknowledged  the client read 250 after the final dot. Anything else (no reply, connection
                cut by the kill, 4xx) is "not acknowledged": such a unit may be seen 0 or 1
                times (the 250 may be what was lost), never more.
  seen          maildrop unit: copies in new/ and cur/ at the end, plus POP3 deletions
                confirmed by +OK to QUIT (the retrieved-and-deleted log). sink unit:
                transactions the sink accepted (250 to its DATA) naming that recipient.
  lost          acknowledged and seen 0 times. A maildrop message DELEd in a session whose
                QUIT got no answer ("in doubt") is not lost when it is gone: the server may
                have finished UPDATE just before it died. A message DELEd in a session that
                ended before QUIT was sent must still be there (RFC 1939 6: only UPDATE deletes).
  duplicated    maildrop unit: seen more than once, or listed by POP3 under more than one UIDL,
                or listed again after a confirmed deletion. A message retrieved and DELEd whose
                QUIT got no +OK may be listed again under the same UIDL: that is not a
                duplicate (POP3 deleted nothing). sink unit: accepted more than once, not
                counting a "redelivery": a copy sent again after a SIGKILL at which the spool
                still had that recipient PENDING (the server died between the sink's 250 and
                recording it, RFC 5321 6.1's unavoidable duplicate; counted apart).
  partial       a message stored in new/ or cur/, served by RETR, or accepted by the sink
                whose body does not match X-Soak-Sum, or that lacks those headers.
  refused       a 5xx to a well-formed message, or -ERR to a valid POP3 command: a server
                that is up has no reason to refuse anything these clients send.

columns of the table: units, acknowledged, "not acked, seen" (not acknowledged but seen once),
lost, duplicated, partial, "in doubt" (maildrop units gone after a DELE whose QUIT got no
answer), "redelivered" (sink copies sent again after a kill in the window above), "still
queued" (sink units still PENDING in the spool when --drain-seconds ran out: a failure, the run
did not finish; not counted as lost).

disk-full mode adds: a 4xx means nothing was kept (a refused message seen anywhere is a
failure), a 5xx or a cut connection while filling is a failure, and both inbound and
submission must have been answered 4xx.

exit status: 0 when nothing was lost, duplicated, partial or refused, every kill was done and
the queue drained within the time bounds; 1 otherwise (the work directory is then kept)."""

SINK_IP = "127.0.0.1"
REMOTE_RECIPIENTS = ("bob@remote.test", "carol@remote.test")
LOCAL_COPY = "copy@example.net"          # a local recipient of some submissions
INBOUND_SENDER = "sender@example.net.test"
MAILDROPS = ("example.org", "example.net")
CLIENT_TIMEOUT = 10.0                     # every client read; a killed server closes at once
DELE_PROBABILITY = 0.6                    # per listed message, per POP3 session
ABORT_PROBABILITY = 0.1                   # a POP3 session that drops instead of QUIT
RESTART_ATTEMPTS = 5
HEADER_RE = {name: re.compile(rb"^" + name + rb": ([^\r\n]+)\r$", re.MULTILINE | re.IGNORECASE)
             for name in (b"X-Soak-Id", b"X-Soak-Sum")}
CLIENT_ERRORS = (OSError, TimeoutError, ConnectionClosed, AssertionError)


# --- messages ------------------------------------------------------------------------------------

def message_size(rng):
    """Mostly small, some medium, a few large enough that kills land inside DATA."""
    roll = rng.random()
    if roll < 0.70:
        return rng.randint(300, 4000)
    if roll < 0.95:
        return rng.randint(8000, 64000)
    return rng.randint(200000, 600000)


def make_body(soak_id, rng, size):
    lines = [f"soak message {soak_id}\r\n".encode(), b".a line that starts with a dot\r\n"]
    total = sum(len(line) for line in lines)
    filler = rng.randbytes(max(0, size // 2)).hex().encode()
    for offset in range(0, len(filler), 76):
        line = filler[offset:offset + 76] + b"\r\n"
        lines.append(line)
        total += len(line)
        if total >= size:
            break
    return b"".join(lines)


def make_soak_message(soak_id, body, sender, to):
    checksum = hashlib.sha256(body).hexdigest()
    head = (f"From: {sender}\r\nTo: {to}\r\nSubject: soak {soak_id}\r\n"
            f"Date: Mon, 24 Nov 2025 10:00:00 +0000\r\nMessage-ID: <{soak_id}@soak.test>\r\n"
            f"X-Soak-Id: {soak_id}\r\nX-Soak-Sum: {checksum}\r\n")
    return head.encode() + b"\r\n" + body


def identify(data):
    """(soak id or None, complete?) of stored, served or relayed bytes: the id from the first
    header block, and whether the body after it matches X-Soak-Sum."""
    head, separator, body = data.partition(b"\r\n\r\n")
    head += b"\r\n"  # the CRLF that ends the last field
    found = {name: HEADER_RE[name].search(head) for name in HEADER_RE}
    soak_id = found[b"X-Soak-Id"].group(1).decode(errors="replace") if found[b"X-Soak-Id"] \
        else None
    if not separator or soak_id is None or found[b"X-Soak-Sum"] is None:
        return soak_id, False
    return soak_id, hashlib.sha256(body).hexdigest().encode() == found[b"X-Soak-Sum"].group(1)


# --- what the clients were told, and what was seen -----------------------------------------------

@dataclass
class Sent:
    kind: str                 # "inbound" or "submission"
    maildrops: tuple          # domains whose maildrop should get it
    remotes: tuple            # remote recipients (delivered to the sink)
    outcome: str = "pending"  # acked, tempfail, refused (5xx), cut (no final reply)


@dataclass
class MaildropBook:
    """What one maildrop's POP3 client saw."""
    uid_id: dict = field(default_factory=dict)             # uid -> soak id (None: unknown)
    id_uids: dict = field(default_factory=lambda: defaultdict(set))
    confirmed: set = field(default_factory=set)            # DELE, then +OK to QUIT
    quit_unknown: set = field(default_factory=set)         # DELE, QUIT sent, no answer
    dele_no_quit: set = field(default_factory=set)         # DELE, session ended before QUIT
    resurrected: set = field(default_factory=set)          # listed after a confirmed deletion
    partial_ids: set = field(default_factory=set)
    unidentified: int = 0
    retrieved: int = 0


class Ledger:
    def __init__(self, seed):
        self.lock = threading.Lock()
        self.seed = seed
        self.started = time.monotonic()
        self.counter = 0
        self.sent = {}
        self.books = {domain: MaildropBook() for domain in MAILDROPS}
        self.sink_copies = defaultdict(list)   # (id, recipient) -> [monotonic time of 250]
        self.sink_partial = set()              # (id, recipient)
        self.sink_unidentified = 0
        # (id, recipient) -> times of the kills at which the sink had already accepted it
        # but the spool still had it PENDING: a copy after such a kill is a redelivery.
        self.kills_in_window = defaultdict(list)
        self.errors = Counter()
        self.refusals = []
        self.pop3_sessions = Counter()

    def new_id(self, kind):
        with self.lock:
            self.counter += 1
            return f"soak-{self.seed}-{kind[0]}{self.counter}"

    def register(self, soak_id, sent):
        with self.lock:
            self.sent[soak_id] = sent

    def settle(self, soak_id, outcome):
        with self.lock:
            self.sent[soak_id].outcome = outcome

    def note_error(self, context, error, refusal=False):
        with self.lock:
            self.errors[f"{context}: {type(error).__name__}"] += 1
            if refusal:
                self.refusals.append(f"{context}: {error}")

    def sink_record(self, transaction):
        soak_id, complete = identify(transaction.data)
        now = time.monotonic()
        with self.lock:
            if soak_id is None:
                self.sink_unidentified += 1
                return
            for recipient in transaction.accepted_recipients:
                unit = (soak_id, recipient.lower())
                self.sink_copies[unit].append(now)
                if not complete:
                    self.sink_partial.add(unit)

    def note_kill(self, spool_states):
        """After a SIGKILL (the server is gone, its spool is final until the restart)."""
        now = time.monotonic()
        with self.lock:
            for unit, state in spool_states.items():
                if state == "PENDING" and unit in self.sink_copies:
                    self.kills_in_window[unit].append(now)

    def acked_count(self):
        with self.lock:
            return sum(1 for s in self.sent.values() if s.outcome == "acked")


class SoakSink(Sink):
    """The sink, reporting each accepted transaction to the ledger instead of keeping it (and
    keeping no dialogue), so memory stays flat over thousands of messages."""

    def __init__(self, ledger, ip, port):
        super().__init__(ip, port)
        self.ledger = ledger

    def _record(self, transaction):
        if transaction.accepted:
            self.ledger.sink_record(transaction)

    def _note(self, peer, line):
        pass


# --- SMTP clients --------------------------------------------------------------------------------

def smtp_transaction(client, mail_from, recipients, message):
    """MAIL, RCPT, DATA, the message. Returns (outcome, reply): "acked", "tempfail" (4xx
    anywhere), "refused" (5xx anywhere); raises on a cut connection."""
    steps = [f"MAIL FROM:<{mail_from}>"] + [f"RCPT TO:<{r}>" for r in recipients] + ["DATA"]
    for step in steps:
        reply = client.command(step, timeout=CLIENT_TIMEOUT)
        if reply.code not in (250, 354):
            return ("tempfail" if reply.code < 500 else "refused"), reply
    client.send(dot_stuff(message) + b".\r\n")
    reply = client.read_reply(timeout=CLIENT_TIMEOUT)
    if reply.code == 250:
        return "acked", reply
    return ("tempfail" if 400 <= reply.code < 500 else "refused"), reply


def open_inbound(server):
    client = SMTPConnection(server.smtp_port, timeout=CLIENT_TIMEOUT)
    try:
        assert client.greeting.code == 220, f"greeting {client.greeting}"
        client.ehlo("client.example.net")
    except BaseException:
        client.close()
        raise
    return client


def open_submission(server):
    return authenticated(server)


def choose_inbound(rng):
    roll = rng.random()
    maildrops = ("example.org",) if roll < 0.6 else ("example.net",) if roll < 0.8 \
        else MAILDROPS
    return maildrops, (), [f"rcpt{rng.randint(1, 9)}@{d}" for d in maildrops]


def choose_submission(rng):
    remotes = tuple(rng.sample(REMOTE_RECIPIENTS, rng.randint(1, 2)))
    maildrops = ("example.net",) if rng.random() < 0.25 else ()
    return maildrops, remotes, list(remotes) + ([LOCAL_COPY] if maildrops else [])


def send_one(ledger, client, kind, rng, max_size=None, route=None):
    """Builds, registers and sends one message on an open client; route is (maildrops,
    remotes, recipients), chosen at random when not given. Returns (soak id, outcome, reply,
    message) or raises on a cut connection (then the message is settled as "cut")."""
    soak_id = ledger.new_id(kind)
    if kind == "inbound":
        maildrops, remotes, recipients = route or choose_inbound(rng)
        mail_from, header_from = INBOUND_SENDER, "Sender <sender@example.net.test>"
    else:
        maildrops, remotes, recipients = route or choose_submission(rng)
        mail_from, header_from = OWNER, f"Owner <{OWNER}>"
    size = message_size(rng) if max_size is None else min(message_size(rng), max_size)
    message = make_soak_message(soak_id, make_body(soak_id, rng, size), header_from,
                                ", ".join(recipients))
    ledger.register(soak_id, Sent(kind, maildrops, remotes))
    try:
        outcome, reply = smtp_transaction(client, mail_from, recipients, message)
    except BaseException:
        ledger.settle(soak_id, "cut")
        raise
    ledger.settle(soak_id, outcome)
    return soak_id, outcome, reply, message


def smtp_client(ctx, kind, index):
    """Sends until told to stop; reconnects after every error or refusal. A failed attempt is
    never resent under its id: its 250 may be all that was lost."""
    rng = random.Random(ctx.seed * 1000 + index)
    opener = open_inbound if kind == "inbound" else open_submission
    client = None
    while not ctx.stop.is_set():
        if client is None:
            try:
                client = opener(ctx.server)
            except CLIENT_ERRORS as error:
                ctx.ledger.note_error(f"{kind} connect", error)
                time.sleep(0.01)
                continue
        try:
            _, outcome, reply, _ = send_one(ctx.ledger, client, kind, rng)
        except CLIENT_ERRORS as error:
            ctx.ledger.note_error(f"{kind} send", error)
            client.close()
            client = None
            continue
        if outcome != "acked":
            ctx.ledger.note_error(f"{kind} {outcome}", RuntimeError(str(reply)),
                                  refusal=outcome == "refused")
            client.close()
            client = None
            continue
        time.sleep(rng.uniform(0, ctx.pacing))
        if rng.random() < 0.1:  # now and then a fresh session, so kills land in every state
            client.close()
            client = None
    if client is not None:
        client.close()


# --- POP3 ----------------------------------------------------------------------------------------

def pop3_login(server, domain):
    """A logged-in POP3Connection, or None when the maildrop is locked. Raises on errors."""
    conn = POP3Connection(server.pop3_port, timeout=CLIENT_TIMEOUT)
    try:
        assert conn.greeting.startswith(b"+OK"), f"greeting {conn.greeting!r}"
        conn.ok(f"USER {user(domain)}")
        status = conn.command(f"PASS {password(domain)}")
        if status == IN_USE:
            conn.close()
            return None
        assert status.startswith(b"+OK"), f"PASS: {status!r}"
    except BaseException:
        conn.close()
        raise
    return conn


def learn(ledger, domain, uid, data):
    """Records what RETR served under uid."""
    soak_id, complete = identify(data)
    with ledger.lock:
        book = ledger.books[domain]
        book.retrieved += 1
        book.uid_id[uid] = soak_id
        if soak_id is None:
            book.unidentified += 1
            return
        book.id_uids[soak_id].add(uid)
        if not complete:
            book.partial_ids.add(soak_id)


def pop3_session(ctx, domain, rng):
    ledger = ctx.ledger
    book = ledger.books[domain]
    pending = []
    quit_sent = False
    try:
        conn = pop3_login(ctx.server, domain)
    except CLIENT_ERRORS as error:
        ledger.note_error("pop3 login", error, refusal=isinstance(error, AssertionError))
        return "unreachable"
    if conn is None:
        return "in-use"
    try:
        listing = conn.uidl_map()
        for number, uid in sorted(listing.items()):
            with ledger.lock:
                if uid in book.confirmed:
                    book.resurrected.add(uid)
                known = uid in book.uid_id
            if not known:
                learn(ledger, domain, uid, conn.retr(number))
            if rng.random() < DELE_PROBABILITY:
                conn.ok(f"DELE {number}")
                pending.append(uid)
        if rng.random() < ABORT_PROBABILITY:
            with ledger.lock:
                book.dele_no_quit.update(pending)
            conn.abort()
            return "aborted"
        quit_sent = True
        status = conn.command("QUIT")
        with ledger.lock:
            if status.startswith(b"+OK"):
                book.confirmed.update(pending)
            else:
                book.quit_unknown.update(pending)
                ledger.refusals.append(f"pop3 QUIT: {status!r}")
        return "quit"
    except CLIENT_ERRORS as error:
        ledger.note_error("pop3 after QUIT" if quit_sent else "pop3 before QUIT", error,
                          refusal=isinstance(error, AssertionError))
        with ledger.lock:
            (book.quit_unknown if quit_sent else book.dele_no_quit).update(pending)
        return "cut"
    finally:
        conn.close()


def pop3_client(ctx, domain, index):
    rng = random.Random(ctx.seed * 1000 + index)
    while not ctx.stop.is_set():
        outcome = pop3_session(ctx, domain, rng)
        with ctx.ledger.lock:
            ctx.ledger.pop3_sessions[outcome] += 1
        time.sleep(0.02 if outcome in ("unreachable", "in-use") else rng.uniform(0, ctx.pacing))


def pop3_read_all(ledger, server, domain, delete, within=30.0, only_new=False):
    """One session that RETRs (and checks) every message (only_new: those not retrieved
    before), DELEs them all when delete is set, and QUITs. Returns {uid: soak id} of what it
    retrieved. Retries while the maildrop is locked."""
    deadline = time.monotonic() + within
    while True:
        conn = pop3_login(server, domain)
        if conn is not None:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{domain}: maildrop still locked after {within} s")
        time.sleep(0.1)
    book = ledger.books[domain]
    served = {}
    with conn:
        for number, uid in sorted(conn.uidl_map().items()):
            with ledger.lock:
                if uid in book.confirmed:
                    book.resurrected.add(uid)
                if only_new and uid in book.uid_id:
                    continue
            data = conn.retr(number)
            learn(ledger, domain, uid, data)
            served[uid] = identify(data)[0]
            if delete:
                conn.ok(f"DELE {number}")
        status = conn.command("QUIT")
        assert status.startswith(b"+OK"), f"{domain}: QUIT: {status!r}"
    if delete:
        with ledger.lock:
            book.confirmed.update(served)
    return served


# --- the server, the spool and the disk ----------------------------------------------------------

class Context:
    def __init__(self, args, seed, workdir):
        self.args = args
        self.seed = seed
        self.workdir = workdir
        self.ledger = Ledger(seed)
        self.stop = threading.Event()
        self.pacing = args.pacing
        self.server = None
        self.sink = None
        self.runs = 0
        self.start_failures = []
        (workdir / "logs").mkdir(parents=True, exist_ok=True)

    def make_server(self, maildrop_root, spool):
        certs = make_certs(self.workdir)
        self.sink = SoakSink(self.ledger, SINK_IP, free_port())

        def entries(default):
            for entry in default:
                entry["MaildropPath"] = str(maildrop_root / f"maildrop-{entry['Domain']}")
            return default

        config = server_config(self.workdir, certs, overrides={
            "SpoolPath": str(spool),
            "OutboundRelayHost": f"{SINK_IP}:{self.sink.port}",
            "QueueRetryBaseSeconds": 1,
            "QueueLifetimeSeconds": 86400,
        }, servers=entries)
        self.server = Server(self.args.binary, self.workdir, config, name="soak")

    def start_server(self):
        """Starts the server with a fresh log file; retries a few times (a port of the last
        run may not be free again yet). Returns False when it would not start."""
        for attempt in range(RESTART_ATTEMPTS):
            self.runs += 1
            self.server.log_path = self.workdir / "logs" / f"run-{self.runs:05d}.log"
            try:
                self.server.start()
                return True
            except AssertionError as error:
                if self.server.alive():
                    self.server.kill(signal.SIGKILL)
                self.start_failures.append(f"run {self.runs}: {str(error)[:500]}")
                time.sleep(0.2 * (attempt + 1))
        return False


def spool_entries(spool):
    """{(soak id, recipient): state} for every recipient of every envelope in the spool."""
    states = {}
    env_dir = spool / "env"
    if not env_dir.is_dir():
        return states
    for env in env_dir.iterdir():
        try:
            envelope = json.loads(env.read_text())
            with open(spool / "msg" / env.name, "rb") as message:
                soak_id = identify(message.read(16384))[0]
        except (OSError, ValueError):
            continue
        for recipient in envelope.get("recipients", []):
            states[(soak_id, str(recipient.get("address", "")).lower())] = recipient.get("state")
    return states


def stored_messages(maildrop):
    """[(uid, soak id, complete?, subdirectory)] for the files in new/ and cur/, and the
    number of files left in tmp/."""
    found = []
    for sub in ("new", "cur"):
        directory = maildrop / sub
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if path.is_file() and not path.name.startswith("."):
                soak_id, complete = identify(path.read_bytes())
                found.append((expected_uidl(path), soak_id, complete, sub))
    tmp = maildrop / "tmp"
    leftovers = sum(1 for p in tmp.iterdir() if p.is_file()) if tmp.is_dir() else 0
    return found, leftovers


def drain_queue(ctx, spool, within):
    """Until the spool holds no envelope (asking for a queue run every 2 s). True if drained."""
    deadline = time.monotonic() + within
    last_flush = 0.0
    while True:
        env_dir = spool / "env"
        if not env_dir.is_dir() or not any(env_dir.iterdir()):
            return True
        if time.monotonic() > deadline:
            return False
        if time.monotonic() - last_flush > 2.0 and ctx.server.alive():
            ctx.server.kill(signal.SIGUSR1)
            last_flush = time.monotonic()
        time.sleep(0.1)


# --- the verdict ---------------------------------------------------------------------------------

@dataclass
class Row:
    units: int = 0
    acked: int = 0
    unacked_seen: int = 0
    lost: int = 0
    duplicated: int = 0
    partial: int = 0
    in_doubt: int = 0
    redelivered: int = 0
    queued: int = 0
    examples: dict = field(default_factory=lambda: defaultdict(list))
    details: dict = field(default_factory=dict)   # unit -> what the tool knows of it

    def flag(self, what, unit, detail):
        setattr(self, what, getattr(self, what) + 1)
        if len(self.examples[what]) < 5:
            self.examples[what].append(unit)
            self.details[unit] = detail


def classify(ledger, final_stored, final_spool):
    """Rows of the summary table, keyed by route."""
    rows = defaultdict(Row)
    with ledger.lock:
        sent = dict(ledger.sent)
    stored_by_id = {d: defaultdict(list) for d in MAILDROPS}
    for domain, found in final_stored.items():
        for uid, soak_id, complete, _ in found:
            stored_by_id[domain][soak_id].append((uid, complete))
    for soak_id, message in sent.items():
        acked = message.outcome == "acked"
        for domain in message.maildrops:
            row = rows[f"{message.kind} -> maildrop"]
            book = ledger.books[domain]
            copies = stored_by_id[domain].get(soak_id, [])
            uids = book.id_uids.get(soak_id, set()) | {uid for uid, _ in copies}
            confirmed = uids & book.confirmed
            seen = len(copies) + len(confirmed)
            unit = (soak_id, domain)
            detail = (f"{message.outcome}; UIDLs {sorted(uids)}, at the end "
                      f"{[(u, 'complete' if c else 'PARTIAL') for u, c in copies]}, deletion "
                      f"confirmed {sorted(confirmed)}, QUIT unanswered "
                      f"{sorted(uids & book.quit_unknown)}, DELE without QUIT "
                      f"{sorted(uids & book.dele_no_quit)}")
            row.units += 1
            row.acked += acked
            if not acked and seen:
                row.unacked_seen += 1
            if seen > 1 or len(uids) > 1 or uids & book.resurrected:
                row.flag("duplicated", unit, detail)
            if seen == 0 and uids & book.quit_unknown:
                row.in_doubt += 1
            elif acked and seen == 0:
                row.flag("lost", unit, detail)
            if soak_id in book.partial_ids or not all(c for _, c in copies):
                row.flag("partial", unit, detail)
        for recipient in message.remotes:
            row = rows[f"{message.kind} -> sink"]
            unit = (soak_id, recipient)
            times = sorted(ledger.sink_copies.get(unit, []))
            windows = ledger.kills_in_window.get(unit, ())
            detail = (f"{message.outcome}; accepted by the sink at "
                      f"{[round(t - ledger.started, 3) for t in times]} s, kills with it still "
                      f"PENDING at {[round(t - ledger.started, 3) for t in windows]} s, final "
                      f"spool state {final_spool.get(unit)}")
            redelivered = sum(
                1 for earlier, later in zip(times, times[1:])
                if any(earlier < when < later for when in windows))
            row.units += 1
            row.acked += acked
            row.redelivered += redelivered
            if not acked and times:
                row.unacked_seen += 1
            if len(times) - redelivered > 1:
                row.flag("duplicated", unit, detail)
            if not times and final_spool.get(unit) == "PENDING":
                row.flag("queued", unit, detail)
            elif acked and not times:
                row.flag("lost", unit, detail)
            if unit in ledger.sink_partial:
                row.flag("partial", unit, detail)
    return rows


def print_table(rows, out=sys.stdout):
    columns = ("units", "acked", "unacked_seen", "lost", "duplicated", "partial", "in_doubt",
               "redelivered", "queued")
    headers = ("route", "units", "acknowledged", "not acked, seen", "lost", "duplicated",
               "partial", "in doubt", "redelivered", "still queued")
    table = [headers] + [(route,) + tuple(str(getattr(rows[route], c)) for c in columns)
                         for route in sorted(rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    for i, line in enumerate(table):
        print("| " + " | ".join(cell.ljust(widths[j]) for j, cell in enumerate(line)) + " |",
              file=out)
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=out)


def failures_of(ctx, rows):
    """Every reason to exit non-zero, as lines."""
    ledger = ctx.ledger
    failures = []
    for route, row in sorted(rows.items()):
        for what in ("lost", "duplicated", "partial", "queued"):
            if getattr(row, what):
                failures.append(f"{route}: {getattr(row, what)} {what}, e.g.")
                failures += [f"    {unit}: {row.details[unit]}" for unit in row.examples[what]]
    for domain, book in ledger.books.items():
        if book.unidentified:
            failures.append(f"{domain}: {book.unidentified} served message(s) without an "
                            "X-Soak-Id (partial, or not ours)")
    if ledger.sink_unidentified:
        failures.append(f"sink: {ledger.sink_unidentified} message(s) without an X-Soak-Id")
    if ledger.refusals:
        failures.append(f"{len(ledger.refusals)} refusal(s), e.g. {ledger.refusals[:5]}")
    if ctx.start_failures:
        failures.append(f"{len(ctx.start_failures)} failed start(s): {ctx.start_failures[:3]}")
    problems = list(dict.fromkeys(ctx.server.problems)) if ctx.server else []
    if problems:
        failures.append(f"server problems: {problems}")
    return failures


def tmp_leftovers_line(leftovers):
    return ", ".join(f"{d} {n}" for d, n in leftovers.items())


# --- checking the checker ------------------------------------------------------------------------

def inject_faults(ctx, rng):
    """--inject-faults: after the drain, one lost, one duplicated and one corrupted (partial)
    inbound message in example.org's maildrop, made by hand on the disk, and one submission
    sent to the sink a second time by hand. Returns {(route, what): unit} the verdict must
    report."""
    server, ledger = ctx.server, ctx.ledger
    route = (("example.org",), (), ["fault@example.org"])
    ids = []
    with open_inbound(server) as client:
        for _ in range(3):
            soak_id, outcome, reply, _ = send_one(ledger, client, "inbound", rng, route=route)
            assert outcome == "acked", f"inject: {reply}"
            ids.append(soak_id)
    remote = REMOTE_RECIPIENTS[0]
    with open_submission(server) as client:
        sub_id, outcome, reply, message = send_one(ledger, client, "submission", rng,
                                                   route=((), (remote,), [remote]))
        assert outcome == "acked", f"inject: {reply}"
    assert drain_queue(ctx, Path(server.config["SpoolPath"]), ctx.args.drain_seconds), \
        "inject: the queue did not drain"
    with SMTPConnection(ctx.sink.port, timeout=CLIENT_TIMEOUT) as direct:
        direct.ehlo("fault.example.net")
        reply = direct.transaction(OWNER, [remote], message)
        assert reply.code == 250, f"inject: the sink said {reply}"
    new = server.maildrop("example.org") / "new"
    files = {identify(p.read_bytes())[0]: p for p in new.iterdir()}
    lost, duplicated, partial = (files[i] for i in ids)
    lost.unlink()
    shutil.copyfile(duplicated, new / f"{int(time.time())}.M1P1Q1.soak-injected-copy")
    data = bytearray(partial.read_bytes())
    data[-3] = ord("#") if data[-3] != ord("#") else ord("*")
    partial.write_bytes(bytes(data))
    return {("inbound -> maildrop", "lost"): (ids[0], "example.org"),
            ("inbound -> maildrop", "duplicated"): (ids[1], "example.org"),
            ("inbound -> maildrop", "partial"): (ids[2], "example.org"),
            ("submission -> sink", "duplicated"): (sub_id, remote)}


def take_out_injected(rows, injected):
    """Removes the injected faults from the rows; returns the ones the verdict missed."""
    missed = []
    for (route, what), unit in injected.items():
        row = rows[route]
        if unit in row.examples[what]:
            row.examples[what].remove(unit)
            setattr(row, what, getattr(row, what) - 1)
        else:
            missed.append(f"injected {what} {unit} on {route} was not reported")
    return missed


# --- crash mode ----------------------------------------------------------------------------------

def crash_run(args, seed, workdir):
    ctx = Context(args, seed, workdir)
    try:
        return crash_run_in(ctx, args, seed, workdir)
    finally:  # also when something above raised: leave no server or sink behind
        if ctx.server is not None:
            ctx.server.stop()
        if ctx.sink is not None:
            ctx.sink.stop()


def crash_run_in(ctx, args, seed, workdir):
    ledger = ctx.ledger
    rng = random.Random(seed)
    ctx.make_server(workdir, workdir / "spool")
    ctx.sink.start()
    if not ctx.start_server():
        raise SystemExit(f"soak: mailpopbox would not start: {ctx.start_failures}")
    started = time.monotonic()
    deadline = started + args.time_limit
    threads = [threading.Thread(target=smtp_client, args=(ctx, "inbound", i), daemon=True)
               for i in range(args.inbound_clients)]
    threads += [threading.Thread(target=smtp_client, args=(ctx, "submission", 100 + i),
                                 daemon=True) for i in range(args.submission_clients)]
    threads += [threading.Thread(target=pop3_client, args=(ctx, d, 200 + i), daemon=True)
                for i, d in enumerate(MAILDROPS)]
    for thread in threads:
        thread.start()
    low, high = args.kill_interval_ms
    kills = 0
    try:
        while kills < args.kills and time.monotonic() < deadline:
            time.sleep(rng.uniform(low, high) / 1000.0)
            ctx.server.kill(signal.SIGKILL)
            kills += 1
            ledger.note_kill(spool_entries(workdir / "spool"))
            if kills % args.progress_every == 0:
                print(f"  {kills} kills, {ledger.acked_count()} acknowledged, "
                      f"{time.monotonic() - started:.0f} s", flush=True)
            if not ctx.start_server():
                break
    finally:
        ctx.stop.set()
        for thread in threads:
            thread.join(timeout=30)
    kill_phase = time.monotonic() - started
    backlog = len(list((workdir / "spool" / "env").iterdir()))
    if not ctx.server.alive() and not ctx.start_server():
        return [f"the server would not start again after {kills} kills: "
                f"{ctx.start_failures[-RESTART_ATTEMPTS:]}"]
    drain_started = time.monotonic()
    drained = drain_queue(ctx, workdir / "spool", args.drain_seconds)
    drain_time = time.monotonic() - drain_started
    injected = inject_faults(ctx, rng) if args.inject_faults else {}
    served = {d: pop3_read_all(ledger, ctx.server, d, delete=False) for d in MAILDROPS}
    ctx.server.stop()
    ctx.sink.stop()
    final_stored, leftovers = {}, {}
    for domain in MAILDROPS:
        final_stored[domain], leftovers[domain] = stored_messages(ctx.server.maildrop(domain))
    rows = classify(ledger, final_stored, spool_entries(workdir / "spool"))
    missed = take_out_injected(rows, injected)
    elapsed = time.monotonic() - started

    outcomes = Counter(s.outcome for s in ledger.sent.values())
    print(f"\nseed {seed}: {kills} SIGKILLs in {kill_phase:.0f} s ({ctx.runs} server starts), "
          f"queue of {backlog} {'drained' if drained else 'NOT drained'} in {drain_time:.0f} s, "
          f"{elapsed:.0f} s in all")
    print(f"messages: {len(ledger.sent)} sent, outcomes {dict(outcomes)}")
    for domain, book in ledger.books.items():
        print(f"{domain}: {book.retrieved} RETRs, {len(book.confirmed)} deletions confirmed, "
              f"{len(book.quit_unknown)} DELEs with QUIT unanswered, {len(book.dele_no_quit)} "
              f"DELEs without QUIT; at the end {len(final_stored[domain])} in new/+cur/ "
              f"({len(served[domain])} served), {leftovers[domain]} in tmp/")
    print(f"POP3 sessions {dict(ledger.pop3_sessions)}")
    print(f"client errors {dict(ledger.errors)}")
    print()
    print_table(rows)
    if injected:
        print(f"\ninjected faults (taken out of the table above): {len(injected)}, "
              f"{len(injected) - len(missed)} reported")
    failures = missed + failures_of(ctx, rows)
    for domain in MAILDROPS:
        listed = Counter(served[domain].values())
        on_disk = Counter(soak_id for _, soak_id, _, _ in final_stored[domain])
        if listed != on_disk:
            failures.append(f"{domain}: POP3 serves other than new/ and cur/ hold: "
                            f"{sorted(((listed - on_disk) + (on_disk - listed)).items())[:5]}")
    if kills < args.kills:
        failures.append(f"only {kills} of {args.kills} kills within --time-limit "
                        f"{args.time_limit:.0f} s")
    if not drained:
        failures.append(f"the queue did not drain within --drain-seconds {args.drain_seconds}")
    return failures


# --- disk-full mode ------------------------------------------------------------------------------

def mount_tmpfs(mountpoint, size):
    mountpoint.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "soak-tmpfs",
                    str(mountpoint)], check=True, capture_output=True, timeout=30)


def unmount(mountpoint):
    result = subprocess.run(["umount", str(mountpoint)], capture_output=True, timeout=30)
    if result.returncode != 0:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, timeout=30)


def fill_round(ctx, rng, kind, max_size):
    """One message on a fresh connection. Returns (soak id, outcome, reply text)."""
    opener = open_inbound if kind == "inbound" else open_submission
    try:
        client = opener(ctx.server)
    except CLIENT_ERRORS as error:
        return None, f"connect failed: {error!r}", ""
    try:
        soak_id, outcome, reply, _ = send_one(ctx.ledger, client, kind, rng,
                                              max_size=max_size)
        return soak_id, outcome, str(reply)
    except CLIENT_ERRORS as error:
        return None, "cut", repr(error)
    finally:
        client.close()


def disk_full_run(args, seed, workdir):
    if os.geteuid() != 0:
        raise SystemExit("soak: --disk-full mounts a tmpfs and needs root")
    ctx = Context(args, seed, workdir)
    ledger = ctx.ledger
    rng = random.Random(seed)
    disk = workdir / "disk"
    failures = []
    final_stored, final_spool = {d: [] for d in MAILDROPS}, {}
    refused_4xx = Counter()
    replies_4xx = Counter()
    mount_tmpfs(disk, args.disk_size)
    try:
        spool = disk / "spool"
        ctx.make_server(disk, spool)
        if not ctx.start_server():
            raise SystemExit(f"soak: mailpopbox would not start: {ctx.start_failures}")
        started = time.monotonic()
        deadline = started + args.time_limit
        usage = shutil.disk_usage(disk)
        max_size = max(4096, usage.total // 25)

        # 1. Fill: alternate inbound and submission (the sink is down, so the spool keeps what
        #    it gets) until both have been answered 4xx several times in a row.
        streak = Counter()
        attempts = 0
        while min(streak["inbound"], streak["submission"]) < 3:
            if time.monotonic() > deadline or attempts > 20 * 25:
                failures.append(f"fill: no steady 4xx after {attempts} messages "
                                f"(streaks {dict(streak)})")
                break
            kind = "inbound" if attempts % 3 else "submission"
            attempts += 1
            soak_id, outcome, reply = fill_round(ctx, rng, kind, max_size)
            if outcome == "tempfail":
                streak[kind] += 1
                refused_4xx[kind] += 1
                replies_4xx[reply[:60]] += 1
            elif outcome == "acked":
                streak[kind] = 0
            else:
                failures.append(f"fill: {kind} {soak_id}: {outcome} {reply}")
                if not ctx.server.alive():
                    failures.append("fill: the server died")
                    break
            if attempts % 20 == 0:  # what is served while the disk fills is complete too
                for domain in MAILDROPS:
                    pop3_read_all(ledger, ctx.server, domain, delete=False, only_new=True)
        free_after_fill = shutil.disk_usage(disk).free
        print(f"fill: {attempts} messages, {ledger.acked_count()} acknowledged, 4xx "
              f"{dict(refused_4xx)}, {free_after_fill} bytes left on the tmpfs")
        print(f"4xx replies: {dict(replies_4xx)}")

        # 2. A crash while full, and a start on a full disk.
        ctx.server.kill(signal.SIGKILL)
        if not ctx.start_server():
            failures.append("the server would not start again on the full disk")
            raise _Abort()
        soak_id, outcome, reply = fill_round(ctx, rng, "inbound", max_size)
        print(f"after a SIGKILL and restart on the full disk: {outcome} {reply}")
        if outcome not in ("acked", "tempfail"):
            failures.append(f"full disk after restart: {outcome} {reply}")

        # 3. Nothing partial served; what was refused is not kept; free the space.
        for domain in MAILDROPS:
            pop3_read_all(ledger, ctx.server, domain, delete=True)
        ctx.sink.start()
        if not drain_queue(ctx, spool, args.drain_seconds):
            failures.append(f"the queue did not drain within {args.drain_seconds} s after the "
                            "space was freed")
        print(f"freed: {shutil.disk_usage(disk).free} bytes free on the tmpfs")

        # 4. Normal service again.
        after = Counter()
        for i in range(args.after_messages):
            kind = "inbound" if i % 2 else "submission"
            soak_id, outcome, reply = fill_round(ctx, rng, kind, max_size // 4)
            after[outcome] += 1
            if outcome != "acked":
                failures.append(f"after freeing space: {kind} {soak_id}: {outcome} {reply}")
        print(f"after freeing space: {dict(after)}")
        if not drain_queue(ctx, spool, args.drain_seconds):
            failures.append("the queue did not drain after the space was freed")
        served = {d: pop3_read_all(ledger, ctx.server, d, delete=False) for d in MAILDROPS}
        print(f"at the end: {sum(len(s) for s in served.values())} served")
    except _Abort:
        pass
    finally:
        if ctx.server is not None:
            ctx.server.stop()
        if ctx.sink is not None:
            ctx.sink.stop()
        leftovers = {}
        try:
            for domain in MAILDROPS:
                if ctx.server is not None:
                    final_stored[domain], leftovers[domain] = stored_messages(
                        ctx.server.maildrop(domain))
            final_spool = spool_entries(disk / "spool")
        finally:
            unmount(disk)
    rows = classify(ledger, final_stored, final_spool)
    # A 4xx means nothing was kept: a refused message seen anywhere is a failure here.
    for soak_id, message in ledger.sent.items():
        if message.outcome == "tempfail":
            seen = [d for d in message.maildrops
                    if ledger.books[d].id_uids.get(soak_id)
                    or any(s == soak_id for _, s, _, _ in final_stored[d])]
            seen += [r for r in message.remotes if ledger.sink_copies.get((soak_id, r))]
            if seen:
                failures.append(f"{soak_id} ({message.kind} to {list(message.maildrops)} "
                                f"{list(message.remotes)}) got 4xx but was kept: {seen}")
    print(f"POP3: {sum(b.retrieved for b in ledger.books.values())} RETRs checked; files left "
          f"in tmp/: {tmp_leftovers_line(leftovers)}")
    print()
    print_table(rows)
    if not refused_4xx["inbound"] or not refused_4xx["submission"]:
        failures.append(f"the full disk never gave 4xx to both kinds: {dict(refused_4xx)}")
    return failures + failures_of(ctx, rows)


class _Abort(Exception):
    pass


# --- the command line ----------------------------------------------------------------------------

def interval(text):
    low, _, high = text.partition(",")
    values = (float(low), float(high or low))
    if not 0 < values[0] <= values[1]:
        raise argparse.ArgumentTypeError("give MIN,MAX milliseconds, 0 < MIN <= MAX")
    return values


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="soak.py", description=__doc__,
        epilog=DEFINITIONS, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=1000,
                        help="SIGKILLs to deliver in crash mode (default 1000)")
    parser.add_argument("--seed", type=int, help="seed for every random choice (default: new)")
    parser.add_argument("--disk-full", action="store_true",
                        help="run the disk-full scenario instead of the crash run (root)")
    parser.add_argument("--time-limit", type=float, default=1800.0,
                        help="bound in seconds on the kill phase, or on filling the disk "
                             "(default 1800); not reaching --kills or a full disk in time is a "
                             "failure. Each later step has its own bound (--drain-seconds, 30 s "
                             "for a POP3 lock, 20 s for a start)")
    parser.add_argument("--drain-seconds", type=float, default=600.0,
                        help="bound on letting the queue drain to the sink (default 600)")
    parser.add_argument("--kill-interval-ms", type=interval, default=(20.0, 300.0),
                        metavar="MIN,MAX", help="server uptime before each kill, uniformly "
                        "drawn (default 20,300)")
    parser.add_argument("--inbound-clients", type=int, default=3,
                        help="concurrent inbound SMTP clients (default 3)")
    parser.add_argument("--submission-clients", type=int, default=1,
                        help="concurrent submission clients (default 1)")
    parser.add_argument("--pacing", type=float, default=0.02,
                        help="each client waits up to this many seconds between messages "
                             "(default 0.02)")
    parser.add_argument("--disk-size", default="6m",
                        help="tmpfs size for --disk-full (default 6m)")
    parser.add_argument("--after-messages", type=int, default=10,
                        help="--disk-full: messages that must get 250 once space is freed")
    parser.add_argument("--binary", type=Path,
                        default=Path(os.environ.get("MAILPOPBOX_BIN",
                                                    REPO_ROOT / "build" / "src" / "mailpopbox")),
                        help="the mailpopbox binary (default $MAILPOPBOX_BIN or "
                             "build/src/mailpopbox)")
    parser.add_argument("--workdir", type=Path,
                        help="directory for config, maildrops, spool and logs (default: a "
                             "new one under $TMPDIR, removed after a clean run)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--inject-faults", action="store_true",
                        help="crash mode: to check the checker, lose, duplicate and corrupt "
                             "one stored message and send one message to the sink twice, by "
                             "hand, after the drain; the run fails unless all four are "
                             "reported (they are then left out of the table)")
    parser.add_argument("--progress-every", type=int, default=100, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.binary.is_file() or not os.access(args.binary, os.X_OK):
        parser.error(f"mailpopbox binary not found at {args.binary} (build it, or --binary)")
    args.binary = args.binary.resolve()
    if args.kills < 0:
        parser.error("--kills must be >= 0")
    return args


def stop_on_signal(signum, frame):
    """SIGTERM and SIGINT (also when started in the background, where SIGINT is ignored)
    unwind the run, so the server, the sink and the tmpfs are cleaned up."""
    raise SystemExit(f"soak: stopped by signal {signum}")


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGINT, stop_on_signal)
    seed = args.seed if args.seed is not None else random.randrange(1, 10**6)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mailpopbox-soak."))
    workdir.mkdir(parents=True, exist_ok=True)
    mode = "disk-full" if args.disk_full else f"crash, {args.kills} kills"
    print(f"soak ({mode}): seed {seed} (--seed {seed} to replay), binary {args.binary}, "
          f"work directory {workdir}", flush=True)
    started = time.monotonic()
    failures = (disk_full_run if args.disk_full else crash_run)(args, seed, workdir)
    print(f"\n{time.monotonic() - started:.0f} s")
    if failures:
        print(f"\nFAILED (seed {seed}; work directory kept: {workdir}):")
        for failure in failures:
            print(f"  {failure}" if failure.startswith(" ") else f"  - {failure}")
        return 1
    print("\nOK: nothing lost, duplicated, partial or refused.")
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
