"""A delivery killed half-way leaves its file in the Maildir's tmp/. At start the server
removes the tmp/ files its own naming scheme shows were its unfinished deliveries (this host,
a process that no longer runs); any other file keeps the Maildir spec's 36-hour rule, since
another program may still be writing it (issue 11, point 6)."""
import os
import signal
import socket
import subprocess
import time

from conftest import make_message


def dead_pid():
    """A pid no process has: the one of a child that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait(timeout=30)
    return child.pid


def maildir_host():
    """The host part of our unique names: the Maildir spec's escapes for '/' and ':'."""
    return socket.gethostname().replace("/", "\\057").replace(":", "\\072")


def wait_for_tmp_file(tmp, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in tmp.iterdir() if p.is_file()] if tmp.is_dir() else []
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no delivery file appeared in {tmp}")


def test_start_removes_our_killed_deliveries_from_tmp_and_keeps_other_files(make_server):
    server = make_server()
    tmp = server.maildrop() / "tmp"
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("RCPT TO:<x@example.org>").code == 250
        assert client.command("DATA").code == 354
        client.send(make_message("killed half-way"))
        killed = wait_for_tmp_file(tmp)
        server.kill(signal.SIGKILL)
    now = int(time.time())
    host = maildir_host()
    ours_dead = tmp / f"{now}.M1P{dead_pid()}Q1.{host}"
    ours_alive = tmp / f"{now}.M2P{os.getpid()}Q1.{host}"  # a live writer
    other_host = tmp / f"{now}.M3P{dead_pid()}Q1.other-host.example"
    foreign = tmp / f"{now}.12345_1.courier.example"
    for path in (ours_dead, ours_alive, other_host, foreign):
        path.write_bytes(b"Subject: partial\r\n")
    server.start()
    left = sorted(p.name for p in tmp.iterdir())
    assert left == sorted(p.name for p in (ours_alive, other_host, foreign)), left
    assert all(p.name not in left for p in killed)
    assert f"event=tmp_recovered path={server.maildrop()} removed={len(killed) + 1}" \
        in server.log_text()
    # Nothing half-written was delivered either.
    assert server.messages() == []
