"""Privilege dropping: started as root with "User" set, the server binds and reads its keys as
root, then serves as that user (issue 5)."""
import os
import poplib
import pwd
import subprocess
from pathlib import Path

import pytest

from conftest import insecure_client_context, make_message

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to test dropping it")

USER = "nobody"


def process_ids(pid):
    ids = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("Uid:", "Gid:", "Groups:")):
            key, _, value = line.partition(":")
            ids[key] = value.split()
    return ids


def start_as(make_server, directory, user=USER, group=None):
    def servers(entries):
        for entry in entries:
            entry["MaildropPath"] = str(directory / f"maildrop-{entry['Domain']}")
        return entries
    overrides = {"User": user, "SpoolPath": str(directory / "spool")}
    if group:
        overrides["Group"] = group
    return make_server(overrides, servers=servers)


def test_serving_process_runs_as_the_configured_user(make_server, open_directory):
    server = start_as(make_server, open_directory)
    account = pwd.getpwnam(USER)
    ids = process_ids(server.process.pid)
    # Real, effective, saved and filesystem ids are all the user's: root cannot come back.
    assert ids["Uid"] == [str(account.pw_uid)] * 4, ids
    assert ids["Gid"] == [str(account.pw_gid)] * 4, ids
    assert ids["Groups"] in ([str(account.pw_gid)], []), ids
    assert "event=privileges_dropped" in server.log_text()


def test_mail_is_stored_and_served_as_the_user(make_server, open_directory):
    server = start_as(make_server, open_directory)
    with server.connect() as client:
        client.ehlo()
        reply = client.transaction("a@elsewhere.example", ["anyone@example.org"],
                                   make_message("as nobody"))
        assert reply.code == 250, reply
    stored = server.message()
    assert stored.path.stat().st_uid == pwd.getpwnam(USER).pw_uid
    pop = poplib.POP3_SSL("127.0.0.1", server.pop3_port, context=insecure_client_context())
    try:
        pop.user("mailbox@example.org")
        pop.pass_("password-example.org")
        assert pop.stat()[0] == 1
        assert b"Subject: as nobody" in b"\r\n".join(pop.retr(1)[1])
        pop.dele(1)
    finally:
        pop.quit()
    assert server.messages() == []


def test_unknown_user_is_a_clear_startup_error(make_server, open_directory):
    def servers(entries):
        for entry in entries:
            entry["MaildropPath"] = str(open_directory / f"maildrop-{entry['Domain']}")
        return entries
    server = make_server({"User": "no-such-user-here", "SpoolPath": str(open_directory / "spool")},
                         servers=servers, start=False)
    result = subprocess.run([str(server.binary), str(server.config_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "no such user" in result.stderr and "no-such-user-here" in result.stderr, result.stderr
