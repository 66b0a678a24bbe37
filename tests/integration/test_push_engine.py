"""The push engine (issue 13) against a small scripted IMAP server on loopback with TLS from the
test CA: what the engine promises whatever the destination says. Messages are pushed at once
and in arrival order, removed (or marked P with KeepCopy) only after the tagged OK, kept and
retried after temporary failures and a wrong password, marked and never retried when refused
for good, and a kill -9 while an APPEND is unanswered leaves the message in doubt: after the
restart it is looked up by Message-ID and not sent twice. The real-Dovecot tests are in
test_push_imap.py; this server can be told to misbehave at exact moments.
"""

import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest

from conftest import SMTPConnection, free_port, make_message

WAIT = 30.0  # every wait for the engine is bounded by this
PASSWORD = "app-password-1"


class FakeIMAP:
    """A minimal IMAP4rev1 server (RFC 9051 subset: CAPABILITY, LOGIN, AUTHENTICATE PLAIN,
    SELECT/EXAMINE, APPEND with LITERAL+ or synchronising literals, UID SEARCH HEADER
    Message-ID, NOOP, LOGOUT; anything else gets OK). Messages are kept in memory.

    Scripting: `password` is the one accepted; `append_verdict(message) -> str|None` gives the
    tagged reply's status and text ("NO [TOOBIG] too big") instead of OK; while `hold` is set, an
    APPEND is stored and its answer held back (the in-doubt window) until `release()`, which
    closes those connections without answering."""

    def __init__(self, cert, key, port=None):
        self.port = port or free_port()
        self.password = PASSWORD
        self.append_verdict = None
        self.hold = threading.Event()
        self.held = threading.Event()   # an APPEND is being held
        self._release = threading.Event()
        self.lock = threading.Lock()
        self.messages = []     # (mailbox, bytes)
        self.appends = []      # every APPEND literal received, answered or not
        self.logins = 0
        self.searches = []
        self.connections = []
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(16)
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closed = True
        self._release.set()
        self.listener.close()
        with self.lock:
            for conn in self.connections:
                try:
                    conn.close()
                except OSError:
                    pass

    def release(self):
        """Ends every held APPEND by closing its connection, unanswered."""
        self.hold.clear()
        self._release.set()

    def message_ids(self):
        with self.lock:
            return [message_id_of(data) for _, data in self.messages]

    def subjects(self):
        with self.lock:
            return [subject_of(data) for _, data in self.messages]

    def _accept(self):
        while not self.closed:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        raw.settimeout(60)
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        with self.lock:
            self.connections.append(conn)
        reader = conn.makefile("rb")
        try:
            self._session(conn, reader)
        except (OSError, ValueError, ssl.SSLError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _send(self, conn, text):
        conn.sendall(text.encode() + b"\r\n")

    def _read_literal(self, conn, reader, line):
        """The literal announced at the end of line ({N} or {N+}), and the rest of the line."""
        match = re.search(rb"\{(\d+)(\+?)\}$", line)
        size, plus = int(match.group(1)), match.group(2)
        if not plus:
            self._send(conn, "+ go ahead")
        data = reader.read(size)
        if len(data) != size:
            raise ValueError("connection closed in a literal")
        rest = reader.readline().rstrip(b"\r\n")
        return line[:match.start()], data, rest

    def _session(self, conn, reader):
        caps = "IMAP4rev1 LITERAL+ AUTH=PLAIN UIDPLUS"
        self._send(conn, f"* OK [CAPABILITY {caps}] fake ready")
        authenticated = False
        uid = 0
        while True:
            line = reader.readline(100000)
            if not line:
                return
            line = line.rstrip(b"\r\n")
            tag, _, rest = line.partition(b" ")
            tag = tag.decode()
            verb = rest.split(b" ", 1)[0].upper()
            if verb == b"CAPABILITY":
                self._send(conn, f"* CAPABILITY {caps}")
                self._send(conn, f"{tag} OK done")
            elif verb == b"LOGIN":
                args = rest.split(b" ", 1)[1]
                if re.search(rb"\{\d+\+?\}$", args):
                    head, password, tail = self._read_literal(conn, reader, args)
                    password = password.decode()
                else:
                    password = args.rsplit(b" ", 1)[1].decode().strip('"')
                authenticated = self._login(conn, tag, password)
            elif verb == b"AUTHENTICATE":
                parts = rest.split(b" ")
                if len(parts) >= 3:
                    response = parts[2]
                else:
                    self._send(conn, "+ ")
                    response = reader.readline().rstrip(b"\r\n")
                import base64
                fields = base64.b64decode(response).split(b"\0")
                authenticated = self._login(conn, tag, fields[-1].decode())
            elif verb in (b"SELECT", b"EXAMINE"):
                with self.lock:
                    count = len(self.messages)
                self._send(conn, f"* {count} EXISTS")
                self._send(conn, "* OK [UIDVALIDITY 1] ok")
                self._send(conn, f"{tag} OK [READ-ONLY] done")
            elif verb == b"APPEND":
                if not authenticated:
                    self._send(conn, f"{tag} NO not logged in")
                    continue
                while True:
                    _, data, more = self._read_literal(conn, reader, rest)
                    with self.lock:
                        self.appends.append(data)
                    verdict = self.append_verdict(data) if self.append_verdict else None
                    if verdict:
                        self._send(conn, f"{tag} {verdict}")
                        break
                    with self.lock:
                        self.messages.append(("INBOX", data))
                        uid = len(self.messages)
                    if self.hold.is_set():
                        self.held.set()
                        self._release.wait(WAIT * 2)
                        return  # closed unanswered: the engine cannot know
                    if more:
                        rest = more  # MULTIAPPEND: another message follows
                        continue
                    self._send(conn, f"{tag} OK [APPENDUID 1 {uid}] done")
                    break
            elif rest.upper().startswith(b"UID SEARCH"):
                if re.search(rb"\{\d+\+?\}$", rest):
                    _, value, _ = self._read_literal(conn, reader, rest)
                    wanted = value.decode()
                else:
                    wanted = rest.rsplit(b" ", 1)[1].decode().strip('"')
                with self.lock:
                    self.searches.append(wanted)
                    found = [str(i + 1) for i, (_, data) in enumerate(self.messages)
                             if message_id_of(data) == wanted]
                self._send(conn, "* SEARCH" + "".join(" " + u for u in found))
                self._send(conn, f"{tag} OK done")
            elif verb == b"LOGOUT":
                self._send(conn, "* BYE bye")
                self._send(conn, f"{tag} OK done")
                return
            else:
                self._send(conn, f"{tag} OK done")

    def _login(self, conn, tag, password):
        with self.lock:
            self.logins += 1
        if password != self.password:
            self._send(conn, f"{tag} NO [AUTHENTICATIONFAILED] bad password")
            return False
        self._send(conn, f"{tag} OK [CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS] logged in")
        return True


def header_of(data, name):
    match = re.search(rb"(?im)^" + name.encode() + rb":[ \t]*(.*?)\r?$", data.split(b"\r\n\r\n")[0])
    return match.group(1).decode() if match else None


def message_id_of(data):
    return header_of(data, "Message-ID")


def subject_of(data):
    return header_of(data, "Subject")


def wait_for(predicate, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def fake_imap(test_ca):
    cert, key = test_ca.issue("127.0.0.1")
    fake = FakeIMAP(cert, key)
    yield fake
    fake.close()


def destination(fake, test_ca, **extra):
    entry = {"Type": "imap", "Host": "127.0.0.1", "Port": fake.port, "Username": "owner",
             "Password": PASSWORD, "TLSCAFile": str(test_ca.cert)}
    entry.update(extra)
    return {k: v for k, v in entry.items() if v is not None}


@pytest.fixture
def push_server(make_server, fake_imap, test_ca):
    """push_server(**destination keys) -> a running server whose example.org pushes to the
    fake."""
    def factory(**extra):
        def servers(entries):
            entries[0]["Destination"] = destination(fake_imap, test_ca, **extra)
            return entries
        return make_server(servers=servers)
    return factory


def send(server, subject, message_id=None):
    """One message through SMTP, with its own Message-ID (what a lookup after a crash needs;
    the server gives one to a message without, tested with the receipt)."""
    message_id = message_id or f"<{uuid.uuid4().hex}@test.example.net>"
    with SMTPConnection(server.smtp_port) as c:
        c.ehlo()
        reply = c.transaction("sender@elsewhere.test", ["someone@example.org"],
                              make_message(subject, extra_headers=f"Message-ID: {message_id}\r\n".encode()))
        assert reply.code == 250, f"DATA: {reply}"
        c.command("QUIT")


def stored(server, domain="example.org"):
    """Message files left in new/ and cur/."""
    return sorted(p.name for p in server.maildir_files(domain) if p.parent.name != "tmp")


def queue_listing(server):
    result = subprocess.run([str(server.binary), "queue", str(server.config_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_message_is_pushed_at_once_and_removed(push_server, fake_imap):
    server = push_server()
    send(server, "first")
    wait_for(lambda: fake_imap.subjects() == ["first"], "the push")
    wait_for(lambda: stored(server) == [], "the maildrop to empty")
    data = fake_imap.messages[0][1]
    assert data.endswith(b"\r\nHello.\r\n")
    assert "event=pushed domain=example.org" in server.log_text()
    # One connection, logged in once, kept open for what comes next.
    send(server, "second")
    wait_for(lambda: fake_imap.subjects() == ["first", "second"], "the second push")
    assert fake_imap.logins == 1
    # The other domain has no Destination: its mail stays for POP3.
    with SMTPConnection(server.smtp_port) as c:
        c.ehlo()
        assert c.transaction("sender@elsewhere.test", ["x@example.net"],
                             make_message("stays")).code == 250
    time.sleep(0.5)
    assert len(stored(server, "example.net")) == 1
    assert fake_imap.subjects() == ["first", "second"]


def test_many_messages_keep_arrival_order(push_server, fake_imap):
    server = push_server()
    subjects = [f"message {i}" for i in range(40)]
    for subject in subjects:
        send(server, subject)
    wait_for(lambda: len(fake_imap.subjects()) == len(subjects), "every push")
    assert fake_imap.subjects() == subjects
    wait_for(lambda: stored(server) == [], "the maildrop to empty")


def test_backlog_present_at_start_is_pushed_in_order(push_server, fake_imap):
    fake_imap.password = "not-yet"
    server = push_server()
    subjects = [f"early {i}" for i in range(10)]
    for subject in subjects:
        send(server, subject)
    server.stop()
    fake_imap.password = PASSWORD
    server.start()
    wait_for(lambda: len(fake_imap.subjects()) == len(subjects), "the backlog")
    assert fake_imap.subjects() == subjects


def test_keep_copy_marks_the_message_passed(push_server, fake_imap):
    server = push_server(KeepCopy=True)
    send(server, "kept")
    wait_for(lambda: fake_imap.subjects() == ["kept"], "the push")
    wait_for(lambda: any(name.endswith(":2,P") for name in stored(server)), "the P flag")
    names = stored(server)
    assert len(names) == 1
    # Marked, so never pushed again, also after a restart.
    server.restart()
    send(server, "after restart")
    wait_for(lambda: len(fake_imap.subjects()) == 2, "the next push")
    assert fake_imap.subjects() == ["kept", "after restart"]


def test_temporary_failure_keeps_the_message_and_flush_retries(push_server, fake_imap):
    fake_imap.append_verdict = lambda data: "NO [UNAVAILABLE] mailbox busy, try later"
    server = push_server()
    send(server, "retry me")
    wait_for(lambda: len(fake_imap.appends) >= 1, "the first attempt")
    wait_for(lambda: "status=temporary" in server.log_text(), "the failure in the log")
    assert len(stored(server)) == 1
    wait_for(lambda: "mailbox busy" in queue_listing(server), "the error in mailpopbox queue")
    listing = queue_listing(server)
    assert "push example.org -> imap:127.0.0.1" in listing
    assert "1 pending" in listing
    fake_imap.append_verdict = None
    # queue --flush: the server retries now, not after its backoff.
    result = subprocess.run([str(server.binary), "queue", str(server.config_path), "--flush"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: fake_imap.subjects() == ["retry me"], "the retried push", timeout=4)
    wait_for(lambda: stored(server) == [], "the maildrop to empty")
    # Answered NO, so not in doubt: sent again without a lookup, and once.
    assert len(fake_imap.messages) == 1
    assert fake_imap.searches == []
    wait_for(lambda: "0 pending" in queue_listing(server), "an empty push queue")


def test_same_message_id_answered_no_is_sent_again_not_dropped(push_server, fake_imap):
    """Two messages with one Message-ID (a mailing list's copy, the same mail to two addresses
    of the domain): the second one's APPEND is answered NO. It is not in doubt, so the retry
    must send it, not look the Message-ID up, find the first one's copy and drop it unsent."""
    shared = f"<{uuid.uuid4().hex}@list.example.net>"
    server = push_server()
    send(server, "list copy 1", message_id=shared)
    wait_for(lambda: fake_imap.subjects() == ["list copy 1"], "the first copy's push")
    fake_imap.append_verdict = lambda data: "NO [UNAVAILABLE] mailbox busy, try later"
    send(server, "list copy 2", message_id=shared)
    wait_for(lambda: "status=temporary" in server.log_text(), "the NO to the second copy")
    assert len(stored(server)) == 1
    fake_imap.append_verdict = None
    server.kill(signal.SIGUSR1)
    wait_for(lambda: fake_imap.subjects() == ["list copy 1", "list copy 2"], "the second copy")
    wait_for(lambda: stored(server) == [], "the maildrop to empty")
    assert "in_doubt=found" not in server.log_text()


def test_refused_for_good_is_kept_and_not_retried(push_server, fake_imap):
    fake_imap.append_verdict = (
        lambda data: "NO [TOOBIG] message too big" if subject_of(data) == "huge" else None)
    server = push_server()
    send(server, "before")
    send(server, "huge")
    send(server, "after")
    wait_for(lambda: fake_imap.subjects() == ["before", "after"], "the other pushes")
    wait_for(lambda: len(stored(server)) == 1, "only the refused one left")
    assert "event=push_refused" in server.log_text()
    refused_attempts = sum(1 for data in fake_imap.appends if subject_of(data) == "huge")
    assert refused_attempts == 1
    server.kill(signal.SIGUSR1)
    send(server, "later")
    wait_for(lambda: fake_imap.subjects()[-1:] == ["later"], "a later push")
    server.restart()
    send(server, "after restart")
    wait_for(lambda: fake_imap.subjects()[-1:] == ["after restart"], "a push after restart")
    assert sum(1 for data in fake_imap.appends if subject_of(data) == "huge") == 1
    assert "1 refused" in queue_listing(server)


def test_wrong_password_keeps_mail_until_reload_fixes_it(push_server, fake_imap):
    server = push_server(Password="wrong-password")
    send(server, "waiting")
    wait_for(lambda: "status=auth" in server.log_text(), "the auth failure")
    log = server.log_text()
    assert "check Destination.Username and Destination.Password" in log
    assert "wrong-password" not in log and PASSWORD not in log
    assert len(stored(server)) == 1 and fake_imap.messages == []
    entry = server.config["Servers"][0]["Destination"]
    entry["Password"] = PASSWORD
    server.config_path.write_text(__import__("json").dumps(server.config))
    server.kill(signal.SIGHUP)
    wait_for(lambda: fake_imap.subjects() == ["waiting"], "the push after the reload")
    wait_for(lambda: stored(server) == [], "the maildrop to empty")
    assert "event=destination_reloaded" in server.log_text()


def test_destination_down_keeps_mail_until_it_is_back(make_server, test_ca):
    cert, key = test_ca.issue("127.0.0.1")
    port = free_port()

    def servers(entries):
        entries[0]["Destination"] = {"Type": "imap", "Host": "127.0.0.1", "Port": port,
                                     "Username": "owner", "Password": PASSWORD,
                                     "TLSCAFile": str(test_ca.cert)}
        return entries
    server = make_server(servers=servers)
    send(server, "while down")
    wait_for(lambda: "event=push_failed" in server.log_text(), "the connection failure")
    assert len(stored(server)) == 1
    fake = FakeIMAP(cert, key, port=port)  # the same port, now served
    try:
        server.kill(signal.SIGUSR1)
        wait_for(lambda: fake.subjects() == ["while down"], "the push once it is back")
        wait_for(lambda: stored(server) == [], "the maildrop to empty")
    finally:
        fake.close()


def test_kill_during_unanswered_append_is_not_duplicated(push_server, fake_imap):
    server = push_server()
    send(server, "before")
    wait_for(lambda: fake_imap.subjects() == ["before"], "a first push")
    fake_imap.hold.set()
    send(server, "in doubt")
    wait_for(fake_imap.held.is_set, "the held APPEND")
    # Stored at the destination, not answered: kill -9 now.
    server.kill(signal.SIGKILL)
    fake_imap.release()
    assert len(stored(server)) == 1
    in_doubt_id = message_id_of(fake_imap.messages[-1][1])
    server.start()
    wait_for(lambda: stored(server) == [], "the in-doubt message to be settled")
    assert fake_imap.subjects() == ["before", "in doubt"]
    assert in_doubt_id in fake_imap.searches
    assert "in_doubt=found" in server.log_text()
    # And the engine goes on normally.
    send(server, "after")
    wait_for(lambda: fake_imap.subjects() == ["before", "in doubt", "after"], "the next push")


def test_maildrop_restored_while_running_is_watched_and_journalled_anew(push_server, fake_imap):
    """The owner restores the maildrop's contents while the server runs (rsync writes each
    file aside and renames it in place; new/ made again). The engine must watch the new new/
    (not the old one, or new mail waits for the periodic listing) and record its attempts in
    the journal now at MaildropPath (not in the replaced file, where a restart never looks: a
    kill -9 in the in-doubt window would then send the message twice). The maildrop directory
    itself stays: the sandbox's rules follow it, so replacing it needs a restart anyway."""
    server = push_server()
    send(server, "before")
    wait_for(lambda: fake_imap.subjects() == ["before"], "a first push")
    wait_for(lambda: stored(server) == [], "the maildrop to empty")
    maildrop = server.maildrop()
    journal = maildrop / ".mailpopbox-push"
    restored = maildrop / ".mailpopbox-push.restored"
    restored.write_bytes(journal.read_bytes())
    restored.rename(journal)
    (maildrop / "new").rename(maildrop / "new.old")
    (maildrop / "new").mkdir(mode=0o700)
    wait_for(lambda: "event=journal_reopened" in server.log_text(), "the engine to notice")
    fake_imap.hold.set()
    send(server, "after the restore")
    wait_for(fake_imap.held.is_set, "the held APPEND of the message in the new new/")
    server.kill(signal.SIGKILL)
    fake_imap.release()
    server.start()
    wait_for(lambda: stored(server) == [], "the in-doubt message to be settled")
    assert fake_imap.subjects() == ["before", "after the restore"]
    assert "in_doubt=found" in server.log_text()


def test_garbled_oauth_file_is_reported_without_its_secret(push_server, fake_imap, tmp_path):
    """A hand-edited token file that is no longer JSON: the error says where, and neither the
    push log nor the status file quotes the refresh token (jansson's own message does: "invalid
    token near '<the token>'")."""
    secret = "SECRETrefreshTOKEN" + uuid.uuid4().hex
    client = tmp_path / "client.json"
    client.write_text(__import__("json").dumps({"installed": {
        "client_id": "id.apps.example", "client_secret": "client-secret-value",
        "auth_uri": "https://127.0.0.1:1/auth", "token_uri": "https://127.0.0.1:1/token"}}))
    token = tmp_path / "token.json"
    token.write_text('{"refresh_token": ' + secret + '}')
    token.chmod(0o600)
    server = push_server(Password=None, OAuthClientFile=str(client), OAuthTokenFile=str(token))
    send(server, "waiting")
    wait_for(lambda: "status=auth" in server.log_text(), "the auth failure")
    log = server.log_text()
    assert "is not JSON" in log and "run mailpopbox authorize" in log
    assert secret[:10] not in log, [l for l in log.splitlines() if "push_failed" in l]
    assert secret[:10] not in queue_listing(server)
    assert len(stored(server)) == 1


def test_two_in_doubt_messages_sharing_a_message_id_are_not_both_taken_as_found(
        make_server, test_ca):
    """Two messages with one Message-ID in one batch; the destination stored the first and
    was cut off before the second, then kill -9: both are in doubt. The lookup finds the first
    one's copy; that must not settle the second, which is sent again, not dropped unsent."""
    cert, key = test_ca.issue("127.0.0.1")
    port = free_port()

    def servers(entries):
        entries[0]["Destination"] = {"Type": "imap", "Host": "127.0.0.1", "Port": port,
                                     "Username": "owner", "Password": PASSWORD,
                                     "TLSCAFile": str(test_ca.cert)}
        return entries
    server = make_server(servers=servers)
    shared = f"<{uuid.uuid4().hex}@list.example.net>"
    send(server, "copy to a", message_id=shared)
    send(server, "copy to b", message_id=shared)
    wait_for(lambda: "event=push_failed" in server.log_text(), "the destination being down")
    fake = FakeIMAP(cert, key, port=port)
    try:
        fake.hold.set()  # stores the first APPEND, then never answers nor reads on
        server.kill(signal.SIGUSR1)
        wait_for(fake.held.is_set, "the held APPEND")
        server.kill(signal.SIGKILL)
        fake.release()
        assert fake.subjects() == ["copy to a"]
        assert len(stored(server)) == 2
        server.start()
        wait_for(lambda: stored(server) == [], "both messages settled")
        assert sorted(fake.subjects()) == ["copy to a", "copy to b"]
        assert "action=message_id_shared_sending" in server.log_text()
    finally:
        fake.close()


def test_gmail_message_never_sent_is_not_settled_by_another_with_its_message_id(
        make_server, test_ca, tmp_path):
    """Gmail takes one message at a time: when one fails, the rest of the batch is not sent.
    Those are not in doubt: a later lookup must not find an earlier message with the same
    Message-ID (a list's copy) and settle one of them unsent."""
    from gmailfake import GmailFake, SCOPE_INSERT, SCOPE_READ
    fake = GmailFake(test_ca, tmp_path).start()
    try:
        client_file = fake.write_client_file(tmp_path / "client.json")
        token_file = tmp_path / "token.json"
        fake.write_token_file(token_file, f"{SCOPE_INSERT} {SCOPE_READ}")

        def servers(entries):
            entries[0]["Destination"] = fake.destination(client_file, token_file)
            return entries
        server = make_server(servers=servers)
        shared = f"{uuid.uuid4().hex}@list.example.net"
        send(server, "list copy 1", message_id=f"<{shared}>")
        wait_for(lambda: len(fake.messages) == 1, "the first copy's import")
        wait_for(lambda: stored(server) == [], "the maildrop to empty")
        fake.inject("import", 500, times=2)
        send(server, "other")
        wait_for(lambda: fake.count("import") >= 2, "the failed import")
        send(server, "list copy 2", message_id=f"<{shared}>")
        wait_for(lambda: len(stored(server)) == 2, "both kept")
        server.kill(signal.SIGUSR1)  # [other, list copy 2]: other fails again, copy 2 unsent
        wait_for(lambda: fake.count("import") >= 3, "the second failed import")
        wait_for(lambda: server.log_text().count("event=push_failed") >= 2, "its failure")
        server.kill(signal.SIGUSR1)
        wait_for(lambda: stored(server) == [], "the maildrop to empty")
        copies = [m for m in fake.messages if m["message_id"] == shared]
        assert len(copies) == 2, "the second copy was settled without being imported"
    finally:
        fake.stop()


def test_in_doubt_message_not_at_destination_is_sent_again(push_server, fake_imap):
    server = push_server()
    fake_imap.hold.set()
    send(server, "lost on the way")
    wait_for(fake_imap.held.is_set, "the held APPEND")
    server.kill(signal.SIGKILL)
    # The destination lost it (as if the APPEND never completed there).
    with fake_imap.lock:
        fake_imap.messages.clear()
    fake_imap.release()
    server.start()
    wait_for(lambda: fake_imap.subjects() == ["lost on the way"], "the resend")
    wait_for(lambda: stored(server) == [], "the maildrop to empty")
    assert "action=not_found_sending" in server.log_text()


def test_sigterm_stops_push_threads(push_server, fake_imap):
    server = push_server()
    send(server, "one")
    wait_for(lambda: fake_imap.subjects() == ["one"], "the push")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5 + 1
    assert "event=push_stopped domain=example.org" in server.log_text()


def test_pop3_session_defers_the_removal_until_it_ends(push_server, fake_imap):
    """A POP3 session holds the maildrop lock: the confirmed push is journalled and the file
    removed once the session has ended, never while POP3 lists it."""
    from pop3util import login
    server = push_server()
    fake_imap.password = "not-yet"  # hold the push back until POP3 is in
    send(server, "seen by both")
    wait_for(lambda: "status=auth" in server.log_text(), "the held-back push")
    client = login(server)
    try:
        count, _ = client.stat()
        assert count == 1
        fake_imap.password = PASSWORD
        server.kill(signal.SIGUSR1)
        wait_for(lambda: fake_imap.subjects() == ["seen by both"], "the push")
        time.sleep(1.5)
        # POP3 still has the message it listed.
        assert len(stored(server)) == 1
        assert b"seen by both" in b"\r\n".join(client.retr(1)[1])
    finally:
        client.quit()
    wait_for(lambda: stored(server) == [], "the removal after the POP3 session")
    assert len(fake_imap.messages) == 1


def test_reload_adds_and_removes_a_destination(make_server, fake_imap, test_ca):
    import json
    import shutil
    server = make_server()
    send(server, "before any destination")
    assert "event=push_started" not in server.log_text()
    # The sandbox was made at start: a file the new Destination reads must be in a directory
    # it allowed then (the config's; a new directory needs a restart, and the log says so).
    ca_copy = server.directory / "destination-ca.crt"
    shutil.copy(test_ca.cert, ca_copy)
    server.config["Servers"][0]["Destination"] = destination(fake_imap, test_ca,
                                                             TLSCAFile=str(ca_copy))
    server.config_path.write_text(json.dumps(server.config))
    server.kill(signal.SIGHUP)
    # The new thread pushes what was already waiting.
    wait_for(lambda: fake_imap.subjects() == ["before any destination"], "the push")
    del server.config["Servers"][0]["Destination"]
    server.config_path.write_text(json.dumps(server.config))
    server.kill(signal.SIGHUP)
    wait_for(lambda: "event=push_stopped domain=example.org" in server.log_text(),
             "the thread to end")
    send(server, "kept for pop3")
    time.sleep(1)
    assert len(stored(server)) == 1
    assert fake_imap.subjects() == ["before any destination"]
