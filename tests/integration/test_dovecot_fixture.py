"""The private Dovecot of dovecotfixture.py works the way the push tests rely on, checked with
Python's imaplib alone (no mailpopbox): TLS verified against the test CA on both ports, APPEND
and SEARCH by Message-ID, the Maildir readable in UID order with flags, a changed password, a
stop and start on the same ports, a certificate for a wrong name, and XOAUTH2 through the oauth2
passdb and a local token-introspection endpoint."""

import base64
import imaplib
import socket
import ssl
import time

import pytest

from dovecotfixture import make_dovecot, dovecot, message_id_of  # noqa: F401 (fixtures)


def sample(number, size=0):
    body = b"".join(b"line %d of message %d\r\n" % (i, number) for i in range(max(1, size // 24)))
    return (b"From: a@example.net\r\nTo: b@example.org\r\nSubject: fixture %d\r\n"
            b"Message-ID: <fixture-%d@example.net>\r\n\r\n" % (number, number) + body)


def test_append_and_search_over_verified_tls(dovecot):
    client = dovecot.imap()
    try:
        typ, data = client.capability()
        assert typ == "OK"
        capabilities = data[0].decode().upper().split()
        assert "LITERAL+" in capabilities, capabilities
        for number in range(3):
            typ, data = client.append("INBOX", r"(\Seen)" if number == 0 else None, None,
                                      sample(number, 4096))
            assert typ == "OK", data
            assert b"APPENDUID" in data[0], data
        client.select("INBOX")
        typ, data = client.uid("SEARCH", "HEADER", "Message-ID", "<fixture-1@example.net>")
        assert typ == "OK" and len(data[0].split()) == 1, data
        typ, data = client.uid("SEARCH", "HEADER", "Message-ID", "<absent@example.net>")
        assert typ == "OK" and data[0].split() == [], data
    finally:
        client.logout()
    assert dovecot.message_ids() == [f"<fixture-{n}@example.net>" for n in range(3)]
    assert dovecot.imap_message_ids() == dovecot.message_ids()
    flags = [flags for _, _, flags in dovecot.messages()]
    assert "S" in flags[0], flags
    stored = dovecot.messages()[1][1]
    # Dovecot stores a Maildir file with LF line ends (IMAP gives CRLF back).
    assert stored == sample(1, 4096).replace(b"\r\n", b"\n")


def test_starttls_port_and_junk_mailbox(dovecot):
    client = dovecot.imap(starttls=True)
    try:
        typ, data = client.append("Junk", None, None, sample(7))
        assert typ == "OK", data
    finally:
        client.logout()
    assert dovecot.message_ids("Junk") == ["<fixture-7@example.net>"]
    assert dovecot.message_ids() == []


def test_login_lines_say_tls(dovecot):
    # Dovecot counts loopback as secure and would take a plaintext LOGIN on the STARTTLS port;
    # its log line of each login says whether TLS was on, which the push tests check instead.
    dovecot.imap(starttls=True).logout()
    dovecot.imap().logout()
    plain = imaplib.IMAP4("127.0.0.1", dovecot.starttls_port, timeout=10)
    plain.login(dovecot.username, dovecot.password)
    plain.logout()
    logins = dovecot.wait_for_logins(3)
    assert [login["tls"] for login in logins] == [True, True, False], logins
    assert all(login["user"] == dovecot.username for login in logins), logins


def test_password_change(dovecot):
    old = dovecot.password
    dovecot.set_password("a-new-app-password")
    with pytest.raises(imaplib.IMAP4.error, match="(?i)authentication failed"):
        imaplib.IMAP4_SSL("127.0.0.1", dovecot.port, ssl_context=dovecot.client_context(),
                          timeout=10).login(dovecot.username, old)
    dovecot.imap().logout()


def test_stop_and_start_keep_ports_and_mail(dovecot):
    client = dovecot.imap()
    client.append("INBOX", None, None, sample(1))
    port = dovecot.port
    dovecot.stop()
    # Down means down: the open session is cut too, not served by a leftover imap process.
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        client.append("INBOX", None, None, sample(2))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert dovecot.message_ids() == ["<fixture-1@example.net>"], "readable while stopped"
    dovecot.start()
    assert dovecot.port == port
    assert dovecot.imap_message_ids() == ["<fixture-1@example.net>"]


def test_wrong_name_certificate_fails_verification(dovecot):
    dovecot.use_certificate("wrong.example.com")
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL("127.0.0.1", dovecot.port, ssl_context=dovecot.client_context(),
                          timeout=10)
    dovecot.use_certificate("127.0.0.1")
    dovecot.imap().logout()


def test_xoauth2_via_introspection(make_dovecot):
    server = make_dovecot(oauth=True)

    def xoauth2(token):
        return f"user={server.username}\x01auth=Bearer {token}\x01\x01".encode()

    client = server.imap(login=False)
    try:
        assert "AUTH=XOAUTH2" in client.capabilities, client.capabilities
        typ, _ = client.authenticate("XOAUTH2", lambda _: xoauth2(server.oauth_token))
        assert typ == "OK"
        typ, data = client.append("INBOX", None, None, sample(3))
        assert typ == "OK", data
    finally:
        client.logout()
    assert server.introspection.requests >= 1
    bad = server.imap(login=False)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            bad.authenticate("XOAUTH2", lambda _: xoauth2("not-a-valid-token"))
    finally:
        bad.shutdown()
    # The password still works next to OAuth.
    server.imap().logout()
    assert server.message_ids() == ["<fixture-3@example.net>"]


def test_message_id_of():
    assert message_id_of(b"Subject: x\r\nMessage-Id:\r\n <a@b>\r\n\r\nbody") == "<a@b>"
    assert message_id_of(b"Subject: x\r\n\r\nMessage-ID: <not@header>\r\n") is None


def test_start_is_bounded(make_dovecot):
    began = time.monotonic()
    server = make_dovecot()
    server.restart()
    assert server.running()
    # Not a timing assertion on speed: only that the bounded waits did not all run out.
    assert time.monotonic() - began < 3 * 20.0
