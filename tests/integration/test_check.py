"""`mailpopbox check CONFIG.json`: validates a config against this machine without starting the
server. One "error: ..." or "warning: ..." line per problem, then "config OK" or "N problem(s)";
exit 0 only without errors. "config OK" means the server will start and reload (issue 11): as
root with User set, files are tried as User; the running server's own ports are no error."""

import grp
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from test_reload import wait_for_log


@dataclass
class CheckResult:
    status: int
    lines: list
    stderr: str

    @property
    def errors(self):
        return [line for line in self.lines if line.startswith("error: ")]

    @property
    def warnings(self):
        return [line for line in self.lines if line.startswith("warning: ")]

    def __str__(self):
        return "\n".join(self.lines) + (f"\n(stderr: {self.stderr})" if self.stderr else "")


def run_check(server, path=None, user=None):
    """`mailpopbox check`, as root or (user) as that user with its own group alone."""
    ids = {}
    if user:
        account = pwd.getpwnam(user)
        ids = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    done = subprocess.run([str(server.binary), "check", str(path or server.config_path)],
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL, **ids)
    return CheckResult(done.returncode, done.stdout.decode().splitlines(),
                       done.stderr.decode(errors="replace"))


def assert_fails_with(result, *fragments):
    """Exit 1, a summary counting every problem line, and one error line holding every
    fragment."""
    assert result.status == 1, result
    assert result.lines[-1] == f"{len(result.errors) + len(result.warnings)} problem(s)", result
    matching = [line for line in result.errors if all(f in line for f in fragments)]
    assert matching, f"no error line with {fragments}:\n{result}"


def edit_first_server(**changes):
    """A `servers` function for make_server: changes Servers[0]'s keys (None deletes one)."""
    def edit(entries):
        for key, value in changes.items():
            if value is None:
                entries[0].pop(key, None)
            else:
                entries[0][key] = str(value)
        return entries
    return edit


def test_good_config_is_ok_and_nothing_is_started_or_created(make_server):
    server = make_server(start=False)
    result = run_check(server)
    assert result.status == 0, result
    assert result.lines == ["config OK"], result
    # Checking creates nothing and leaves every port free.
    assert not server.maildrop("example.org").exists()
    assert not (server.directory / "spool").exists()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", server.smtp_port))


def test_config_that_does_not_load_gives_the_serve_error(make_server):
    server = make_server(overrides={"Hostname": None}, start=False)
    result = run_check(server)
    assert result.status == 1, result
    assert result.lines == ["error: Hostname: missing", "1 problem(s)"], result


def test_missing_config_file_is_an_error(make_server, tmp_path):
    server = make_server(start=False)
    result = run_check(server, tmp_path / "nonexistent.json")
    assert_fails_with(result, "nonexistent.json")


def test_missing_certificate_file_is_an_error(make_server, tmp_path):
    missing = tmp_path / "missing.crt"
    server = make_server(servers=edit_first_server(TLSCertPath=missing), start=False)
    assert_fails_with(run_check(server), "Servers[0].TLSCertPath", str(missing),
                      "No such file or directory")


def test_certificate_and_key_that_do_not_match_is_an_error(make_server, certs):
    # example.org's certificate with example.net's key.
    _, other_key = certs["example.net"]
    server = make_server(servers=edit_first_server(TLSKeyPath=other_key), start=False)
    result = run_check(server)
    assert_fails_with(result, "Servers[example.org].TLSKeyPath", str(other_key))
    assert len(result.errors) == 1, result


def test_maildrop_under_a_regular_file_is_an_error(make_server, tmp_path):
    regular = tmp_path / "a-file"
    regular.write_text("not a directory\n")
    server = make_server(servers=edit_first_server(MaildropPath=regular / "maildrop"),
                         start=False)
    assert_fails_with(run_check(server), "Servers[0].MaildropPath", str(regular / "maildrop"),
                      "not a directory")


def test_maildrop_that_is_a_regular_file_is_an_error(make_server, tmp_path):
    regular = tmp_path / "a-file"
    regular.write_text("not a directory\n")
    server = make_server(servers=edit_first_server(MaildropPath=regular), start=False)
    assert_fails_with(run_check(server), "Servers[0].MaildropPath", "is not a directory")


def test_maildrop_whose_parent_is_missing_is_an_error(make_server, tmp_path):
    path = tmp_path / "no" / "such" / "maildrop"
    server = make_server(servers=edit_first_server(MaildropPath=path), start=False)
    assert_fails_with(run_check(server), "Servers[0].MaildropPath", str(path),
                      "does not exist")


def test_spool_under_a_regular_file_is_an_error(make_server, tmp_path):
    regular = tmp_path / "a-file"
    regular.write_text("not a directory\n")
    server = make_server(overrides={"SpoolPath": str(regular / "spool")}, start=False)
    assert_fails_with(run_check(server), "SpoolPath", "not a directory")


@pytest.mark.parametrize("key", ["SMTPPort", "POP3Port", "SubmissionPort", "SubmissionTLSPort"])
def test_port_in_use_is_an_error(make_server, key):
    server = make_server(start=False)
    port = server.config[key]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        result = run_check(server)
    assert_fails_with(result, f"{key} {port}: in use")
    assert len(result.errors) == 1, result


# --- while the server runs: `mailpopbox check CONFIG && systemctl reload mailpopbox` ----------

def notes(result):
    return [line for line in result.lines if line.startswith("note: ")]


def test_running_server_ports_are_recognised_as_its_own(make_server):
    server = make_server()
    result = run_check(server)
    assert result.status == 0, result
    assert result.errors == [] and result.lines[-1] == "config OK", result
    [note] = notes(result)
    assert f"running server (pid {server.process.pid})" in note, result
    assert f"SMTPPort {server.smtp_port}" in note and f"POP3Port {server.pop3_port}" in note, \
        result
    # ... && systemctl reload mailpopbox
    server.process.send_signal(signal.SIGHUP)
    wait_for_log(server, "event=reloaded")


def test_port_held_by_another_program_while_the_server_runs_is_an_error(make_server, tmp_path):
    server = make_server()
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        # The same server (same SpoolPath, so the same pid file) with POP3 moved to that port.
        changed = dict(server.config, POP3Port=port)
        path = tmp_path / "changed.json"
        path.write_text(json.dumps(changed))
        result = run_check(server, path)
    assert_fails_with(result, f"POP3Port {port}: in use by another program",
                      f"not by the running server (pid {server.process.pid})")
    assert len(result.errors) == 1, result
    assert f"SMTPPort {server.smtp_port}" in notes(result)[0], result


def test_pid_file_naming_another_program_does_not_excuse_a_port(make_server):
    """A stale pid file whose number now belongs to another program (here this test, which
    holds the port) is not the server: the port is reported."""
    server = make_server(start=False)
    spool = Path(server.config["SpoolPath"])
    spool.mkdir()
    (spool / "mailpopbox.pid").write_text(f"{os.getpid()}\n")
    with socket.socket() as other:
        other.bind(("127.0.0.1", server.smtp_port))
        other.listen()
        result = run_check(server)
    assert_fails_with(result, f"SMTPPort {server.smtp_port}: in use")
    assert len(result.errors) == 1 and notes(result) == [], result


def test_dkim_key_that_does_not_exist_is_an_error(make_server, tmp_path):
    missing = tmp_path / "missing-dkim.key"
    server = make_server(servers=edit_first_server(DKIMSelector="sel", DKIMKeyPath=missing),
                         start=False)
    assert_fails_with(run_check(server), "Servers[0].DKIMKeyPath", str(missing))


def test_dkim_key_that_is_not_a_key_is_an_error(make_server, certs):
    cert, _ = certs["example.org"]
    server = make_server(servers=edit_first_server(DKIMSelector="sel", DKIMKeyPath=cert),
                         start=False)
    assert_fails_with(run_check(server), "Servers[0].DKIMKeyPath")


def test_certificate_naming_neither_hostname_nor_domain_is_a_warning(make_server, tmp_path):
    cert, key = tmp_path / "other.crt", tmp_path / "other.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=mail.other.test",
                    "-addext", "subjectAltName=DNS:mail.other.test,DNS:other.test"],
                   check=True, capture_output=True, timeout=60)
    server = make_server(servers=edit_first_server(TLSCertPath=cert, TLSKeyPath=key),
                         start=False)
    result = run_check(server)
    assert result.status == 0, result
    assert result.errors == [], result
    assert len(result.warnings) == 1, result
    warning = result.warnings[0]
    assert warning.startswith("warning: Servers[0].TLSCertPath"), warning
    assert "mx.example.org" in warning and "example.org" in warning, warning
    assert "mail.other.test, other.test" in warning, warning
    assert result.lines[-1] == "config OK, 1 warning(s)", result


def test_certificate_naming_only_the_domain_is_fine(make_server, tmp_path):
    cert, key = tmp_path / "domain.crt", tmp_path / "domain.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=example.org"],
                   check=True, capture_output=True, timeout=60)
    server = make_server(servers=edit_first_server(TLSCertPath=cert, TLSKeyPath=key),
                         start=False)
    result = run_check(server)
    assert result.lines == ["config OK"], result


def test_every_problem_is_listed_not_just_the_first(make_server, tmp_path):
    regular = tmp_path / "a-file"
    regular.write_text("not a directory\n")
    server = make_server(
        overrides={"SpoolPath": str(regular / "spool")},
        servers=edit_first_server(TLSCertPath=tmp_path / "missing.crt",
                                  MaildropPath=regular / "maildrop"),
        start=False)
    result = run_check(server)
    assert result.status == 1, result
    assert len(result.errors) == 3, result
    assert result.lines[-1] == "3 problem(s)", result


# --- User: check tests what the server, started as root, does as that user ---------------------

USER = "nobody"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to a User")


@needs_root
@pytest.mark.parametrize("overrides, fragment", [
    ({"User": "root"}, 'User: "root" is root'),
    ({"User": "no-such-user-here"}, 'User: no such user "no-such-user-here"'),
    ({"User": USER, "Group": "no-such-group-here"}, 'Group: no such group "no-such-group-here"'),
])
def test_user_the_server_refuses_is_an_error(make_server, overrides, fragment):
    server = make_server(overrides, start=False)
    result = run_check(server)
    assert_fails_with(result, fragment, "refuses to start")
    assert len(result.errors) == 1, result


def installed_as_user(make_server, directory, user=USER):
    """A Server (not started) with "User": user and everything in directory as docs/install.md
    sets it up: config and keys root:GROUP 0640, maildrops and spool owned by the user, 0700."""
    account = pwd.getpwnam(user)

    def give_to_user(path):
        path.mkdir(mode=0o700)
        os.chown(path, account.pw_uid, account.pw_gid)
        return str(path)

    def readable(source):
        copy = directory / Path(source).name
        shutil.copy(source, copy)
        os.chown(copy, 0, account.pw_gid)
        copy.chmod(0o640)
        return str(copy)

    def servers(entries):
        for entry in entries:
            entry["MaildropPath"] = give_to_user(directory / f"maildrop-{entry['Domain']}")
            entry["TLSCertPath"] = readable(entry["TLSCertPath"])
            entry["TLSKeyPath"] = readable(entry["TLSKeyPath"])
        return entries
    server = make_server({"User": user, "SpoolPath": give_to_user(directory / "spool")},
                         servers=servers, start=False)
    server.config_path = directory / "config.json"
    write_config(server)
    return server


def write_config(server):
    server.config_path.write_text(json.dumps(server.config, indent=2))
    os.chown(server.config_path, 0, grp.getgrnam("nogroup").gr_gid)
    server.config_path.chmod(0o640)


@needs_root
def test_user_that_can_read_and_write_everything_is_ok(make_server, open_directory):
    server = installed_as_user(make_server, open_directory)
    result = run_check(server)
    assert result.lines == ["config OK"], result
    # The probe files are gone again.
    for path in open_directory.rglob(".mailpopbox-check*"):
        raise AssertionError(f"left behind: {path}")


@needs_root
@pytest.mark.parametrize("closed_by, hint", [
    ("its mode", "chmod g+r"),
    ("its directory", "enter every directory above it"),
])
def test_key_only_root_can_read_fails_check_as_it_fails_every_reload(make_server, open_directory,
                                                                      closed_by, hint):
    server = installed_as_user(make_server, open_directory)
    key = Path(server.config["Servers"][0]["TLSKeyPath"])
    if closed_by == "its mode":
        os.chown(key, 0, 0)
        key.chmod(0o600)
    else:
        closed = open_directory / "closed"
        closed.mkdir(mode=0o700)
        key = key.rename(closed / key.name)
        server.config["Servers"][0]["TLSKeyPath"] = str(key)
        write_config(server)
    result = run_check(server)
    assert_fails_with(result, "Servers[0].TLSKeyPath", f"User {USER} cannot read {key}",
                      "Permission denied", "on every reload", hint)
    assert len(result.errors) == 1, result
    # What check foretells: the server starts (reading the key as root), and then every
    # reload fails.
    server.start()
    server.process.send_signal(signal.SIGHUP)
    wait_for_log(server, "event=reload_failed")
    assert "Permission denied" in server.log_text().split("event=reload_failed")[1], \
        server.log_text()


@needs_root
def test_config_only_root_can_read_is_an_error(make_server, open_directory):
    server = installed_as_user(make_server, open_directory)
    server.config_path.chmod(0o600)
    result = run_check(server)
    assert_fails_with(result, "config:", f"User {USER} cannot read {server.config_path}",
                      "on every reload")
    assert len(result.errors) == 1, result


@needs_root
def test_dkim_key_only_root_can_read_is_an_error(make_server, open_directory):
    server = installed_as_user(make_server, open_directory)
    key = open_directory / "dkim.pem"
    made = subprocess.run([str(server.binary), "dkim-keygen", "example.org", "sel", str(key)],
                          capture_output=True, timeout=60)
    assert made.returncode == 0, made.stderr
    key.chmod(0o600)  # written by root: root's alone
    server.config["Servers"][0].update(DKIMSelector="sel", DKIMKeyPath=str(key))
    write_config(server)
    result = run_check(server)
    assert_fails_with(result, "Servers[0].DKIMKeyPath", f"User {USER} cannot read {key}")
    assert len(result.errors) == 1, result


@needs_root
@pytest.mark.parametrize("key", ["MaildropPath", "SpoolPath"])
def test_directory_the_user_cannot_write_is_an_error(make_server, open_directory, key):
    server = installed_as_user(make_server, open_directory)
    path = Path(server.config["Servers"][0]["MaildropPath"] if key == "MaildropPath"
                else server.config["SpoolPath"])
    path.chmod(0o500)  # the user's own, but read-only: starting does not change that
    result = run_check(server)
    assert_fails_with(result, key, f"User {USER} cannot write in {path}", "Permission denied")
    assert len(result.errors) == 1, result


@needs_root
@pytest.mark.parametrize("exists", [True, False])
def test_maildrop_the_user_cannot_reach_is_an_error(make_server, open_directory, exists):
    server = installed_as_user(make_server, open_directory)
    closed = open_directory / "closed"
    closed.mkdir(mode=0o700)
    maildrop = closed / "maildrop"
    if exists:
        maildrop.mkdir()
    server.config["Servers"][0]["MaildropPath"] = str(maildrop)
    write_config(server)
    result = run_check(server)
    assert_fails_with(result, "Servers[0].MaildropPath", f"User {USER} cannot reach {maildrop}",
                      "a directory above it cannot be entered")
    assert len(result.errors) == 1, result


@needs_root
@pytest.mark.parametrize("key", ["MaildropPath", "SpoolPath"])
def test_directory_root_made_is_a_warning_until_the_server_starts(make_server, open_directory,
                                                                  key):
    """Started as root, the server gives its directories to User, so a directory root made is
    no obstacle to a start; a reload does not give it, hence the warning."""
    server = installed_as_user(make_server, open_directory)
    path = Path(server.config["Servers"][0]["MaildropPath"] if key == "MaildropPath"
                else server.config["SpoolPath"])
    os.chown(path, 0, 0)
    result = run_check(server)
    assert result.status == 0, result
    assert result.errors == [] and len(result.warnings) == 1, result
    warning = result.warnings[0]
    assert f"User {USER} cannot write in {path} (owned by root)" in warning, warning
    assert f"chown -R {USER}:nogroup {path}" in warning, warning
    assert result.lines[-1] == "config OK, 1 warning(s)", result
    server.start()
    result = run_check(server)
    assert result.errors == [] and result.warnings == [], result
    assert path.stat().st_uid == pwd.getpwnam(USER).pw_uid


# --- check run without root ---------------------------------------------------------------------

@needs_root
def test_check_as_the_user_itself_needs_no_root(make_server, open_directory):
    """The systemd unit's way: the service runs as the user, and check is run as it too."""
    server = installed_as_user(make_server, open_directory)
    result = run_check(server, user=USER)
    assert result.lines == ["config OK"], result


@needs_root
@pytest.mark.parametrize("user, fragments", [
    # Another user: check cannot become it, and says what it tested as instead.
    ("daemon", ["runs as uid {uid} (nobody), not root", "not as User daemon",
                "run check as root"]),
    # A User the server ignores without root but refuses as root.
    ("root", ['User: "root" is root', "would refuse to start"]),
])
def test_check_without_root_warns_what_it_could_not_test(make_server, open_directory, user,
                                                         fragments):
    server = installed_as_user(make_server, open_directory)
    server.config["User"] = user
    write_config(server)
    result = run_check(server, user=USER)
    assert result.status == 0, result
    [warning] = result.warnings
    uid = pwd.getpwnam(USER).pw_uid
    for fragment in fragments:
        assert fragment.format(uid=uid) in warning, warning
    if user == "root":
        assert_fails_with(run_check(server), 'User: "root" is root')  # as root: an error


@needs_root
def test_check_without_root_cannot_see_a_root_started_servers_sockets(make_server,
                                                                     open_directory):
    """Started as root, the server's descriptors stay root's after it drops to User; check
    then cannot tell its ports from another program's and says to run it as root."""
    server = installed_as_user(make_server, open_directory)
    server.start()
    result = run_check(server, user=USER)
    assert_fails_with(result, f"SMTPPort {server.smtp_port}: in use",
                      f"running server (pid {server.process.pid}", "run check as root")
    assert run_check(server).status == 0


@needs_root
def test_spool_left_out_is_checked_where_the_server_will_keep_it(make_server, open_directory):
    """An original config (no SpoolPath) run by an unprivileged user: the server keeps its
    queue in the first maildrop when it cannot make /var/spool/mailpopbox (root's /var/spool
    here), and check follows it there rather than failing on the default."""
    server = installed_as_user(make_server, open_directory)
    del server.config["SpoolPath"]
    write_config(server)
    result = run_check(server, user=USER)
    assert result.status == 0 and result.errors == [], result
    [warning] = result.warnings
    fallback = Path(server.config["Servers"][0]["MaildropPath"]) / ".mailpopbox-spool"
    assert "SpoolPath: not set" in warning and "/var/spool/mailpopbox" in warning, warning
    assert f"keep its queue in {fallback}" in warning, warning


# --- Destination (issue 13): files and hosts checked, nothing sent -------------------------------

GOOGLE_CLIENT = {"installed": {
    "client_id": "1234-abc.apps.googleusercontent.com", "client_secret": "GOCSPX-test",
    "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    "token_uri": "https://oauth2.googleapis.com/token",
    "redirect_uris": ["http://localhost"]}}


def oauth_files(directory, client=GOOGLE_CLIENT, token=True):
    """(client file, token file) in directory as `authorize` leaves them (token 0600)."""
    client_file, token_file = directory / "client.json", directory / "token.json"
    client_file.write_text(client if isinstance(client, str) else json.dumps(client))
    if token:
        token_file.write_text(json.dumps({"refresh_token": "1//test-refresh",
                                          "scope": "https://www.googleapis.com/auth/gmail.insert"}))
        token_file.chmod(0o600)
    return client_file, token_file


def with_destination(destination):
    def edit(entries):
        entries[0]["Destination"] = destination
        return entries
    return edit


def gmail_destination(client_file, token_file, **extra):
    return {"Type": "gmail", "OAuthClientFile": str(client_file),
            "OAuthTokenFile": str(token_file), "GmailAPIURL": "https://127.0.0.1:8443", **extra}


def test_destination_with_good_files_and_hosts_is_ok(make_server, tmp_path, certs):
    client_file, token_file = oauth_files(tmp_path)
    ca_file = certs["example.org"][0]
    server = make_server(servers=with_destination(gmail_destination(
        client_file, token_file, TLSCAFile=str(ca_file))), start=False)
    assert run_check(server).lines == ["config OK"]
    imap = make_server(servers=with_destination({
        "Type": "imap", "Host": "localhost", "Username": "u", "Password": "app password",
        "TLSCAFile": str(ca_file)}), start=False)
    result = run_check(imap)
    assert result.lines == ["config OK"], result
    assert "app password" not in str(result)


def test_missing_token_file_says_to_run_authorize(make_server, tmp_path):
    client_file, token_file = oauth_files(tmp_path, token=False)
    server = make_server(servers=with_destination(gmail_destination(client_file, token_file)),
                         start=False)
    result = run_check(server)
    assert_fails_with(result, "Servers[0].Destination.OAuthTokenFile", str(token_file),
                      f"run mailpopbox authorize {server.config_path} example.org")
    assert len(result.errors) == 1, result


def test_token_file_without_refresh_token_says_to_run_authorize(make_server, tmp_path):
    client_file, token_file = oauth_files(tmp_path)
    token_file.write_text("{}")
    server = make_server(servers=with_destination(gmail_destination(client_file, token_file)),
                         start=False)
    assert_fails_with(run_check(server), "Servers[0].Destination.OAuthTokenFile",
                      "no refresh_token", "run mailpopbox authorize")


def test_token_file_open_to_others_is_a_warning(make_server, tmp_path):
    client_file, token_file = oauth_files(tmp_path)
    token_file.chmod(0o644)
    server = make_server(servers=with_destination(gmail_destination(client_file, token_file)),
                         start=False)
    result = run_check(server)
    assert result.status == 0, result
    [warning] = result.warnings
    assert "Servers[0].Destination.OAuthTokenFile" in warning and "chmod 600" in warning, warning
    assert "1//test-refresh" not in str(result)


@pytest.mark.parametrize("client, fragment", [
    ("{not json", "is not JSON"),
    ({"installed": {"client_id": "x", "auth_uri": "https://a.example/auth"}}, "no token_uri"),
    ({"installed": {"token_uri": "https://t.example/token"}}, "no client_id"),
    ({"client_id": "x", "auth_uri": "https://a.example/auth", "token_uri": "http://t.example/token"},
     "token_uri must be https://"),
])
def test_bad_oauth_client_file_is_an_error(make_server, tmp_path, client, fragment):
    client_file, token_file = oauth_files(tmp_path, client=client)
    server = make_server(servers=with_destination(gmail_destination(client_file, token_file)),
                         start=False)
    result = run_check(server)
    assert_fails_with(result, "Servers[0].Destination.OAuthClientFile", str(client_file),
                      fragment)
    assert len(result.errors) == 1, result


def test_missing_or_garbled_ca_file_is_an_error(make_server, tmp_path):
    client_file, token_file = oauth_files(tmp_path)
    missing = tmp_path / "missing-ca.pem"
    server = make_server(servers=with_destination(gmail_destination(
        client_file, token_file, TLSCAFile=str(missing))), start=False)
    assert_fails_with(run_check(server), "Servers[0].Destination.TLSCAFile", str(missing),
                      "No such file or directory")
    garbled = tmp_path / "garbled-ca.pem"
    garbled.write_text("not a certificate\n")
    server = make_server(servers=with_destination(gmail_destination(
        client_file, token_file, TLSCAFile=str(garbled))), start=False)
    assert_fails_with(run_check(server), "Servers[0].Destination.TLSCAFile", str(garbled),
                      "no PEM CA certificate")


@pytest.mark.parametrize("destination, key", [
    ({"Type": "imap", "Host": "no-such-host.invalid", "Username": "u", "Password": "p"},
     "Servers[0].Destination.Host"),
    ({"GmailAPIURL": "https://no-such-host.invalid/gmail"}, "Servers[0].Destination.GmailAPIURL"),
])
def test_destination_host_that_does_not_resolve_is_an_error(make_server, tmp_path, destination,
                                                           key):
    if destination.get("Type") != "imap":
        destination = gmail_destination(*oauth_files(tmp_path), **destination)
    server = make_server(servers=with_destination(destination), start=False)
    # RFC 6761 6.4: .invalid never resolves; a resolver that cannot be reached says so
    # (a temporary failure, reported as a warning).
    result = run_check(server)
    lines = [line for line in result.errors + result.warnings if key in line]
    assert len(lines) == 1 and "cannot resolve no-such-host.invalid" in lines[0], result


def test_destination_config_error_names_the_key(make_server):
    server = make_server(servers=with_destination({"Type": "imap", "Host": "localhost",
                                                   "Username": "u", "Password": "p",
                                                   "TLS": "none"}), start=False)
    result = run_check(server)
    assert result.lines == ['error: Servers[0].Destination.TLS: must be "implicit" or '
                            '"starttls"', "1 problem(s)"], result


def installed_with_token(make_server, open_directory):
    """installed_as_user with a Gmail Destination whose files are as docs/install.md says:
    the client file readable by User's group, the token file User's own, 0600, in a directory
    of User's."""
    account = pwd.getpwnam(USER)
    server = installed_as_user(make_server, open_directory)
    state = open_directory / "oauth"
    state.mkdir(mode=0o700)
    client_file, token_file = oauth_files(state)
    os.chown(client_file, 0, account.pw_gid)
    client_file.chmod(0o640)
    client_file = client_file.rename(open_directory / "client.json")
    for path in (state, token_file):
        os.chown(path, account.pw_uid, account.pw_gid)
    server.config["Servers"][0]["Destination"] = gmail_destination(client_file, token_file)
    write_config(server)
    return server, client_file, token_file


@needs_root
def test_destination_files_user_can_use_are_ok(make_server, open_directory):
    server, _, _ = installed_with_token(make_server, open_directory)
    result = run_check(server)
    assert result.lines == ["config OK"], result
    for path in open_directory.rglob(".mailpopbox-check*"):
        raise AssertionError(f"left behind: {path}")


@needs_root
def test_token_file_only_root_can_write_is_an_error(make_server, open_directory):
    server, _, token_file = installed_with_token(make_server, open_directory)
    os.chown(token_file, 0, 0)
    result = run_check(server)
    assert_fails_with(result, "Servers[0].Destination.OAuthTokenFile",
                      f"User {USER} cannot read and write {token_file}", "Permission denied",
                      f"chown {USER}:")
    assert len(result.errors) == 1, result


@needs_root
def test_token_directory_user_cannot_write_is_an_error(make_server, open_directory):
    server, _, token_file = installed_with_token(make_server, open_directory)
    os.chown(token_file.parent, 0, 0)
    token_file.parent.chmod(0o755)
    result = run_check(server)
    assert_fails_with(result, "Servers[0].Destination.OAuthTokenFile",
                      f"User {USER} cannot write in {token_file.parent}", "atomically")
    assert len(result.errors) == 1, result


@needs_root
def test_client_file_only_root_can_read_is_an_error(make_server, open_directory):
    server, client_file, _ = installed_with_token(make_server, open_directory)
    os.chown(client_file, 0, 0)
    client_file.chmod(0o600)
    result = run_check(server)
    assert_fails_with(result, "Servers[0].Destination.OAuthClientFile",
                      f"User {USER} cannot read {client_file}")
    assert len(result.errors) == 1, result
