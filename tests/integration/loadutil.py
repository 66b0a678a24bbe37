"""Helpers for the load, slowloris and crash tests: many raw sockets at once, what the server
process holds, and how hard to push.

  SCALE             MAILPOPBOX_TEST_SCALE (default 1): multiplies the connection and message
                    counts of the load tests (0.25 for a quick look, 2 for a bigger machine)
  TIME_FACTOR       3 when $MAILPOPBOX_BIN is an AddressSanitizer build (its path contains
                    "asan", or the binary carries the ASan runtime), else 1: multiplies the
                    generous "promptly" bounds, never the loads, so CI under ASan runs the same
                    1,000 connections and 200 messages
  scaled            a count times SCALE, at least 1
  raise_file_limit  RLIMIT_NOFILE of this process up to its hard limit (skips the test when
                    even that is too low)
  source_addresses  127.0.0.2, 127.0.0.3, ...: other loopback client addresses (Linux routes all
                    of 127/8 to lo)
  open_connections  count TCP connections from given source addresses, bounded in time
  read_until        what each socket receives up to a marker (a reply code), bounded in time
  read_first_lines  the first line each socket receives (greetings, 421s), bounded in time
  still_open        the sockets the server has not closed
  fd_count          how many descriptors the server process holds (Linux /proc)
  close_all         closes a list of sockets
"""

import os
import resource
import selectors
import socket
import time
from pathlib import Path

import pytest


def _float_env(name, default):
    value = os.environ.get(name, "")
    try:
        return float(value) if value else default
    except ValueError:
        raise AssertionError(f"{name}={value!r} is not a number") from None


def _is_asan_build():
    binary = os.environ.get("MAILPOPBOX_BIN", "")
    if "asan" in binary.lower():
        return True
    try:
        # clang's static runtime leaves this name in the binary; GCC links libasan.so, whose
        # name is in the dynamic section.
        content = Path(binary).read_bytes() if binary else b""
        return b"AddressSanitizer" in content or b"libasan.so" in content
    except OSError:
        return False


SCALE = _float_env("MAILPOPBOX_TEST_SCALE", 1.0)
TIME_FACTOR = 3.0 if _is_asan_build() else 1.0


def scaled(count):
    return max(1, int(count * SCALE))


def raise_file_limit(needed):
    """Soft RLIMIT_NOFILE of this process up to the hard limit; skips if that is below
    `needed` (a container with a tiny hard limit cannot run the test at all)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the {needed} this test needs")
    if soft == resource.RLIM_INFINITY or soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def source_addresses(count, first=2):
    """count loopback addresses other than 127.0.0.1; skips if this host cannot bind them."""
    addresses = [f"127.0.{(i >> 8) & 0xFF}.{i & 0xFF}" for i in range(first, first + count)]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((addresses[-1], 0))
    except OSError as error:
        pytest.skip(f"cannot use {addresses[-1]} as a client address: {error}")
    return addresses


def open_connections(port, count, sources=("127.0.0.1",), per_source=None, timeout=30.0):
    """count connected sockets to 127.0.0.1:port, filling each source address with per_source
    connections before moving on (round robin when per_source is None). Closes what it opened
    and raises if the whole thing takes longer than timeout."""
    deadline = time.monotonic() + timeout
    opened = []
    try:
        for i in range(count):
            if per_source is None:
                source = sources[i % len(sources)]
            else:
                source = sources[i // per_source]
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            opened.append(sock)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"opened only {i} of {count} connections in {timeout} s")
            sock.settimeout(remaining)
            sock.bind((source, 0))
            sock.connect(("127.0.0.1", port))
    except BaseException:
        close_all(opened)
        raise
    return opened


def read_until(socks, marker, timeout=30.0):
    """{socket: what it received up to the end of the first `marker` (bytes)} for every socket;
    a socket the server closes before the marker maps to what it got (b"" if nothing). Raises
    if some socket has neither the marker nor EOF when timeout runs out."""
    deadline = time.monotonic() + timeout
    buffers = {sock: b"" for sock in socks}
    result = {}
    selector = selectors.DefaultSelector()
    try:
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while len(result) < len(socks):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(socks) - len(result)} of {len(socks)} sockets have "
                                   f"no {marker!r} after {timeout} s")
            for key, _ in selector.select(min(remaining, 1.0)):
                sock = key.fileobj
                try:
                    chunk = sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                buffers[sock] += chunk
                end = buffers[sock].find(marker)
                if end >= 0 or not chunk:
                    result[sock] = buffers[sock][:end + len(marker)] if end >= 0 else buffers[sock]
                    selector.unregister(sock)
    finally:
        selector.close()
    return result


def read_first_lines(socks, timeout=30.0):
    """{socket: first CRLF-terminated line (bytes, without CRLF)} for every socket; a socket
    the server closes before a full line maps to what it got (b"" if nothing). Raises if some
    socket has neither a line nor EOF when timeout runs out."""
    return {sock: data.split(b"\r\n", 1)[0]
            for sock, data in read_until(socks, b"\r\n", timeout).items()}


def still_open(socks):
    """The sockets the server has not closed: reading them (discarding what is there) ends in
    "would block" rather than EOF or an error."""
    alive = []
    for sock in socks:
        try:
            while True:
                data = sock.recv(65536, socket.MSG_DONTWAIT)
                if not data:
                    break  # EOF
        except BlockingIOError:
            alive.append(sock)
        except OSError:
            pass
    return alive


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def close_all(socks):
    for sock in socks:
        try:
            sock.close()
        except OSError:
            pass
