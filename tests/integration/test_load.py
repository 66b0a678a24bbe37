"""Load on loopback, bounded (issue 5): 1,000 idle connections plus 200 parallel deliveries all
succeed; a normal SMTP or POP3 session completes promptly while 1,000 idle, stalled or
trickling connections (slowloris) are held; the command timeout closes the slow ones; the
per-IP cap keeps one address from crowding out the others. A full house (issue 11): the MX
port cannot take the owner's share of the slots, and the connection longest without progress
is shed so that real mail and the owner still get in, in under a second.

Counts scale with MAILPOPBOX_TEST_SCALE and "promptly" bounds with TIME_FACTOR (3 for an ASan
build); see loadutil. Each test prints what it measured (durations, the server's VmRSS and
descriptor counts) for `pytest -s`.
"""

import re
import socket
import ssl
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from conftest import ConnectionClosed, SMTPConnection, insecure_client_context, make_message

from loadutil import (TIME_FACTOR, close_all, fd_count, open_connections, raise_file_limit,
                      read_first_lines, read_until, scaled, source_addresses, still_open)
from pop3util import POP3Connection, pop3_connect, vm_rss_kib

IDLE_CONNECTIONS = scaled(1000)
PARALLEL_DELIVERIES = scaled(200)
# "Promptly": a normal session alone takes milliseconds; this only fails if it is starved.
PROMPT_SECONDS = 10.0 * TIME_FACTOR
# The default per-IP cap (MaxConnectionsPerIP); slowloris clients spread over enough loopback
# addresses to get IDLE_CONNECTIONS past it.
PER_IP = 20
SHORT_TIMEOUT = 3  # SMTPCommandTimeoutSeconds / POP3IdleTimeoutSeconds in the slowloris tests
# How long after the timeout the server may take to close every slow connection.
CLOSE_BOUND_SECONDS = SHORT_TIMEOUT + 10.0 * TIME_FACTOR
HIGH_CAPS = {"MaxConnections": 3000, "MaxConnectionsPerIP": 3000}


def marker():
    return f"load-{uuid.uuid4().hex}"


def smtp_session(server, subject):
    """EHLO, MAIL, RCPT, DATA, QUIT from 127.0.0.1; returns the final reply to the message."""
    with SMTPConnection(server.smtp_port) as client:
        assert client.greeting.code == 220, f"greeting: {client.greeting}"
        client.ehlo("client.example.net")
        reply = client.transaction("sender@example.net.test", ["someone@example.org"],
                                   make_message(subject))
        assert client.command("QUIT").code == 221
    return reply


def timed_smtp_session(server, within=PROMPT_SECONDS):
    """A normal session; asserts 250 and that it took less than within. Returns seconds."""
    subject = marker()
    started = time.monotonic()
    reply = smtp_session(server, subject)
    elapsed = time.monotonic() - started
    assert reply.code == 250, f"normal session under load: {reply}"
    assert elapsed < within, f"normal SMTP session took {elapsed:.1f} s under load"
    assert stored_subjects(server).count(subject) == 1
    return elapsed


def timed_pop3_session(server, within=PROMPT_SECONDS):
    """USER/PASS/STAT/QUIT over implicit TLS; asserts it took less than within. Returns
    seconds taken."""
    started = time.monotonic()
    with pop3_connect(server) as conn:
        assert conn.command("STAT").startswith(b"+OK ")
        assert conn.quit().startswith(b"+OK")
    elapsed = time.monotonic() - started
    assert elapsed < within, f"normal POP3 session took {elapsed:.1f} s under load"
    return elapsed


def stored_subjects(server):
    subjects = []
    for stored in server.messages():
        for line in stored.data.split(b"\r\n"):
            if line.startswith(b"Subject: "):
                subjects.append(line[len(b"Subject: "):].decode())
                break
    return subjects


def hold_connections(server, count, sources=("127.0.0.1",), per_source=None, dialogue=b"",
                     until=b"220 "):
    """count SMTP connections that send `dialogue` at once and then say nothing; each must
    have received `until` (by default its 220 greeting)."""
    socks = open_connections(server.smtp_port, count, sources, per_source,
                             timeout=30.0 * TIME_FACTOR)
    try:
        for sock in socks:
            sock.sendall(dialogue)
        received = read_until(socks, until, timeout=30.0 * TIME_FACTOR)
        failed = [data for data in received.values() if not data.endswith(until)]
        assert not failed, f"{len(failed)} of {count} did not get {until!r}, e.g. {failed[:3]}"
    except BaseException:
        close_all(socks)
        raise
    return socks


def tls_client_hello():
    """The bytes a TLS client sends first (a complete ClientHello record)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = insecure_client_context().wrap_bio(incoming, outgoing, server_hostname="mx.example.org")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert len(hello) > 100 and hello[0] == 0x16, hello[:16]
    return hello


def wait_for_fd_count_at_most(pid, limit, within):
    deadline = time.monotonic() + within
    count = fd_count(pid)
    while count > limit and time.monotonic() < deadline:
        time.sleep(0.25)
        count = fd_count(pid)
    return count


# --- many idle connections -----------------------------------------------------------------------

def test_1000_idle_connections_and_200_parallel_deliveries_all_succeed(make_server):
    raise_file_limit(IDLE_CONNECTIONS + PARALLEL_DELIVERIES + 256)
    server = make_server(overrides=HIGH_CAPS)
    idle = hold_connections(server, IDLE_CONNECTIONS)
    try:
        subjects = [marker() for _ in range(PARALLEL_DELIVERIES)]
        start_together = threading.Barrier(PARALLEL_DELIVERIES, timeout=60)

        def deliver(subject):
            start_together.wait()
            try:
                return subject, smtp_session(server, subject)
            except (AssertionError, OSError, TimeoutError, ConnectionClosed) as error:
                return subject, error

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=PARALLEL_DELIVERIES) as pool:
            results = list(pool.map(deliver, subjects))
        elapsed = time.monotonic() - started
        failed = [(s, r) for s, r in results if getattr(r, "code", None) != 250]
        assert not failed, f"{len(failed)} of {PARALLEL_DELIVERIES} deliveries failed: " \
                           f"{[str(r) for _, r in failed[:5]]}"
        stored = stored_subjects(server)
        assert sorted(stored) == sorted(subjects), (
            f"stored {len(stored)} messages for {len(subjects)} accepted")
        assert len(still_open(idle)) == IDLE_CONNECTIONS, "idle connections were dropped"
        print(f"\n{PARALLEL_DELIVERIES} parallel deliveries with {IDLE_CONNECTIONS} idle "
              f"connections held: {elapsed:.2f} s, server VmRSS "
              f"{vm_rss_kib(server.process.pid)} KiB")
    finally:
        close_all(idle)


def test_normal_session_completes_promptly_while_1000_idle_connections_are_held(make_server):
    raise_file_limit(IDLE_CONNECTIONS + 256)
    server = make_server(overrides=HIGH_CAPS)
    pid = server.process.pid
    rss_before, fds_before = vm_rss_kib(pid), fd_count(pid)
    idle = hold_connections(server, IDLE_CONNECTIONS)
    try:
        rss_held, fds_held = vm_rss_kib(pid), fd_count(pid)
        assert fds_held >= fds_before + IDLE_CONNECTIONS, "the server is not holding them"
        smtp_seconds = timed_smtp_session(server)
        pop3_seconds = timed_pop3_session(server)
        assert len(still_open(idle)) == IDLE_CONNECTIONS, "idle connections were dropped"
        print(f"\nserver VmRSS {rss_before} KiB idle, {rss_held} KiB with {IDLE_CONNECTIONS} "
              f"connections held ({(rss_held - rss_before) / IDLE_CONNECTIONS:.1f} KiB each); "
              f"descriptors {fds_before} -> {fds_held}; normal SMTP session "
              f"{smtp_seconds * 1000:.0f} ms, POP3 session {pop3_seconds * 1000:.0f} ms")
        if TIME_FACTOR == 1.0:
            # Generous: a connection's buffers and session state are a few KiB.
            assert (rss_held - rss_before) / IDLE_CONNECTIONS < 256, "memory per connection"
    finally:
        close_all(idle)


# --- slowloris -----------------------------------------------------------------------------------

def slow_server(make_server):
    """A server whose slow-client timeouts are short, with the default per-IP cap and room in
    the total cap for IDLE_CONNECTIONS attackers plus the normal client."""
    raise_file_limit(IDLE_CONNECTIONS + 256)
    return make_server(overrides={
        "SMTPCommandTimeoutSeconds": SHORT_TIMEOUT,
        "POP3IdleTimeoutSeconds": SHORT_TIMEOUT,
        "MaxConnections": IDLE_CONNECTIONS + 200,
        "MaxConnectionsPerIP": PER_IP,
    })


def open_slow_clients(server):
    """IDLE_CONNECTIONS attackers from 127.0.0.2 upwards, PER_IP per address: four in five on
    the SMTP port, the rest on the implicit-TLS POP3 port. Returns (smtp, pop3) sockets."""
    addresses = source_addresses(-(-IDLE_CONNECTIONS // PER_IP))
    pop3_count = IDLE_CONNECTIONS // 5 // PER_IP * PER_IP
    smtp_count = IDLE_CONNECTIONS - pop3_count
    smtp_addresses = addresses[:-(-smtp_count // PER_IP)]
    pop3_addresses = addresses[len(smtp_addresses):]
    smtp = open_connections(server.smtp_port, smtp_count, smtp_addresses, PER_IP,
                            timeout=30.0 * TIME_FACTOR)
    try:
        pop3 = open_connections(server.pop3_port, pop3_count, pop3_addresses or smtp_addresses,
                                PER_IP, timeout=30.0 * TIME_FACTOR) if pop3_count else []
    except BaseException:
        close_all(smtp)
        raise
    return smtp, pop3


class Trickler:
    """Sends one byte to each socket every `interval` seconds from a background thread, until
    stopped or the server closes the socket; socket i gets payloads[i] from byte `start` on,
    then stalls. interval None: no trickle at all, the sockets just stall. Before each byte
    it reads what the server sent (kept in received[i]), so it stops at the server's EOF."""

    def __init__(self, socks, payloads, start, interval):
        self.socks = list(socks)
        self.payloads = payloads
        self.offsets = [min(start, len(p)) for p in payloads]
        self.interval = interval
        self.stop_event = threading.Event()
        self.sent = 0
        self.received = [b""] * len(self.socks)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(timeout=30)

    def _run(self):
        if self.interval is None:
            return
        live = set(range(len(self.socks)))
        while live and not self.stop_event.wait(self.interval):
            for i in list(live):
                if not self.receive(i):
                    live.discard(i)
                    continue
                payload = self.payloads[i]
                if self.offsets[i] >= len(payload):
                    continue  # said all it will say; now it just stalls
                try:
                    self.socks[i].send(payload[self.offsets[i]:self.offsets[i] + 1],
                                       socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
                    self.offsets[i] += 1
                    self.sent += 1
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    live.discard(i)

    def receive(self, i):
        """Reads what socket i has into received[i]; False at EOF or an error."""
        while True:
            try:
                data = self.socks[i].recv(65536, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            if not data:
                return False
            self.received[i] += data


def slowloris(server, fds_before, smtp, pop3, smtp_payload, pop3_payload, first_bytes,
              interval):
    """Sends first_bytes of each payload at once, trickles the rest (or not: interval None);
    checks a normal SMTP and POP3 session complete promptly meanwhile, then that the server
    closes every slow connection within CLOSE_BOUND_SECONDS. Prints what it saw."""
    pid = server.process.pid
    socks = smtp + pop3
    payloads = [smtp_payload] * len(smtp) + [pop3_payload] * len(pop3)
    for sock, payload in zip(socks, payloads):
        sock.setblocking(False)
        if first_bytes:
            sock.send(payload[:first_bytes])
    # Accepting a thousand connections takes the server a moment; wait until it holds them.
    deadline = time.monotonic() + 30.0 * TIME_FACTOR
    while fd_count(pid) < fds_before + len(socks) and time.monotonic() < deadline:
        time.sleep(0.1)
    fds_held = fd_count(pid)
    rss_held = vm_rss_kib(pid)
    with Trickler(socks, payloads, first_bytes, interval) as trickler:
        # Well inside the timeout, while every slow connection is held.
        smtp_seconds = timed_smtp_session(server)
        pop3_seconds = timed_pop3_session(server)
        started = time.monotonic()
        fds_after = wait_for_fd_count_at_most(pid, fds_held - len(socks) + 16,
                                              CLOSE_BOUND_SECONDS)
        closed_after = time.monotonic() - started
        open_smtp, open_pop3 = len(still_open(smtp)), len(still_open(pop3))
    how = f"one byte every {interval} s, {trickler.sent} bytes" if interval else "stalled"
    print(f"\nslowloris ({len(smtp)} SMTP + {len(pop3)} POP3, {how}): server descriptors {fds_held} held -> "
          f"{fds_after} after {closed_after:.1f} s, VmRSS {rss_held} KiB; "
          f"normal SMTP {smtp_seconds * 1000:.0f} ms, POP3 {pop3_seconds * 1000:.0f} ms; "
          f"{open_smtp} SMTP and {open_pop3} POP3 slow connections still open")
    return fds_held, fds_after, open_smtp, open_pop3


def test_stalled_partial_commands_do_not_stop_normal_sessions_and_time_out(make_server):
    """Slowloris, stalling kind: each attacker sends the start of a command line (or of a TLS
    ClientHello) and then nothing."""
    server = slow_server(make_server)
    fds_before = fd_count(server.process.pid)
    smtp, pop3 = open_slow_clients(server)
    try:
        hello = tls_client_hello()
        fds_held, fds_after, open_smtp, open_pop3 = slowloris(
            server, fds_before, smtp, pop3, b"EHLO slow.example", hello, first_bytes=6,
            interval=None)
        assert fds_held >= fds_before + len(smtp) + len(pop3), "attackers were not admitted"
        assert (open_smtp, open_pop3) == (0, 0), "stalled connections outlived the timeout"
        assert fds_after <= fds_before + 16
    finally:
        close_all(smtp + pop3)


def test_trickling_partial_commands_do_not_stop_normal_sessions_and_time_out(make_server):
    """Slowloris proper: each attacker keeps a command line (or a TLS ClientHello) incomplete
    but sends one more byte every second, always well inside SMTPCommandTimeoutSeconds. RFC
    5321 4.5.3.2.7 bounds the wait for a *command*, so a line that never completes must still
    be cut off, as with Postfix's smtpd_per_request_deadline: an idle timer that each byte
    resets would let such clients hold their slots for ever."""
    server = slow_server(make_server)
    fds_before = fd_count(server.process.pid)
    smtp, pop3 = open_slow_clients(server)
    try:
        hello = tls_client_hello()
        # Far more bytes than the trickle can send before CLOSE_BOUND_SECONDS, fewer than the
        # 2048-octet line limit, so only a deadline can end these lines.
        line = b"EHLO " + b"s" * 200
        fds_held, fds_after, open_smtp, open_pop3 = slowloris(
            server, fds_before, smtp, pop3, line, hello + b"\0" * 200, first_bytes=1,
            interval=1.0)
        assert fds_held >= fds_before + len(smtp) + len(pop3), "attackers were not admitted"
        assert (open_smtp, open_pop3) == (0, 0), (
            f"{open_smtp} of {len(smtp)} SMTP and {open_pop3} of {len(pop3)} POP3 trickling "
            f"connections are still open {CLOSE_BOUND_SECONDS:.0f} s after they started, with "
            f"a {SHORT_TIMEOUT} s SMTPCommandTimeoutSeconds / POP3IdleTimeoutSeconds")
        assert fds_after <= fds_before + 16
    finally:
        close_all(smtp + pop3)


def test_one_address_beyond_the_per_ip_cap_gets_421_and_others_are_served(make_server):
    """Default caps (1000 total, 20 per IP): an attacker on 127.0.0.2 opening 200 connections
    gets 20 sessions and 421 4.7.0 for the rest; the normal client on 127.0.0.1 is served."""
    server = make_server(overrides={"MaxConnections": None, "MaxConnectionsPerIP": None})
    attempts = 10 * PER_IP
    raise_file_limit(attempts + 256)
    attacker = source_addresses(1)
    socks = open_connections(server.smtp_port, attempts, attacker, timeout=30.0 * TIME_FACTOR)
    try:
        lines = list(read_first_lines(socks, timeout=30.0 * TIME_FACTOR).values())
        greeted = [line for line in lines if line.startswith(b"220 ")]
        refused = [line for line in lines if line.startswith(b"421 4.7.0 ")]
        assert len(greeted) == PER_IP, f"{len(greeted)} admitted from one address"
        assert len(refused) == attempts - PER_IP, \
            f"beyond the cap: {sorted(set(lines) - set(greeted))[:3]}"
        smtp_seconds = timed_smtp_session(server)
        pop3_seconds = timed_pop3_session(server)
        assert len(still_open(socks)) == PER_IP
        print(f"\nper-IP cap: {len(greeted)} admitted, {len(refused)} refused with 421 4.7.0; "
              f"normal SMTP {smtp_seconds * 1000:.0f} ms, POP3 {pop3_seconds * 1000:.0f} ms")
    finally:
        close_all(socks)


# --- a full house (issue 11) ---------------------------------------------------------------------

# MaxConnections and MaxConnectionsPerIP for the full-house tests: filling the house takes
# ten client addresses.
FULL_HOUSE = {"MaxConnections": 40, "MaxConnectionsPerIP": 4}
# SERVER_RESERVED_CONNECTIONS_PERCENT (10) of the 40, for POP3 and submission only.
RESERVED = 4
# SERVER_SHED_IDLE_SECONDS in src/bounds.h: only a connection without progress for this long
# is shed.
SHED_IDLE_SECONDS = 5
# What the issue asks of a delivery and an owner's login while the house is full.
OWNER_SECONDS = 1.0 * TIME_FACTOR


def test_mx_clients_cannot_take_the_slots_kept_for_the_owner(make_server):
    """MaxConnections 40 of which 4 are the owner's: 40 MX clients from ten addresses get 36
    sessions and 421 4.7.0 for the rest, and the owner's POP3 login over TLS still completes,
    in under a second."""
    server = make_server(overrides=FULL_HOUSE)
    count = FULL_HOUSE["MaxConnections"]
    addresses = source_addresses(count // FULL_HOUSE["MaxConnectionsPerIP"])
    socks = open_connections(server.smtp_port, count, addresses, FULL_HOUSE["MaxConnectionsPerIP"],
                             timeout=30.0 * TIME_FACTOR)
    try:
        lines = list(read_first_lines(socks, timeout=30.0 * TIME_FACTOR).values())
        greeted = [line for line in lines if line.startswith(b"220 ")]
        refused = [line for line in lines if line.startswith(b"421 4.7.0 ")]
        assert (len(greeted), len(refused)) == (count - RESERVED, RESERVED), (
            f"{len(greeted)} MX sessions admitted, {len(refused)} refused of {count}")
        pop3_seconds = timed_pop3_session(server, within=OWNER_SECONDS)
        assert len(still_open(socks)) == count - RESERVED
        assert "reason=max_connections_mx" in server.log_text()
        print(f"\nMX share full ({len(greeted)} of {count}): owner's POP3 session "
              f"{pop3_seconds * 1000:.0f} ms")
    finally:
        close_all(socks)


def test_a_full_house_sheds_the_slowest_so_real_mail_and_the_owner_get_in(make_server):
    """The issue's pattern, scaled down: every slot taken by clients from many addresses, MX
    clients trickling a byte a second in DATA (the idle timeout never fires) and idle clients
    on the POP3 port; the owner stays logged in meanwhile. After SHED_IDLE_SECONDS a POP3
    login and a normal delivery each complete in under a second: each sheds the connection
    longest without progress (an idle POP3 client, then a trickling MX one, which gets
    421 4.7.0), never the logged-in owner, although that session is the oldest."""
    server = make_server(overrides=FULL_HOUSE)
    count = FULL_HOUSE["MaxConnections"]
    per_ip = FULL_HOUSE["MaxConnectionsPerIP"]
    addresses = source_addresses(count // per_ip)
    owner = pop3_connect(server, domain="example.net")
    idle, tricklers = [], []
    try:
        # The owner's share: the owner and three idle clients (no TLS ClientHello).
        idle = open_connections(server.pop3_port, RESERVED - 1, addresses[:1], per_ip,
                                timeout=30.0 * TIME_FACTOR)
        time.sleep(1.1)  # progress is counted in seconds: the idle clients are the older
        tricklers = hold_connections(
            server, count - RESERVED, addresses[1:], per_ip,
            b"EHLO slow.example\r\nMAIL FROM:<slow@example.net.test>\r\n"
            b"RCPT TO:<someone@example.org>\r\nDATA\r\n", until=b"\r\n354 ")
        # Full, and nobody has gone long enough without progress to be shed yet.
        with SMTPConnection(server.smtp_port) as extra:
            assert (extra.greeting.code, extra.greeting.enhanced) == (421, "4.7.0"), (
                f"the house is not full: {extra.greeting}")
        payload = b"Subject: slow\r\n\r\n" + b"x" * 1000
        with Trickler(tricklers, [payload] * len(tricklers), 0, 1.0) as trickler:
            time.sleep(SHED_IDLE_SECONDS + 1.5)
            pop3_seconds = timed_pop3_session(server, within=OWNER_SECONDS)
            smtp_seconds = timed_smtp_session(server, within=OWNER_SECONDS)
            assert owner.command("STAT").startswith(b"+OK "), "the logged-in owner was shed"
        for i in range(len(tricklers)):
            trickler.receive(i)
        shed = [data for data in trickler.received if b"421 4.7.0 " in data]
        assert len(shed) == 1, f"{len(shed)} trickling clients got 421 4.7.0"
        for sock in idle:
            sock.setblocking(False)
        assert len(still_open(idle)) == RESERVED - 2, "not one idle POP3 client was shed"
        log = server.log_text()
        assert re.search(r"event=shed client=127\.0\.0\.2 reason=idle idle_seconds=\d+ "
                         r"lane=owner for=127\.0\.0\.1", log), "no idle POP3 client shed"
        assert re.search(r"event=shed client=\S+ reason=slow_data idle_seconds=\d+ lane=mx "
                         r"for=127\.0\.0\.1", log), "no trickling MX client shed"
        print(f"\nfull house of {count}: owner's POP3 session {pop3_seconds * 1000:.0f} ms, "
              f"normal SMTP session {smtp_seconds * 1000:.0f} ms")
    finally:
        owner.close()
        close_all(idle + tricklers)


def test_a_shed_tls_client_is_told_why_over_tls(make_server):
    """MaxConnections 2 (one slot for the MX port, one kept for the owner's listeners): a POP3
    client that got its greeting over TLS and then idles, and an idle MX client, fill the
    house. After SHED_IDLE_SECONDS a new POP3 connection sheds the older, the TLS client, which
    reads -ERR [SYS/TEMP] inside TLS, and then logs in."""
    server = make_server(overrides={"MaxConnections": 2, "MaxConnectionsPerIP": 10})
    idle_tls = POP3Connection(server.pop3_port)
    try:
        assert idle_tls.greeting.startswith(b"+OK"), idle_tls.greeting
        time.sleep(1.1)  # progress is counted in seconds: the TLS client is the older
        with SMTPConnection(server.smtp_port) as idle_mx:
            assert idle_mx.greeting.code == 220, idle_mx.greeting
            time.sleep(SHED_IDLE_SECONDS + 0.5)
            timed_pop3_session(server, within=OWNER_SECONDS)
            assert idle_tls.read_line(timeout=5).startswith(b"-ERR [SYS/TEMP] "), (
                "the shed TLS client was not told why")
            assert idle_tls.wait_closed(5)
            assert idle_mx.command("NOOP").code == 250, "the younger connection was shed"
    finally:
        idle_tls.close()


def test_a_stored_message_reply_counts_as_progress_so_its_sender_is_not_shed(make_server):
    """The 250 for a stored message is progress: a client whose DATA began long ago (and went
    below the minimum rate) but whose message was just stored is not the one shed for a new
    client; an older idle one is. Shedding it could lose the 250 still on its way to the
    client, which would then send the stored message again. MaxConnections 3: two MX slots."""
    server = make_server(overrides={"MaxConnections": 3, "MaxConnectionsPerIP": 10})
    with SMTPConnection(server.smtp_port) as sender:
        sender.ehlo()
        assert sender.command("MAIL FROM:<a@example.net.test>").code == 250
        assert sender.command("RCPT TO:<someone@example.org>").code == 250
        assert sender.command("DATA").code == 354
        time.sleep(1.1)  # progress is counted in seconds: the idle client is the younger
        with SMTPConnection(server.smtp_port) as idle:
            assert idle.greeting.code == 220, idle.greeting
            time.sleep(SHED_IDLE_SECONDS + 0.5)
            # Far below SMTP_DATA_MIN_RATE since DATA: the transfer itself was no progress.
            sender.send(b"Subject: slow\r\n\r\nbody\r\n.\r\n")
            assert sender.read_reply().code == 250
            with SMTPConnection(server.smtp_port) as newcomer:
                assert newcomer.greeting.code == 220, newcomer.greeting
                assert idle.read_reply(timeout=5).code == 421, "the idle client was not shed"
                assert sender.command("NOOP").code == 250, "the sender of the stored message was shed"

