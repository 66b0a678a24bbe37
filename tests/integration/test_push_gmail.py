"""Push delivery into Gmail (issue 13), server level: mailpopbox with a "gmail" Destination whose
GmailAPIURL and OAuth client point at the local fake (gmailfake.py). A message received by SMTP
is imported at once with INBOX and UNREAD, leaves the maildrop (or gets the Maildir P flag with
KeepCopy), and failures keep it: 5xx retried, a revoked token logged with the action to take and
retried once a new token is there, a refused message kept and not retried. A kill -9 while
Google's answer is on its way does not import the message twice when the read scope was granted.
"""

import json
import re
import signal
import time

import pytest

from conftest import make_message
from gmailfake import GmailFake, SCOPE_INSERT, SCOPE_READ

WAIT = 60.0


@pytest.fixture
def fake(test_ca, tmp_path):
    made = GmailFake(test_ca, tmp_path).start()
    yield made
    made.stop()


@pytest.fixture
def gmail_server(make_server, fake, tmp_path):
    """factory(scope=..., keep_copy=False) -> a running Server whose example.org pushes into
    the fake; .token_file is its OAuthTokenFile."""
    def factory(scope=SCOPE_INSERT, keep_copy=False, start=True):
        directory = tmp_path / f"oauth{len(list(tmp_path.glob('oauth*')))}"
        directory.mkdir()
        client_file = fake.write_client_file(directory / "client.json")
        token_file = directory / "token.json"
        if scope:
            fake.write_token_file(token_file, scope)

        def servers(entries):
            entries[0]["Destination"] = fake.destination(client_file, token_file,
                                                          KeepCopy=keep_copy)
            return entries
        server = make_server(servers=servers, start=start)
        server.token_file = token_file
        return server
    return factory


def wait_for(predicate, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def send(server, subject, message_id):
    message = make_message(subject, extra_headers=f"Message-ID: <{message_id}>\r\n".encode())
    with server.connect() as smtp:
        smtp.ehlo()
        reply = smtp.transaction("sender@remote.example", ["anyone@example.org"], message)
        assert reply.code == 250, reply
    return message


def maildrop_files(server):
    return [p for p in server.maildir_files() if p.parent.name != "tmp"]


def assert_no_secret_logged(server, fake):
    log = server.log_text()
    for secret in fake.secrets_issued() + [fake.client_secret]:
        assert secret not in log, "a token or secret reached the log"


def test_a_received_message_is_imported_at_once_and_leaves_the_maildrop(gmail_server, fake):
    server = gmail_server()
    message = send(server, "first", "first@example.net")
    [imported] = wait_for(lambda: fake.messages, "the import")
    assert imported["raw"].endswith(message), "the message as received, trace headers first"
    assert b"Received: " in imported["raw"]
    assert imported["labelIds"] == ["INBOX", "UNREAD"]
    assert imported["internalDateSource"] == "dateHeader"
    assert imported["message_id"] == "first@example.net"
    wait_for(lambda: not maildrop_files(server), "the maildrop to empty (KeepCopy false)")
    wait_for(lambda: re.search(rf"event=pushed .*destination=gmail.*remote_id={imported['id']}",
                               server.log_text()), "the pushed line")
    assert_no_secret_logged(server, fake)


def test_keep_copy_leaves_the_message_marked_passed(gmail_server, fake):
    server = gmail_server(keep_copy=True)
    send(server, "kept", "kept@example.net")
    [imported] = wait_for(lambda: fake.messages, "the import")
    [kept] = wait_for(lambda: [p for p in maildrop_files(server)
                               if p.parent.name == "cur" and re.search(r":2,[A-Z]*P", p.name)],
                      "the P flag in cur/")
    assert kept.read_bytes() == imported["raw"]


def test_messages_are_imported_once_each_in_arrival_order(gmail_server, fake):
    server = gmail_server()
    ids = [f"order-{i}@example.net" for i in range(10)]
    for i, message_id in enumerate(ids):
        send(server, f"order {i}", message_id)
    wait_for(lambda: len(fake.messages) >= len(ids), "ten imports")
    time.sleep(1)
    assert [m["message_id"] for m in fake.messages] == ids
    wait_for(lambda: not maildrop_files(server), "the maildrop to empty")


def test_a_server_error_keeps_the_message_until_a_retry_succeeds(gmail_server, fake):
    server = gmail_server()
    fake.inject("import", 500)
    fake.inject("import", 429)
    send(server, "retried", "retried@example.net")
    wait_for(lambda: fake.count("import") >= 1, "the first attempt")
    wait_for(lambda: "status=temporary" in server.log_text(), "the failure logged")
    assert maildrop_files(server), "kept while Google fails"
    server.kill(signal.SIGUSR1)  # retry now rather than after the backoff
    wait_for(lambda: fake.messages, "the import after the retries")
    wait_for(lambda: not maildrop_files(server), "the maildrop to empty")
    assert len(fake.messages) == 1


def test_an_expired_access_token_is_refreshed_without_losing_the_message(gmail_server, fake):
    server = gmail_server()
    send(server, "one", "one@example.net")
    wait_for(lambda: fake.messages, "the first import")
    fake.expire_access_tokens()
    send(server, "two", "two@example.net")
    wait_for(lambda: len(fake.messages) == 2, "the second import")
    assert fake.token_grants.count("refresh_token") == 2


def test_a_revoked_token_says_to_authorize_and_the_message_waits(gmail_server, fake):
    server = gmail_server()
    fake.revoke()
    send(server, "waiting", "waiting@example.net")
    wait_for(lambda: re.search(r"status=auth.*mailpopbox authorize", server.log_text()),
             "the auth failure with the action to take")
    assert not fake.messages
    assert maildrop_files(server)
    fake.write_token_file(server.token_file, SCOPE_INSERT)  # what `authorize` does
    server.kill(signal.SIGHUP)
    server.kill(signal.SIGUSR1)
    wait_for(lambda: fake.messages, "the import with the new token")
    wait_for(lambda: not maildrop_files(server), "the maildrop to empty")
    assert_no_secret_logged(server, fake)


def test_a_refused_message_stays_for_pop3_and_is_not_retried(gmail_server, fake):
    server = gmail_server()
    fake.inject("import", 400)
    send(server, "refused", "refused@example.net")
    wait_for(lambda: "event=push_refused" in server.log_text(), "the refusal logged")
    assert len(maildrop_files(server)) == 1, "kept: POP3 still serves it"
    server.kill(signal.SIGUSR1)
    send(server, "after", "after@example.net")
    wait_for(lambda: fake.messages, "the next message's import")
    time.sleep(1)
    assert [m["message_id"] for m in fake.messages] == ["after@example.net"]
    assert fake.count("import") == 2, "the refused message is not offered again"


def test_a_crash_before_google_answers_does_not_import_twice_with_the_read_scope(
        gmail_server, fake):
    server = gmail_server(scope=f"{SCOPE_INSERT} {SCOPE_READ}")
    fake.hold_import_answers()
    send(server, "in doubt", "doubt@example.net")
    wait_for(lambda: fake.messages, "the import (its answer held back)")
    server.kill(signal.SIGKILL)
    fake.release_import_answers()
    assert maildrop_files(server), "not confirmed, so still in the maildrop"
    server.start()
    wait_for(lambda: fake.count("list") >= 1, "the lookup by Message-ID")
    wait_for(lambda: not maildrop_files(server), "the in-doubt message finalised")
    assert len(fake.messages) == 1, "found at Gmail, so not imported again"


def test_the_message_in_doubt_is_sent_again_when_gmail_does_not_have_it(gmail_server, fake):
    server = gmail_server(scope=f"{SCOPE_INSERT} {SCOPE_READ}")
    fake.hold_import_answers()
    send(server, "lost", "lost@example.net")
    wait_for(lambda: fake.messages, "the import (its answer held back)")
    server.kill(signal.SIGKILL)
    fake.release_import_answers()
    with fake.lock:
        fake.messages.clear()  # as if Google had never stored it
    server.start()
    wait_for(lambda: fake.messages, "the import again")
    wait_for(lambda: not maildrop_files(server), "the maildrop to empty")
    assert [m["message_id"] for m in fake.messages] == ["lost@example.net"]
