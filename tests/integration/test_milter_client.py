"""The milter client (src/filter/milter.c) through tests/probes/milter_probe against real
filters: a private rspamd (its proxy worker in milter mode), a filter on Sendmail's libmilter
(python3-milter), and a test milter in Python for each verdict rspamd does not easily give
(tempfail, discard, header changes, quarantine, a milter that hangs, one that sends
garbage)."""

import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port
from rspamdfixture import Rspamd
from testmilter import (SMFIP_NOBODY, SMFIP_NOCONNECT, SMFIP_NOHDRS, SMFIP_NR_BODY,
                        SMFIP_NR_CONN, SMFIP_NR_DATA, SMFIP_NR_EOH, SMFIP_NR_HDR,
                        SMFIP_NR_HELO, SMFIP_NR_MAIL, SMFIP_NR_RCPT, SMFIP_SKIP, TestMilter,
                        split_nul)

PROBE_TIMEOUT = 90
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

NORMAL_MESSAGE = (
    "From: Alice <alice@example.net>\r\n"
    "To: owner@example.org\r\n"
    "Subject: lunch on friday\r\n"
    "Date: Wed, 02 Dec 2026 10:00:00 +0000\r\n"
    "Message-ID: <lunch.1@example.net>\r\n"
    "X-Folded: first part\r\n"
    "\tsecond part\r\n"
    "\r\n"
    "Hello,\r\n"
    "shall we have lunch on friday at noon?\r\n"
    "Alice\r\n"
)


@pytest.fixture
def probe_bin(mailpopbox_bin):
    """build/tests/probes/milter_probe beside build/src/mailpopbox."""
    path = Path(os.environ.get("MILTER_PROBE", mailpopbox_bin.parents[1] / "tests" / "probes" /
                               "milter_probe"))
    if not path.is_file():
        pytest.fail(f"milter_probe not found at {path} (built by tests/probes/meson.build)")
    return path


@pytest.fixture
def run_probe(probe_bin, tmp_path):
    def run(spec, message=NORMAL_MESSAGE, timeout=10, **keys):
        msg = tmp_path / "message.eml"
        msg.write_bytes(message.encode() if isinstance(message, str) else message)
        args = [str(probe_bin), spec, str(timeout), str(msg)]
        for k, v in keys.items():
            for item in (v if isinstance(v, list) else [v]):
                args.append(f"{k}={item}")
        done = subprocess.run(args, capture_output=True, timeout=PROBE_TIMEOUT, text=True)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    return run


@pytest.fixture
def milter():
    made = []

    def make(verdict="accept", **kw):
        m = TestMilter(verdict, **kw).start()
        made.append(m)
        return m
    yield make
    for m in made:
        m.stop()


def commands(m, index=0):
    return [c for c, _ in m.conversations[index]]


# ---- the Python milter: one test per verdict ----

def test_continue_is_accept_and_the_conversation_is_complete(run_probe, milter):
    m = milter("accept")
    r = run_probe(m.spec, rcpt=["a@example.org", "b@example.org"])
    assert r["verdict"] == "accept" and r["changes"] == [] and not r["quarantine"]
    cmds = [c for c in commands(m) if c != b"D"]
    assert cmds == [b"O", b"C", b"H", b"M", b"R", b"R", b"T"] + [b"L"] * 6 + \
        [b"N", b"B", b"E", b"Q"]
    version, actions, protocol = m.offered
    assert version == 6
    assert actions == 0x01 | 0x10 | 0x20  # ADDHDRS | CHGHDRS | QUARANTINE


def test_commands_carry_the_envelope_header_fields_and_body(run_probe, milter):
    m = milter("accept")
    run_probe(m.spec, ip="192.0.2.7", port="4242", helo="client.example.net",
              name="client.example.net", **{"from": "alice@example.net"},
              rcpt="owner@example.org", tls="TLSv1.3", id="QID123")
    conv = m.conversations[0]
    by = {}
    for cmd, data in conv:
        by.setdefault(cmd, []).append(data)
    connect = by[b"C"][0]
    host, rest = connect.split(b"\0", 1)
    assert host == b"client.example.net"
    assert rest[:1] == b"4" and struct.unpack(">H", rest[1:3])[0] == 4242
    assert rest[3:] == b"192.0.2.7\0"
    assert by[b"H"] == [b"client.example.net\0"]
    assert by[b"M"] == [b"<alice@example.net>\0"]
    assert by[b"R"] == [b"<owner@example.org>\0"]
    headers = [tuple(split_nul(d)) for d in by[b"L"]]
    assert headers[0] == ("From", "Alice <alice@example.net>")
    assert headers[2] == ("Subject", "lunch on friday")
    # Folding kept with a bare LF, the leading space removed (as Postfix sends them).
    assert headers[5] == ("X-Folded", "first part\n\tsecond part")
    assert b"".join(by[b"B"]) == b"Hello,\r\nshall we have lunch on friday at noon?\r\nAlice\r\n"
    macros = {}
    for d in by[b"D"]:
        parts = split_nul(d[1:])
        macros.setdefault(chr(d[0]), {}).update(dict(zip(parts[::2], parts[1::2])))
    assert macros["C"]["{client_addr}"] == "192.0.2.7"
    assert macros["C"]["j"] == "mx.example.org"
    assert macros["C"]["{daemon_name}"] == "mailpopbox"
    assert macros["H"]["{tls_version}"] == "TLSv1.3"
    assert macros["M"]["{mail_addr}"] == "alice@example.net"
    assert macros["M"]["i"] == "QID123"
    assert macros["R"]["{rcpt_addr}"] == "owner@example.org"
    assert macros["E"]["i"] == "QID123"


def test_ipv6_client_is_family_6(run_probe, milter):
    m = milter("accept")
    run_probe(m.spec, ip="2001:db8::7")
    connect = [d for c, d in m.conversations[0] if c == b"C"][0]
    host, rest = connect.split(b"\0", 1)
    assert host == b"[2001:db8::7]" and rest[:1] == b"6" and rest[3:] == b"2001:db8::7\0"


def test_null_sender_is_sent_as_angle_brackets(run_probe, milter):
    m = milter("accept")
    run_probe(m.spec, **{"from": ""})
    assert [d for c, d in m.conversations[0] if c == b"M"] == [b"<>\0"]


def test_lead_goes_before_the_message_and_offset_skips_the_file_start(run_probe, milter,
                                                                       tmp_path):
    m = milter("accept")
    lead = tmp_path / "lead"
    lead.write_bytes(b"Authentication-Results: mx.example.org; spf=pass\r\n")
    prefix = "Return-Path: <ignored>\r\n"
    run_probe(m.spec, message=prefix + NORMAL_MESSAGE, lead=str(lead), offset=len(prefix))
    names = [split_nul(d)[0] for c, d in m.conversations[0] if c == b"L"]
    assert names[0] == "Authentication-Results" and names[1] == "From"
    assert "Return-Path" not in names


def test_reject_with_replycode_gives_its_text(run_probe, milter):
    r = run_probe(milter("reject").spec)
    assert r["verdict"] == "reject"
    assert r["reply"] == "550 5.7.1 Rejected by the test milter"


def test_multi_line_replycode_keeps_its_lines(run_probe, milter):
    r = run_probe(milter("reject_multi").spec)
    assert r["verdict"] == "reject"
    assert r["reply"] == ("550-5.7.1 Rejected by the test milter\r\n"
                          "550 5.7.1 See the second line")


def test_plain_reject_gets_the_default_text(run_probe, milter):
    r = run_probe(milter("reject_plain").spec)
    assert r["verdict"] == "reject" and r["reply"] == "550 5.7.1 Message rejected"


def test_tempfail(run_probe, milter):
    r = run_probe(milter("tempfail").spec)
    assert r["verdict"] == "tempfail" and r["reply"] == "451 4.7.1 Try again later"


def test_4xx_replycode_is_tempfail(run_probe, milter):
    r = run_probe(milter("tempfail_code").spec)
    assert r["verdict"] == "tempfail" and r["reply"] == "451 4.7.0 Test milter busy"


def test_discard(run_probe, milter):
    assert run_probe(milter("discard").spec)["verdict"] == "discard"


def test_header_changes_in_the_order_received(run_probe, milter):
    r = run_probe(milter("headers").spec)
    assert r["verdict"] == "accept"
    assert r["changes"] == [
        {"kind": "add", "index": 0, "name": "X-Test-Milter",
         "value": "checked by the test milter"},
        {"kind": "insert", "index": 0, "name": "X-First", "value": "inserted\n\tfolded"},
        {"kind": "change", "index": 1, "name": "Subject", "value": "changed subject"},
    ]


def test_quarantine(run_probe, milter):
    r = run_probe(milter("quarantine").spec)
    assert r["verdict"] == "accept" and r["quarantine"]
    assert r["quarantine_reason"] == "spam from the test milter"


def test_progress_then_continue(run_probe, milter):
    assert run_probe(milter("progress").spec)["verdict"] == "accept"


def test_changes_are_capped(run_probe, milter):
    r = run_probe(milter("many_changes").spec)
    assert r["verdict"] == "accept" and len(r["changes"]) == 100
    assert r["changes"][-1]["name"] == "X-Many-99"


def test_unknown_reply_after_the_body_is_ignored(run_probe, milter):
    r = run_probe(milter("unknown").spec)
    assert r["verdict"] == "accept" and [c["name"] for c in r["changes"]] == ["X-After"]


def test_accept_at_connect_ends_the_conversation(run_probe, milter):
    m = milter("accept_early")
    r = run_probe(m.spec)
    assert r["verdict"] == "accept"
    assert [c for c in commands(m) if c != b"D"] == [b"O", b"C", b"Q"]


def test_recipient_refused_for_every_recipient_rejects(run_probe, milter):
    r = run_probe(milter("rcpt_reject").spec, rcpt=["a@example.org", "b@example.org"])
    assert r["verdict"] == "reject" and r["reply"] == "550 5.1.1 No such user here"


def test_skip_stops_the_body(run_probe, milter):
    m = milter("skip", protocol=SMFIP_SKIP)
    body = "x" * 70000 + "\r\n" + "y" * 70000 + "\r\n"
    r = run_probe(m.spec, message="Subject: big\r\n\r\n" + body)
    assert r["verdict"] == "accept"
    assert commands(m).count(b"B") == 1


def test_body_goes_in_chunks_of_at_most_65535(run_probe, milter):
    m = milter("accept")
    body = ("z" * 998 + "\r\n") * 200
    run_probe(m.spec, message="Subject: big\r\n\r\n" + body)
    chunks = [d for c, d in m.conversations[0] if c == b"B"]
    assert all(len(c) <= 65535 for c in chunks) and len(chunks) == 4
    assert b"".join(chunks) == body.encode()


def test_fields_too_big_for_a_packet_are_bounded(run_probe, milter):
    m = milter("accept")
    long_name = "X-" + "n" * 1200
    msg = ("Subject: big fields\r\n" + long_name + ": skipped\r\n" +
           "X-Long: " + "a" * 70000 + "\r\n\r\nbody\r\n")
    r = run_probe(m.spec, message=msg)
    assert r["verdict"] == "accept"
    fields = [d for c, d in m.conversations[0] if c == b"L"]
    assert [split_nul(d)[0] for d in fields] == ["Subject", "X-Long"]
    assert len(fields[1]) + 1 == 65536  # the command octet and the data: one packet's bound


def test_steps_the_milter_does_not_want_are_not_sent(run_probe, milter):
    m = milter("headers", protocol=SMFIP_NOCONNECT | SMFIP_NOHDRS | SMFIP_NOBODY)
    r = run_probe(m.spec)
    assert r["verdict"] == "accept" and len(r["changes"]) == 3
    cmds = [c for c in commands(m) if c != b"D"]
    assert b"C" not in cmds and b"L" not in cmds and b"B" not in cmds
    assert cmds[-2:] == [b"E", b"Q"]


def test_steps_without_replies_are_not_waited_for(run_probe, milter):
    every_nr = (SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT |
                SMFIP_NR_DATA | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY)
    m = milter("reject", protocol=every_nr)
    r = run_probe(m.spec, timeout=5)
    assert r["verdict"] == "reject"


def test_hanging_milter_fails_by_the_deadline(run_probe, milter):
    m = milter("hang")
    started = time.monotonic()
    r = run_probe(m.spec, timeout=2)
    assert r["verdict"] == "failed" and "timed out" in r["error"]
    assert time.monotonic() - started < PROBE_TIMEOUT


def test_oversized_packet_fails(run_probe, milter):
    r = run_probe(milter("garbage").spec)
    assert r["verdict"] == "failed" and "octets" in r["error"]


def test_bad_negotiation_fails(run_probe, milter):
    r = run_probe(milter("bad_optneg").spec)
    assert r["verdict"] == "failed" and "OPTNEG" in r["error"]


def test_connection_refused_fails(run_probe):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_probe(f"inet:127.0.0.1:{port}")
    assert r["verdict"] == "failed" and "cannot connect" in r["error"]


def test_unix_socket(run_probe, milter, tmp_path):
    m = milter("reject", unix_path=str(tmp_path / "milter.sock"))
    r = run_probe(m.spec)
    assert r["verdict"] == "reject"


def test_ipv6_loopback_in_brackets(run_probe, milter):
    m = milter("discard", host="::1")
    assert m.spec.startswith("inet:[::1]:")
    assert run_probe(m.spec)["verdict"] == "discard"


def test_host_name_is_resolved(run_probe, milter):
    m = milter("discard")
    port = m.spec.rsplit(":", 1)[1]
    assert run_probe(f"inet:localhost:{port}")["verdict"] == "discard"


# ---- rspamd ----

@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    r = Rspamd(tmp_path_factory.mktemp("rspamd")).start()
    yield r
    r.stop()


def test_rspamd_rejects_gtube_with_its_text(run_probe, rspamd):
    msg = NORMAL_MESSAGE.replace("Hello,\r\n", "Hello,\r\n" + GTUBE + "\r\n")
    r = run_probe(rspamd.spec, message=msg, timeout=60)
    assert r["verdict"] == "reject", (r, rspamd.log_tail())
    # rspamd's GTUBE rule forces the reject action with this message.
    assert r["reply"] == "554 5.7.1 Gtube pattern"
    assert r["changes"] == []


def test_rspamd_accepts_a_normal_message_and_adds_its_headers(run_probe, rspamd):
    r = run_probe(rspamd.spec, timeout=60, id="5F6A7B8C9D")
    assert r["verdict"] == "accept", (r, rspamd.log_tail())
    # rspamd took the queue id from our {i} macro.
    assert {"kind": "add", "index": 0, "name": "X-Rspamd-Queue-Id",
            "value": "5F6A7B8C9D"} in r["changes"]
    names = {c["name"] for c in r["changes"]}
    assert "X-Spamd-Result" in names, (r, rspamd.log_tail())
    result = [c for c in r["changes"] if c["name"] == "X-Spamd-Result"][0]
    assert result["value"].startswith("default: False")
    assert "MIME_GOOD" in result["value"]


# ---- a filter on libmilter ----

LIBMILTER_FILTER = Path(__file__).with_name("libmilter_filter.py")
LIBMILTER_START_TIMEOUT = 20


@pytest.fixture
def libmilter(tmp_path):
    procs = []

    def start(verdict, noreply=False, unix=False):
        log = tmp_path / ("libmilter-%d.log" % len(procs))
        if unix:
            path = str(tmp_path / ("libmilter-%d.sock" % len(procs)))
            socket_spec, spec = "unix:" + path, "unix:" + path
        else:
            port = free_port()
            socket_spec, spec = "inet:%d@127.0.0.1" % port, "inet:127.0.0.1:%d" % port
        args = [sys.executable, str(LIBMILTER_FILTER), socket_spec, verdict, str(log)]
        if noreply:
            args.append("noreply")
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                stderr=open(tmp_path / "libmilter.stderr", "a"))
        procs.append(proc)
        deadline = time.monotonic() + LIBMILTER_START_TIMEOUT
        while True:
            assert proc.poll() is None, (tmp_path / "libmilter.stderr").read_text()
            try:
                if unix:
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(path)
                else:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the libmilter filter did not listen"
                time.sleep(0.1)

        def seen():
            if not log.exists():
                return []
            return [json.loads(line) for line in log.read_text().splitlines()]
        return spec, seen
    yield start
    for proc in procs:
        # libmilter's listener notices SIGTERM only at its next 5 s poll; the filter keeps
        # nothing worth a clean stop.
        proc.kill()
        proc.wait(timeout=10)


def test_libmilter_sees_the_envelope_header_and_body(run_probe, libmilter):
    spec, seen = libmilter("accept")
    r = run_probe(spec, ip="192.0.2.9", port="2525", name="client.example.net",
                  helo="helo.example.net", **{"from": "alice@example.net"},
                  rcpt=["a@example.org", "b@example.org"], tls="TLSv1.3", id="LQID1")
    assert r["verdict"] == "accept" and r["changes"] == [], r
    steps = seen()
    assert [s["step"] for s in steps] == (["connect", "helo", "mail", "rcpt", "rcpt", "data"] +
                                          ["header"] * 6 + ["eoh", "body", "eom"])
    connect = steps[0]
    assert connect["hostname"] == "client.example.net"
    assert connect["hostaddr"] == ["192.0.2.9", 2525]
    assert connect["client_addr"] == "192.0.2.9" and connect["j"] == "mx.example.org"
    assert steps[1]["helo"] == "helo.example.net" and steps[1]["tls_version"] == "TLSv1.3"
    assert steps[2]["mailfrom"] == "<alice@example.net>"
    assert steps[2]["mail_addr"] == "alice@example.net" and steps[2]["queue_id"] == "LQID1"
    assert [s["rcpt"] for s in steps[3:5]] == ["<a@example.org>", "<b@example.org>"]
    headers = [(s["name"], s["value"]) for s in steps if s["step"] == "header"]
    assert headers[2] == ("Subject", "lunch on friday")
    assert headers[5] == ("X-Folded", "first part\n\tsecond part")
    body = [s["body"] for s in steps if s["step"] == "body"]
    assert "".join(body) == "Hello,\r\nshall we have lunch on friday at noon?\r\nAlice\r\n"
    assert steps[-1]["queue_id"] == "LQID1"


def test_libmilter_reject_with_a_multi_line_reply(run_probe, libmilter):
    spec, _ = libmilter("reject")
    r = run_probe(spec)
    assert r["verdict"] == "reject"
    assert r["reply"] == "550-5.7.1 Rejected by libmilter\r\n550 5.7.1 second line"


def test_libmilter_tempfail_with_its_reply(run_probe, libmilter):
    spec, _ = libmilter("tempfail")
    r = run_probe(spec)
    assert r["verdict"] == "tempfail" and r["reply"] == "451 4.7.1 Busy in libmilter"


def test_libmilter_discard(run_probe, libmilter):
    spec, _ = libmilter("discard")
    assert run_probe(spec)["verdict"] == "discard"


def test_libmilter_header_changes(run_probe, libmilter):
    spec, _ = libmilter("headers")
    r = run_probe(spec)
    assert r["verdict"] == "accept"
    assert r["changes"] == [
        {"kind": "add", "index": 0, "name": "X-Libmilter", "value": "added"},
        {"kind": "insert", "index": 0, "name": "X-Libmilter-First", "value": "inserted"},
        {"kind": "change", "index": 1, "name": "Subject", "value": "changed by libmilter"},
    ]


def test_libmilter_quarantine(run_probe, libmilter):
    spec, _ = libmilter("quarantine", unix=True)
    r = run_probe(spec)
    assert r["verdict"] == "accept" and r["quarantine"]
    assert r["quarantine_reason"] == "held by libmilter"


def test_libmilter_steps_without_replies(run_probe, libmilter):
    spec, seen = libmilter("reject", noreply=True)
    r = run_probe(spec)
    assert r["verdict"] == "reject", r
    assert [s["step"] for s in seen()][:6] == ["connect", "helo", "mail", "rcpt", "data",
                                               "header"]


def test_libmilter_filter_with_only_an_end_of_message_step(run_probe, libmilter):
    spec, seen = libmilter("eom_only")
    r = run_probe(spec, id="LQID2")
    assert r["verdict"] == "accept"
    assert r["changes"] == [{"kind": "add", "index": 0, "name": "X-Eom-Only", "value": "yes"}]
    assert seen() == [{"step": "eom", "queue_id": "LQID2"}]
