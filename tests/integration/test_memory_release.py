"""After a burst of connections the server gives the freed memory back to the system once no
connection has been left for MEMORY_TRIM_IDLE_SECONDS (bounds.h): otherwise the allocator
keeps it for reuse in every thread's arena and an idle server stays at its peak."""

import re
import socket
import time

import pytest

from conftest import insecure_client_context
from loadutil import TIME_FACTOR, _is_asan_build, close_all, raise_file_limit
from pop3util import vm_rss_kib

CONNECTIONS = 400
TRIM_IDLE_SECONDS = 10  # MEMORY_TRIM_IDLE_SECONDS


def released_lines(server):
    return re.findall(r"event=memory_released rss_kb_before=(\d+) rss_kb_after=(\d+)",
                      server.log_text())


def hold_tls_sessions(port, count):
    context = insecure_client_context()
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        tls = context.wrap_socket(sock, server_hostname="mx.example.org")
        assert tls.recv(100).startswith(b"+OK")
        held.append(tls)
    return held


def wait_for_release(server, seen, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = released_lines(server)
        if len(lines) > seen:
            return lines[-1]
        time.sleep(0.2)
    pytest.fail(f"no event=memory_released within {timeout:.0f} s:\n{server.log_text()[-2000:]}")


def test_memory_of_a_burst_goes_back_once_the_connections_are_gone(make_server):
    raise_file_limit(CONNECTIONS + 200)
    server = make_server(overrides={"MaxConnections": 3000, "MaxConnectionsPerIP": 3000})
    pid = server.process.pid
    idle = vm_rss_kib(pid)

    held = hold_tls_sessions(server.pop3_port, CONNECTIONS)
    peak = vm_rss_kib(pid)
    assert released_lines(server) == [], "trimmed while connections were open"
    close_all(held)
    before, after = wait_for_release(server, 0, (TRIM_IDLE_SECONDS + 20) * TIME_FACTOR)
    rss_after = vm_rss_kib(pid)
    print(f"\nRSS KiB: idle {idle}, {CONNECTIONS} TLS sessions {peak}, "
          f"logged before/after trim {before}/{after}, now {rss_after}")
    assert peak - idle > 2000, "the burst did not use memory: the test measures nothing"
    if _is_asan_build():
        return  # ASan's allocator keeps its own quarantine; only the event is checked
    # At least half of what the burst added is given back.
    assert rss_after < idle + (peak - idle) / 2


def test_no_release_while_a_connection_stays(make_server):
    server = make_server()
    first = server.connect()
    second = server.connect()
    second.close()
    time.sleep((TRIM_IDLE_SECONDS + 2) * TIME_FACTOR)
    assert released_lines(server) == [], "released while a connection was still open"
    first.close()
