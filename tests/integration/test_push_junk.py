"""Push delivery of the maildrop's Junk folder (issue 14, "Junk routing"): a quarantined message
is delivered into MAILDROP/.Junk/new (Maildir++), and the push engine takes it to the
destination's Junk: IMAP APPEND into Destination.JunkMailbox (created when the server answers
[TRYCREATE]), Gmail import with the label SPAM. The same rules as INBOX: in arrival order,
removed (or marked P in .Junk/cur with KeepCopy) only after the destination confirmed it, an
attempt journalled first and looked up in the Junk mailbox after a crash.

The messages are written into .Junk the way a delivery writes them (tmp/ then a rename into
new/; the folder made on first use with tmp/ new/ cur/ and a `maildirfolder` file) while
mailpopbox runs, so the engine must notice a folder that did not exist at its start. The
destinations are real: a private Dovecot (dovecotfixture.py), checked over IMAP with imaplib,
and the local Gmail API fake (gmailfake.py). POP3 serves INBOX only: a Junk message is never
listed. No timing is asserted: every wait is a bound.
"""

import itertools
import json
import os
import random
import re
import signal
import time
import uuid

import pytest

from conftest import make_message
from dovecotfixture import make_dovecot, dovecot, message_id_of  # noqa: F401 (fixtures)
from gmailfake import GmailFake, SCOPE_INSERT, SCOPE_READ
from pop3util import login as pop3_login
from test_push_imap import (DOMAIN, PUSH_TIMEOUT, RETRY_TIMEOUT, log_events, push_server,
                            restart_after_kill, run_queue, send, wait_for_event, wait_until)

JOURNAL = ".mailpopbox-push"
NAMES = itertools.count(1)


# --- writing into the Junk folder as a delivery does ------------------------------------------

def junk_folder(server):
    return server.maildrop(DOMAIN) / ".Junk"


def make_junk_folder(server):
    """The Maildir++ folder as the SMTP side makes it on first use."""
    folder = junk_folder(server)
    for sub in ("tmp", "new", "cur"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "maildirfolder").touch()
    return folder


def unique_name():
    now = time.time()
    return (f"{int(now)}.M{int(now * 1e6) % 1000000}P{os.getpid()}Q{next(NAMES)}"
            f".junktest")


def junk_message(label):
    """(message bytes with CRLF line ends, its Message-ID)."""
    message_id = f"<{label}.{uuid.uuid4().hex}@quarantined.example.net>"
    message = make_message(f"junk {label}", b"Buy now.\r\n",
                           extra_headers=f"Message-ID: {message_id}\r\n".encode())
    return message, message_id


def deliver_file(server, label, folder="junk"):
    """One message written into .Junk/new (folder "junk") or new/ ("inbox"): tmp/ then a
    rename, as a delivery does. Returns (its Message-ID, its name)."""
    base = make_junk_folder(server) if folder == "junk" else server.maildrop(DOMAIN)
    message, message_id = junk_message(label)
    name = unique_name()
    tmp = base / "tmp" / name
    with open(tmp, "wb") as f:
        f.write(message)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, base / "new" / name)
    return message_id, name


def junk_files(server):
    folder = junk_folder(server)
    return [p for sub in ("new", "cur") if (folder / sub).is_dir()
            for p in (folder / sub).iterdir() if p.is_file()]


def inbox_files(server):
    return [p for sub in ("new", "cur") for p in (server.maildrop(DOMAIN) / sub).iterdir()
            if p.is_file()]


def flags(path):
    match = re.search(r":2,([A-Za-z]*)$", path.name)
    return match.group(1) if match else ""


def started(server):
    """The push thread has started and made its first listing (before .Junk exists)."""
    wait_for_event(server, "push_started")
    time.sleep(0.5)


def pop3_count(server):
    client = pop3_login(server)
    try:
        count, _ = client.stat()
        return count
    finally:
        client.quit()


def imap_ids(dovecot, mailbox):
    """Message-IDs in the Dovecot mailbox, over IMAP (imaplib); [] when it does not exist."""
    client = dovecot.imap()
    try:
        typ, _ = client.select(f'"{mailbox}"', readonly=True)
        if typ != "OK":
            return []
        typ, data = client.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        return [message_id_of(item[1]) for item in data if isinstance(item, tuple)]
    finally:
        client.logout()


def wait_in_mailbox(server, dovecot, mailbox, message_ids, timeout=PUSH_TIMEOUT):
    wanted = set(message_ids)
    return wait_until(lambda: (lambda ids: ids if wanted <= set(ids) else None)(
        imap_ids(dovecot, mailbox)), timeout,
        f"not all of {sorted(wanted)} in Dovecot's {mailbox}; log:\n{server.log_text()[-4000:]}")


def assert_once_in(dovecot, mailbox, message_ids):
    found = imap_ids(dovecot, mailbox)
    duplicates = sorted({m for m in found if found.count(m) > 1})
    assert not duplicates, f"pushed twice into {mailbox}: {duplicates}"
    assert set(found) == set(message_ids), (
        f"{mailbox}: missing {sorted(set(message_ids) - set(found))}, "
        f"extra {sorted(set(found) - set(message_ids))}")


# --- IMAP: Dovecot ----------------------------------------------------------------------------

def test_junk_message_goes_to_the_junk_mailbox_not_inbox(make_server, dovecot):
    server = push_server(make_server, dovecot, KeepCopy=False)
    started(server)
    # The folder does not exist at the engine's start: made now, like a first quarantine.
    assert not junk_folder(server).exists()
    junk_id, junk_name = deliver_file(server, "first")
    wait_in_mailbox(server, dovecot, "Junk", [junk_id])
    # Once the folder exists, its new/ is watched: a second one goes too.
    second_id, _ = deliver_file(server, "second")
    inbox_ids = [m for m, _ in send(server, 1, "clean")]
    wait_in_mailbox(server, dovecot, "Junk", [junk_id, second_id])
    wait_in_mailbox(server, dovecot, "INBOX", inbox_ids)
    assert_once_in(dovecot, "Junk", [junk_id, second_id])
    assert_once_in(dovecot, "INBOX", inbox_ids)
    # KeepCopy false: gone from .Junk once Dovecot confirmed; the folder itself stays.
    wait_until(lambda: not junk_files(server) and not inbox_files(server), PUSH_TIMEOUT,
               f"left in the maildrop: {junk_files(server) + inbox_files(server)}")
    assert (junk_folder(server) / "maildirfolder").exists()
    pushed = [e for e in log_events(server, "pushed") if e.get("file", "").startswith(".Junk/")]
    assert {e["file"] for e in pushed} >= {f".Junk/{junk_name}"}, pushed
    assert not re.search(r"event=mailbox_created", server.log_text()), "Junk existed already"


def test_junk_mailbox_name_is_configurable(make_server, make_dovecot):
    dovecot = make_dovecot(mailboxes=("Spam",))
    server = push_server(make_server, dovecot, JunkMailbox="Spam")
    started(server)
    message_id, _ = deliver_file(server, "spam")
    wait_in_mailbox(server, dovecot, "Spam", [message_id])
    assert imap_ids(dovecot, "INBOX") == []


def test_missing_junk_mailbox_is_created_on_trycreate(make_server, make_dovecot):
    dovecot = make_dovecot(mailboxes=())  # no Junk: APPEND answers NO [TRYCREATE]
    client = dovecot.imap()
    try:
        assert client.select('"Junk"', readonly=True)[0] == "NO"
    finally:
        client.logout()
    server = push_server(make_server, dovecot)
    started(server)
    first = [deliver_file(server, f"create-{i}")[0] for i in range(3)]
    inbox = [m for m, _ in send(server, 2, "around-create")]
    wait_in_mailbox(server, dovecot, "Junk", first)
    wait_in_mailbox(server, dovecot, "INBOX", inbox)
    [created] = wait_for_event(server, "mailbox_created")
    assert created.get("mailbox") == "Junk", created
    assert created.get("reason") == "trycreate", created
    # Made once: later Junk messages are appended directly.
    later, _ = deliver_file(server, "after-create")
    wait_in_mailbox(server, dovecot, "Junk", first + [later])
    assert len(log_events(server, "mailbox_created")) == 1
    assert_once_in(dovecot, "Junk", first + [later])
    assert_once_in(dovecot, "INBOX", inbox)
    assert not log_events(server, "push_failed"), "the TRYCREATE was not handled in one go"
    wait_until(lambda: not junk_files(server), PUSH_TIMEOUT, "the Junk folder did not empty")


def test_keep_copy_marks_junk_passed_in_its_own_folder_and_pop3_never_lists_it(
        make_server, dovecot):
    server = push_server(make_server, dovecot, KeepCopy=True)
    started(server)
    ids = [deliver_file(server, f"keep-{i}")[0] for i in range(2)]
    inbox = [m for m, _ in send(server, 1, "keep-inbox")]
    wait_in_mailbox(server, dovecot, "Junk", ids)
    wait_in_mailbox(server, dovecot, "INBOX", inbox)

    def all_passed():
        files = junk_files(server)
        return files if len(files) == 2 and all(
            p.parent.name == "cur" and "P" in flags(p) for p in files) else None
    files = wait_until(all_passed, PUSH_TIMEOUT,
                       f"not two files in .Junk/cur with P: {junk_files(server)}")
    assert sorted(message_id_of(p.read_bytes()) for p in files) == sorted(ids)
    # Not moved into INBOX's cur/.
    wait_until(lambda: len(inbox_files(server)) == 1, PUSH_TIMEOUT, "INBOX copy kept")
    assert all(message_id_of(p.read_bytes()) == inbox[0] for p in inbox_files(server))
    # POP3 serves INBOX only: the one clean message, never the Junk ones.
    assert pop3_count(server) == 1
    # A restart does not push them again: P means done, in .Junk as in INBOX.
    server.restart()
    started(server)
    time.sleep(1)
    assert_once_in(dovecot, "Junk", ids)
    assert_once_in(dovecot, "INBOX", inbox)
    assert pop3_count(server) == 1


def test_pop3_does_not_list_junk_messages_waiting_to_be_pushed(make_server, dovecot):
    server = push_server(make_server, dovecot)
    dovecot.stop()
    started(server)
    deliver_file(server, "unlisted")
    deliver_file(server, "unlisted-cur")
    wait_for_event(server, "push_failed", status="temporary")
    # The same maildrop through POP3: INBOX is empty.
    assert pop3_count(server) == 0
    send(server, 1, "listed")
    assert pop3_count(server) == 1


def test_queue_lists_junk_pushes_with_their_folder(make_server, dovecot):
    server = push_server(make_server, dovecot)
    dovecot.stop()
    started(server)
    _, name = deliver_file(server, "queued")
    send(server, 1, "queued-inbox")
    wait_for_event(server, "push_failed", status="temporary")

    def listing():
        result = run_queue(server)
        assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
        return result.stdout if f".Junk/{name}" in result.stdout else None
    output = wait_until(listing, 10, "`mailpopbox queue` does not list the Junk message")
    assert re.search(r"2 pending \(1 in Junk\)", output), output
    [line] = [l for l in output.splitlines() if f".Junk/{name}" in l]
    assert "folder Junk" in line, line
    status = json.loads((server.maildrop(DOMAIN) / ".mailpopbox-push-status").read_text())
    assert status["junk_pending"] == 1, status
    dovecot.start()
    server.kill(signal.SIGUSR1)
    wait_until(lambda: not junk_files(server), RETRY_TIMEOUT, "the Junk folder did not empty")


def test_in_doubt_junk_message_found_in_junk_is_not_appended_again(make_server, dovecot):
    """An attempt journalled for a Junk message with no outcome (a crash after the APPEND was
    sent): the restarted engine looks it up in the Junk mailbox (EXAMINE Junk, UID SEARCH) and
    finalises it; one that is not there is sent."""
    server = push_server(make_server, dovecot, start=False)
    maildrop = server.maildrop(DOMAIN)
    for sub in ("tmp", "new", "cur"):
        (maildrop / sub).mkdir(parents=True, exist_ok=True)
    there_id, there = deliver_file(server, "doubt-there")
    lost_id, lost = deliver_file(server, "doubt-lost")
    # What the crashed process had sent: the first reached Dovecot's Junk.
    data = (junk_folder(server) / "new" / there).read_bytes()
    client = dovecot.imap()
    try:
        typ, _ = client.append('"Junk"', None, None, data)
        assert typ == "OK"
    finally:
        client.logout()
    # The same name in INBOX too, not in doubt: its key is not the Junk one's.
    inbox_id, _ = deliver_file(server, "doubt-inbox", folder="inbox")
    (maildrop / JOURNAL).write_text(f"A .Junk/{there}\nA .Junk/{lost}\n")
    server.start()
    wait_in_mailbox(server, dovecot, "Junk", [there_id, lost_id], timeout=RETRY_TIMEOUT)
    wait_in_mailbox(server, dovecot, "INBOX", [inbox_id], timeout=RETRY_TIMEOUT)
    wait_until(lambda: not junk_files(server), RETRY_TIMEOUT, "the Junk folder did not empty")
    assert_once_in(dovecot, "Junk", [there_id, lost_id])
    assert_once_in(dovecot, "INBOX", [inbox_id])
    found = [e for e in log_events(server, "pushed") if e.get("in_doubt") == "found"]
    assert [e.get("file") for e in found] == [f".Junk/{there}"], found
    assert any(e.get("file") == f".Junk/{lost}" and e.get("action") == "not_found_sending"
               for e in log_events(server, "push_in_doubt")), server.log_text()[-3000:]


def test_in_doubt_junk_message_when_the_junk_mailbox_does_not_exist(make_server, make_dovecot):
    """EXAMINE of a missing Junk mailbox (NO [NONEXISTENT]) means "not there": the message is
    sent, the mailbox created on [TRYCREATE]."""
    dovecot = make_dovecot(mailboxes=())
    server = push_server(make_server, dovecot, start=False)
    for sub in ("tmp", "new", "cur"):
        (server.maildrop(DOMAIN) / sub).mkdir(parents=True, exist_ok=True)
    message_id, name = deliver_file(server, "doubt-nonexistent")
    (server.maildrop(DOMAIN) / JOURNAL).write_text(f"A .Junk/{name}\n")
    server.start()
    wait_in_mailbox(server, dovecot, "Junk", [message_id], timeout=RETRY_TIMEOUT)
    assert_once_in(dovecot, "Junk", [message_id])
    assert log_events(server, "mailbox_created")
    assert not log_events(server, "push_failed")


def test_kill9_during_a_mixed_push_run_delivers_each_message_once_in_its_mailbox(
        make_server, dovecot):
    """INBOX and Junk messages wait while Dovecot is down; then round after round a push run
    starts and mailpopbox is killed with SIGKILL after a random delay, then restarted. At the
    end each message is exactly once in its own mailbox (in-doubt Junk messages were looked up
    in Junk)."""
    seed = random.randrange(1 << 30)
    print(f"random seed {seed}")
    rng = random.Random(seed)
    server = push_server(make_server, dovecot)
    dovecot.stop()
    started(server)
    junk, inbox = [], []
    for i in range(400):
        if rng.random() < 0.5:
            junk.append(deliver_file(server, f"mixed-{i}")[0])
        else:
            inbox.append(deliver_file(server, f"mixed-{i}", folder="inbox")[0])
    wait_for_event(server, "push_failed", status="temporary")
    dovecot.start()
    kills = 0
    for _ in range(6):
        if not junk_files(server) and not inbox_files(server):
            break
        pushed = len(log_events(server, "pushed"))
        if server.alive():
            server.kill(signal.SIGUSR1)
        else:
            restart_after_kill(server)
        # Inside the run: once it has pushed something (the login is behind it), a little
        # later, while the next APPENDs are on their way.
        try:
            wait_until(lambda: len(log_events(server, "pushed")) > pushed, 10, "a push")
        except AssertionError:
            pass
        time.sleep(rng.uniform(0.0, 0.05))
        if junk_files(server) or inbox_files(server):
            server.kill(signal.SIGKILL)
            kills += 1
            restart_after_kill(server)
    in_doubt = log_events(server, "push_in_doubt")
    junk_found = sum(1 for e in log_events(server, "pushed")
                     if e.get("in_doubt") and e.get("file", "").startswith(".Junk/"))
    print(f"{kills} kill(s); in doubt and found: "
          f"{sum(1 for e in log_events(server, 'pushed') if e.get('in_doubt'))} "
          f"(Junk {junk_found}); "
          f"in doubt, sent again: {len(in_doubt)}")
    if server.alive():
        server.kill(signal.SIGUSR1)
    wait_in_mailbox(server, dovecot, "Junk", junk, timeout=RETRY_TIMEOUT * 2)
    wait_in_mailbox(server, dovecot, "INBOX", inbox, timeout=RETRY_TIMEOUT * 2)
    wait_until(lambda: not junk_files(server) and not inbox_files(server), PUSH_TIMEOUT,
               "the maildrop did not empty")
    assert_once_in(dovecot, "Junk", junk)
    assert_once_in(dovecot, "INBOX", inbox)
    # Arrival order within each mailbox.
    assert imap_ids(dovecot, "Junk") == junk
    assert imap_ids(dovecot, "INBOX") == inbox


# --- Gmail: the label SPAM --------------------------------------------------------------------

@pytest.fixture
def fake(test_ca, tmp_path):
    made = GmailFake(test_ca, tmp_path).start()
    yield made
    made.stop()


def gmail_push_server(make_server, fake, tmp_path, scope=SCOPE_INSERT, keep_copy=False):
    directory = tmp_path / f"oauth{len(list(tmp_path.glob('oauth*')))}"
    directory.mkdir()
    client_file = fake.write_client_file(directory / "client.json")
    token_file = directory / "token.json"
    fake.write_token_file(token_file, scope)

    def servers(entries):
        for entry in entries:
            if entry["Domain"] == DOMAIN:
                entry["Destination"] = fake.destination(client_file, token_file,
                                                        KeepCopy=keep_copy)
        return entries
    return make_server(servers=servers)


def test_gmail_imports_junk_with_the_spam_label(make_server, fake, tmp_path):
    server = gmail_push_server(make_server, fake, tmp_path)
    started(server)
    junk_id, _ = deliver_file(server, "gmail-spam")
    inbox_id, _ = deliver_file(server, "gmail-inbox", folder="inbox")
    wait_until(lambda: len(fake.messages) >= 2, PUSH_TIMEOUT,
               f"two imports; log:\n{server.log_text()[-3000:]}")
    [spam] = fake.find(junk_id)
    [clean] = fake.find(inbox_id)
    # SPAM, not INBOX; still UNREAD, like a message Gmail itself filed as spam.
    assert spam["labelIds"] == ["SPAM", "UNREAD"], spam["labelIds"]
    assert clean["labelIds"] == ["INBOX", "UNREAD"], clean["labelIds"]
    wait_until(lambda: not junk_files(server) and not inbox_files(server), PUSH_TIMEOUT,
               "the maildrop did not empty")


def test_gmail_keep_copy_marks_junk_passed(make_server, fake, tmp_path):
    server = gmail_push_server(make_server, fake, tmp_path, keep_copy=True)
    started(server)
    junk_id, name = deliver_file(server, "gmail-keep")
    wait_until(lambda: fake.find(junk_id), PUSH_TIMEOUT, "the import")
    wait_until(lambda: any(p.parent.name == "cur" and "P" in flags(p) and p.name.startswith(name)
                           for p in junk_files(server)), PUSH_TIMEOUT, ".Junk/cur/NAME:2,P")
    assert pop3_count(server) == 0


def test_gmail_junk_in_doubt_is_looked_up_with_spam_included(make_server, fake, tmp_path):
    """kill -9 while Google's answer to a Junk message's import is on its way: with the read
    scope, the restarted engine finds it (messages.list must include spam) and does not
    import it again."""
    server = gmail_push_server(make_server, fake, tmp_path, scope=f"{SCOPE_INSERT} {SCOPE_READ}")
    started(server)
    fake.hold_import_answers()
    junk_id, _ = deliver_file(server, "gmail-doubt")
    wait_until(lambda: fake.messages, PUSH_TIMEOUT, "the import (its answer held back)")
    server.kill(signal.SIGKILL)
    fake.release_import_answers()
    assert junk_files(server), "not confirmed, so still in .Junk"
    restart_after_kill(server)
    wait_until(lambda: fake.count("list") >= 1, RETRY_TIMEOUT, "the lookup by Message-ID")
    wait_until(lambda: not junk_files(server), RETRY_TIMEOUT, "the in-doubt message finalised")
    assert len(fake.find(junk_id)) == 1, "found at Gmail (in spam), so not imported again"
    assert fake.count("import") == 1
