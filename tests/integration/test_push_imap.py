"""Push delivery into an IMAP mailbox (issue 13), against a real Dovecot (dovecotfixture.py).

A Servers[] entry with "Destination": {"Type": "imap", ...} makes mailpopbox APPEND every message
of its maildrop into the Dovecot account as soon as it is durable: these tests send mail in over
SMTP, the real way, and look at what Dovecot's Maildir holds (by Message-ID), at mailpopbox's
maildrop and at its log lines (`event=pushed`, `event=push_failed`, see docs/PUSH design).

Covered: push after the 250 within a bounded wait, many messages in order, KeepCopy on (file
stays, gets the Maildir P flag) and off (file removed), STARTTLS, a wrong password (kept,
retried, delivered after the config is fixed and SIGHUP), Dovecot down (kept, delivered when it
is back; SIGUSR1 hurries the retry), kill -9 of mailpopbox at random points of a push run
(every message exactly once at Dovecot), a certificate for a wrong name (refused, kept,
logged), `mailpopbox queue` listing pending pushes with their last error, POP3 still serving a
message that could not be pushed, and OAuth 2.0: an access token refreshed at a local HTTPS
token endpoint and sent as SASL XOAUTH2/OAUTHBEARER, which Dovecot's oauth2 passdb checks
against a local token-introspection endpoint. No timing is asserted: every wait is a bound.
"""

import http.server
import json
import random
import re
import signal
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid

from conftest import make_message, queue_id
from dovecotfixture import make_dovecot, dovecot, message_id_of  # noqa: F401 (fixtures)
from pop3util import login as pop3_login

DOMAIN = "example.org"
PUSH_TIMEOUT = 30.0     # the bound on "pushed at once" (the target is ~1 s; CI is slow)
RETRY_TIMEOUT = 60.0    # a retry after SIGUSR1 or SIGHUP, connect and APPEND included
COMMAND_TIMEOUT = 30


# --- helpers ---------------------------------------------------------------------------------

def destination_for(dovecot, **changes):
    """The Destination object for the Dovecot account (implicit TLS, the test CA)."""
    destination = {
        "Type": "imap",
        "Host": "127.0.0.1",
        "Port": dovecot.port,
        "Username": dovecot.username,
        "Password": dovecot.password,
        "TLSCAFile": str(dovecot.ca.cert),
        "KeepCopy": False,
    }
    for key, value in changes.items():
        if value is None:
            destination.pop(key, None)
        else:
            destination[key] = value
    return destination


def push_server(make_server, dovecot, start=True, **changes):
    """A mailpopbox whose example.org pushes into dovecot (example.net has no Destination)."""
    destination = destination_for(dovecot, **changes)

    def servers(entries):
        for entry in entries:
            if entry["Domain"] == DOMAIN:
                entry["Destination"] = destination
        return entries

    return make_server(servers=servers, start=start)


def set_destination(server, **changes):
    """Rewrites the Destination keys of example.org in the server's config file (not applied
    until SIGHUP)."""
    for entry in server.config["Servers"]:
        if entry["Domain"] == DOMAIN:
            entry["Destination"].update(changes)
    server.config_path.write_text(json.dumps(server.config, indent=2))


def unique_message(label, size=0):
    """(message bytes, its Message-ID) with a Message-ID no other test uses."""
    message_id = f"<{label}.{uuid.uuid4().hex}@sender.example.net>"
    body = b"".join(b"%s line %d\r\n" % (label.encode(), i) for i in range(max(1, size // 16)))
    message = make_message(label, body, extra_headers=f"Message-ID: {message_id}\r\n".encode())
    return message, message_id


def send(server, count=1, label="push", size=0, connection=None):
    """count messages over one SMTP session; returns [(Message-ID, monotonic time of its 250)]
    in the order the 250s came."""
    sent = []
    client = connection or server.connect()
    try:
        if connection is None:
            client.ehlo("client.example.net")
        for i in range(count):
            message, message_id = unique_message(f"{label}-{i}", size)
            queue_id(client.transaction("sender@example.net.test", [f"rcpt{i}@{DOMAIN}"], message))
            sent.append((message_id, time.monotonic()))
        if connection is None:
            client.command("QUIT")
    finally:
        if connection is None:
            client.close()
    return sent


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} (waited {timeout}s)")
        time.sleep(0.05)


def log_events(server, event):
    """The log lines of event=EVENT, each as a dict of its key=value fields."""
    found = []
    for line in server.log_text().splitlines():
        if re.search(rf"\bevent={event}\b", line):
            found.append(dict((k, v.strip('"')) for k, v in
                              re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line)))
    return found


def wait_for_event(server, event, count=1, timeout=PUSH_TIMEOUT, **fields):
    """At least count log lines of event=EVENT with the given field values; returns them."""
    def matching():
        lines = [e for e in log_events(server, event)
                 if all(e.get(k) == v for k, v in fields.items())]
        return lines if len(lines) >= count else None
    return wait_until(matching, timeout,
                      f"no {count} event={event} {fields} line(s) in the log:\n"
                      f"{server.log_text()[-4000:]}")


def pending_files(server):
    """Message files still in the maildrop (new/ and cur/, dotfiles excluded)."""
    return [p for p in server.maildir_files(DOMAIN)
            if p.parent.name != "tmp" and not p.name.startswith(".")]


def maildir_flags(path):
    match = re.search(r":2,([A-Za-z]*)$", path.name)
    return match.group(1) if match else ""


def wait_pushed(server, dovecot, message_ids, timeout=PUSH_TIMEOUT):
    """Until every Message-ID is in Dovecot's INBOX; returns Dovecot's list (UID order)."""
    wanted = set(message_ids)
    return wait_until(lambda: (lambda ids: ids if wanted <= set(ids) else None)(
        dovecot.message_ids()), timeout,
        f"not all of {len(wanted)} messages reached Dovecot: it has "
        f"{len(dovecot.message_ids())}; mailpopbox log:\n{server.log_text()[-4000:]}")


def assert_exactly_once(dovecot, message_ids):
    found = dovecot.message_ids()
    duplicates = sorted({m for m in found if found.count(m) > 1})
    missing = sorted(set(message_ids) - set(found))
    extra = sorted(set(found) - set(message_ids))
    assert not duplicates, f"pushed twice: {duplicates}"
    assert not missing, f"never pushed: {missing}"
    assert not extra, f"at Dovecot but never sent: {extra}"


def assert_secret_not_logged(server, *secrets):
    log = server.log_text()
    for secret in secrets:
        assert secret not in log, "a password appears in mailpopbox's log"


def restart_after_kill(server, attempts=5):
    """server.start() after a SIGKILL, on the same ports. A port of the killed server can be
    taken meanwhile as some other connection's ephemeral port (tests run in parallel on this
    machine); then wait a moment for that connection to end and try again (bounded)."""
    for attempt in range(attempts):
        try:
            return server.start()
        except AssertionError as error:
            if "Address already in use" not in str(error) or attempt + 1 == attempts:
                raise
            time.sleep(1)


def run_queue(server, *arguments):
    return subprocess.run([str(server.binary), "queue", str(server.config_path), *arguments],
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT)


def normalised(data):
    """A message's octets with LF line ends (Dovecot stores Maildir files with LF)."""
    return data.replace(b"\r\n", b"\n")


# --- at once, in order, the copy kept or not -----------------------------------------------------

def test_message_is_pushed_after_the_250_within_a_bound(make_server, dovecot):
    server = push_server(make_server, dovecot)
    [(message_id, accepted_at)] = send(server, 1, "latency")
    found = dovecot.wait_for_messages(1, timeout=PUSH_TIMEOUT)
    visible_at = time.monotonic()
    assert [message_id_of(data) for _, data, _ in found] == [message_id], (
        f"Dovecot has {len(found)} messages after {PUSH_TIMEOUT}s; log:\n{server.log_text()}")
    # Recorded for the reader; the benchmark measures it (bench/run --only=push).
    print(f"push latency, 250 to visible at Dovecot: {visible_at - accepted_at:.3f} s")
    [pushed] = wait_for_event(server, "pushed")
    assert pushed.get("domain") == DOMAIN, pushed
    assert pushed.get("destination", "").startswith("imap"), pushed
    # KeepCopy false: the maildrop file goes once Dovecot has it.
    wait_until(lambda: not pending_files(server), PUSH_TIMEOUT,
               f"the maildrop still holds {pending_files(server)}")
    # What Dovecot holds is what mailpopbox stored: trace headers, then the message.
    [(_, data, _)] = dovecot.messages()
    assert b"Received: from client.example.net" in data, data[:400]
    assert data.endswith(normalised(b"latency-0 line 0\r\n")), data[-200:]
    # Logged in over TLS with the password, which is never logged by mailpopbox.
    logins = dovecot.wait_for_logins(1)
    assert logins and all(login["tls"] for login in logins), logins
    assert_secret_not_logged(server, dovecot.password)


def test_many_messages_arrive_in_order_over_one_connection(make_server, dovecot):
    server = push_server(make_server, dovecot)
    sent = [message_id for message_id, _ in send(server, 60, "order", size=4096)]
    assert wait_pushed(server, dovecot, sent) == sent, "Dovecot's UID order is not arrival order"
    assert_exactly_once(dovecot, sent)
    wait_until(lambda: not pending_files(server), PUSH_TIMEOUT, "the maildrop did not empty")
    # One kept-open connection: far fewer logins than messages (a reconnect now and then is
    # allowed, e.g. when the server idles out the connection).
    assert 1 <= len(dovecot.logins()) <= 5, dovecot.logins()


def test_keep_copy_leaves_the_file_marked_passed(make_server, dovecot):
    server = push_server(make_server, dovecot, KeepCopy=True)
    sent = [message_id for message_id, _ in send(server, 3, "keep")]
    wait_pushed(server, dovecot, sent)
    wait_for_event(server, "pushed", count=3)

    def all_passed():
        files = pending_files(server)
        return files if len(files) == 3 and all(
            p.parent.name == "cur" and "P" in maildir_flags(p) for p in files) else None
    files = wait_until(all_passed, PUSH_TIMEOUT,
                       f"not three files in cur/ with the P flag: {pending_files(server)}")
    assert sorted(message_id_of(p.read_bytes()) for p in files) == sorted(sent)
    # A restart does not push them again: P means done.
    server.restart()
    time.sleep(2)
    assert_exactly_once(dovecot, sent)
    assert len(log_events(server, "pushed")) == 3
    # And POP3 still serves all three.
    client = pop3_login(server)
    try:
        count, _ = client.stat()
        assert count == 3
    finally:
        client.quit()


def test_keep_copy_off_removes_the_file(make_server, dovecot):
    server = push_server(make_server, dovecot, KeepCopy=False)
    sent = [message_id for message_id, _ in send(server, 3, "nokeep")]
    wait_pushed(server, dovecot, sent)
    wait_until(lambda: not pending_files(server), PUSH_TIMEOUT,
               f"the maildrop still holds {pending_files(server)}")
    assert_exactly_once(dovecot, sent)


def test_starttls_destination(make_server, dovecot):
    server = push_server(make_server, dovecot, TLS="starttls", Port=dovecot.starttls_port)
    sent = [message_id for message_id, _ in send(server, 2, "starttls")]
    wait_pushed(server, dovecot, sent)
    logins = dovecot.wait_for_logins(1)
    # Dovecot would take a plaintext login from loopback: its log says TLS was on.
    assert logins and all(login["tls"] for login in logins), logins


def test_message_without_message_id_gets_one_and_is_pushed_with_it(make_server, dovecot):
    # Every message has a Message-ID by the time it is pushed (given at receipt), so a message
    # in doubt after a crash can always be looked up.
    server = push_server(make_server, dovecot, KeepCopy=True)
    with server.connect() as client:
        client.ehlo("client.example.net")
        queue_id(client.transaction("sender@example.net.test", [f"someone@{DOMAIN}"],
                                    make_message("no id", b"no Message-ID here\r\n")))
        client.command("QUIT")
    [(_, data, _)] = dovecot.wait_for_messages(1, timeout=PUSH_TIMEOUT)
    given = message_id_of(data)
    assert given, f"pushed without a Message-ID: {data[:500]!r}"
    wait_for_event(server, "pushed")
    [kept] = wait_until(lambda: pending_files(server) or None, PUSH_TIMEOUT, "no copy kept")
    assert message_id_of(kept.read_bytes()) == given, "the kept copy has another Message-ID"


def test_other_domain_without_destination_is_not_pushed(make_server, dovecot):
    server = push_server(make_server, dovecot)
    message, message_id = unique_message("net-only")
    with server.connect() as client:
        client.ehlo("client.example.net")
        queue_id(client.transaction("sender@example.net.test", ["someone@example.net"], message))
        client.command("QUIT")
    sent = [m for m, _ in send(server, 1, "org")]
    wait_pushed(server, dovecot, sent)
    time.sleep(1)
    assert message_id not in dovecot.message_ids()
    assert len(server.messages("example.net")) == 1


# --- failures: kept, retried, delivered once -------------------------------------------------------

def test_wrong_password_keeps_retries_and_delivers_after_fix_and_sighup(make_server, dovecot):
    wrong = "not-the-app-password"
    server = push_server(make_server, dovecot, Password=wrong)
    sent = [message_id for message_id, _ in send(server, 2, "auth")]
    [failed] = wait_for_event(server, "push_failed", status="auth")[:1]
    assert failed.get("domain") == DOMAIN, failed
    assert len(pending_files(server)) == 2, "a message left the maildrop though not pushed"
    assert dovecot.message_ids() == []
    # The action is in the log, the password is not (neither the wrong nor the right one).
    assert "Password" in server.log_text(), "no hint to check Destination.Password"
    assert_secret_not_logged(server, wrong, dovecot.password)
    # Retried, still failing (SIGUSR1: now, not after the slow auth backoff).
    server.kill(signal.SIGUSR1)
    wait_for_event(server, "push_failed", count=2, timeout=RETRY_TIMEOUT, status="auth")
    assert len(pending_files(server)) == 2
    # Fixed in the config, SIGHUP: delivered.
    set_destination(server, Password=dovecot.password)
    server.kill(signal.SIGHUP)
    wait_for_event(server, "reloaded")
    server.kill(signal.SIGUSR1)
    wait_pushed(server, dovecot, sent, timeout=RETRY_TIMEOUT)
    wait_until(lambda: not pending_files(server), PUSH_TIMEOUT, "the maildrop did not empty")
    assert_exactly_once(dovecot, sent)
    assert_secret_not_logged(server, wrong, dovecot.password)


def test_password_changed_at_the_destination(make_server, dovecot):
    server = push_server(make_server, dovecot)
    first = [m for m, _ in send(server, 1, "before-change")]
    wait_pushed(server, dovecot, first)
    wait_until(lambda: not pending_files(server), PUSH_TIMEOUT, "the maildrop did not empty")
    # The provider's app password is revoked: the kept-open connection still works or is
    # dropped; a new login fails until the config has the new one.
    dovecot.set_password("the-new-app-password")
    dovecot.restart()  # drops the kept-open connection, so the next push logs in again
    second = [m for m, _ in send(server, 1, "after-change")]
    wait_for_event(server, "push_failed", status="auth", timeout=RETRY_TIMEOUT)
    assert len(pending_files(server)) == 1
    set_destination(server, Password="the-new-app-password")
    server.kill(signal.SIGHUP)
    wait_for_event(server, "reloaded")
    server.kill(signal.SIGUSR1)
    wait_pushed(server, dovecot, second, timeout=RETRY_TIMEOUT)
    assert_exactly_once(dovecot, first + second)


def test_destination_down_keeps_and_delivers_when_back(make_server, dovecot):
    server = push_server(make_server, dovecot)
    warm = [m for m, _ in send(server, 1, "warm")]
    wait_pushed(server, dovecot, warm)
    # Visible at Dovecot comes before its tagged OK: wait for mailpopbox to record it too.
    wait_until(lambda: not pending_files(server), PUSH_TIMEOUT, "the maildrop did not empty")
    dovecot.stop()
    sent = [m for m, _ in send(server, 5, "down")]
    wait_for_event(server, "push_failed", status="temporary")
    assert len(pending_files(server)) == 5
    # Still down a while: retried, still kept.
    server.kill(signal.SIGUSR1)
    wait_for_event(server, "push_failed", count=2, status="temporary", timeout=RETRY_TIMEOUT)
    assert len(pending_files(server)) == 5
    dovecot.start()
    server.kill(signal.SIGUSR1)
    wait_pushed(server, dovecot, sent, timeout=RETRY_TIMEOUT)
    wait_until(lambda: not pending_files(server), PUSH_TIMEOUT, "the maildrop did not empty")
    assert_exactly_once(dovecot, warm + sent)
    assert dovecot.message_ids() == warm + sent, "arrival order lost across the outage"


def test_queue_flush_retries_now(make_server, dovecot):
    server = push_server(make_server, dovecot)
    dovecot.stop()
    sent = [m for m, _ in send(server, 2, "flush")]
    wait_for_event(server, "push_failed", status="temporary")
    dovecot.start()
    result = run_queue(server, "--flush")
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    wait_pushed(server, dovecot, sent, timeout=RETRY_TIMEOUT)


def test_queue_lists_pending_pushes_with_the_last_error(make_server, dovecot):
    server = push_server(make_server, dovecot)
    dovecot.stop()
    sent = [m for m, _ in send(server, 2, "listed")]
    [failed] = wait_for_event(server, "push_failed", status="temporary")[:1]
    names = [p.name for p in pending_files(server)]
    assert len(names) == 2

    def listing():
        result = run_queue(server)
        assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
        return result.stdout if DOMAIN in result.stdout else None
    output = wait_until(listing, 10, "`mailpopbox queue` does not list the pending pushes")
    # Each pending message (by its maildrop name) or at least their count.
    assert all(name.split(":")[0] in output for name in names) or re.search(
        r"\b2\b", output), output
    # The last error, as the log said it.
    error = failed.get("error", "")
    assert error and (error in output or error[:30] in output), (
        f"last error {error!r} not in:\n{output}")
    assert dovecot.password not in output
    dovecot.start()
    server.kill(signal.SIGUSR1)
    wait_pushed(server, dovecot, sent, timeout=RETRY_TIMEOUT)
    wait_until(lambda: not any(name.split(":")[0] in run_queue(server).stdout for name in names),
               10, "`mailpopbox queue` still lists pushes after they were delivered")


def test_pop3_serves_a_message_that_could_not_be_pushed(make_server, dovecot):
    server = push_server(make_server, dovecot)
    dovecot.stop()
    message, message_id = unique_message("pop3")
    with server.connect() as client:
        client.ehlo("client.example.net")
        queue_id(client.transaction("sender@example.net.test", [f"owner@{DOMAIN}"], message))
        client.command("QUIT")
    wait_for_event(server, "push_failed")
    client = pop3_login(server)
    try:
        count, _ = client.stat()
        assert count == 1
        _, lines, _ = client.retr(1)
        data = b"\r\n".join(lines) + b"\r\n"
        assert message_id_of(data) == message_id
        assert data.endswith(message.split(b"\r\n\r\n", 1)[1])
    finally:
        client.quit()  # no DELE: still pending
    dovecot.start()
    server.kill(signal.SIGUSR1)
    wait_pushed(server, dovecot, [message_id], timeout=RETRY_TIMEOUT)


def test_certificate_for_a_wrong_name_is_refused_and_the_message_kept(make_server, make_dovecot):
    dovecot = make_dovecot(certificate_name="imap.wrong-name.example")
    server = push_server(make_server, dovecot)
    sent = [m for m, _ in send(server, 1, "wrongname")]
    [failed] = wait_for_event(server, "push_failed")[:1]
    assert re.search(r"certificate|verif|host ?name|mismatch", failed.get("error", ""), re.I), (
        f"the error does not say the certificate was refused: {failed}")
    assert len(pending_files(server)) == 1
    assert dovecot.logins() == [], "logged in over a connection with an unverified certificate"
    assert dovecot.message_ids() == []
    # The right certificate: delivered.
    dovecot.use_certificate("127.0.0.1")
    server.kill(signal.SIGUSR1)
    wait_pushed(server, dovecot, sent, timeout=RETRY_TIMEOUT)


def test_certificate_from_an_untrusted_ca_is_refused(make_server, dovecot, tmp_path):
    # TLSCAFile absent: the system store, which does not know the test CA.
    server = push_server(make_server, dovecot, TLSCAFile=None)
    send(server, 1, "untrusted")
    wait_for_event(server, "push_failed")
    assert len(pending_files(server)) == 1
    assert dovecot.logins() == []


# --- crashes: every message exactly once ------------------------------------------------------

def test_kill9_at_random_points_of_a_push_run_delivers_each_message_once(make_server, dovecot):
    """N messages wait while Dovecot is down; then, round after round, Dovecot is up, a push
    run starts (SIGUSR1 and the restart's own pass), and mailpopbox is killed with SIGKILL after
    a random delay, then restarted. At the end every Message-ID is at Dovecot exactly once:
    in-doubt messages were looked up (UID SEARCH HEADER Message-ID) before being sent again."""
    seed = random.randrange(1 << 30)
    print(f"random seed {seed}")
    rng = random.Random(seed)
    count = 600  # enough that a push run lasts a while, so most kills land inside one
    server = push_server(make_server, dovecot)
    dovecot.stop()
    sent = [m for m, _ in send(server, count, "crash", size=2048)]
    wait_for_event(server, "push_failed", status="temporary")
    dovecot.start()
    kills = 0
    for _ in range(8):
        if not pending_files(server):
            break
        if server.alive():
            server.kill(signal.SIGUSR1)
        else:
            restart_after_kill(server)
        time.sleep(rng.uniform(0.0, 0.15))
        if pending_files(server):
            server.kill(signal.SIGKILL)
            kills += 1
            restart_after_kill(server)
    print(f"{kills} kill(s); {len(dovecot.message_ids())} at Dovecot before the last run")
    print("in doubt at a restart, looked up: "
          f"{sum(1 for e in log_events(server, 'pushed') if e.get('in_doubt'))}")
    if server.alive():
        server.kill(signal.SIGUSR1)
    wait_pushed(server, dovecot, sent, timeout=RETRY_TIMEOUT * 2)
    wait_until(lambda: not pending_files(server), PUSH_TIMEOUT, "the maildrop did not empty")
    assert_exactly_once(dovecot, sent)
    assert dovecot.message_ids() == sent, "arrival order lost across the crashes"


def test_kill9_while_mail_arrives_and_is_pushed(make_server, dovecot):
    """SMTP and pushing at the same time, SIGKILL at random moments: every message that got
    its 250 is at Dovecot exactly once in the end (one whose 250 never came may or may not
    be)."""
    seed = random.randrange(1 << 30)
    print(f"random seed {seed}")
    rng = random.Random(seed)
    server = push_server(make_server, dovecot)
    accepted = []
    for round_number in range(4):
        stop = threading.Event()

        def sender():
            try:
                client = server.connect(timeout=5)
                client.ehlo("client.example.net")
                while not stop.is_set() and len(accepted) < 300 * (round_number + 1):
                    message, message_id = unique_message(f"live-{round_number}")
                    reply = client.transaction("sender@example.net.test", [f"a@{DOMAIN}"], message)
                    if reply.code == 250:
                        accepted.append(message_id)
            except Exception:  # the kill cuts the session: expected
                pass
        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        time.sleep(rng.uniform(0.2, 1.5))
        server.kill(signal.SIGKILL)
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()
        restart_after_kill(server)
    wait_pushed(server, dovecot, accepted, timeout=RETRY_TIMEOUT * 2)
    found = dovecot.message_ids()
    duplicates = sorted({m for m in found if found.count(m) > 1})
    assert not duplicates, f"pushed twice: {duplicates}"
    assert set(accepted) <= set(found)
    wait_until(lambda: not pending_files(server), PUSH_TIMEOUT, "the maildrop did not empty")


# --- OAuth 2.0: SASL XOAUTH2/OAUTHBEARER against Dovecot's oauth2 passdb ----------------------

class TokenEndpoint:
    """An OAuth 2.0 token endpoint (RFC 6749 6, refresh_token grant) over HTTPS with a
    certificate from the test CA for 127.0.0.1: a known refresh token gets access_token
    (which the Dovecot's introspection endpoint accepts); any other gets 400 invalid_grant."""

    def __init__(self, ca, refresh_token, access_token):
        self.refresh_token = refresh_token
        self.access_token = access_token
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = min(int(self.headers.get("Content-Length") or 0), 65536)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode("ascii", "replace"))
                outer.requests.append({k: v[0] for k, v in form.items()})
                if (form.get("grant_type") == ["refresh_token"]
                        and form.get("refresh_token") == [outer.refresh_token]):
                    status, body = 200, {"access_token": outer.access_token, "expires_in": 3599,
                                         "token_type": "Bearer",
                                         "scope": "https://mail.google.com/"}
                else:
                    status, body = 400, {"error": "invalid_grant",
                                         "error_description": "Token has been expired or revoked."}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        cert, key = ca.issue("127.0.0.1")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def oauth_files(directory, token_url, refresh_token):
    """The client JSON as Google Cloud lets one download it ("installed" application) and the
    token file with the refresh token, as `mailpopbox authorize` writes it (docs/config.md)."""
    client = directory / "oauth-client.json"
    client.write_text(json.dumps({"installed": {
        "client_id": "1234-test.apps.googleusercontent.com",
        "client_secret": "test-client-secret",
        "auth_uri": token_url.replace("/token", "/auth"),
        "token_uri": token_url,
        "redirect_uris": ["http://localhost"]}}))
    token = directory / "oauth-token.json"
    token.write_text(json.dumps({"refresh_token": refresh_token,
                                 "scope": "https://mail.google.com/"}))
    token.chmod(0o600)
    return client, token


def oauth_push_server(make_server, dovecot, tmp_path, refresh_token):
    endpoint = TokenEndpoint(dovecot.ca, "refresh-" + uuid.uuid4().hex, dovecot.oauth_token)
    client, token = oauth_files(tmp_path, endpoint.url, refresh_token or endpoint.refresh_token)
    server = push_server(make_server, dovecot, Password=None, OAuthClientFile=str(client),
                         OAuthTokenFile=str(token))
    return server, endpoint


def test_xoauth2_login_with_a_refreshed_access_token(make_server, make_dovecot, tmp_path):
    dovecot = make_dovecot(oauth=True)
    server, endpoint = oauth_push_server(make_server, dovecot, tmp_path, None)
    try:
        sent = [m for m, _ in send(server, 2, "oauth")]
        wait_pushed(server, dovecot, sent)
        assert_exactly_once(dovecot, sent)
        assert any(r.get("grant_type") == "refresh_token" for r in endpoint.requests)
        logins = dovecot.wait_for_logins(1)
        assert logins and all(login["method"] in ("XOAUTH2", "OAUTHBEARER") and login["tls"]
                              for login in logins), logins
        assert dovecot.introspection.requests >= 1
        assert_secret_not_logged(server, endpoint.refresh_token, endpoint.access_token,
                                 "test-client-secret")
    finally:
        endpoint.stop()


def test_revoked_refresh_token_keeps_mail_and_says_authorize(make_server, make_dovecot,
                                                             tmp_path):
    dovecot = make_dovecot(oauth=True)
    server, endpoint = oauth_push_server(make_server, dovecot, tmp_path, "revoked-refresh-token")
    try:
        send(server, 1, "revoked")
        wait_for_event(server, "push_failed", status="auth")
        assert "authorize" in server.log_text(), "no hint to run mailpopbox authorize"
        assert len(pending_files(server)) == 1
        assert dovecot.message_ids() == []
        assert_secret_not_logged(server, "revoked-refresh-token", "test-client-secret")
    finally:
        endpoint.stop()
