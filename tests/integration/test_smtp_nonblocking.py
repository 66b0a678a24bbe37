"""The event loop never waits on the disk: while one message's fsync is in progress, other
sessions are served (DESIGN.md: disk sync runs on the worker pool)."""
import contextlib
import os
import select
import subprocess
from pathlib import Path

from conftest import make_message

SHIM_SOURCE = Path(__file__).with_name("slow_fsync.c")
SLOW_FSYNC_MS = 3000


def build_shim(directory):
    shim = directory / "slow_fsync.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(shim), str(SHIM_SOURCE), "-ldl"],
                   check=True)
    return shim


@contextlib.contextmanager
def preloaded_shim(tmp_path, monkeypatch, **settings):
    """Processes started inside the block (the server) run with the shim preloaded and the
    shim's settings (SLOW_FSYNC_MS, FAULT_OP, ... see slow_fsync.c) in their environment;
    those started after it (a restart, `mailpopbox queue`) run without."""
    monkeypatch.setenv("LD_PRELOAD", str(build_shim(tmp_path)))
    for name, value in settings.items():
        monkeypatch.setenv(name, str(value))
    # An ASan build wants its runtime first in the library list; the shim only wraps fsync
    # and rename.
    asan = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (asan + ":" if asan else "") + "verify_asan_link_order=0")
    try:
        yield
    finally:
        monkeypatch.delenv("LD_PRELOAD")
        for name in settings:
            monkeypatch.delenv(name)


def test_other_sessions_are_served_while_a_message_is_being_synced(make_server, tmp_path,
                                                                   monkeypatch):
    with preloaded_shim(tmp_path, monkeypatch, SLOW_FSYNC_MS=SLOW_FSYNC_MS):
        server = make_server()

    with server.connect() as slow, server.connect() as other:
        slow.ehlo()
        assert slow.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert slow.command("RCPT TO:<slow@example.org>").code == 250
        assert slow.command("DATA").code == 354
        slow.send(make_message("slow disk") + b".\r\n")

        # While that message's fsync sleeps, a second session runs a whole exchange.
        other.ehlo()
        assert other.command("NOOP").code == 250
        assert other.command("MAIL FROM:<b@elsewhere.example>").code == 250
        assert other.command("RSET").code == 250

        # ... and the first client has still not been told 250: its message was not yet
        # durable when the other session was answered.
        readable, _, _ = select.select([slow.sock], [], [], 0)
        assert not readable and not slow.buffer, \
            "the other session was only served after the first message's fsync had finished"
        reply = slow.read_reply(timeout=SLOW_FSYNC_MS / 1000 + 20)
        assert reply.code == 250, reply
    assert b"Subject: slow disk" in server.message().data
