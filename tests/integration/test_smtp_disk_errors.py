"""A disk error while a message is made durable gives a 4xx and leaves nothing behind (issue 2),
also when the message goes to several places at once: two maildrops, or the owner's
submission to local maildrops and the outbound spool (issue 11, point 4). A transaction's reply
describes what was kept: after a 4xx nothing is in any maildrop or the spool, and the client's
retry stores exactly one copy everywhere. A full disk is 452 4.3.1 with the reason logged
(issue 11, point 6). Storage that cannot even be opened answers DATA itself, before any 354
(issue 12); failures while or after the message is written are answered after its final dot. Failures are injected at each step by the LD_PRELOAD shim (slow_fsync.c);
the full disk is also a real one, a small tmpfs."""
import errno
import os
import subprocess

import pytest

from conftest import make_message, queue_id
from dnsfixture import make_dns  # noqa: F401 (fixture)
from sink import (authenticated, make_sink, outbound, outgoing_message,  # noqa: F401 (fixtures)
                  sending_server, transaction, wait_until_dequeued)
from test_smtp_nonblocking import preloaded_shim

TWO_DOMAINS = ["alice@example.org", "bob@example.net"]
# The spool's message file in tmp/: named by the queue id, 15 hex digits (ids_new), unlike
# the envelope's "ID.env.PID.N" and the raw submission "ID.raw".
SPOOL_MESSAGE_TMP = "*/spool1/tmp/" + "[0-9A-F]" * 15


def test_fsync_failure_gives_451_and_leaves_nothing(make_server, tmp_path, monkeypatch):
    with preloaded_shim(tmp_path, monkeypatch, FAIL_FSYNC=1):
        server = make_server()
    with server.connect() as client:
        client.ehlo()
        reply = client.transaction("a@elsewhere.example", ["someone@example.org"],
                                   make_message("doomed"))
        assert (reply.code, reply.enhanced) == (451, "4.3.0"), reply
        # The session goes on: the client may try again.
        assert client.command("NOOP").code == 250
    maildrop = server.maildrop()
    for sub in ("tmp", "new", "cur"):
        assert not (maildrop / sub).exists() or list((maildrop / sub).iterdir()) == [], sub
    assert "event=store_failed" in server.log_text()


def assert_fault_reached(server, op):
    """The shim failed the step the test meant (so the test cannot pass by missing it)."""
    assert f"fault_injected op={op} " in server.log_text(), \
        f"the injected {op} failure was never reached:\n{server.log_text()[-3000:]}"


# Each step of a delivery to two maildrops (example.org's is written first): the file sync,
# the rename into new/ and the fsync of new/, in the first and in the second maildrop.
TWO_MAILDROP_STEPS = [
    ("fsync", "*/maildrop-example.org/tmp/*"),
    ("fsync", "*/maildrop-example.net/tmp/*"),
    ("rename", "*/maildrop-example.org/new/*"),
    ("rename", "*/maildrop-example.net/new/*"),
    ("dirfsync", "*/maildrop-example.org/new"),
    ("dirfsync", "*/maildrop-example.net/new"),
]


@pytest.mark.parametrize("op,path", TWO_MAILDROP_STEPS)
def test_failed_step_of_a_two_maildrop_delivery_keeps_no_copy(make_server, tmp_path, monkeypatch,
                                                              op, path):
    with preloaded_shim(tmp_path, monkeypatch, FAULT_OP=op, FAULT_PATH=path):
        server = make_server()
    message = make_message("two domains, all or nothing")
    with server.connect() as client:
        client.ehlo()
        reply = client.transaction("a@elsewhere.example", TWO_DOMAINS, message)
        assert (reply.code, reply.enhanced) == (451, "4.3.0"), reply
        assert_fault_reached(server, op)
        server.assert_nothing_stored()
        # The client's retry (only the first matching call fails): one copy in each maildrop.
        reply = client.transaction("a@elsewhere.example", TWO_DOMAINS, message)
        assert reply.code == 250, reply
    for domain in ("example.org", "example.net"):
        stored = server.messages(domain)
        assert len(stored) == 1, f"{domain}: {len(stored)} copies"
        stored[0].split(message)


def test_full_disk_gives_452_4_3_1_and_logs_the_reason(make_server, tmp_path, monkeypatch):
    with preloaded_shim(tmp_path, monkeypatch, FAULT_OP="fsync", FAULT_ERRNO="ENOSPC",
                        FAULT_PATH="*/maildrop-example.net/tmp/*"):
        server = make_server()
    with server.connect() as client:
        client.ehlo()
        reply = client.transaction("a@elsewhere.example", TWO_DOMAINS, make_message("full"))
        # RFC 5321 4.2.3 / RFC 3463 3.4: insufficient system storage, mail system full.
        assert (reply.code, reply.enhanced) == (452, "4.3.1"), reply
    server.assert_nothing_stored()
    assert 'error=commit reason="No space left on device"' in server.log_text()


def test_other_commit_errors_are_logged_with_their_reason(make_server, tmp_path, monkeypatch):
    with preloaded_shim(tmp_path, monkeypatch, FAULT_OP="rename",
                        FAULT_PATH="*/maildrop-example.org/new/*"):
        server = make_server()
    with server.connect() as client:
        client.ehlo()
        reply = client.transaction("a@elsewhere.example", ["x@example.org"], make_message("eio"))
        assert (reply.code, reply.enhanced) == (451, "4.3.0"), reply
    assert 'error=commit reason="Input/output error"' in server.log_text()


# --- storage that cannot be opened: the failure answers DATA (issue 12) -------------------------

def open_transaction(client, mail_from, recipients):
    """MAIL and RCPT for each recipient, each asserted; DATA is the caller's."""
    assert client.command(f"MAIL FROM:<{mail_from}>").code == 250
    for recipient in recipients:
        assert client.command(f"RCPT TO:<{recipient}>").code == 250, recipient


def test_full_disk_when_the_maildrop_file_is_created_answers_data_with_452(
        make_server, tmp_path, monkeypatch):
    """The storage is opened before the 354: a full disk is the reply to DATA itself, and the
    client never sends a message that could not be kept (RFC 5321 4.1.1.4)."""
    with preloaded_shim(tmp_path, monkeypatch, FAULT_OP="create", FAULT_ERRNO="ENOSPC",
                        FAULT_PATH="*/maildrop-example.org/tmp/*"):
        server = make_server()
    message = make_message("stored by the retry")
    with server.connect() as client:
        client.ehlo()
        open_transaction(client, "a@elsewhere.example", ["x@example.org"])
        reply = client.command("DATA")
        assert (reply.code, reply.enhanced) == (452, "4.3.1"), reply
        assert_fault_reached(server, "create")
        # The transaction is over, as after a 4xx at the final dot: the client's retry is a
        # new one (no "503 Nested MAIL"), and the disk has room now (only one call fails).
        reply = client.transaction("a@elsewhere.example", ["x@example.org"], message)
        assert reply.code == 250, reply
    server.message().split(message)
    assert 'error="No space left on device"' in server.log_text()


def test_second_maildrop_not_opening_answers_data_and_leaves_no_file(
        make_server, tmp_path, monkeypatch):
    with preloaded_shim(tmp_path, monkeypatch, FAULT_OP="create",
                        FAULT_PATH="*/maildrop-example.net/tmp/*"):
        server = make_server()
    with server.connect() as client:
        client.ehlo()
        open_transaction(client, "a@elsewhere.example", TWO_DOMAINS)
        reply = client.command("DATA")
        assert (reply.code, reply.enhanced) == (451, "4.3.0"), reply
        assert_fault_reached(server, "create")
        # The first maildrop's file, opened before the second failed, is gone at once.
        assert list((server.maildrop("example.org") / "tmp").iterdir()) == []
        assert client.command("DATA").code == 503  # the transaction ended with the 451
    server.assert_nothing_stored()


def test_full_spool_when_a_submission_begins_answers_data_with_452(outbound, tmp_path,
                                                                    monkeypatch):
    with preloaded_shim(tmp_path, monkeypatch, FAULT_OP="create", FAULT_ERRNO="ENOSPC",
                        FAULT_PATH="*/spool1/tmp/*.raw"):
        server, _ = outbound()
    with authenticated(server) as client:
        open_transaction(client, "mailbox@example.org", SUBMISSION_RECIPIENTS)
        reply = client.command("DATA")
        assert (reply.code, reply.enhanced) == (452, "4.3.1"), reply
        assert_fault_reached(server, "create")
        assert client.command("NOOP").code == 250
    server.assert_nothing_stored()
    assert spool_files(server) == []
    assert "event=store_failed" in server.log_text()


# --- the owner's submission: local copies and the outbound spool --------------------------------

# Local copies for example.org and example.net, and one spool entry for remote.test.
SUBMISSION_RECIPIENTS = ["friend@example.org", "friend@example.net", "bob@remote.test"]
# Each step: the local copies' files, the spool message and envelope, their renames and
# directory syncs, and the local copies' renames and new/ syncs after the spool entry exists.
SUBMISSION_STEPS = [
    ("fsync", "*/maildrop-example.org/tmp/*"),
    ("fsync", "*/maildrop-example.net/tmp/*"),
    ("fsync", SPOOL_MESSAGE_TMP),
    ("rename", "*/spool1/msg/*"),
    ("dirfsync", "*/spool1/msg"),
    ("fsync", "*/spool1/tmp/*.env.*"),
    ("rename", "*/spool1/env/*"),
    ("dirfsync", "*/spool1/env"),
    ("rename", "*/maildrop-example.org/new/*"),
    ("dirfsync", "*/maildrop-example.org/new"),
    ("rename", "*/maildrop-example.net/new/*"),
    ("dirfsync", "*/maildrop-example.net/new"),
]


def spool_files(server):
    spool = server.config["SpoolPath"]
    return [os.path.join(spool, sub, name) for sub in ("tmp", "msg", "env")
            for name in os.listdir(os.path.join(spool, sub))]


@pytest.mark.parametrize("op,path", SUBMISSION_STEPS)
def test_failed_step_of_a_submission_keeps_nothing_and_the_retry_is_sent_once(
        outbound, tmp_path, monkeypatch, op, path):
    with preloaded_shim(tmp_path, monkeypatch, FAULT_OP=op, FAULT_PATH=path):
        server, sink = outbound()
    message, message_id = outgoing_message("submitted, all or nothing")
    with authenticated(server) as client:
        reply = transaction(client, "mailbox@example.org", SUBMISSION_RECIPIENTS, message)
        assert (reply.code, reply.enhanced) == (451, "4.3.0"), reply
        assert_fault_reached(server, op)
        server.assert_nothing_stored()
        assert spool_files(server) == [], "the spool kept part of a refused message"
        # The retry (only the first matching call fails) is kept everywhere, once.
        reply = transaction(client, "mailbox@example.org", SUBMISSION_RECIPIENTS, message)
        queue = queue_id(reply)
    for domain in ("example.org", "example.net"):
        assert len(server.messages(domain)) == 1, domain
    sink.wait_for(1)
    wait_until_dequeued(server, queue)
    copies = sink.with_message_id(message_id)
    assert len(copies) == 1, f"{len(copies)} deliveries:\n{sink.dialogue()}"
    assert len(sink.transactions) == 1, "the refused attempt was sent too"


def test_full_spool_disk_at_submission_gives_452(outbound, tmp_path, monkeypatch):
    with preloaded_shim(tmp_path, monkeypatch, FAULT_OP="fsync", FAULT_ERRNO="ENOSPC",
                        FAULT_PATH=SPOOL_MESSAGE_TMP):
        server, sink = outbound()
    message, _ = outgoing_message("the spool is full")
    with authenticated(server) as client:
        reply = transaction(client, "mailbox@example.org", SUBMISSION_RECIPIENTS, message)
        assert (reply.code, reply.enhanced) == (452, "4.3.1"), reply
    server.assert_nothing_stored()
    assert spool_files(server) == []
    assert 'event=store_failed' in server.log_text()
    assert 'reason="No space left on device"' in server.log_text()


# --- a real full disk ---------------------------------------------------------------------------

def fill(directory):
    """Writes a file in directory until the file system is full; returns its path."""
    path = directory / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            for _ in range(10000):  # 1 MiB of tmpfs takes at most 16 + 16 + 8 + 512 rounds
                try:
                    os.write(fd, b"x" * size)
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
                    break
    finally:
        os.close(fd)
    return path


@pytest.fixture
def small_disk(tmp_path):
    """small_disk(path): mounts a 1 MiB tmpfs on path (made if missing); unmounted in
    teardown."""
    mounted = []

    def mount(path):
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(path)],
                       check=True, timeout=30)
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], check=True, timeout=30)


# small_disk first: it is then unmounted after make_server's teardown stopped the server.
def test_real_full_disk_gives_452_then_250_once_space_is_freed(small_disk, make_server):
    server = make_server(start=False)
    maildrop = small_disk(server.maildrop())
    for sub in ("tmp", "new", "cur"):
        (maildrop / sub).mkdir()
    filler = fill(maildrop)
    server.start()
    message = make_message("a disk with no room", body=b"0123456789abcdef" * 8192 + b"\r\n")
    with server.connect() as client:
        client.ehlo()
        reply = client.transaction("a@elsewhere.example", ["x@example.org"], message)
        assert (reply.code, reply.enhanced) == (452, "4.3.1"), reply
        server.assert_nothing_stored("example.org")
        filler.unlink()
        reply = client.transaction("a@elsewhere.example", ["x@example.org"], message)
        assert reply.code == 250, reply
    server.message().split(message)
