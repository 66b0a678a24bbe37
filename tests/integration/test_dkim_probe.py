"""DKIM verification (RFC 6376) and DMARC (RFC 7489) of received mail, through the test-only
probe tests/probes/dkim_probe (verify/dkim_verify.c + verify/dmarc.c + verify/authres.c):
messages signed by a real signer (python3-dkim), keys and DMARC records served by a real DNS
server (dnsmasq), and the Authentication-Results field checked exactly. Covers a good
signature, a changed body (body hash), a changed header (signature), two signatures (one good,
one bad) in field order, a signature by another domain (DMARC fails), a missing key
(permerror), no signature (none), DNS down (temperror), and the message fed one octet at a
time."""

import base64
import os
import re
import socket
import subprocess
from pathlib import Path

import dkim
import pytest

from conftest import REPO_ROOT, SANITIZER_MARKERS, free_port
from dnsfixture import make_dns  # noqa: F401 (fixture)

PROBE_TIMEOUT = 120.0
SENDER = "sender.test"
OTHER = "other.test"
SIGNED_HEADERS = [b"From", b"To", b"Subject", b"Date", b"Message-ID"]
TSPECIALS = set('()<>@,;:\\"/[]?=')

MESSAGE = (
    b"From: Alice <alice@sender.test>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: quarterly figures\r\n"
    b"Date: Wed, 02 Dec 2026 17:00:00 +0000\r\n"
    b"Message-ID: <probe-1@sender.test>\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b"the figures are attached.\r\n"
)


def probe_binary():
    """Beside the server binary's build: BUILD/src/mailpopbox -> BUILD/tests/probes/."""
    build = Path(os.environ.get("MAILPOPBOX_BIN", REPO_ROOT / "build" / "src" / "mailpopbox"))
    probe = build.resolve().parents[1] / "tests" / "probes" / "dkim_probe"
    if not probe.is_file():
        pytest.fail(f"dkim_probe not found at {probe} (meson compile builds it)")
    return probe


def new_key(mailpopbox_bin, directory, name):
    """(private key PEM, the TXT record publishing its public half), made by
    `mailpopbox dkim-keygen` (its zone-file line: the quoted strings joined)."""
    key = directory / f"{name}.pem"
    result = subprocess.run([str(mailpopbox_bin), "dkim-keygen", "sender.test", "sel", str(key)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"dkim-keygen exited {result.returncode}: {result.stderr}"
    line = next(line for line in result.stdout.splitlines() if "v=DKIM1" in line)
    record = "".join(re.findall(r'"([^"]*)"', line))
    assert record.startswith("v=DKIM1;"), line
    return key.read_bytes(), record


@pytest.fixture(scope="module")
def keys(mailpopbox_bin, tmp_path_factory):
    """Three keys: sel1 and sel2 of sender.test, sel1 of other.test; plus a spare never
    published (a signature with it does not verify)."""
    directory = tmp_path_factory.mktemp("dkim_keys")
    return {name: new_key(mailpopbox_bin, directory, name)
            for name in ("sender1", "sender2", "other", "unpublished")}


def sign(message, key_pem, selector, domain):
    signature = dkim.sign(message, selector.encode(), domain.encode(), key_pem,
                          include_headers=SIGNED_HEADERS,
                          canonicalize=(b"relaxed", b"simple"))
    return signature + message


def b_value(signature_field):
    """RFC 6008: the first 8 characters of b=, folding removed, written as our writer writes a
    value that is not an RFC 2045 token (a quoted-string)."""
    value = re.sub(rb"\s+", b"", signature_field).decode()
    tags = dict(tag.split("=", 1) for tag in value.split(";") if "=" in tag)
    b = tags["b"][:8]
    return f'"{b}"' if any(c in TSPECIALS for c in b) else b


def signature_fields(message):
    """The DKIM-Signature fields' values, in the order they appear."""
    head = message.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    return re.findall(rb"(?mi)^DKIM-Signature:((?:.*\r\n)(?:[ \t].*\r\n)*)", head)


@pytest.fixture
def world(make_dns, keys):
    """A dnsmasq serving the published keys and sender.test's DMARC record (p=reject)."""
    return make_dns(txt={
        f"sel1._domainkey.{SENDER}": keys["sender1"][1],
        f"sel2._domainkey.{SENDER}": keys["sender2"][1],
        f"sel1._domainkey.{OTHER}": keys["other"][1],
        f"_dmarc.{SENDER}": "v=DMARC1; p=reject",
    })


def run_probe(tmp_path, message, resolver, chunk=None):
    path = tmp_path / "message.eml"
    path.write_bytes(message)
    command = [str(probe_binary()), str(path), resolver]
    if chunk is not None:
        command.append(str(chunk))
    result = subprocess.run(command, capture_output=True, timeout=PROBE_TIMEOUT)
    assert result.returncode == 0, f"dkim_probe exited {result.returncode}: {result.stderr!r}"
    stderr = result.stderr.decode(errors="replace")
    assert not any(marker in stderr for marker in SANITIZER_MARKERS), stderr
    return result.stdout.decode()


def field(*resinfos):
    """The whole Authentication-Results field the probe prints (no SPF in the probe)."""
    lines = ["Authentication-Results: mx.example.org", "spf=none", "spf=none", *resinfos]
    return ";\r\n\t".join(lines) + "\r\n"


def dkim_resinfo(result, selector, domain, b, comment=None):
    text = f"dkim={result}"
    if comment:
        text += f" ({comment})"
    return f"{text} header.d={domain} header.s={selector} header.b={b}"


def test_a_good_signature_passes_and_so_does_dmarc(world, keys, tmp_path):
    message = sign(MESSAGE, keys["sender1"][0], "sel1", SENDER)
    b = b_value(signature_fields(message)[0])
    assert run_probe(tmp_path, message, world.resolver) == field(
        dkim_resinfo("pass", "sel1", SENDER, b),
        "dmarc=pass (p=reject dis=none) header.from=sender.test")


def test_fed_one_octet_at_a_time_the_verdict_is_the_same(world, keys, tmp_path):
    message = sign(MESSAGE, keys["sender1"][0], "sel1", SENDER)
    b = b_value(signature_fields(message)[0])
    assert run_probe(tmp_path, message, world.resolver, chunk=1) == field(
        dkim_resinfo("pass", "sel1", SENDER, b),
        "dmarc=pass (p=reject dis=none) header.from=sender.test")


def test_a_changed_body_fails_the_body_hash(world, keys, tmp_path):
    message = sign(MESSAGE, keys["sender1"][0], "sel1", SENDER)
    b = b_value(signature_fields(message)[0])
    changed = message.replace(b"the figures are attached.", b"the figures are ATTACHED.")
    assert changed != message
    assert run_probe(tmp_path, changed, world.resolver) == field(
        dkim_resinfo("fail", "sel1", SENDER, b, "body hash did not verify"),
        "dmarc=fail (p=reject dis=reject) header.from=sender.test")


def test_a_changed_header_fails_the_signature(world, keys, tmp_path):
    message = sign(MESSAGE, keys["sender1"][0], "sel1", SENDER)
    b = b_value(signature_fields(message)[0])
    changed = message.replace(b"Subject: quarterly figures", b"Subject: quarterly figurez")
    assert changed != message
    assert run_probe(tmp_path, changed, world.resolver) == field(
        dkim_resinfo("fail", "sel1", SENDER, b, "signature did not verify"),
        "dmarc=fail (p=reject dis=reject) header.from=sender.test")


def test_two_signatures_one_good_one_bad_in_field_order(world, keys, tmp_path):
    # sel2's published key is not the one that signs: that signature does not verify.
    bad_first = sign(sign(MESSAGE, keys["sender1"][0], "sel1", SENDER),
                     keys["unpublished"][0], "sel2", SENDER)
    fields = signature_fields(bad_first)
    assert len(fields) == 2 and b"s=sel2" in re.sub(rb"\s+", b"", fields[0])
    assert run_probe(tmp_path, bad_first, world.resolver) == field(
        dkim_resinfo("fail", "sel2", SENDER, b_value(fields[0]), "signature did not verify"),
        dkim_resinfo("pass", "sel1", SENDER, b_value(fields[1])),
        "dmarc=pass (p=reject dis=none) header.from=sender.test")

    good_first = sign(sign(MESSAGE, keys["unpublished"][0], "sel2", SENDER),
                      keys["sender1"][0], "sel1", SENDER)
    fields = signature_fields(good_first)
    assert run_probe(tmp_path, good_first, world.resolver) == field(
        dkim_resinfo("pass", "sel1", SENDER, b_value(fields[0])),
        dkim_resinfo("fail", "sel2", SENDER, b_value(fields[1]), "signature did not verify"),
        "dmarc=pass (p=reject dis=none) header.from=sender.test")


def test_a_signature_by_another_domain_passes_but_does_not_align(world, keys, tmp_path):
    message = sign(MESSAGE, keys["other"][0], "sel1", OTHER)
    b = b_value(signature_fields(message)[0])
    assert run_probe(tmp_path, message, world.resolver) == field(
        dkim_resinfo("pass", "sel1", OTHER, b),
        "dmarc=fail (p=reject dis=reject) header.from=sender.test")


def test_a_missing_key_is_a_permerror(world, keys, tmp_path):
    message = sign(MESSAGE, keys["sender1"][0], "nokey", SENDER)
    b = b_value(signature_fields(message)[0])
    assert run_probe(tmp_path, message, world.resolver) == field(
        dkim_resinfo("permerror", "nokey", SENDER, b, "no key"),
        "dmarc=fail (p=reject dis=reject) header.from=sender.test")


def test_no_signature_is_dkim_none(world, tmp_path):
    assert run_probe(tmp_path, MESSAGE, world.resolver) == field(
        "dkim=none", "dmarc=fail (p=reject dis=reject) header.from=sender.test")


def test_a_sender_without_dmarc_record_is_dmarc_none(world, keys, tmp_path):
    message = sign(MESSAGE.replace(b"alice@sender.test", b"carol@other.test"),
                   keys["other"][0], "sel1", OTHER)
    b = b_value(signature_fields(message)[0])
    assert run_probe(tmp_path, message, world.resolver) == field(
        dkim_resinfo("pass", "sel1", OTHER, b), "dmarc=none header.from=other.test")


def test_dns_down_is_a_temperror_never_a_rejection(keys, tmp_path):
    # Nothing listens there: every query fails (refused or timed out), never NXDOMAIN.
    resolver = f"127.0.0.1:{free_port(kinds=(socket.SOCK_DGRAM,))}"
    message = sign(MESSAGE, keys["sender1"][0], "sel1", SENDER)
    b = b_value(signature_fields(message)[0])
    assert run_probe(tmp_path, message, resolver) == field(
        dkim_resinfo("temperror", "sel1", SENDER, b, "key lookup failed"),
        "dmarc=temperror header.from=sender.test")


def test_more_signatures_than_the_limit_only_the_first_are_verified(world, keys, tmp_path):
    # DKIM_SIGNATURES_MAX (src/bounds.h) is 8: ten signatures, the first eight reported.
    message = MESSAGE
    for _ in range(10):
        message = sign(message, keys["sender1"][0], "sel1", SENDER)
    fields = signature_fields(message)
    assert len(fields) == 10
    expected = [dkim_resinfo("pass", "sel1", SENDER, b_value(f)) for f in fields[:8]]
    assert run_probe(tmp_path, message, world.resolver) == field(
        *expected, "dmarc=pass (p=reject dis=none) header.from=sender.test")


def test_a_signature_with_bad_syntax_is_a_permerror(world, keys, tmp_path):
    message = sign(MESSAGE, keys["sender1"][0], "sel1", SENDER)
    # v=1 is the only version (RFC 6376 3.5): v=9 is unusable, whatever else verifies.
    broken = re.sub(rb"\bv=1;", b"v=9;", message, count=1)
    assert broken != message
    output = run_probe(tmp_path, broken, world.resolver)
    assert re.search(r"\tdkim=permerror \([^)]*\) header\.d=sender\.test header\.s=sel1 "
                     r"header\.b=\S+;\r\n", output), output
    assert "dmarc=fail (p=reject dis=reject) header.from=sender.test" in output


def test_a_header_section_over_the_limit_is_not_held(world, keys, tmp_path):
    # MAIL_HEADER_SECTION_MAX (256 KiB): libopendkim would keep the whole section in memory.
    message = sign(MESSAGE, keys["sender1"][0], "sel1", SENDER)
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"y" * 900) for i in range(300))
    big = filler + message
    output = run_probe(tmp_path, big, world.resolver)
    assert "\tdkim=permerror (header section too big);\r\n" in output, output
    # Just under the limit, the same message verifies.
    small = filler[:200 * 1024].rsplit(b"\r\n", 1)[0] + b"\r\n" + message
    assert "\tdkim=pass header.d=sender.test" in run_probe(tmp_path, small, world.resolver)
