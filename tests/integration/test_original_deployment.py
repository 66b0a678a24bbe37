"""The original mailpopbox's usual deployment must keep working after the switch (MISSION:
drop-in): an unprivileged user on high ports (iptables redirects 25 and 995 to them) with the
original's config, which names none of the new keys. The new defaults it cannot use —
submission on 587/465, the spool in /var/spool — are skipped or moved with a warning instead
of stopping the server."""
import json
import os
import poplib
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (SMTPConnection, free_port, insecure_client_context, make_message)

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="needs root and setpriv to run as an unprivileged user")

USER = "nobody"


@pytest.fixture
def home():
    directory = Path(tempfile.mkdtemp(prefix="mailpopbox-original-", dir="/tmp"))
    account = pwd.getpwnam(USER)
    os.chown(directory, account.pw_uid, account.pw_gid)
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_original_config_runs_unprivileged_on_high_ports(home, certs, mailpopbox_bin):
    account = pwd.getpwnam(USER)
    cert, key = certs["example.org"]
    # The certificate must be readable by the service user, as in the original's setup.
    for source in (cert, key):
        shutil.copy(source, home / source.name)
        os.chown(home / source.name, account.pw_uid, account.pw_gid)
    smtp_port, pop3_port = free_port(), free_port()
    config = {  # only the original's keys
        "SMTPPort": smtp_port, "POP3Port": pop3_port, "Hostname": "mx.example.org",
        "Servers": [{
            "Domain": "example.org", "MailboxPassword": "original-password",
            "TLSKeyPath": str(home / key.name), "TLSCertPath": str(home / cert.name),
            "MaildropPath": str(home / "maildrop"),
            "BlockedAddresses": ["spammed@example.org"],
        }],
    }
    config_path = home / "config.json"
    config_path.write_text(json.dumps(config))
    log_path = home / "log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}",
             "--clear-groups", str(mailpopbox_bin), str(config_path)],
            stdout=log, stderr=subprocess.STDOUT, cwd=home)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                client = SMTPConnection(smtp_port, timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
        with client:
            client.ehlo()
            reply = client.transaction("friend@elsewhere.example", ["shop@example.org"],
                                       make_message("after the switch"))
            assert reply.code == 250, reply
        pop = poplib.POP3_SSL("127.0.0.1", pop3_port, context=insecure_client_context())
        try:
            pop.user("mailbox@example.org")
            pop.pass_("original-password")
            assert pop.stat()[0] == 1
        finally:
            pop.quit()
        log = log_path.read_text()
        assert "event=listener_skipped key=SubmissionPort" in log, log
        assert "event=listener_skipped key=SubmissionTLSPort" in log, log
        assert "event=spool_default_unusable" in log, log
        assert (home / "maildrop" / ".mailpopbox-spool" / "env").is_dir()
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0, log_path.read_text()


def test_explicit_submission_port_that_cannot_be_bound_stops_the_server(make_server):
    busy = __import__("socket").socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        server = make_server({"SubmissionPort": busy.getsockname()[1]}, start=False)
        result = subprocess.run([str(server.binary), str(server.config_path)],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode != 0
        assert "event=listen_failed key=SubmissionPort" in result.stderr
    finally:
        busy.close()
