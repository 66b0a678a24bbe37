"""The IMAP destination client (src/push/imap_client.c) against a real Dovecot (issue 13), driven
through the test-only probe tests/probes/imap_push_probe: TLS implicit and STARTTLS with the
test CA, a wrong password (PUSH_AUTH), certificates that name another host (refused before any
password is sent), many messages appended in one pipelined run and found in order, the internal
date and the unread state kept, lookup by Message-ID, and the synchronising-literal path when the
server offers neither LITERAL+ nor LITERAL-.

Each test starts its own private Dovecot on a loopback high port (passwd-file account, Maildir in
a scratch directory); the full fixture for the server tests is tests/integration/dovecotfixture.py.
"""

import base64
import email
import imaplib
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, bounds_constant, free_port

PASSWORD = "secret-pw \"quoted\" \\ and more"
USER = "owner@example.org"
START_TIMEOUT = 20.0
PROBE_TIMEOUT = 120.0


def probe_binary():
    build = Path(os.environ.get("MAILPOPBOX_BIN", REPO_ROOT / "build" / "src" / "mailpopbox"))
    probe = build.resolve().parents[1] / "tests" / "probes" / "imap_push_probe"
    if not probe.is_file():
        pytest.fail(f"imap_push_probe not found at {probe} (meson compile builds it)")
    return probe


def dovecot_binary():
    path = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")
    if path is None:
        pytest.fail("dovecot is not installed (Debian package dovecot-imapd, in "
                    "scripts/install-deps)", pytrace=False)
    return path


class PrivateDovecot:
    """A Dovecot of our own: imaps on one port, imap (STARTTLS) on another, one passwd-file
    account, mail in a Maildir. capability replaces what it announces (imap_capability)."""

    def __init__(self, directory, cert, key, capability=None, mechanisms="plain login",
                 password=PASSWORD):
        self.directory = directory
        self.imaps_port = free_port()
        self.imap_port = free_port()
        if os.geteuid() == 0:
            # Dovecot never gives mail to root: the mail belongs to nobody.
            account = pwd.getpwnam("nobody")
            internal_user, login_user = "dovecot", "dovenull"
        else:
            account = pwd.getpwuid(os.getuid())
            internal_user = login_user = account.pw_name
        self.maildirs = Path(tempfile.mkdtemp(prefix="mailpopbox-dovecot-"))
        os.chown(self.maildirs, account.pw_uid, account.pw_gid)
        (directory / "run").mkdir()
        (directory / "state").mkdir()
        # Dovecot's auth process runs as its own user: the password file lives where that user
        # can read it (pytest's directories are the test user's alone).
        self.auth_directory = Path(tempfile.mkdtemp(prefix="mailpopbox-dovecot-auth-"))
        self.auth_directory.chmod(0o755)
        passwd = self.auth_directory / "passwd"
        passwd.write_text(f"{USER}:{{PLAIN}}{password}\n", encoding="utf-8")
        passwd.chmod(0o644)
        self.log = directory / "dovecot.log"
        config = f"""
base_dir = {directory}/run
state_dir = {directory}/state
log_path = {self.log}
protocols = imap
listen = 127.0.0.1
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = {account.pw_uid}
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = yes
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid={account.pw_uid} gid={account.pw_gid} home={self.maildirs}/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
{f"imap_capability = {capability}" if capability else ""}
"""
        self.config = directory / "dovecot.conf"
        self.config.write_text(config)
        self.process = subprocess.Popen([dovecot_binary(), "-F", "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("dovecot exited: " + self.process.stderr.read().decode() +
                                   self.log_text())
            try:
                for port in (self.imaps_port, self.imap_port):
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("dovecot did not listen in time: " + self.log_text())
                time.sleep(0.05)

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.maildirs, ignore_errors=True)
        shutil.rmtree(self.auth_directory, ignore_errors=True)

    def maildir_files(self, mailbox="INBOX"):
        base = self.maildirs / USER / "Maildir"
        if mailbox != "INBOX":
            base = base / f".{mailbox}"
        return [p for sub in ("new", "cur") if (base / sub).is_dir()
                for p in sorted((base / sub).iterdir())]

    def fetch_all(self, ca_file, mailbox="INBOX"):
        """[(uid, internal date, flags, Message-ID)] in UID order, read over IMAP."""
        context = ssl.create_default_context(cafile=str(ca_file))
        imap = imaplib.IMAP4_SSL("localhost", self.imaps_port, ssl_context=context, timeout=30)
        try:
            imap.login(USER, PASSWORD)
            imap.select(mailbox, readonly=True)
            typ, data = imap.uid("FETCH", "1:*", "(UID INTERNALDATE FLAGS BODY.PEEK[HEADER])")
            assert typ == "OK"
            result = []
            for part in data:
                if not isinstance(part, tuple):
                    continue
                meta = part[0].decode()
                uid = int(re.search(r"UID (\d+)", meta).group(1))
                date = imaplib.Internaldate2tuple(part[0])
                flags = re.search(r"FLAGS \(([^)]*)\)", meta).group(1)
                headers = email.message_from_bytes(part[1])
                result.append((uid, time.mktime(date), flags, headers["Message-ID"]))
            return sorted(result)
        finally:
            imap.logout()


@pytest.fixture
def dovecot(tmp_path, test_ca):
    """make(capability=None, cert_name="localhost", **options) -> a running PrivateDovecot."""
    started = []

    def make(capability=None, cert_name="localhost", **options):
        cert, key = test_ca.issue(cert_name)
        directory = tmp_path / f"dovecot{len(started)}"
        directory.mkdir()
        server = PrivateDovecot(directory, cert, key, capability, **options)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def run_probe(port, test_ca, *command, tls="implicit", host="localhost", password=PASSWORD,
              ca_file=None, env=None):
    result = subprocess.run(
        [str(probe_binary()), host, str(port), tls, str(ca_file or test_ca.cert), USER, password,
         "INBOX", *map(str, command)],
        capture_output=True, text=True, timeout=PROBE_TIMEOUT, env=env)
    return result.returncode, result.stdout


def write_messages(directory, count, size=400, prefix="m"):
    """count messages with CRLF line ends, Message-ID <prefix-N@test.example>, each with its own
    mtime (the probe gives it as the internal date)."""
    files = []
    base_time = 1700000000
    for n in range(count):
        body = (f"Line {n} of a test message.\r\n" * (size // 30 + 1))
        message = (f"From: sender@example.net\r\nTo: owner@example.org\r\n"
                   f"Message-ID: <{prefix}-{n}@test.example>\r\nSubject: test {n}\r\n\r\n{body}")
        path = directory / f"{prefix}{n:04d}.eml"
        path.write_bytes(message.encode())
        os.utime(path, (base_time + n * 60, base_time + n * 60))
        files.append(path)
    return files


def item_lines(output):
    return [line for line in output.splitlines() if line.startswith("item ")]


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_login_over_verified_tls(dovecot, test_ca, tls):
    server = dovecot()
    port = server.imaps_port if tls == "implicit" else server.imap_port
    rc, out = run_probe(port, test_ca, "login", tls=tls)
    assert rc == 0, out
    assert out.splitlines()[0] == "login ok"
    assert f"method=PLAIN" in server.log_text()


def test_wrong_password_is_an_auth_failure(dovecot, test_ca):
    server = dovecot()
    rc, out = run_probe(server.imaps_port, test_ca, "login", password="not-the-password")
    assert rc == 1
    assert out.startswith("login auth "), out
    assert "Authentication failed" in out
    # The password never appears in what the client reports.
    assert "not-the-password" not in out


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_certificate_for_another_name_is_refused(dovecot, test_ca, tls):
    server = dovecot(cert_name="wrong.example")
    port = server.imaps_port if tls == "implicit" else server.imap_port
    rc, out = run_probe(port, test_ca, "login", tls=tls)
    assert rc == 1
    assert out.startswith("login temporary "), out
    assert "certificate verification failed" in out and "mismatch" in out, out
    # Refused in the handshake: Dovecot never saw a login attempt.
    assert "Login:" not in server.log_text()
    assert "auth failed" not in server.log_text()


def test_certificate_from_an_untrusted_ca_is_refused(dovecot, test_ca, tmp_path):
    server = dovecot()
    # The system's CA store (no TLSCAFile) does not trust the test CA.
    rc, out = run_probe(server.imaps_port, test_ca, "login", ca_file="-")
    assert rc == 1
    assert "certificate verification failed" in out, out
    assert "Login:" not in server.log_text()


def test_ip_address_host_is_checked_against_the_certificate(dovecot, test_ca):
    named = dovecot()
    rc, out = run_probe(named.imaps_port, test_ca, "login", host="127.0.0.1")
    assert rc == 1 and "IP address mismatch" in out, out
    by_address = dovecot(cert_name="127.0.0.1")
    rc, out = run_probe(by_address.imaps_port, test_ca, "login", host="127.0.0.1")
    assert rc == 0, out


@pytest.mark.parametrize("capability", [
    None,
    "IMAP4rev1 SASL-IR AUTH=PLAIN UIDPLUS LITERAL+",
    "IMAP4rev1 SASL-IR AUTH=PLAIN UIDPLUS",
    "IMAP4rev1 LITERAL- UIDPLUS MULTIAPPEND"],
    ids=["multiappend-literal-plus", "literal-plus", "synchronising", "multiappend-literal-minus"])
def test_many_messages_arrive_once_in_order_unread_with_their_dates(dovecot, test_ca, tmp_path,
                                                                     capability):
    server = dovecot(capability=capability)
    count = 150
    # Mostly small ones, a few over LITERAL-'s 4096 octets.
    files = write_messages(tmp_path, count)
    for n in (3, 77):
        files[n] = write_messages(tmp_path, 1, size=9000, prefix=f"big{n}-")[0]
    rc, out = run_probe(server.imaps_port, test_ca, "append", *files)
    assert rc == 0, out
    items = item_lines(out)
    assert len(items) == count
    uids = []
    for path, line in zip(files, items):
        match = re.fullmatch(rf'item {re.escape(str(path))} ok remote_id="(\d+) (\d+)" '
                             r'detail="Append completed.*"', line)
        assert match, line
        uids.append(int(match.group(2)))
    assert uids == sorted(uids) and len(set(uids)) == count
    assert "append ok" in out and "connected=yes" in out
    stored = server.fetch_all(test_ca.cert)
    assert len(stored) == count == len(server.maildir_files())
    expected_ids = []
    for path in files:
        expected_ids.append(re.search(rb"Message-ID: (<[^>]+>)", path.read_bytes()).group(1).decode())
    assert [m[3] for m in stored] == expected_ids
    assert [m[0] for m in stored] == uids
    for (uid, date, flags, _), path in zip(stored, files):
        # No flags sent: unread.
        assert "\\Seen" not in flags
        assert int(date) == int(path.stat().st_mtime)
    # Byte for byte what was sent.
    by_id = {}
    for stored_file in server.maildir_files():
        data = stored_file.read_bytes()
        by_id[re.search(rb"Message-ID: (<[^>]+>)", data).group(1).decode()] = data
    for path, message_id in zip(files, expected_ids):
        assert by_id[message_id].replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n") == \
            path.read_bytes()


def test_find_by_message_id(dovecot, test_ca, tmp_path):
    server = dovecot()
    files = write_messages(tmp_path, 3)
    rc, out = run_probe(server.imaps_port, test_ca, "append", *files)
    assert rc == 0, out
    for message_id, expected in (("<m-1@test.example>", "yes"), ("<m-9@test.example>", "no"),
                                 ('<odd"quote\\@test.example>', "no")):
        for tls, port in (("implicit", server.imaps_port), ("starttls", server.imap_port)):
            rc, out = run_probe(port, test_ca, "find", message_id, tls=tls)
            assert rc == 0, out
            assert f"found {expected}" in out.splitlines(), out


def test_find_with_a_message_id_that_needs_a_literal(dovecot, test_ca):
    # 8-bit octets cannot be in a quoted string: sent as a literal (LITERAL+ with Dovecot).
    server = dovecot()
    rc, out = run_probe(server.imaps_port, test_ca, "find", "<caf\u00e9@test.example>")
    assert rc == 0, out
    assert "found no" in out.splitlines()


def test_message_over_the_announced_appendlimit_is_refused_without_sending(dovecot, test_ca,
                                                                           tmp_path):
    server = dovecot(capability="IMAP4rev1 SASL-IR AUTH=PLAIN LITERAL+ APPENDLIMIT=2000")
    small = write_messages(tmp_path, 1, size=200, prefix="small")[0]
    big = write_messages(tmp_path, 1, size=5000, prefix="big")[0]
    rc, out = run_probe(server.imaps_port, test_ca, "append", small, big)
    items = item_lines(out)
    assert items[0].startswith(f"item {small} ok"), out
    assert items[1].startswith(f"item {big} refused"), out
    assert "APPENDLIMIT" in items[1]
    assert "append ok" in out
    assert len(server.maildir_files()) == 1


def test_missing_mailbox_is_temporary_and_the_connection_stays(dovecot, test_ca, tmp_path):
    server = dovecot()
    files = write_messages(tmp_path, 2)
    result = subprocess.run(
        [str(probe_binary()), "localhost", str(server.imaps_port), "implicit", str(test_ca.cert),
         USER, PASSWORD, "NoSuchFolder", "append", *map(str, files)],
        capture_output=True, text=True, timeout=PROBE_TIMEOUT)
    items = item_lines(result.stdout)
    assert all(" temporary " in line for line in items), result.stdout
    assert "TRYCREATE" not in result.stdout  # the code is read, the text kept
    assert "append ok" in result.stdout and "connected=yes" in result.stdout


def test_nothing_listening_is_temporary(test_ca):
    rc, out = run_probe(free_port(), test_ca, "login")
    assert rc == 1
    assert out.startswith("login temporary cannot connect"), out


# --- against a scripted server: what Dovecot never does, and proof of the wire exchange ---------

class ScriptedImap:
    """One connection on 127.0.0.1 served by script(self) in a thread: implicit TLS with a
    certificate for localhost from the test CA (or plain text, for STARTTLS scripts). Every read
    has a deadline; finish() re-raises what went wrong in the script."""

    def __init__(self, test_ca, script, tls=True):
        cert, key = test_ca.issue("localhost")
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(30)
        self.port = self.listener.getsockname()[1]
        self.script = script
        self.tls = tls
        self.buffer = b""
        self.conn = None
        self.error = None
        self.release = threading.Event()  # for scripts that hold the connection open
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            conn, _ = self.listener.accept()
            conn.settimeout(10)
            self.conn = self.context.wrap_socket(conn, server_side=True) if self.tls else conn
            self.script(self)
        except Exception as exc:  # reported by finish()
            self.error = exc
        finally:
            if self.conn:
                try:
                    self.conn.close()
                except OSError:
                    pass
            self.listener.close()

    def start_tls(self):
        self.conn = self.context.wrap_socket(self.conn, server_side=True)

    def _fill(self):
        chunk = self.conn.recv(65536)
        if not chunk:
            raise ConnectionError("the client closed the connection")
        self.buffer += chunk

    def line(self):
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buffer) < n:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def nothing_more_within(self, seconds):
        """True when the client sends nothing for that long (it waits for an answer)."""
        if self.buffer:
            return False
        self.conn.settimeout(seconds)
        try:
            self._fill()
            return False
        except (socket.timeout, TimeoutError):
            return True
        finally:
            self.conn.settimeout(10)

    def send(self, data):
        self.conn.sendall(data.encode() if isinstance(data, str) else data)

    def finish(self):
        self.thread.join(timeout=PROBE_TIMEOUT)
        assert not self.thread.is_alive(), "the scripted server did not finish"
        if self.error:
            raise self.error


def greet_and_login(s, capabilities="IMAP4rev1 SASL-IR AUTH=PLAIN LITERAL+ UIDPLUS"):
    s.send(f"* OK [CAPABILITY {capabilities}] scripted server ready\r\n")
    line = s.line()
    tag, command, mechanism, response = line.split(b" ")
    assert (command, mechanism) == (b"AUTHENTICATE", b"PLAIN"), line
    assert base64.b64decode(response) == b"\0" + USER.encode() + b"\0" + PASSWORD.encode()
    s.send(tag + f" OK [CAPABILITY {capabilities}] Logged in\r\n".encode())


def serve_logout(s):
    tag, command = s.line().split(b" ")
    assert command == b"LOGOUT"
    s.send(b"* BYE Logging out\r\n" + tag + b" OK Logout completed.\r\n")


def read_command_messages(s, line):
    """The messages of an APPEND (several with MULTIAPPEND) whose first line was line."""
    messages = []
    while True:
        match = re.search(rb'\{(\d+)(\+?)\}$', line)
        assert match, line
        if not match.group(2):
            s.send(b"+ Ready for literal data\r\n")
        messages.append(s.exact(int(match.group(1))))
        line = s.line()
        if line == b"":
            return messages
        assert re.fullmatch(rb' "[^"]+" \{\d+\+?\}', line), line


APPEND_COMMAND = re.compile(rb'(A\d+) APPEND "INBOX" "(\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d \+0000)" '
                            rb'\{(\d+)(\+?)\}')


def read_append(s):
    """(tag, date, message) of one APPEND, answering "+" to a synchronising literal."""
    line = s.line()
    match = APPEND_COMMAND.fullmatch(line)
    assert match, line
    if not match.group(4):
        s.send(b"+ Ready for literal data\r\n")
    message = s.exact(int(match.group(3)))
    assert s.exact(2) == b"\r\n"
    return match.group(1), match.group(2).decode(), message


def run_scripted(test_ca, script, *command, tls="implicit", password=PASSWORD, env=None,
                 server_tls=True):
    server = ScriptedImap(test_ca, script, tls=server_tls)
    rc, out = run_probe(server.port, test_ca, *command, tls=tls, password=password, env=env)
    server.finish()
    return rc, out


def test_appends_are_pipelined_within_the_window(test_ca, tmp_path):
    window = bounds_constant("PUSH_IMAP_PIPELINE_MAX")
    count = window + 6
    files = write_messages(tmp_path, count)
    seen = []

    def script(s):
        greet_and_login(s)
        # The whole window arrives before any answer; then the client waits.
        tags = [read_append(s) for _ in range(window)]
        seen.extend(message for _, _, message in tags)
        assert s.nothing_more_within(1.0), "more APPENDs in flight than the window"
        for n, (tag, _, _) in enumerate(tags):
            s.send(tag + f" OK [APPENDUID 7 {n + 1}] Append completed.\r\n".encode())
        for n in range(window, count):
            tag, _, message = read_append(s)
            seen.append(message)
            s.send(tag + f" OK [APPENDUID 7 {n + 1}] Append completed.\r\n".encode())
        serve_logout(s)

    rc, out = run_scripted(test_ca, script, "append", *files)
    assert rc == 0, out
    assert seen == [path.read_bytes() for path in files]
    assert [line.split('remote_id="')[1].split('"')[0] for line in item_lines(out)] == \
        [f"7 {n + 1}" for n in range(count)]


def test_internal_date_is_the_items_in_utc(test_ca, tmp_path):
    files = write_messages(tmp_path, 1)
    dates = []

    def script(s):
        greet_and_login(s)
        tag, date, _ = read_append(s)
        dates.append(date)
        s.send(tag + b" OK done\r\n")
        serve_logout(s)

    rc, out = run_scripted(test_ca, script, "append", *files)
    assert rc == 0, out
    assert dates == [time.strftime("%d-%b-%Y %H:%M:%S +0000", time.gmtime(1700000000))]


def test_refusals_are_per_message_and_the_run_goes_on(test_ca, tmp_path):
    files = write_messages(tmp_path, 4)
    answers = [b"OK [APPENDUID 3 1] done", b"NO [TOOBIG] Mail size is too large",
               b"NO [OVERQUOTA] Quota exceeded", b"BAD [PARSE] cannot parse"]

    def script(s):
        greet_and_login(s)
        tags = [read_append(s)[0] for _ in files]
        for tag, answer in zip(tags, answers):
            s.send(tag + b" " + answer + b"\r\n")
        serve_logout(s)

    rc, out = run_scripted(test_ca, script, "append", *files)
    items = item_lines(out)
    assert " ok " in items[0] and 'remote_id="3 1"' in items[0]
    assert " refused " in items[1] and "Mail size is too large" in items[1]
    assert " temporary " in items[2]  # a full mailbox may empty
    assert " temporary " in items[3]  # only NO with [PARSE] is final
    assert "append ok" in out and "connected=yes" in out


def test_bye_in_the_middle_keeps_the_rest_temporary(test_ca, tmp_path):
    files = write_messages(tmp_path, 3)

    def script(s):
        greet_and_login(s)
        tags = [read_append(s)[0] for _ in files]
        s.send(tags[0] + b" OK [APPENDUID 1 1] done\r\n* BYE Server shutting down.\r\n")

    rc, out = run_scripted(test_ca, script, "append", *files)
    items = item_lines(out)
    assert " ok " in items[0]
    assert " temporary " in items[1] and " temporary " in items[2]
    assert "append temporary" in out and "Server shutting down." in out
    assert "connected=no" in out


def test_synchronising_literal_refused_before_the_data(test_ca, tmp_path):
    files = write_messages(tmp_path, 2)

    def script(s):
        greet_and_login(s, "IMAP4rev1 SASL-IR AUTH=PLAIN")
        line = s.line()
        assert line.endswith(b"}") and not line.endswith(b"+}"), line
        s.send(line.split(b" ")[0] + b" NO [TOOBIG] too large\r\n")
        tag, _, message = read_append(s)
        assert message == files[1].read_bytes()
        s.send(tag + b" OK done\r\n")
        serve_logout(s)

    rc, out = run_scripted(test_ca, script, "append", *files)
    items = item_lines(out)
    assert " refused " in items[0] and " ok " in items[1], out


@pytest.mark.parametrize("password,expected", [
    (PASSWORD, rb'LOGIN "owner@example.org" "secret-pw \"quoted\" \\ and more"'),
    ("p\u00e4ss", b'LOGIN "owner@example.org" {5}')])
def test_login_command_quotes_or_sends_a_literal(test_ca, password, expected):
    def script(s):
        s.send("* OK [CAPABILITY IMAP4rev1 AUTH=LOGIN] ready\r\n")
        line = s.line()
        tag = line.split(b" ")[0]
        assert line == tag + b" " + expected, line
        if line.endswith(b"}"):
            s.send(b"+ OK\r\n")
            assert s.line() == password.encode()
        s.send(tag + b" OK [CAPABILITY IMAP4rev1] Logged in\r\n")
        serve_logout(s)

    rc, out = run_scripted(test_ca, script, "login", password=password)
    assert rc == 0, out


def test_login_disabled_without_plain_is_an_auth_failure(test_ca):
    def script(s):
        s.send("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] ready\r\n")

    rc, out = run_scripted(test_ca, script, "login")
    assert out.startswith("login auth "), out


@pytest.mark.parametrize("sasl_ir", [True, False], ids=["sasl-ir", "continuation"])
def test_xoauth2_exchange(test_ca, sasl_ir):
    token = "ya29.test-access-token"

    def script(s):
        caps = "IMAP4rev1 AUTH=XOAUTH2" + (" SASL-IR" if sasl_ir else "")
        s.send(f"* OK [CAPABILITY {caps}] ready\r\n")
        words = s.line().split(b" ")
        assert words[1:3] == [b"AUTHENTICATE", b"XOAUTH2"]
        if sasl_ir:
            response = words[3]
        else:
            assert len(words) == 3
            s.send(b"+ \r\n")
            response = s.line()
        assert base64.b64decode(response) == \
            f"user={USER}\x01auth=Bearer {token}\x01\x01".encode()
        s.send(words[0] + b" OK [CAPABILITY IMAP4rev1 LITERAL+] Success\r\n")
        serve_logout(s)

    rc, out = run_scripted(test_ca, script, "login", password="-",
                           env={**os.environ, "IMAP_PROBE_TOKEN": token})
    assert rc == 0, out


def test_xoauth2_failure_answers_the_error_challenge_and_is_an_auth_failure(test_ca):
    def script(s):
        s.send("* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR] ready\r\n")
        tag = s.line().split(b" ")[0]
        # Google: a base64 JSON error as a challenge, the client answers with an empty line.
        s.send(b"+ " + base64.b64encode(b'{"status":"401","schemes":"Bearer"}') + b"\r\n")
        assert s.line() == b""
        s.send(tag + b" NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n")

    rc, out = run_scripted(test_ca, script, "login", password="-",
                           env={**os.environ, "IMAP_PROBE_TOKEN": "expired"})
    assert out.startswith("login auth AUTHENTICATE XOAUTH2 refused: Invalid credentials"), out
    assert "expired" not in out


def test_oauthbearer_exchange(test_ca):
    token = "t0ken"

    def script(s):
        s.send("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER] ready\r\n")
        words = s.line().split(b" ")
        assert words[1:3] == [b"AUTHENTICATE", b"OAUTHBEARER"]
        port = s.conn.getsockname()[1]
        assert base64.b64decode(words[3]) == (
            f"n,a={USER},\x01host=localhost\x01port={port}\x01auth=Bearer {token}\x01\x01"
        ).encode()
        # RFC 7628 3.2.3: after an error challenge the client sends %x01.
        s.send(b"+ eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=\r\n")
        assert base64.b64decode(s.line()) == b"\x01"
        s.send(words[0] + b" NO [AUTHENTICATIONFAILED] bad token\r\n")

    rc, out = run_scripted(test_ca, script, "login", password="-",
                           env={**os.environ, "IMAP_PROBE_TOKEN": token})
    assert out.startswith("login auth "), out


def test_unavailable_at_login_is_temporary(test_ca):
    def script(s):
        s.send("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready\r\n")
        tag = s.line().split(b" ")[0]
        s.send(tag + b" NO [UNAVAILABLE] Temporary authentication failure.\r\n")

    rc, out = run_scripted(test_ca, script, "login")
    assert out.startswith("login temporary "), out


def test_plain_text_after_the_starttls_answer_is_refused(test_ca):
    def script(s):
        s.send("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n")
        tag = s.line().split(b" ")[0]
        # CVE-2011-0411 style: a reply injected in clear after the STARTTLS answer.
        s.send(tag + b" OK Begin TLS negotiation now.\r\n* OK [CAPABILITY IMAP4rev1 "
               b"AUTH=PLAIN] injected\r\n")

    rc, out = run_scripted(test_ca, script, "login", tls="starttls", server_tls=False)
    assert rc == 1 and "sent data after its STARTTLS answer" in out, out


def test_starttls_not_offered_is_refused_in_clear(test_ca):
    def script(s):
        s.send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")

    rc, out = run_scripted(test_ca, script, "login", tls="starttls", server_tls=False)
    assert rc == 1 and "does not offer STARTTLS" in out, out


def test_starttls_then_login_over_tls(test_ca):
    def script(s):
        s.send("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n")
        tag = s.line().split(b" ")[0]
        s.send(tag + b" OK Begin TLS negotiation now.\r\n")
        s.start_tls()
        # Capabilities learnt in clear are forgotten: the client asks again.
        tag, command = s.line().split(b" ")
        assert command == b"CAPABILITY"
        s.send(b"* CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
        tag = s.line().split(b" ")[0]
        s.send(tag + b" OK [CAPABILITY IMAP4rev1] Logged in\r\n")
        serve_logout(s)

    rc, out = run_scripted(test_ca, script, "login", tls="starttls", server_tls=False)
    assert rc == 0, out


@pytest.mark.parametrize("greeting,words", [
    (b"HTTP/1.1 400 Bad Request\r\n", "does not speak IMAP"),
    (b"* OK " + b"x" * 9000 + b"\r\n", "longer than 8192 octets"),
    (b"* BYE Too many connections\r\n", "refused the connection: Too many connections"),
    (b"A1 OK hello\r\n", "sent no IMAP greeting"),
])
def test_a_server_that_is_not_imap_is_a_temporary_failure(test_ca, greeting, words):
    def script(s):
        s.send(greeting)
        try:
            s.line()
        except (ConnectionError, OSError):
            pass

    rc, out = run_scripted(test_ca, script, "login")
    assert rc == 1 and out.startswith("login temporary ") and words in out, out


@pytest.mark.parametrize("size,ok", [(5, True), (70000, False)])
def test_literals_in_responses_are_skipped_within_a_bound(test_ca, size, ok):
    def script(s):
        greet_and_login(s)
        tag = s.line().split(b" ")[0]  # EXAMINE
        try:
            s.send(b"* LIST () \"/\" {%d}\r\n" % size + b"x" * size + b"\r\n")
            s.send(tag + b" OK [READ-ONLY] Examine completed.\r\n")
        except OSError:
            assert not ok  # the client gave up on the oversized literal and closed
        if not ok:
            return
        tag = s.line().split(b" ")[0]  # UID SEARCH
        s.send(b"* SEARCH 12\r\n" + tag + b" OK Search completed.\r\n")
        serve_logout(s)

    rc, out = run_scripted(test_ca, script, "find", "<x@y>")
    if ok:
        assert rc == 0 and "found yes" in out, out
    else:
        assert rc == 1 and "literals over" in out, out


def test_a_server_that_never_greets_costs_only_the_connect_deadline(test_ca):
    # TCP and TLS succeed, then silence: the connect deadline (which covers the greeting) ends
    # the wait, and the failure is temporary.
    def script(s):
        try:
            s.nothing_more_within(bounds_constant("PUSH_IMAP_CONNECT_TIMEOUT_SECONDS") + 30)
        except ConnectionError:
            pass  # the client gave up and closed: what is expected

    rc, out = run_scripted(test_ca, script, "login")
    assert rc == 1 and out.startswith("login temporary timed out"), out


MULTIAPPEND_CAPABILITIES = "IMAP4rev1 SASL-IR AUTH=PLAIN LITERAL+ UIDPLUS MULTIAPPEND"


def test_multiappend_groups_messages_and_names_each_by_its_uid(test_ca, tmp_path):
    limit = bounds_constant("PUSH_IMAP_MULTIAPPEND_MAX")
    files = write_messages(tmp_path, limit + 3)
    groups = []

    def script(s):
        greet_and_login(s, MULTIAPPEND_CAPABILITIES)
        for uid_set in (f"101:{100 + limit}", "7,9:10"):
            line = s.line()
            tag = line.split(b" ")[0]
            groups.append(read_command_messages(s, line))
            s.send(tag + f" OK [APPENDUID 5 {uid_set}] Append completed.\r\n".encode())
        serve_logout(s)

    rc, out = run_scripted(test_ca, script, "append", *files)
    assert rc == 0, out
    assert [len(g) for g in groups] == [limit, 3]
    assert [m for g in groups for m in g] == [path.read_bytes() for path in files]
    remote_ids = [line.split('remote_id="')[1].split('"')[0] for line in item_lines(out)]
    assert remote_ids == [f"5 {101 + n}" for n in range(limit)] + ["5 7", "5 9", "5 10"]


def test_a_refused_group_is_sent_again_one_by_one(test_ca, tmp_path):
    files = write_messages(tmp_path, 3)

    def script(s):
        greet_and_login(s, MULTIAPPEND_CAPABILITIES)
        line = s.line()
        assert len(read_command_messages(s, line)) == 3
        # RFC 3502: refusing one refuses all, and none is stored.
        s.send(line.split(b" ")[0] + b" NO [TOOBIG] one of them is too large\r\n")
        for n, answer in enumerate([b"OK [APPENDUID 5 1] done", b"NO [TOOBIG] too large",
                                    b"OK [APPENDUID 5 2] done"]):
            line = s.line()
            assert read_command_messages(s, line) == [files[n].read_bytes()]
            s.send(line.split(b" ")[0] + b" " + answer + b"\r\n")
        serve_logout(s)

    rc, out = run_scripted(test_ca, script, "append", *files)
    items = item_lines(out)
    assert ' ok remote_id="5 1"' in items[0], out
    assert " refused " in items[1] and "too large" in items[1], out
    assert ' ok remote_id="5 2"' in items[2], out
    assert "append ok" in out


def test_a_server_that_stops_reading_mid_append_costs_only_a_command_deadline(test_ca, tmp_path):
    # 4 MB is more than the socket buffers take: the client is left waiting to write. The
    # message's own deadline would allow minutes; without progress it gives up after a
    # command's time, the connection is closed and the message stays temporary.
    files = write_messages(tmp_path, 1, size=4 * 1024 * 1024)

    def script(s):
        greet_and_login(s)
        s.line()  # the APPEND command; then nothing more is read
        s.release.wait(PROBE_TIMEOUT)

    server = ScriptedImap(test_ca, script)
    rc, out = run_probe(server.port, test_ca, "append", *files)
    assert rc == 1, out
    assert " temporary " in item_lines(out)[0]
    assert "append temporary timed out" in out and "connected=no" in out, out
    server.release.set()
    server.finish()
