"""DNS blocklists (src/verify/dnsbl.c) against a real DNS server (dnsmasq, dnsfixture.py),
through the test-only probe tests/probes/dnsbl_probe: a listed client (A 127.0.0.2 at the
reversed address under the zone, RFC 5782) with the TXT reason, printable ASCII only and cut to
DNSBL_REASON_MAX - 1; IPv6 nibbles; a client not listed; a zone that does not answer skipped
(the next zone still asked, a warning naming the zone); a whole DNS server down; the
127.255.255.x answers Spamhaus gives for a refused query, which are not listings; and the
system resolver (no DNSResolver: c-ares reads /etc/resolv.conf) working under the server's
Landlock sandbox.
"""

import ctypes
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT, bounds_constant
from dnsfixture import DNSServer, make_dns  # noqa: F401 (fixture)

PROBE_TIMEOUT = 60.0
IPV6_LOOPBACK_NIBBLES = "1." + "0." * 31


def probe_binary():
    build = Path(os.environ.get("MAILPOPBOX_BIN", REPO_ROOT / "build" / "src" / "mailpopbox"))
    probe = build.resolve().parents[1] / "tests" / "probes" / "dnsbl_probe"
    if not probe.is_file():
        pytest.fail(f"dnsbl_probe not found at {probe} (meson compile builds it)")
    return probe


def dnsbl(resolver, client, *zones):
    """(listed zone or None, reason, stderr) for one client."""
    run = subprocess.run([str(probe_binary()), resolver, client, *zones],
                         capture_output=True, timeout=PROBE_TIMEOUT)
    assert run.returncode == 0, run.stderr
    line = run.stdout.decode("ascii").rstrip("\n")
    if line == "not listed":
        return None, None, run.stderr.decode(errors="replace")
    listed, zone, reason = line.split(" ", 2)
    assert listed == "listed" and zone.startswith("zone=") and reason.startswith("reason=")
    return zone[len("zone="):], reason[len("reason="):], run.stderr.decode(errors="replace")


@pytest.fixture
def dns_server(make_dns):
    return make_dns(
        hosts={"2.0.0.127.bl.test": "127.0.0.2",
               f"{IPV6_LOOPBACK_NIBBLES}bl.test": "127.0.0.4",
               "9.0.0.127.bl.test": "127.0.0.3",
               "2.0.0.127.second.test": "127.0.0.2",
               "2.0.0.127.refusing.test": "127.255.255.254",
               "5.0.0.127.bl.test": "127.0.0.2",
               "6.0.0.127.bl.test": "192.0.2.1"},
        txt={"2.0.0.127.bl.test": "Listed by bl.test; see https://bl.test/q?ip=127.0.0.2",
             "9.0.0.127.bl.test": "tab\there, bell\x07, caf\u00e9 \"quoted\" end",
             f"{IPV6_LOOPBACK_NIBBLES}bl.test": "IPv6 loopback listed",
             "5.0.0.127.bl.test": "x" * 600})


def test_listed_client_with_reason(dns_server):
    zone, reason, _ = dnsbl(dns_server.resolver, "127.0.0.2", "bl.test")
    assert zone == "bl.test"
    assert reason == "Listed by bl.test; see https://bl.test/q?ip=127.0.0.2"


def test_client_not_listed(dns_server):
    assert dnsbl(dns_server.resolver, "127.0.0.3", "bl.test")[0] is None


def test_answer_outside_127_is_not_a_listing(dns_server):
    assert dnsbl(dns_server.resolver, "127.0.0.6", "bl.test")[0] is None


def test_ipv6_client_is_asked_by_nibbles(dns_server):
    zone, reason, _ = dnsbl(dns_server.resolver, "::1", "bl.test")
    assert (zone, reason) == ("bl.test", "IPv6 loopback listed")


def test_reason_keeps_printable_ascii_only(dns_server):
    zone, reason, _ = dnsbl(dns_server.resolver, "127.0.0.9", "bl.test")
    assert zone == "bl.test"
    assert reason == "tabhere, bell, caf \"quoted\" end"


def test_reason_is_cut_to_the_bound(dns_server):
    _, reason, _ = dnsbl(dns_server.resolver, "127.0.0.5", "bl.test")
    assert reason == "x" * (bounds_constant("DNSBL_REASON_MAX") - 1)


def test_listing_without_txt_has_empty_reason(dns_server):
    zone, reason, _ = dnsbl(dns_server.resolver, "127.0.0.2", "second.test")
    assert (zone, reason) == ("second.test", "")


def test_first_listing_zone_is_named(dns_server):
    assert dnsbl(dns_server.resolver, "127.0.0.2", "nothing.test", "second.test",
                 "bl.test")[0] == "second.test"


def test_zone_that_fails_is_skipped_with_a_warning(dns_server):
    # Names outside the fixture's zones are REFUSED: the zone is down for us.
    zone, _, log = dnsbl(dns_server.resolver, "127.0.0.2", "down.invalid", "bl.test")
    assert zone == "bl.test"
    assert "event=dnsbl_failed zone=down.invalid" in log


def test_refused_query_code_is_not_a_listing(dns_server):
    zone, _, log = dnsbl(dns_server.resolver, "127.0.0.2", "refusing.test")
    assert zone is None
    assert "event=dnsbl_refused zone=refusing.test code=127.255.255.254" in log


def test_dns_server_down_lists_nobody(dns_server):
    dns_server.stop()
    zone, _, log = dnsbl(dns_server.resolver, "127.0.0.2", "bl.test")
    assert zone is None
    assert "event=dnsbl_failed zone=bl.test" in log


def landlock_abi():
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, VERSION), x86_64


# A nameserver of /etc/resolv.conf has no port: port 53 on an address of loopback's /8 that
# nothing else uses, in a mount namespace of its own where our resolv.conf is bind-mounted.
RESOLV_CONF_ADDRESS = "127.0.53.153"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for port 53 and a mount namespace")
@pytest.mark.skipif(os.uname().machine != "x86_64" or landlock_abi() < 1,
                    reason="needs Landlock (and x86_64 for the syscall number)")
def test_system_resolver_works_under_the_sandbox(tmp_path):
    server = DNSServer(tmp_path / "dnsmasq.log", address=RESOLV_CONF_ADDRESS, port=53,
                       hosts={"2.0.0.127.bl.test": "127.0.0.2"},
                       txt={"2.0.0.127.bl.test": "via resolv.conf"}).start()
    try:
        resolv_conf = tmp_path / "resolv.conf"
        resolv_conf.write_text(f"nameserver {RESOLV_CONF_ADDRESS}\n")
        scratch = tmp_path / "sandbox"
        scratch.mkdir()
        script = (f'mount --bind "{resolv_conf}" /etc/resolv.conf && '
                  f'exec "{probe_binary()}" - 127.0.0.2 bl.test')
        run = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                              script], capture_output=True, timeout=PROBE_TIMEOUT,
                             env={**os.environ, "DNSBL_PROBE_SANDBOX": str(scratch)})
    finally:
        server.stop()
    log = run.stderr.decode(errors="replace")
    assert run.returncode == 0, log
    assert "event=landlock_applied" in log
    assert run.stdout.decode() == "listed zone=bl.test reason=via resolv.conf\n", log
