"""Sessions on one event loop per core (issue 12): the server starts a loop thread per online
CPU (MAILPOPBOX_LOOPS overrides the count), connections land on every loop, and what the loops
share (connection caps, the login throttle, the configuration generation, the stop) holds
exactly across them."""
import base64
import os
import re
import signal
import time
from pathlib import Path

import pytest

from conftest import bounds_constant, dot_stuff, insecure_client_context, make_message

ROUNDS = 6
PROMPT_SECONDS = 10


@pytest.fixture
def two_loops(monkeypatch):
    monkeypatch.setenv("MAILPOPBOX_LOOPS", "2")


def loop_threads(server):
    """The names of the server's loop threads, from /proc/PID/task/*/comm."""
    names = []
    for task in Path(f"/proc/{server.process.pid}/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except FileNotFoundError:
            continue  # a worker thread that ended meanwhile
    return sorted(n for n in names if re.fullmatch(r"loop\d+", n))


def stop(server):
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=PROMPT_SECONDS + 20) == 0


def accepted_per_loop(server):
    """{loop: connections} from the loop_stopped lines the server logs at stop."""
    found = re.findall(r"event=loop_stopped loop=(\d+) connections=(\d+)", server.log_text())
    return {int(loop): int(count) for loop, count in found}


def test_one_loop_per_online_cpu_by_default(make_server, monkeypatch):
    monkeypatch.delenv("MAILPOPBOX_LOOPS", raising=False)
    server = make_server()
    expected = min(os.sysconf("SC_NPROCESSORS_ONLN"), bounds_constant("EVENT_LOOPS_MAX"))
    assert re.search(rf"event=started .* loops={expected}\b", server.log_text())
    assert loop_threads(server) == sorted(f"loop{i}" for i in range(expected))
    stop(server)
    assert sorted(accepted_per_loop(server)) == list(range(expected))


def test_loops_override_and_bad_override_is_ignored(make_server, monkeypatch):
    monkeypatch.setenv("MAILPOPBOX_LOOPS", "3")
    server = make_server()
    assert loop_threads(server) == ["loop0", "loop1", "loop2"]
    stop(server)
    monkeypatch.setenv("MAILPOPBOX_LOOPS", "many")
    other = make_server()
    assert "event=loops_ignored" in other.log_text()
    expected = min(os.sysconf("SC_NPROCESSORS_ONLN"), bounds_constant("EVENT_LOOPS_MAX"))
    assert len(loop_threads(other)) == expected


def test_per_ip_cap_holds_exactly_across_loops(make_server, two_loops):
    """Six connections from one address are let in, the seventh is not, round after round,
    while the kernel hands the connections to both loops."""
    server = make_server({"MaxConnectionsPerIP": 6})
    for _ in range(ROUNDS):
        hold_then_refuse_one(server, 6, extra_closes=True)
    stop(server)
    per_loop = accepted_per_loop(server)
    assert sorted(per_loop) == [0, 1]
    assert all(count > 0 for count in per_loop.values()), per_loop
    assert server.log_text().count("reason=max_connections_per_ip") == ROUNDS


def test_total_cap_holds_exactly_across_loops(make_server, two_loops):
    """MaxConnections 4: three MX connections, the fourth refused (test_smtp_limits says why),
    every round, whichever loop each lands on."""
    server = make_server({"MaxConnections": 4, "MaxConnectionsPerIP": 100})
    for _ in range(ROUNDS):
        hold_then_refuse_one(server, 3, extra_closes=False)
    stop(server)
    per_loop = accepted_per_loop(server)
    assert all(count > 0 for count in per_loop.values()) and len(per_loop) == 2, per_loop
    assert server.log_text().count("reason=max_connections_mx") == ROUNDS


def hold_then_refuse_one(server, count, extra_closes):
    """One round of a cap test: count connections greeted with 220, the next one refused with
    421 4.7.0 (and closed, when extra_closes), then all of them gone again."""
    held = [server.connect() for _ in range(count)]
    try:
        assert [c.greeting.code for c in held] == [220] * count
        with server.connect() as extra:
            assert (extra.greeting.code, extra.greeting.enhanced) == (421, "4.7.0")
            if extra_closes:
                assert extra.wait_closed(5)
    finally:
        for client in held:
            client.command("QUIT")
            client.wait_closed(5)
            client.close()
    wait_for_no_connections(server)


def wait_for_no_connections(server):
    """Until a fresh connection is greeted with 220 and nothing else is held."""
    deadline = time.monotonic() + 10
    while True:
        with server.connect() as probe:
            if probe.greeting.code == 220:
                probe.command("QUIT")
                probe.wait_closed(5)
                time.sleep(0.1)  # the server sees the probe go too
                return
        assert time.monotonic() < deadline, "slots never came free"
        time.sleep(0.1)


def plain(password):
    return base64.b64encode(f"\0mailbox@example.org\0{password}".encode()).decode()


def test_login_lockout_counts_failures_from_every_loop(make_server, two_loops):
    """Each failed login on its own connection (so on either loop): the third locks the
    address out, and the right password on yet another connection is then refused."""
    server = make_server({"AuthMaxFailures": 3, "AuthFailureWindowSeconds": 600,
                          "AuthLockoutSeconds": 600})

    def attempt(password):
        with server.connect() as client:
            client.ehlo()
            client.starttls(server_hostname="mx.example.org", context=insecure_client_context())
            client.ehlo()
            return client.command("AUTH PLAIN " + plain(password), timeout=30)

    for i in range(3):
        assert attempt(f"wrong-{i}").code == 535
    assert attempt("password-example.org").code != 235
    assert "event=auth_blocked client=127.0.0.1" in server.log_text()
    stop(server)
    assert len(accepted_per_loop(server)) == 2


def sessions(server, count):
    clients = [server.connect() for _ in range(count)]
    for client in clients:
        client.ehlo()
    return clients


def test_reload_and_graceful_stop_with_sessions_on_both_loops(make_server, two_loops):
    """Sixteen sessions, so both loops hold some: SIGHUP reaches new connections while the
    running ones go on; SIGTERM lets every message in DATA finish and be stored."""
    server = make_server()
    clients = sessions(server, 16)
    try:
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + PROMPT_SECONDS
        while "event=reloaded" not in server.log_text():
            assert time.monotonic() < deadline, "no reload"
            time.sleep(0.05)
        messages = []
        for i, client in enumerate(clients):
            assert client.command("MAIL FROM:<sender@example.net.test>").code == 250
            assert client.command("RCPT TO:<someone@example.org>").code == 250
            assert client.command("DATA").code == 354
            message = make_message(f"loops {i}")
            client.send(dot_stuff(message))
            messages.append(message)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.alive(), "exited while messages were being received"
        for client in clients:
            client.send(b".\r\n")
            reply = client.read_reply(timeout=PROMPT_SECONDS)
            assert reply.code == 250, reply
            reply = client.read_reply(timeout=PROMPT_SECONDS)
            assert (reply.code, reply.enhanced) == (421, "4.3.2"), reply
        assert server.process.wait(timeout=PROMPT_SECONDS) == 0
    finally:
        for client in clients:
            client.close()
    assert len(server.messages()) == 16
    per_loop = accepted_per_loop(server)
    assert len(per_loop) == 2 and all(count > 0 for count in per_loop.values()), per_loop
    assert "event=lock_stats lock=admission" in server.log_text()
