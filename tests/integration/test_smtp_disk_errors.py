"""A disk error while a message is made durable gives 451 and leaves no partial file behind
(issue 2): the fsync of the message file fails with EIO through an LD_PRELOAD shim."""
import os

from conftest import make_message
from test_smtp_nonblocking import build_shim


def test_fsync_failure_gives_451_and_leaves_nothing(make_server, tmp_path, monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", str(build_shim(tmp_path)))
    monkeypatch.setenv("FAIL_FSYNC", "1")
    asan = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (asan + ":" if asan else "") + "verify_asan_link_order=0")
    server = make_server()
    monkeypatch.delenv("LD_PRELOAD")
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
