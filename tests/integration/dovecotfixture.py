"""A private Dovecot IMAP server on loopback, the real destination of the push tests (issue 13).

  Dovecot          one `dovecot -F` master with its own config, base_dir, log and Maildir in a
                   directory of its own; IMAP with implicit TLS on .port and STARTTLS on
                   .starttls_port, both on 127.0.0.1; one passwd-file account (.username,
                   .password), optionally also SASL XOAUTH2/OAUTHBEARER checked against a local
                   token-introspection endpoint (oauth=True: .oauth_token is the valid token)
  make_dovecot     fixture: make_dovecot(**options) -> a running Dovecot, stopped in teardown
  dovecot          fixture: one running Dovecot with the defaults

What a test does with it:
  stop() / start() / restart()       the destination down and back (same ports, same Maildir)
  set_password(new)                  the account's password changes (passwd-file rewritten and
                                     `doveadm reload`; nothing cached)
  use_certificate(name)              serve a certificate for another name (a wrong one), restart
  messages(mailbox) / message_ids()  what is in the Maildir, in UID order (from dovecot-uidlist),
                                     readable while Dovecot is stopped
  imap(...)                          an imaplib.IMAP4_SSL logged in, verifying the test CA

The certificate comes from the tests' CertificateAuthority (conftest.test_ca), issued for
127.0.0.1 (an IP address SAN), the host name the push client connects to. Dovecot runs as root
here, so its own processes use the package's users: the login processes dovenull, auth and the
other internal services dovecot, and the mail processes (imap) the account's uid, dovecot's.
That is why the instance lives in a directory under /tmp that every user can enter (pytest's
tmp_path is root-only) and the Maildir belongs to the dovecot user. Every wait is bounded.
"""

import http.server
import imaplib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import free_port, require_tool

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
PACKAGE = "dovecot-imapd"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
IO_TIMEOUT = 10.0
DEFAULT_USER = "push@example.com"
DEFAULT_PASSWORD = "imap-app-password-1"
# The uid Dovecot's mail processes run as: its package's own system user (never root, which
# Dovecot refuses for mail access unless told otherwise).
MAIL_USER = "dovecot"
MAILDIR_FLAGS_RE = re.compile(r":2,([A-Za-z]*)$")
START_ATTEMPTS = 3  # a port found free can be taken before Dovecot binds it


class IntrospectionServer:
    """RFC 7662 token introspection on http://127.0.0.1:PORT/introspect, the endpoint Dovecot's
    oauth2 passdb asks: POST token=T answers {"active": true, "username": U} for a token in
    .tokens (T -> U), {"active": false} otherwise. .requests counts the questions asked."""

    def __init__(self):
        self.tokens = {}
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = min(int(self.headers.get("Content-Length") or 0), 65536)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode("ascii", "replace"))
                token = (form.get("token") or [""])[0]
                outer.requests += 1
                user = outer.tokens.get(token)
                body = json.dumps({"active": True, "username": user} if user
                                  else {"active": False}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = IO_TIMEOUT
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/introspect"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class Dovecot:
    """One private Dovecot instance (see the module's comment)."""

    def __init__(self, ca, directory=None, username=DEFAULT_USER, password=DEFAULT_PASSWORD,
                 certificate_name="127.0.0.1", oauth=False, mailboxes=("Junk",)):
        require_tool("dovecot", PACKAGE)
        require_tool("doveadm", "dovecot-core")
        self.ca = ca
        self.directory = Path(directory or tempfile.mkdtemp(prefix="mailpopbox-dovecot-",
                                                            dir="/tmp"))
        self.directory.chmod(0o755)
        self.username = username
        self.password = password
        self.certificate_name = certificate_name
        self.mailboxes = tuple(mailboxes)
        self.config_path = self.directory / "dovecot.conf"
        self.log_path = self.directory / "dovecot.log"
        self.users_path = self.directory / "users"
        self.home = self.directory / "home"
        self.maildir = self.home / "Maildir"
        self.instance = f"mpb-test-{os.getpid()}-{self.directory.name[-8:]}"
        self.process = None
        self.port = None
        self.starttls_port = None
        self.introspection = IntrospectionServer() if oauth else None
        self.oauth_token = "test-access-token-" + os.urandom(8).hex() if oauth else None
        if oauth:
            self.introspection.tokens[self.oauth_token] = username
        mail = pwd.getpwnam(MAIL_USER)
        self.uid, self.gid = mail.pw_uid, mail.pw_gid
        for sub in ("run", "state"):
            (self.directory / sub).mkdir(exist_ok=True)
        self.home.mkdir(exist_ok=True)
        for sub in ("new", "cur", "tmp"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        for mailbox in self.mailboxes:
            for sub in ("new", "cur", "tmp"):
                (self.maildir / f".{mailbox}" / sub).mkdir(parents=True, exist_ok=True)
        for path in [self.home, *self.home.rglob("*")]:
            os.chown(path, self.uid, self.gid)
        self._write_users()

    # --- configuration

    def _write_users(self):
        # passwd-file: user:password:uid:gid:gecos:home:shell:extra. Rewritten whole by a
        # rename, so Dovecot (which rereads it when its mtime changes) never sees half of it.
        line = (f"{self.username}:{{PLAIN}}{self.password}:{self.uid}:{self.gid}::"
                f"{self.home}::\n")
        tmp = self.users_path.with_suffix(".tmp")
        tmp.write_text(line)
        tmp.chmod(0o644)
        os.replace(tmp, self.users_path)

    def _write_config(self):
        # Read by the config process, as root: they may stay in the CA's root-only directory.
        cert, key = self.ca.issue(self.certificate_name)
        oauth = ""
        mechanisms = "plain login"
        if self.introspection:
            mechanisms += " xoauth2 oauthbearer"
            oauth_conf = self.directory / "dovecot-oauth2.conf.ext"
            oauth_conf.write_text(
                f"introspection_url = {self.introspection.url}\n"
                "introspection_mode = post\n"
                "force_introspection = yes\n"
                "username_attribute = username\n"
                "active_attribute = active\n"
                "active_value = true\n")
            oauth = (f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                     f"  args = {oauth_conf}\n}}\n")
        namespaces = ""
        for name in self.mailboxes:
            special = "    special_use = \\Junk\n" if name == "Junk" else ""
            namespaces += f"  mailbox {name} {{\n    auto = subscribe\n{special}  }}\n"
        self.config_path.write_text(f"""\
# A private Dovecot for mailpopbox's push tests (tests/integration/dovecotfixture.py).
protocols = imap
listen = 127.0.0.1
base_dir = {self.directory}/run
state_dir = {self.directory}/state
instance_name = {self.instance}
log_path = {self.log_path}
info_log_path = {self.log_path}
syslog_facility = local7
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = {self.uid}
last_valid_uid = {self.uid}
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = {mechanisms}
auth_cache_size = 0
auth_verbose = yes
mail_location = maildir:{self.maildir}
mail_fsync = always
shutdown_clients = yes
login_trusted_networks =
imap_capability = +LITERAL+
namespace inbox {{
  inbox = yes
  separator = /
{namespaces}}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.users_path}
  mechanisms = plain login
}}
{oauth}userdb {{
  driver = passwd-file
  args = username_format=%u {self.users_path}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.starttls_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.port}
    ssl = yes
  }}
  process_limit = 20
}}
service imap {{
  process_limit = 20
}}
service anvil {{
  chroot =
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
""")

    # --- process control

    def start(self, timeout=START_TIMEOUT):
        """Starts the master in the foreground (-F) and waits, within timeout, until the
        implicit-TLS port greets. The ports are kept across restarts."""
        assert self.process is None or self.process.poll() is not None, "already running"
        fresh = self.port is None
        for attempt in range(START_ATTEMPTS if fresh else 1):
            if fresh:
                self.port, self.starttls_port = free_port(), free_port()
            self._write_config()
            with open(self.log_path, "ab") as log:
                offset = log.tell()
                log.write(f"--- starting dovecot -F -c {self.config_path}\n".encode())
                log.flush()
                self.process = subprocess.Popen(
                    [DOVECOT, "-F", "-c", str(self.config_path)], stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, cwd=self.directory,
                    start_new_session=True)
            try:
                self._wait_ready(timeout)
                return self
            except AssertionError:
                startup = self.log_text()[offset:]
                if not fresh or attempt + 1 == START_ATTEMPTS or "in use" not in startup:
                    raise
                self.process.wait(timeout=STOP_TIMEOUT)
                self.port = None
        return self

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"dovecot exited with {self.process.returncode} while "
                                     f"starting:\n{self.log_text()[-5000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw:
                    # Only "is it up": a test may serve a certificate for a wrong name.
                    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    probe.check_hostname = False
                    probe.verify_mode = ssl.CERT_NONE
                    with probe.wrap_socket(raw) as tls:
                        tls.settimeout(2)
                        greeting = tls.recv(4096)
                        if greeting.startswith(b"* OK"):
                            return
                        last_error = f"greeting {greeting[:100]!r}"
            except (OSError, ssl.SSLError) as error:
                last_error = error
            time.sleep(0.05)
        self._terminate()
        raise AssertionError(f"dovecot not ready on 127.0.0.1:{self.port} after {timeout}s "
                             f"({last_error}):\n{self.log_text()[-5000:]}")

    def _signal_group(self, sig):
        try:
            os.killpg(self.process.pid, sig)
            return True
        except ProcessLookupError:
            return False

    def _terminate(self):
        """The master and every process of its group (it was started in a session of its own):
        a master stopped by SIGTERM leaves its imap and imap-login processes serving the
        connections they have, so a client's kept-open connection would go on working. SIGTERM
        to all, then SIGKILL to what is left after STOP_TIMEOUT."""
        if self.process is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self._signal_group(0) and time.monotonic() < deadline:
            self._signal_group(signal.SIGTERM)
            time.sleep(0.05)
        self._signal_group(signal.SIGKILL)

    def stop(self):
        """The destination down: every Dovecot process ends (so open connections are cut) and
        the ports close, within bounded waits. The Maildir stays."""
        self._terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and self._port_open(self.port):
            time.sleep(0.05)

    def restart(self):
        self.stop()
        return self.start()

    def running(self):
        return self.process is not None and self.process.poll() is None

    def close(self):
        """Stops everything and removes the directory (the fixture's teardown)."""
        self.stop()
        if self.introspection:
            self.introspection.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    @staticmethod
    def _port_open(port):
        if port is None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    def doveadm(self, *arguments, timeout=IO_TIMEOUT):
        return subprocess.run([DOVEADM, "-c", str(self.config_path), *arguments],
                              capture_output=True, text=True, timeout=timeout)

    def reload(self):
        result = self.doveadm("reload")
        assert result.returncode == 0, f"doveadm reload: {result.stdout}{result.stderr}"

    def set_password(self, password):
        """The account's password becomes `password` (takes effect for the next login)."""
        self.password = password
        self._write_users()
        if self.running():
            self.reload()

    def use_certificate(self, name):
        """Serves a certificate for `name` from now on (restarts when running)."""
        self.certificate_name = name
        if self.running():
            self.restart()

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def logins(self):
        """Every successful login in the log: [{"user", "method", "tls"}] in order. Dovecot
        counts loopback as secure (it would take a plaintext LOGIN on the STARTTLS port), so a
        test checks here that a client used TLS: "TLS" is in the login line when it did."""
        found = []
        for line in self.log_text().splitlines():
            match = re.search(r"imap-login: (?:Info: )?Login: user=<([^>]*)>, method=([A-Z0-9-]+), (.*)$",
                              line)
            if match:
                found.append({"user": match.group(1), "method": match.group(2),
                              "tls": bool(re.search(r", TLS(, |$)", match.group(3)))})
        return found

    def wait_for_logins(self, count, timeout=10.0):
        """logins() once it has at least count entries (the login process logs just after
        answering), bounded."""
        deadline = time.monotonic() + timeout
        while len(self.logins()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.logins()

    # --- clients

    def client_context(self):
        """TLS client context trusting the test CA only, host names checked."""
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        context.check_hostname = True
        return context

    def imap(self, starttls=False, login=True):
        """imaplib client over implicit TLS (or STARTTLS), CA-verified, logged in."""
        if starttls:
            client = imaplib.IMAP4("127.0.0.1", self.starttls_port, timeout=IO_TIMEOUT)
            client.starttls(ssl_context=self.client_context())
        else:
            client = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=self.client_context(),
                                       timeout=IO_TIMEOUT)
        if login:
            client.login(self.username, self.password)
        return client

    def imap_message_ids(self, mailbox="INBOX"):
        """Message-IDs in the mailbox in UID order, asked over IMAP."""
        client = self.imap()
        try:
            typ, _ = client.select(mailbox, readonly=True)
            assert typ == "OK", f"SELECT {mailbox}: {typ}"
            typ, data = client.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            assert typ == "OK", f"UID FETCH: {typ} {data}"
            found = []
            for item in data:
                if isinstance(item, tuple):
                    found.append(message_id_of(item[1]))
            return found
        finally:
            try:
                client.logout()
            except (OSError, imaplib.IMAP4.error):
                pass

    # --- the Maildir, read directly (works while Dovecot is stopped)

    def mailbox_dir(self, mailbox="INBOX"):
        return self.maildir if mailbox == "INBOX" else self.maildir / f".{mailbox}"

    def _uid_order(self, directory):
        """base file name -> UID, from dovecot-uidlist (written when a message gets its UID,
        for APPEND before the tagged OK)."""
        order = {}
        try:
            lines = (directory / "dovecot-uidlist").read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return order
        for line in lines[1:]:
            match = re.match(r"^(\d+)\b.*?:(\S+)$", line)
            if match:
                order[match.group(2).split(":2,")[0]] = int(match.group(1))
        return order

    def messages(self, mailbox="INBOX"):
        """[(path, bytes, flags)] of every message in new/ and cur/, in UID order (files not
        yet in dovecot-uidlist last, by name)."""
        directory = self.mailbox_dir(mailbox)
        files = [p for sub in ("new", "cur") if (directory / sub).is_dir()
                 for p in (directory / sub).iterdir() if p.is_file()]
        order = self._uid_order(directory)
        files.sort(key=lambda p: (order.get(p.name.split(":2,")[0], 1 << 62), p.name))
        result = []
        for path in files:
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # moved new/ -> cur/ meanwhile; it is counted there
                continue
            match = MAILDIR_FLAGS_RE.search(path.name)
            result.append((path, data, match.group(1) if match else ""))
        return result

    def message_ids(self, mailbox="INBOX"):
        """The Message-ID of every message in the mailbox, in UID order."""
        return [message_id_of(data) for _, data, _ in self.messages(mailbox)]

    def wait_for_messages(self, count, mailbox="INBOX", timeout=30.0):
        """Polls the Maildir until it holds at least count messages (bounded); returns them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(mailbox)
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            time.sleep(0.02)


def message_id_of(data):
    """The Message-ID header's value (angle brackets included) of a message's bytes, or None."""
    header = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    match = re.search(rb"(?im)^message-id:[ \t]*(?:\r?\n[ \t]+)?(<[^>\r\n]*>)", header)
    return match.group(1).decode("utf-8", "replace") if match else None


@pytest.fixture
def make_dovecot(request, test_ca, tmp_path):
    """make_dovecot(**options) -> a running Dovecot (options as for Dovecot()); every instance
    is stopped and its directory removed in teardown; its log is kept as dovecotN.log in the
    test's tmp_path."""
    made = []
    request.node.dovecot_instances = made

    def factory(start=True, **options):
        instance = Dovecot(test_ca, **options)
        made.append(instance)
        if start:
            instance.start()
        return instance

    yield factory
    for index, instance in enumerate(made):
        instance.stop()
        # Its log outlives its directory in pytest's tmp_path (kept for the last runs).
        (tmp_path / f"dovecot{index}.log").write_text(instance.log_text())
        instance.close()


@pytest.fixture
def dovecot(make_dovecot):
    return make_dovecot()
