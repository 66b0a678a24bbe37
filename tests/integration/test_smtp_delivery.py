"""What lands in the Maildir: exact bytes, trace headers, one copy per domain, durability."""

import os
import random
import re
import signal
import smtplib
import subprocess
import threading

import pytest

from conftest import (IO_TIMEOUT, check_trace_headers, dot_stuff, make_message, queue_id)


def deliver(server, message, recipients=("someone@example.org",), mail_from="sender@example.net.test",
            helo="client.example.net", mail_params=""):
    with server.connect() as client:
        client.ehlo(helo)
        reply = client.transaction(mail_from, list(recipients), message, mail_params)
        client.command("QUIT")
    return queue_id(reply)


def test_stored_message_is_trace_headers_then_exact_bytes(server):
    message = make_message("exact", b"line one\r\nline two\r\n")
    queue = deliver(server, message, ["catchall@example.org"], helo="helo.client.test")
    stored = server.message()
    headers = stored.split(message)
    check_trace_headers(headers, "sender@example.net.test", ["catchall@example.org"],
                        helo="helo.client.test", queue=queue, for_recipient="catchall@example.org")


def test_maildir_file_name_carries_size(server):
    message = make_message("size", b"x" * 1234 + b"\r\n")
    deliver(server, message)
    stored = server.message()
    match = re.search(r",S=(\d+)", stored.path.name)
    assert match, f"no ,S=<size> in {stored.path.name}"
    assert int(match.group(1)) == len(stored.data) == stored.path.stat().st_size
    assert not stored.path.name.startswith(".")


def test_maildir_directories_are_created(server):
    deliver(server, make_message("dirs"))
    for sub in ("tmp", "new", "cur"):
        assert (server.maildrop() / sub).is_dir(), sub
    assert [p.parent.name for p in server.maildir_files()] == ["new"]


def test_null_sender_is_stored_with_empty_return_path(server):
    message = make_message("bounce")
    queue = deliver(server, message, ["postmaster@example.org"], mail_from="")
    headers = server.message().split(message)
    check_trace_headers(headers, "", ["postmaster@example.org"], helo="client.example.net",
                        queue=queue)


def test_eight_bit_body_is_stored_byte_for_byte(server):
    # Every octet but NUL, CR and LF (RFC 2045 2.8: 8bit data has no NUL and no bare CR/LF).
    body = bytes(b for b in range(1, 256) if b not in (0x0a, 0x0d)) * 4 + b"\r\n"
    body += "Grüße, 你好, Привет\r\n".encode() + b"\xff\xfe\x80 high bytes\r\n"
    message = make_message("8bit", body, b"Content-Transfer-Encoding: 8bit\r\n")
    deliver(server, message, mail_params="BODY=8BITMIME")
    server.message().split(message)


def test_lines_starting_with_dots_are_unstuffed_exactly(server):
    body = (b".\r\n..\r\n...\r\n.leading dot\r\n..two dots\r\n. space\r\nnot.first\r\n"
            b".\r\n.\r\n")
    message = make_message("dots", body)
    wire = dot_stuff(message)
    assert b"\r\n..\r\n" in wire and b"\r\n...\r\n" in wire
    deliver(server, message)
    stored = server.message()
    stored.split(message)
    assert stored.data.endswith(b"\r\n.\r\n.\r\n")


def test_smtputf8_addresses_are_accepted_and_stored(server):
    message = make_message("utf8", "Grüße\r\n".encode())
    with server.connect() as client:
        client.ehlo()
        reply = client.command("MAIL FROM:<jürgen@beispiel.example> SMTPUTF8".encode())
        assert reply.code == 250, reply
        reply = client.command("RCPT TO:<грüße@example.org>".encode())
        assert reply.code == 250, reply
        assert client.command("DATA").code == 354
        client.send(message + b".\r\n")
        queue_id(client.read_reply())
    headers = server.message().split(message)
    assert [v.strip("<>") for k, v in headers if k == "Delivered-To"] == ["грüße@example.org"]


def test_several_recipients_in_one_domain_store_one_copy(server):
    message = make_message("one copy")
    recipients = ["a@example.org", "b@example.org", "C@Example.Org"]
    queue = deliver(server, message, recipients)
    headers = server.message("example.org").split(message)
    check_trace_headers(headers, "sender@example.net.test", recipients, helo="client.example.net",
                        queue=queue)
    assert server.messages("example.net") == []


def test_recipients_in_two_domains_store_one_copy_in_each(server):
    message = make_message("two domains")
    queue = deliver(server, message, ["a@example.org", "b@example.net", "c@example.net"])
    org = server.message("example.org").split(message)
    net = server.message("example.net").split(message)
    check_trace_headers(org, "sender@example.net.test", ["a@example.org"],
                        helo="client.example.net", queue=queue)
    check_trace_headers(net, "sender@example.net.test", ["b@example.net", "c@example.net"],
                        helo="client.example.net", queue=queue)


def test_several_messages_in_one_session_are_stored_separately(server):
    messages = [make_message(f"number {n}", f"body {n}\r\n".encode()) for n in range(3)]
    queues = set()
    with server.connect() as client:
        client.ehlo()
        for message in messages:
            queues.add(queue_id(client.transaction("a@elsewhere.example", ["x@example.org"],
                                                   message)))
    assert len(queues) == 3, "queue ids are unique"
    stored = server.messages()
    assert len(stored) == 3
    assert sorted(s.data[-len(b"body 0\r\n"):] for s in stored) == \
        [b"body 0\r\n", b"body 1\r\n", b"body 2\r\n"]
    assert len({s.path.name for s in stored}) == 3


def test_one_megabyte_message_is_stored_exactly(server):
    rng = random.Random(1)
    lines = []
    size = 0
    while size < 1024 * 1024:
        line = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz .-0123456789\xc3\xa9")
                     for _ in range(rng.randrange(0, 200)))
        lines.append(line)
        size += len(line) + 2
    message = make_message("1 MB", b"\r\n".join(lines) + b"\r\n")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="lib.example.net",
                      timeout=IO_TIMEOUT) as client:
        client.sendmail("a@elsewhere.example", ["big@example.org"], message)
    server.message().split(message)


def test_forty_megabyte_message_is_stored_exactly(server):
    # 40,000,000 octets: below the default MaxMessageSize of 40,960,000.
    pattern = b"".join(
        (b"." if n % 7 == 0 else b"") + b"%06d " % n + b"0123456789abcdef" * 4 + b"\xe2\x82\xac\r\n"
        for n in range(1000))
    body = (pattern * (40_000_000 // len(pattern) + 1))
    body = body[:body.rfind(b"\r\n", 0, 40_000_000 - 400) + 2]
    message = make_message("40 MB", body)
    assert 39_000_000 < len(message) < 40_000_000
    deliver(server, message, ["big@example.org"])
    stored = server.message()
    stored.split(message)
    assert os.path.getsize(stored.path) == len(stored.data)


def test_swaks_delivers_a_message(server):
    result = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{server.smtp_port}", "--to", "swaks@example.org",
         "--from", "tester@elsewhere.example", "--helo", "swaks.example.net",
         "--header", "Subject: from swaks", "--body", "Hello from swaks.",
         "--timeout", "30"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    data = server.message().data
    assert b"Subject: from swaks\r\n" in data
    assert b"Hello from swaks.\r\n" in data
    assert b"from swaks.example.net" in data


def test_swaks_pipelining_delivers_a_message(server):
    result = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{server.smtp_port}", "--pipeline",
         "--to", "pipe@example.org,pipe2@example.org", "--from", "tester@elsewhere.example",
         "--body", "Pipelined.", "--timeout", "30"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert b"Pipelined.\r\n" in server.message().data


def test_message_acknowledged_before_sigkill_survives_restart(server):
    message = make_message("durable", b"must survive SIGKILL\r\n" * 100)
    with server.connect() as client:
        client.ehlo()
        reply = client.transaction("a@elsewhere.example", ["durable@example.org"], message)
        server.kill(signal.SIGKILL)  # right after the 250, before anything else
    queue_id(reply)
    server.start()
    stored = server.message()
    stored.split(message)
    assert server.maildir_files() == [stored.path]
    # and the restarted server still delivers
    deliver(server, make_message("after restart"))
    assert len(server.messages()) == 2


def test_one_hundred_concurrent_sessions_are_all_stored(make_server):
    server = make_server({"MaxConnectionsPerIP": 500, "MaxConnections": 1000})
    count = 100
    barrier = threading.Barrier(count, timeout=60)
    errors = []

    def one_session(number):
        try:
            message = make_message(f"concurrent {number}", f"session {number:03d}\r\n".encode())
            with server.connect() as client:
                barrier.wait()
                client.ehlo(f"c{number}.example.net")
                queue_id(client.transaction(f"s{number}@elsewhere.example",
                                            [f"r{number}@example.org"], message))
                client.command("QUIT")
        except Exception as error:  # reported below, with the session number
            errors.append(f"session {number}: {error!r}")

    threads = [threading.Thread(target=one_session, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "sessions hung"
    assert not errors, "\n".join(errors[:10])
    bodies = sorted(stored.data[-len(b"session 000\r\n"):] for stored in server.messages())
    assert bodies == [f"session {n:03d}\r\n".encode() for n in range(count)]


@pytest.mark.parametrize("recipient", ["case@EXAMPLE.ORG", "Case@Example.Org"])
def test_domain_is_matched_case_insensitively_for_storage(server, recipient):
    message = make_message("case")
    deliver(server, message, [recipient])
    server.message("example.org").split(message)
    assert server.messages("example.net") == []
