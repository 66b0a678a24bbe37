"""Send-as: a Subject with [sendas:NAME] makes the From address and the envelope sender
NAME@DOMAIN at the remote, keeps the display name and drops the tag from the Subject; messages
without the tag leave unchanged, and Date and Message-ID are added when missing."""

import base64
import email.utils

import pytest

from dnsfixture import make_dns  # noqa: F401 (fixture)
from sink import (OWNER, make_sink, outbound, outgoing_message,  # noqa: F401 (fixtures)
                  sending_server, submit)


def normalized(text):
    return " ".join(str(text).split())


def send_and_receive(outbound, message):
    server, sink = outbound()
    submit(server, ["bob@remote.test"], message)
    [received] = sink.wait_for(1)
    return received


def from_address(received):
    header = received.message()["From"]
    assert len(header.addresses) == 1, f"From: {header}"
    return header.addresses[0]


@pytest.mark.parametrize("subject, expected_subject", [
    ("Re: your order [sendas:shop]", "Re: your order"),
    ("[sendas:shop] Re: your order", "Re: your order"),
    ("Re: your [SendAs: shop] order", "Re: your order"),
    ("Re: your order [SENDAS:shop ]", "Re: your order"),
    ("Re: your order [sendas:\tshop]", "Re: your order"),
])
def test_sendas_tag_sets_from_and_envelope_sender_and_leaves_the_subject(
        outbound, subject, expected_subject):
    message, message_id = outgoing_message(subject)
    received = send_and_receive(outbound, message)
    assert received.mail_from == "shop@example.org"
    address = from_address(received)
    assert address.addr_spec == "shop@example.org"
    assert address.display_name == "Owner Name"
    assert normalized(received.message()["Subject"]) == expected_subject
    assert "sendas" not in received.data.decode("utf-8", "replace").lower()
    assert received.message_id == message_id


@pytest.mark.parametrize("name", ["shop.2026", "bank-statements", "a_b", "X9"])
def test_sendas_name_may_hold_letters_digits_dot_dash_underscore(outbound, name):
    message, _ = outgoing_message(f"Hello [sendas:{name}]")
    received = send_and_receive(outbound, message)
    assert received.mail_from == f"{name}@example.org"
    assert from_address(received).addr_spec == f"{name}@example.org"
    assert normalized(received.message()["Subject"]) == "Hello"


def test_sendas_keeps_a_quoted_display_name(outbound):
    message, _ = outgoing_message("Hi [sendas:shop]",
                                  sender='"Owner, The" <mailbox@example.org>')
    received = send_and_receive(outbound, message)
    address = from_address(received)
    assert (address.display_name, address.addr_spec) == ("Owner, The", "shop@example.org")


def encoded_word_b(text):
    return f"=?UTF-8?B?{base64.b64encode(text.encode()).decode()}?="


@pytest.mark.parametrize("subject", [
    encoded_word_b("Grüße vom Laden [sendas:shop]"),
    # RFC 2047 6.2: the space between adjacent encoded-words is not part of the text.
    f"{encoded_word_b('Grüße vom Laden [send')} {encoded_word_b('as:shop]')}",
    "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_vom_Laden?= [sendas:shop]",
    "=?utf-8?q?Gr=C3=BC=C3=9Fe_vom_Laden_=5Bsendas=3Ashop=5D?=",
])
def test_sendas_tag_in_an_encoded_subject_is_found_and_removed(outbound, subject):
    message, _ = outgoing_message(subject)
    received = send_and_receive(outbound, message)
    assert received.mail_from == "shop@example.org"
    assert from_address(received).addr_spec == "shop@example.org"
    decoded = normalized(received.message()["Subject"])
    assert decoded == "Grüße vom Laden", decoded


def test_sendas_tag_on_a_folded_subject_line(outbound):
    subject = ("Re: a rather long subject line that the mail client folded for us\r\n"
               " [sendas:shop]")
    message, _ = outgoing_message(subject)
    received = send_and_receive(outbound, message)
    assert received.mail_from == "shop@example.org"
    assert from_address(received).addr_spec == "shop@example.org"
    assert normalized(received.message()["Subject"]) == \
        "Re: a rather long subject line that the mail client folded for us"


def test_message_without_tag_keeps_from_subject_envelope_and_body(outbound):
    message, _ = outgoing_message("Plain subject [not a tag]",
                                  body=b"Body line one.\r\n.Leading dot line.\r\n")
    received = send_and_receive(outbound, message)
    assert received.mail_from == OWNER
    address = from_address(received)
    assert (address.display_name, address.addr_spec) == ("Owner Name", OWNER)
    assert received.message()["Subject"] == "Plain subject [not a tag]"
    assert received.data.endswith(b"\r\n\r\nBody line one.\r\n.Leading dot line.\r\n")
    # Headers the server adds (Received, DKIM-Signature) go before the client's, unchanged.
    assert message.split(b"\r\n\r\n")[0] in received.data


def test_missing_date_and_message_id_are_added(outbound):
    message, _ = outgoing_message("no date, no id", date=False, message_id=False)
    received = send_and_receive(outbound, message)
    parsed = received.message()
    assert len(parsed.get_all("Date", [])) == 1, received.data[:500]
    assert email.utils.parsedate_to_datetime(str(parsed["Date"])) is not None
    message_ids = parsed.get_all("Message-ID", [])
    assert len(message_ids) == 1, received.data[:500]
    assert str(message_ids[0]).startswith("<") and "@" in message_ids[0]


def test_message_without_from_or_subject_is_still_sent(outbound):
    message = b"To: bob@remote.test\r\nDate: Mon, 24 Nov 2025 10:00:00 +0000\r\n\r\nbare\r\n"
    received = send_and_receive(outbound, message)
    assert received.mail_from == OWNER
    assert received.data.endswith(b"\r\n\r\nbare\r\n")
    assert received.message()["Subject"] is None


@pytest.mark.parametrize("tag", ["[sendas:victim@other.test]", "[sendas:a b]", "[sendas:]",
                                 "[sendas:shop/../x]"])
def test_malformed_sendas_tag_changes_no_address(outbound, tag):
    message, _ = outgoing_message(f"Hello {tag}")
    received = send_and_receive(outbound, message)
    assert received.mail_from == OWNER, received.mail_from
    assert from_address(received).addr_spec == OWNER


@pytest.mark.parametrize("where", ["body", "other header"])
def test_sendas_tag_outside_the_subject_changes_nothing(outbound, where):
    if where == "body":
        message, _ = outgoing_message("Hello", body=b"Please reply [sendas:shop]\r\n")
    else:
        message, _ = outgoing_message("Hello", extra_headers=b"X-Note: [sendas:shop]\r\n")
    received = send_and_receive(outbound, message)
    assert received.mail_from == OWNER
    assert from_address(received).addr_spec == OWNER
    assert b"[sendas:shop]" in received.data
