"""Crash consistency (issue 5): SIGKILL the server at random moments while several SMTP
clients deliver 200 messages and a POP3 client deletes some of them, restart it each time, and
hold the server to what it told its clients:

  - a message that got 250 and was not deleted is retrievable exactly once, complete;
  - a message whose DELE was followed by +OK to QUIT never comes back;
  - a message DELEd in a session that ended without QUIT (client gave up, server killed
    before QUIT) is still there: only UPDATE deletes (RFC 1939 6);
  - a message whose QUIT was sent but not answered is there at most once;
  - a message that never got its 250 is there at most once (the 250 may be what was lost);
  - nothing is served twice, nothing unknown is served, nothing in tmp/ is served.

The kills are driven by a seeded RNG; the seed is printed and MAILPOPBOX_CRASH_SEED=N replays
the same kill schedule (the exact interleaving still depends on the scheduler).
"""

import os
import random
import re
import signal
import smtplib
import threading
import time
import uuid
from collections import Counter

from conftest import ConnectionClosed, SMTPConnection, make_message

from loadutil import TIME_FACTOR
from pop3util import IN_USE, POP3Connection, connect_when_unlocked, dot_unstuff

MESSAGES = 200         # acknowledged deliveries to reach
KILLS = 9              # SIGKILLs spread over the run
SMTP_CLIENTS = 4       # half smtplib, half raw SMTPConnection
DELETE_PROBABILITY = 0.3   # per message, the first time the POP3 client sees it
ABORT_PROBABILITY = 0.15   # a POP3 session that drops the connection instead of QUIT
# Each SMTP client waits up to this long between messages, so that 200 deliveries take a few
# seconds and the kills and POP3 sessions fall among them rather than after them.
PACING_SECONDS = 0.12
RUN_BOUND_SECONDS = 40.0 * TIME_FACTOR   # the whole run; fails (with what it saw) if exceeded
CLIENT_ERRORS = (OSError, TimeoutError, ConnectionClosed, AssertionError, smtplib.SMTPException)
SUBJECT_RE = re.compile(rb"^Subject: (\S+)\r$", re.MULTILINE)


def subject_of(data):
    """The marker in the Subject header (the first one: trace headers come before it)."""
    match = SUBJECT_RE.search(data)
    return match.group(1).decode() if match else None


class Ledger:
    """What the clients were told, shared by the client threads."""

    def __init__(self, seed):
        self.lock = threading.Lock()
        self.seed = seed
        self.counter = 0
        self.sent = {}              # marker -> message bytes (every attempt, acked or not)
        self.acked = set()          # got 250 after the final dot
        self.deleted = set()        # DELE +OK, then +OK to QUIT
        self.quit_unknown = set()   # DELE +OK, QUIT sent, no answer
        self.dele_no_quit = set()   # DELE +OK, session ended before QUIT was sent
        self.resurrected = []       # deleted for sure, then listed again
        self.corrupt = []           # RETR during the run: not a complete message we sent
        self.refusals = []          # replies that refused a well-formed command
        self.smtp_errors = Counter()
        self.pop3_errors = Counter()
        self.pop3_sessions = Counter()
        self.done = threading.Event()

    def new_message(self):
        with self.lock:
            self.counter += 1
            marker = f"crash-{self.seed}-{self.counter}-{uuid.uuid4().hex[:12]}"
            body = b"".join(f"line {i} of {marker}\r\n".encode() for i in range(20))
            message = make_message(marker, body,
                                   extra_headers=f"Message-ID: <{marker}@test>\r\n".encode())
            self.sent[marker] = message
            return marker, message

    def ack(self, marker):
        with self.lock:
            self.acked.add(marker)
            if len(self.acked) >= MESSAGES:
                self.done.set()

    def acked_count(self):
        with self.lock:
            return len(self.acked)


def error_name(error):
    return type(error).__name__


def note_error(ledger, errors, context, error):
    """Counts a client error. A refusal (an -ERR, or a 4xx/5xx to a well-formed command) is
    kept too: a server that is up has no reason to refuse anything these clients send."""
    with ledger.lock:
        errors[f"{context}: {error_name(error)}"] += 1
        if isinstance(error, (AssertionError, smtplib.SMTPResponseException)):
            ledger.refusals.append(f"{context}: {error!r}")


# --- SMTP clients --------------------------------------------------------------------------------

def smtp_client(server, ledger, index, deadline):
    """Delivers new messages until the ledger has MESSAGES acknowledged; reconnects after every
    error (the server is killed under it). A failed attempt is never resent under its marker:
    its 250 may be all that was lost."""
    rng = random.Random(ledger.seed * 100 + index)
    use_smtplib = index % 2 == 0
    client = None
    while not ledger.done.is_set() and time.monotonic() < deadline:
        if client is None:
            try:
                client = open_smtp(server, use_smtplib)
            except CLIENT_ERRORS as error:
                note_error(ledger, ledger.smtp_errors, "connect", error)
                time.sleep(0.02)
                continue
        marker, message = ledger.new_message()
        try:
            if use_smtplib:
                client.sendmail("sender@example.net.test", ["someone@example.org"], message)
            else:
                reply = client.transaction("sender@example.net.test", ["someone@example.org"],
                                           message)
                assert reply.code == 250, f"final reply {reply}"
        except CLIENT_ERRORS as error:
            note_error(ledger, ledger.smtp_errors, "deliver", error)
            close_smtp(client, use_smtplib)
            client = None
            continue
        ledger.ack(marker)
        time.sleep(rng.uniform(0, PACING_SECONDS))
        if rng.random() < 0.1:  # sometimes a fresh session, so kills land in every state
            close_smtp(client, use_smtplib, quit=True)
            client = None
    if client is not None:
        close_smtp(client, use_smtplib, quit=True)


def open_smtp(server, use_smtplib):
    if use_smtplib:
        return smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="client.example.net",
                            timeout=10)
    client = SMTPConnection(server.smtp_port, timeout=10)
    try:
        assert client.greeting.code == 220, f"greeting {client.greeting}"
        client.ehlo("client.example.net")
    except BaseException:
        client.close()
        raise
    return client


def close_smtp(client, use_smtplib, quit=False):
    try:
        if quit:
            if use_smtplib:
                client.quit()
            else:
                client.command("QUIT")
    except CLIENT_ERRORS:
        pass
    client.close()


# --- the POP3 client -----------------------------------------------------------------------------

def pop3_client(server, ledger, deadline):
    """One session after another: list, learn each new message's marker (TOP n 0), DELE some,
    then QUIT, or now and then drop the connection instead."""
    rng = random.Random(ledger.seed * 100 + 99)
    markers_by_uid = {}
    considered = set()
    while not ledger.done.is_set() and time.monotonic() < deadline:
        outcome = pop3_session(server, ledger, rng, markers_by_uid, considered)
        ledger.pop3_sessions[outcome] += 1
        if outcome in ("refused", "in-use"):
            time.sleep(0.02)


def pop3_session(server, ledger, rng, markers_by_uid, considered):
    pending = []        # markers DELEd with +OK in this session
    quit_sent = False
    conn = None
    try:
        try:
            conn = POP3Connection(server.pop3_port, timeout=10)
        except CLIENT_ERRORS as error:
            note_error(ledger, ledger.pop3_errors, "connect", error)
            return "refused"
        conn.ok("USER mailbox@example.org")
        if conn.command("PASS password-example.org") == IN_USE:
            return "in-use"
        listing = conn.uidl_map()
        for number, uid in listing.items():
            if uid not in markers_by_uid:
                status, raw = conn.multiline(f"TOP {number} 0")
                assert status.startswith(b"+OK"), f"TOP {number} 0: {status!r}"
                markers_by_uid[uid] = subject_of(dot_unstuff(raw))
            marker = markers_by_uid[uid]
            with ledger.lock:
                if marker in ledger.deleted:
                    ledger.resurrected.append(marker)
        for number, uid in listing.items():
            marker = markers_by_uid[uid]
            if marker in considered:
                continue
            considered.add(marker)
            if rng.random() < DELETE_PROBABILITY:
                conn.ok(f"DELE {number}")
                pending.append(marker)
        kept = sorted(n for n, uid in listing.items() if markers_by_uid[uid] not in pending)
        if kept and rng.random() < 0.2:
            number = rng.choice(kept)
            data = conn.retr(number)
            expected = ledger.sent.get(markers_by_uid[listing[number]])
            if expected is None or not data.endswith(expected):
                with ledger.lock:
                    ledger.corrupt.append(data[-200:])
        if rng.random() < ABORT_PROBABILITY:
            with ledger.lock:
                ledger.dele_no_quit.update(pending)
            conn.abort()
            return "aborted"
        quit_sent = True
        status = conn.command("QUIT")
        with ledger.lock:
            if status.startswith(b"+OK"):
                ledger.deleted.update(pending)
                ledger.dele_no_quit.difference_update(pending)
            else:
                ledger.quit_unknown.update(pending)
        return "quit"
    except CLIENT_ERRORS as error:
        note_error(ledger, ledger.pop3_errors, "after QUIT" if quit_sent else "before QUIT",
                   error)
        with ledger.lock:
            if quit_sent:
                ledger.quit_unknown.update(pending)
            else:
                ledger.dele_no_quit.update(pending)
        return "cut"
    finally:
        if conn is not None:
            conn.close()


# --- the killer and the verdict ------------------------------------------------------------------

def plant_in_tmp(server, marker):
    """What a delivery cut short by a crash leaves: a complete-looking message in tmp/."""
    tmp = server.maildrop() / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{int(time.time())}.M1P1Q1.crashtest"
    path.write_bytes(make_message(marker))
    return path


def served_messages(server):
    """marker -> list of RETR contents, from one final POP3 session (which deletes nothing)."""
    served = {}
    with connect_when_unlocked(server, within=10.0 * TIME_FACTOR) as conn:
        for number in sorted(conn.list_map()):
            data = conn.retr(number)
            served.setdefault(subject_of(data), []).append(data)
        assert conn.quit().startswith(b"+OK")
    return served


def stored_markers(server):
    """Counter of markers in new/ and cur/, and the list of tmp/ files."""
    files = server.maildir_files()
    in_store = Counter(subject_of(p.read_bytes()) for p in files if p.parent.name != "tmp")
    return in_store, [p for p in files if p.parent.name == "tmp"]


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(make_server):
    seed = int(os.environ.get("MAILPOPBOX_CRASH_SEED") or random.randrange(1, 10**6))
    print(f"\ncrash-consistency seed {seed} (MAILPOPBOX_CRASH_SEED={seed} to replay)")
    rng = random.Random(seed)
    server = make_server()
    ledger = Ledger(seed)
    started = time.monotonic()
    deadline = started + RUN_BOUND_SECONDS
    threads = [threading.Thread(target=smtp_client, args=(server, ledger, i, deadline),
                                daemon=True) for i in range(SMTP_CLIENTS)]
    threads.append(threading.Thread(target=pop3_client, args=(server, ledger, deadline),
                                    daemon=True))
    for thread in threads:
        thread.start()

    planted = f"planted-in-tmp-{seed}"
    kill_points = sorted(rng.sample(range(10, MESSAGES - 10), KILLS))
    kills = []
    try:
        for n, point in enumerate(kill_points):
            while ledger.acked_count() < point and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.03))
            server.kill(signal.SIGKILL)
            kills.append(ledger.acked_count())
            if n == 0:
                plant_in_tmp(server, planted)
            time.sleep(rng.uniform(0, 0.2))
            server.start()
    finally:
        ledger.done.wait(timeout=max(0.0, deadline - time.monotonic()))
        ledger.done.set()
        for thread in threads:
            thread.join(timeout=30)
    elapsed = time.monotonic() - started

    served = served_messages(server)
    in_store, tmp_files = stored_markers(server)
    counts = Counter({marker: len(copies) for marker, copies in served.items()})
    with ledger.lock:
        acked, deleted = set(ledger.acked), set(ledger.deleted)
        unknown, dele_no_quit = set(ledger.quit_unknown), set(ledger.dele_no_quit)
        not_acked = set(ledger.sent) - acked
    print(f"kills after {kills} acknowledged; {len(ledger.sent)} attempts, {len(acked)} "
          f"acknowledged, {len(deleted)} deleted for sure, {len(unknown)} with QUIT unanswered, "
          f"{len(dele_no_quit)} DELEd without QUIT, {len(not_acked)} not acknowledged "
          f"({sum(1 for m in not_acked if counts[m])} of them stored); {len(served)} served at "
          f"the end, {len(tmp_files)} files left in tmp/; {elapsed:.1f} s")
    print(f"SMTP errors {dict(ledger.smtp_errors)}; POP3 sessions "
          f"{dict(ledger.pop3_sessions)}, errors {dict(ledger.pop3_errors)}")

    assert len(kills) == KILLS and len(acked) >= MESSAGES, (
        f"seed {seed}: the run did not finish within {RUN_BOUND_SECONDS:.0f} s: {len(kills)} "
        f"kills, {len(acked)} acknowledged; SMTP errors {dict(ledger.smtp_errors)}")
    unknown_markers = set(served) - set(ledger.sent)
    assert not unknown_markers, f"seed {seed}: served but never sent: {sorted(unknown_markers)}"
    assert planted not in served, f"seed {seed}: a file in tmp/ was served"
    twice = sorted(m for m, n in counts.items() if n > 1)
    assert not twice, f"seed {seed}: served more than once: {twice}"
    lost = sorted(m for m in acked - deleted - unknown if counts[m] != 1)
    assert not lost, f"seed {seed}: acknowledged, not deleted, but not served: {lost}"
    came_back = sorted(m for m in deleted if counts[m])
    assert not came_back and not ledger.resurrected, (
        f"seed {seed}: deleted (+OK to QUIT) but served again: {came_back} "
        f"{ledger.resurrected}")
    kept = sorted(m for m in dele_no_quit - deleted - unknown if counts[m] != 1)
    assert not kept, f"seed {seed}: DELEd without QUIT (no UPDATE) but gone: {kept}"
    assert not ledger.refusals, f"seed {seed}: refused: {ledger.refusals[:5]}"
    assert not ledger.corrupt, f"seed {seed}: RETR served incomplete data: {ledger.corrupt}"
    for marker, (data,) in served.items():
        assert data.endswith(ledger.sent[marker]), f"seed {seed}: {marker} served incomplete"
    assert in_store == counts, (
        f"seed {seed}: POP3 serves other than new/ and cur/ hold: "
        f"{sorted((in_store - counts) + (counts - in_store))}")
