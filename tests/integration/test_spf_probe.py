"""SPF (src/verify/spf.c) against records served by a real DNS server (dnsmasq, dnsfixture.py),
through the test-only probe tests/probes/spf_probe: every result of RFC 7208 for the MAIL FROM
and HELO identities, the include:, a:, mx:, ip6: mechanisms, records longer than one
character-string, and libspf2's loopback trap (its query functions pass any 127.x client
without reading the record; we evaluate the record, so a loopback client not listed fails).
"""

import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from dnsfixture import make_dns  # noqa: F401 (fixture)

PROBE_TIMEOUT = 60.0

RECORDS = {
    "pass.test": "v=spf1 ip4:127.0.0.2 -all",
    "fail.test": "v=spf1 ip4:192.0.2.0/24 -all",
    "soft.test": "v=spf1 ip4:192.0.2.0/24 ~all",
    "neutral.test": "v=spf1 ?all",
    "other.test": "just some text, not SPF",
    "two.test": ["v=spf1 ip4:127.0.0.2 -all", "v=spf1 +all"],
    "syntax.test": "v=spf1 ip4:300.1.1.1 -all",
    "unknown.test": "v=spf1 frobnicate:x.test -all",
    "include.test": "v=spf1 include:pass.test -all",
    "include-none.test": "v=spf1 include:norecord.test -all",
    "a.test": "v=spf1 a:host.a.test -all",
    "mx.test": "v=spf1 mx -all",
    "ip6.test": "v=spf1 ip6:::1 -all",
    "ip6-other.test": "v=spf1 ip6:2001:db8::/32 -all",
    "helo.test": "v=spf1 a -all",
    "include-down.test": "v=spf1 include:spf.down.invalid -all",
    "a-down.test": "v=spf1 a:host.down.invalid -all",
    "long.test": "v=spf1 " + " ".join(f"ip4:192.0.2.{i}" for i in range(1, 40))
                 + " ip4:127.0.0.2 -all",
}
HOSTS = {
    "host.a.test": "127.0.0.3",
    "mail.mx.test": "127.0.0.4",
    "helo.test": "127.0.0.5",
    "norecord.test": "127.0.0.6",
}
MX = {"mx.test": [("mail.mx.test", 10)]}


def probe_binary():
    build = Path(os.environ.get("MAILPOPBOX_BIN", REPO_ROOT / "build" / "src" / "mailpopbox"))
    probe = build.resolve().parents[1] / "tests" / "probes" / "spf_probe"
    if not probe.is_file():
        pytest.fail(f"spf_probe not found at {probe} (meson compile builds it)")
    return probe


def spf(resolver, client, helo, mail_from):
    """(mailfrom result, helo result, identities line) for one check."""
    run = subprocess.run([str(probe_binary()), resolver, client, helo, mail_from],
                         capture_output=True, text=True, timeout=PROBE_TIMEOUT)
    assert run.returncode == 0, run.stderr
    results, identities = run.stdout.splitlines()
    fields = dict(item.split("=", 1) for item in results.split())
    return fields["mailfrom"], fields["helo"], identities


@pytest.fixture
def dns_server(make_dns):
    return make_dns(txt=RECORDS, hosts=HOSTS, mx=MX)


def mailfrom(dns_server, client, domain, helo="unchecked"):
    return spf(dns_server.resolver, client, helo, f"alice@{domain}")[0]


def test_listed_ip4_passes(dns_server):
    assert mailfrom(dns_server, "127.0.0.2", "pass.test") == "pass"


def test_minus_all_fails(dns_server):
    assert mailfrom(dns_server, "192.0.2.200", "pass.test") == "fail"


def test_loopback_client_not_listed_fails_not_passes(dns_server):
    # libspf2's SPF_request_query_mailfrom would answer pass here without reading the record.
    assert mailfrom(dns_server, "127.0.0.1", "fail.test") == "fail"
    assert mailfrom(dns_server, "127.0.0.1", "pass.test") == "fail"
    assert mailfrom(dns_server, "::1", "fail.test") == "fail"


def test_tilde_all_softfails(dns_server):
    assert mailfrom(dns_server, "127.0.0.1", "soft.test") == "softfail"


def test_question_all_is_neutral(dns_server):
    assert mailfrom(dns_server, "127.0.0.1", "neutral.test") == "neutral"


def test_no_spf_record_is_none(dns_server):
    assert mailfrom(dns_server, "127.0.0.1", "other.test") == "none"
    assert mailfrom(dns_server, "127.0.0.1", "norecord.test") == "none"
    assert mailfrom(dns_server, "127.0.0.1", "nonexistent.test") == "none"


def test_two_spf_records_are_permerror(dns_server):
    assert mailfrom(dns_server, "127.0.0.2", "two.test") == "permerror"


def test_bad_syntax_is_permerror(dns_server):
    assert mailfrom(dns_server, "127.0.0.2", "syntax.test") == "permerror"
    assert mailfrom(dns_server, "127.0.0.2", "unknown.test") == "permerror"


def test_dns_server_down_is_temperror(dns_server):
    dns_server.stop()
    assert spf(dns_server.resolver, "127.0.0.2", "helo.test", "alice@pass.test")[:2] == \
        ("temperror", "temperror")


def test_lookup_failing_during_evaluation_is_temperror(dns_server):
    # Names outside the fixture's zones are REFUSED: a resolver's temporary failure.
    assert mailfrom(dns_server, "127.0.0.2", "include-down.test") == "temperror"
    assert mailfrom(dns_server, "127.0.0.2", "a-down.test") == "temperror"


def test_include_passes_for_the_included_domain(dns_server):
    assert mailfrom(dns_server, "127.0.0.2", "include.test") == "pass"
    assert mailfrom(dns_server, "127.0.0.1", "include.test") == "fail"


def test_include_of_a_domain_without_record_is_permerror(dns_server):
    # RFC 7208 5.2: an included domain with no record is a permerror.
    assert mailfrom(dns_server, "127.0.0.6", "include-none.test") == "permerror"


def test_a_mechanism_matches_the_named_host(dns_server):
    assert mailfrom(dns_server, "127.0.0.3", "a.test") == "pass"
    assert mailfrom(dns_server, "127.0.0.4", "a.test") == "fail"


def test_mx_mechanism_matches_the_exchange(dns_server):
    assert mailfrom(dns_server, "127.0.0.4", "mx.test") == "pass"
    assert mailfrom(dns_server, "127.0.0.3", "mx.test") == "fail"


def test_ipv6_client_with_ip6_mechanism(dns_server):
    assert mailfrom(dns_server, "::1", "ip6.test") == "pass"
    assert mailfrom(dns_server, "::1", "ip6-other.test") == "fail"
    assert mailfrom(dns_server, "2001:db8::25", "ip6-other.test") == "pass"


def test_ipv4_mapped_client_is_checked_as_ipv4(dns_server):
    assert mailfrom(dns_server, "::ffff:127.0.0.2", "pass.test") == "pass"
    assert mailfrom(dns_server, "::ffff:127.0.0.1", "pass.test") == "fail"


def test_record_longer_than_one_string_is_joined(dns_server):
    assert len(RECORDS["long.test"]) > 255
    assert dns_server.txt("long.test") == RECORDS["long.test"].encode()
    assert mailfrom(dns_server, "127.0.0.2", "long.test") == "pass"
    assert mailfrom(dns_server, "127.0.0.1", "long.test") == "fail"


def test_helo_identity_is_checked_on_its_own(dns_server):
    assert spf(dns_server.resolver, "127.0.0.5", "helo.test", "alice@pass.test")[:2] == \
        ("fail", "pass")
    assert spf(dns_server.resolver, "127.0.0.2", "helo.test", "alice@pass.test")[:2] == \
        ("pass", "fail")


def test_null_sender_is_postmaster_at_helo(dns_server):
    result, helo, identities = spf(dns_server.resolver, "127.0.0.5", "helo.test", "")
    assert (result, helo) == ("pass", "pass")
    assert identities == "identities mailfrom=postmaster@helo.test helo=helo.test"


def test_helo_that_is_no_domain_is_none(dns_server):
    # RFC 7208 4.3: an address literal or a single label is not checked.
    assert spf(dns_server.resolver, "127.0.0.2", "[127.0.0.2]", "alice@pass.test")[:2] == \
        ("pass", "none")
    assert spf(dns_server.resolver, "127.0.0.2", "localhost", "")[:2] == ("none", "none")


def test_checks_on_several_threads_at_once_agree(dns_server):
    # One libspf2 server per check, one c-ares channel per thread: nothing shared but the
    # answer cache.
    run = subprocess.run([str(probe_binary()), dns_server.resolver, "127.0.0.3", "helo.test",
                          "alice@include.test", "8"],
                         capture_output=True, text=True, timeout=PROBE_TIMEOUT)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0::2] == ["mailfrom=fail helo=fail"] * 8
    run = subprocess.run([str(probe_binary()), dns_server.resolver, "127.0.0.2", "helo.test",
                          "alice@include.test", "8"],
                         capture_output=True, text=True, timeout=PROBE_TIMEOUT)
    assert run.stdout.splitlines()[0::2] == ["mailfrom=pass helo=fail"] * 8
