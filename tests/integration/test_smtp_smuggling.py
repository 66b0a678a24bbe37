"""SMTP smuggling (CVE-2023-51764/51765/51766): only <CRLF>.<CRLF> ends DATA.

A sender hides a second transaction behind a non-standard end-of-data sequence. If the server
ended DATA there, the hidden MAIL/RCPT/DATA would run as a separate, spoofed message. Our
server treats the whole thing as one message, and refuses it because of the bare CR/LF
(554 5.6.0, see docs/smtp.md): nothing is stored, and no smuggled command gets a reply.
"""

import pytest

from conftest import dot_stuff, make_message, queue_id

SMUGGLED = (b"MAIL FROM:<ceo@example.org>\r\n"
            b"RCPT TO:<victim@example.org>\r\n"
            b"DATA\r\n"
            b"From: ceo@example.org\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n")

FAKE_ENDS = {
    "LF.LF": b"\n.\n",
    "CRLF.LF": b"\r\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CR.CR": b"\r.\r",
    "CRLF.CR": b"\r\n.\r",
    "CR.CRLF": b"\r.\r\n",
    "LF.CR": b"\n.\r",
    "CRLF.CRCRLF": b"\r\n.\r\r\n",
    "CRLF.NUL.CRLF": b"\r\n.\x00\r\n",
}


@pytest.mark.parametrize("fake_end", list(FAKE_ENDS.values()), ids=list(FAKE_ENDS))
def test_smuggled_transaction_is_not_executed(server, fake_end):
    first = b"From: attacker@elsewhere.example\r\nSubject: carrier\r\n\r\ncarrier body"
    with server.connect() as client:
        client.ehlo("attacker.example")
        assert client.command("MAIL FROM:<attacker@elsewhere.example>").code == 250
        assert client.command("RCPT TO:<someone@example.org>").code == 250
        assert client.command("DATA").code == 354
        client.send(first + fake_end + SMUGGLED + b".\r\n")
        # Exactly one reply for the whole data, then the reply to our own VRFY: any 250/354 for
        # the hidden MAIL, RCPT or DATA would show up in between.
        reply = client.read_reply()
        client.send(b"VRFY probe\r\n")
        following = client.read_reply()
        if fake_end == b"\r\n.\x00\r\n":
            # No bare CR/LF: one ordinary message whose data contains a ".<NUL>" line. It may
            # be accepted (stored as one message) or refused; it must never be split.
            assert reply.code in (250, 554), reply
        else:
            assert (reply.code, reply.enhanced) == (554, "5.6.0"), reply
        assert following.code == 252, f"extra reply after DATA: {following}"
    stored = server.messages()
    assert len(stored) <= 1
    for message in stored:
        assert message.data.endswith(b"smuggled body\r\n"), "one message holding everything"
        assert b"Return-Path: <ceo@example.org>" not in message.data


def test_smuggled_sequence_split_across_packets_is_not_executed(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<attacker@elsewhere.example>").code == 250
        assert client.command("RCPT TO:<someone@example.org>").code == 250
        assert client.command("DATA").code == 354
        for piece in (b"Subject: split\r\n\r\nbody\n", b".", b"\n", SMUGGLED, b".\r", b"\n"):
            client.send(piece)
        reply = client.read_reply()
        assert (reply.code, reply.enhanced) == (554, "5.6.0"), reply
        assert client.command("VRFY probe").code == 252
    server.assert_nothing_stored()


def test_crlf_dot_crlf_split_byte_by_byte_ends_data(server):
    message = make_message("byte by byte", b"one\r\n.two\r\n")
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("RCPT TO:<bytes@example.org>").code == 250
        assert client.command("DATA").code == 354
        for octet in dot_stuff(message) + b".\r\n":
            client.send(bytes([octet]))
        queue_id(client.read_reply())
    server.message().split(message)


def test_dot_line_inside_data_stuffed_is_not_an_end(server):
    # "..\r\n" on the wire is a line holding one '.', not the end of data.
    body = b"before\r\n.\r\nMAIL FROM:<ceo@example.org>\r\nafter\r\n"
    message = make_message("stuffed dot", body)
    with server.connect() as client:
        client.ehlo()
        queue_id(client.transaction("a@elsewhere.example", ["dots@example.org"], message))
        assert client.command("VRFY probe").code == 252
    server.message().split(message)
