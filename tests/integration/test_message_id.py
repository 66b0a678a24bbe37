"""Message-ID at receipt (issue 13): received mail without a Message-ID gets one where its header
section ends, "<queue id.mailpopbox@Hostname>", as Postfix's cleanup does; a message that has one
is stored byte for byte. "Message-ID" in the body or in a folded value does not count."""

import email
import email.policy
import re
import smtplib

from conftest import HOSTNAME, IO_TIMEOUT

MESSAGE_ID = re.compile(rb"^Message-ID: <([!#$%&'*+\-/=?^_`{|}~0-9A-Za-z.]+)@"
                        + re.escape(HOSTNAME.encode()) + rb">\r$", re.MULTILINE | re.IGNORECASE)


def send(server, message, recipients=("someone@example.org",)):
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=IO_TIMEOUT) as client:
        client.sendmail("sender@sender.test", list(recipients), message)


def header_section(data):
    return data.split(b"\r\n\r\n", 1)[0] + b"\r\n"


def test_message_without_message_id_gets_one_well_formed(server):
    body = b"Message-ID: <in-the-body@example.net>\r\nbody\r\n"
    message = (b"From: sender@example.net\r\nTo: someone@example.org\r\n"
               b"Subject: no id\r\n Message-ID: <folded@example.net>\r\n\r\n" + body)
    send(server, message)
    stored = server.message().data
    head = header_section(stored)
    ids = MESSAGE_ID.findall(head)
    assert len(ids) == 1, head
    parsed = email.message_from_bytes(stored, policy=email.policy.default)
    assert len(parsed.get_all("Message-ID")) == 1
    # Added at the end of the header section; every other octet as sent.
    added = MESSAGE_ID.search(head).group(0) + b"\n"
    assert stored.endswith(message.replace(b"\r\n\r\n", b"\r\n" + added + b"\r\n", 1)), stored
    assert stored.endswith(b"\r\n\r\n" + body)


def test_each_message_gets_its_own_and_both_maildrops_the_same(server):
    message = b"Subject: twice\r\n\r\nhello\r\n"
    send(server, message, ["a@example.org", "b@example.net"])
    send(server, message, ["c@example.org"])
    first, second = server.messages("example.org")
    [other] = server.messages("example.net")
    ids = [MESSAGE_ID.findall(header_section(m.data)) for m in (first, second, other)]
    assert all(len(found) == 1 for found in ids), ids
    assert ids[0] != ids[1]
    assert ids[0] == ids[2]


def test_message_with_message_id_is_stored_unchanged(server):
    message = (b"From: sender@example.net\r\nmessage-id: <kept@example.net>\r\n"
               b"Subject: has one\r\n\r\nbody\r\n")
    send(server, message)
    stored = server.message().data
    assert stored.endswith(message), stored
    assert len(re.findall(rb"(?im)^message-id:", stored)) == 1


def test_message_of_headers_only_gets_one(server):
    send(server, b"Subject: headers only\r\n")
    stored = server.message().data
    assert stored.endswith(b"Subject: headers only\r\n"
                           + MESSAGE_ID.search(stored).group(0) + b"\n"), stored
