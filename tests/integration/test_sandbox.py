"""Landlock confinement (issue 5): where the kernel has Landlock, the server can write only
beneath its maildrops and spool. A maildrop whose new/ was swapped for a link to a directory
elsewhere shows it: without the sandbox the message would land outside; with it, the write is
refused (451) and nothing appears there."""
import ctypes
import os
import shutil

import pytest

from conftest import make_message

SYS_LANDLOCK_CREATE_RULESET = 444
LANDLOCK_CREATE_RULESET_VERSION = 1


def landlock_abi():
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)


pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64" or landlock_abi() < 1,
                                reason="needs Landlock (and x86_64 for the syscall number)")


def test_sandbox_is_applied_at_start(server):
    assert "event=landlock_applied" in server.log_text()


def test_writes_outside_the_maildrop_are_refused(server, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    server.maildrop().mkdir(parents=True, exist_ok=True)
    new = server.maildrop() / "new"
    if new.exists():
        shutil.rmtree(new)
    new.symlink_to(outside, target_is_directory=True)
    with server.connect() as client:
        client.ehlo()
        reply = client.transaction("a@elsewhere.example", ["someone@example.org"],
                                   make_message("escape"))
    assert reply.code == 451, reply
    assert list(outside.iterdir()) == []
    assert list((server.maildrop() / "tmp").iterdir()) == []
