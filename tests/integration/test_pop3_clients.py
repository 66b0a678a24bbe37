"""Real POP3 clients against the server over implicit TLS: mpop (delivering into a local
Maildir, UIDL-based "only new" fetching with keep) and fetchmail (keep + uidl, an MDA that
writes each message to a file) and getmail6 (SimplePOP3SSLRetriever, only unseen UIDLs)."""

import os
import subprocess

import pytest

from conftest import free_port, make_message, require_tool
from pop3util import deliver, maildrop_files, password, user
from test_pop3_exactness import TRICKY_BODY

CLIENT_TIMEOUT = 60


def lf(data):
    """Local mail files use LF line ends."""
    return data.replace(b"\r\n", b"\n")


def run_client(argv, env=None):
    result = subprocess.run(argv, capture_output=True, timeout=CLIENT_TIMEOUT, env=env)
    return result.returncode, (result.stdout + result.stderr).decode(errors="replace")


# --- mpop --------------------------------------------------------------------------------------

class Mpop:
    """An mpop account for mailbox@example.org with its own rc file, UIDL file and Maildir."""

    def __init__(self, server, directory, cert):
        self.directory = directory
        self.maildir = directory / "Maildir"
        for sub in ("tmp", "new", "cur"):
            (self.maildir / sub).mkdir(parents=True)
        self.rc = directory / "mpoprc"
        self.rc.write_text(
            "defaults\n"
            "account test\n"
            "host 127.0.0.1\n"
            f"port {server.pop3_port}\n"
            "tls on\n"
            "tls_starttls off\n"
            f"tls_trust_file {cert}\n"
            "tls_host_override mx.example.org\n"
            f"user {user()}\n"
            f"passwordeval echo {password()}\n"
            f"delivery maildir {self.maildir}\n"
            "keep on\n"
            "only_new on\n"
            "received_header off\n"
            f"uidls_file {directory / 'uidls'}\n"
            "timeout 30\n"
            "account default : test\n")
        self.rc.chmod(0o600)

    def run(self):
        code, output = run_client(["mpop", "--quiet", f"--file={self.rc}", "test"])
        assert code == 0, f"mpop exited with {code}:\n{output}"
        return output

    def delivered(self):
        """name -> content of every message in the local Maildir."""
        return {p.name: p.read_bytes() for sub in ("new", "cur")
                for p in (self.maildir / sub).iterdir()}


@pytest.fixture
def mpop(server, tmp_path, certs):
    require_tool("mpop", "mpop")
    directory = tmp_path / "mpop"
    directory.mkdir()
    return Mpop(server, directory, certs["example.org"][0])


def test_mpop_downloads_every_message_into_a_local_maildir(server, mpop):
    deliver(server, make_message("first"))
    deliver(server, make_message("tricky", TRICKY_BODY))
    deliver(server, make_message("third"))
    mpop.run()
    local = sorted(mpop.delivered().values())
    assert local == sorted(lf(p.read_bytes()) for p in maildrop_files(server))
    assert len(maildrop_files(server)) == 3, "keep on: nothing may be deleted"


def test_mpop_second_run_fetches_only_the_new_message(server, mpop):
    deliver(server, make_message("first"))
    deliver(server, make_message("second"))
    mpop.run()
    before = mpop.delivered()
    assert len(before) == 2
    deliver(server, make_message("after the first run", b"new\r\n"))
    mpop.run()
    after = mpop.delivered()
    added = set(after) - set(before)
    assert len(after) == 3 and len(added) == 1
    newest = maildrop_files(server)[-1]
    assert newest.read_bytes().endswith(b"new\r\n")
    assert after[added.pop()] == lf(newest.read_bytes())


def test_mpop_run_with_nothing_new_fetches_nothing(server, mpop):
    deliver(server, make_message("only"))
    mpop.run()
    mpop.run()
    assert len(mpop.delivered()) == 1


def test_mpop_without_keep_empties_the_maildrop(server, mpop):
    deliver(server, make_message("one"))
    deliver(server, make_message("two"))
    mpop.rc.write_text(mpop.rc.read_text().replace("keep on\n", "keep off\n"))
    mpop.run()
    assert len(mpop.delivered()) == 2
    assert maildrop_files(server) == []


def test_mpop_with_starttls_on_the_stls_port(make_server, tmp_path, certs):
    require_tool("mpop", "mpop")
    server = make_server({"POP3STLSPort": free_port()})
    deliver(server, make_message("via stls"))
    directory = tmp_path / "mpop-stls"
    directory.mkdir()
    client = Mpop(server, directory, certs["example.org"][0])
    client.rc.write_text(client.rc.read_text()
                         .replace(f"port {server.pop3_port}\n",
                                  f"port {server.config['POP3STLSPort']}\n")
                         .replace("tls_starttls off\n", "tls_starttls on\n"))
    client.run()
    assert list(client.delivered().values()) == [lf(maildrop_files(server)[0].read_bytes())]


# --- fetchmail ---------------------------------------------------------------------------------

class Fetchmail:
    """A fetchmail poll of mailbox@example.org with keep + uidl; an MDA script writes each
    message to its own file in out/."""

    def __init__(self, server, directory, cert):
        self.directory = directory
        self.out = directory / "out"
        self.out.mkdir()
        self.mda = directory / "mda.sh"
        self.mda.write_text(f'#!/bin/sh\nexec cat > "$(mktemp {self.out}/msg.XXXXXXXX)"\n')
        self.mda.chmod(0o755)
        self.rc = directory / "fetchmailrc"
        self.rc.write_text(
            "set no syslog\n"
            "set invisible\n"
            f"poll 127.0.0.1 with protocol pop3 port {server.pop3_port} uidl timeout 30\n"
            f'  user "{user()}" there with password "{password()}" is "root" here\n'
            f"  options ssl sslcertck sslcertfile {cert} sslcommonname mx.example.org keep\n"
            f'  mda "{self.mda}"\n')
        self.rc.chmod(0o600)  # fetchmail refuses an rc file others can read
        self.env = dict(os.environ, FETCHMAILHOME=str(directory), HOME=str(directory),
                        LC_ALL="C")

    def run(self, expect_mail=True):
        code, output = run_client(
            ["fetchmail", "-f", str(self.rc), "-i", str(self.directory / "fetchids"),
             "--nodetach", "--nosyslog", "--silent"], env=self.env)
        # 0: mail retrieved; 1: no new mail (fetchmail(1) EXIT CODES).
        assert code == (0 if expect_mail else 1), f"fetchmail exited with {code}:\n{output}"
        return output

    def delivered(self):
        return {p.name: p.read_bytes() for p in self.out.iterdir()}


@pytest.fixture
def fetchmail(server, tmp_path, certs):
    require_tool("fetchmail", "fetchmail")
    directory = tmp_path / "fetchmail"
    directory.mkdir()
    return Fetchmail(server, directory, certs["example.org"][0])


def test_fetchmail_downloads_every_message(server, fetchmail):
    deliver(server, make_message("first"))
    deliver(server, make_message("tricky", TRICKY_BODY))
    fetchmail.run()
    local = sorted(fetchmail.delivered().values())
    assert local == sorted(lf(p.read_bytes()) for p in maildrop_files(server))
    assert len(maildrop_files(server)) == 2, "keep: nothing may be deleted"


def test_fetchmail_second_run_fetches_only_the_new_message(server, fetchmail):
    deliver(server, make_message("first"))
    fetchmail.run()
    before = fetchmail.delivered()
    deliver(server, make_message("after the first run", b"new\r\n"))
    fetchmail.run()
    after = fetchmail.delivered()
    added = set(after) - set(before)
    assert len(after) == 2 and len(added) == 1
    assert after[added.pop()].endswith(b"new\n")
    fetchmail.run(expect_mail=False)
    assert len(fetchmail.delivered()) == 2


# --- getmail6 ----------------------------------------------------------------------------------

class Getmail:
    """getmail6 with SimplePOP3SSLRetriever; read_all off and delete off, so only messages whose
    UIDL it has not seen are fetched. Its Maildir destination refuses to run as root, so as
    root (the usual CI container) an external MDA writes each message to its own file."""

    def __init__(self, server, directory):
        self.directory = directory
        self.maildir = directory / "Maildir"
        for sub in ("tmp", "new", "cur"):
            (self.maildir / sub).mkdir(parents=True)
        if os.geteuid() == 0:
            mda = directory / "mda.sh"
            mda.write_text(f'#!/bin/sh\nexec cat > "$(mktemp {self.maildir}/new/msg.XXXXXXXX)"\n')
            mda.chmod(0o755)
            destination = f"type = MDA_external\npath = {mda}\nallow_root_commands = true\n"
        else:
            destination = f"type = Maildir\npath = {self.maildir}/\n"
        self.rc = directory / "getmailrc"
        self.rc.write_text(
            "[retriever]\n"
            "type = SimplePOP3SSLRetriever\n"
            "server = 127.0.0.1\n"
            f"port = {server.pop3_port}\n"
            f"username = {user()}\n"
            f"password = {password()}\n"
            "\n"
            "[destination]\n" + destination +
            "\n"
            "[options]\n"
            "verbose = 0\n"
            "read_all = false\n"
            "delete = false\n"
            "delivered_to = false\n"
            "received = false\n"
            "message_log_syslog = false\n")

    def run(self):
        code, output = run_client(["getmail", f"--getmaildir={self.directory}",
                                   f"--rcfile={self.rc}"])
        assert code == 0, f"getmail exited with {code}:\n{output}"
        return output

    def delivered(self):
        return {p.name: p.read_bytes() for sub in ("new", "cur")
                for p in (self.maildir / sub).iterdir()}


@pytest.fixture
def getmail(server, tmp_path):
    require_tool("getmail", "getmail6")
    directory = tmp_path / "getmail"
    directory.mkdir()
    return Getmail(server, directory)


def test_getmail_downloads_every_message_then_only_new_ones(server, getmail):
    deliver(server, make_message("first"))
    deliver(server, make_message("tricky", TRICKY_BODY))
    getmail.run()
    before = getmail.delivered()
    assert sorted(before.values()) == sorted(lf(p.read_bytes()) for p in maildrop_files(server))
    deliver(server, make_message("after the first run", b"new\r\n"))
    getmail.run()
    after = getmail.delivered()
    added = set(after) - set(before)
    assert len(after) == 3 and len(added) == 1
    assert after[added.pop()] == lf(maildrop_files(server)[-1].read_bytes())
    assert len(maildrop_files(server)) == 3
