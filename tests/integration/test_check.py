"""`mailpopbox check CONFIG.json`: validates a config against this machine without starting the
server. One "error: ..." or "warning: ..." line per problem, then "config OK" or "N problem(s)";
exit 0 only without errors."""

import socket
import subprocess
from dataclasses import dataclass

import pytest


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


def run_check(server, path=None):
    done = subprocess.run([str(server.binary), "check", str(path or server.config_path)],
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
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


def test_running_server_holds_its_ports(make_server):
    server = make_server()
    result = run_check(server)
    assert result.status == 1, result
    assert f"error: SMTPPort {server.smtp_port}: in use" in result.errors, result
    assert f"error: POP3Port {server.pop3_port}: in use" in result.errors, result


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
