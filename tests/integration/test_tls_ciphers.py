"""Cipher policy per port: submission (587 STARTTLS, 465) and POP3 (995, STLS) offer only
TLS 1.3 and TLS 1.2 with ECDHE key exchange and AEAD suites, so testssl finds no static-RSA
or CBC (LUCKY13) suite there; the MX port keeps OpenSSL's broader defaults for opportunistic
TLS (RFC 7435). Each handshake is a real one from Python's ssl with a constrained offer."""

import ssl

import pytest

from conftest import (HOSTNAME, Server, SMTPConnection, default_server_entries, free_port,
                      insecure_client_context)
from pop3util import POP3Connection

# (what, offer) -> an SSLContext making only that offer.
WEAK_TLS12_SUITES = {
    "static RSA, CBC": "AES128-SHA",
    "static RSA, AEAD": "AES128-GCM-SHA256",
    "ECDHE, CBC": "ECDHE-RSA-AES128-SHA",
    "ECDHE, CBC, SHA-256": "ECDHE-RSA-AES128-SHA256",
}
GOOD_TLS12_SUITES = ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                     "ECDHE-RSA-CHACHA20-POLY1305")
STRICT_PORTS = ("submission", "submissions", "pop3s", "pop3-stls")
ALL_PORTS = ("mx",) + STRICT_PORTS


def tls12_offering(suite):
    context = insecure_client_context()
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    # @SECLEVEL=0: our client must be able to offer the suite; the server decides.
    context.set_ciphers(f"{suite}:@SECLEVEL=0")
    return context


def tls13_only():
    context = insecure_client_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, mailpopbox_bin, certs):
    """One server for the module (every test only makes handshakes), POP3STLSPort on."""
    directory = tmp_path_factory.mktemp("tls-ciphers")
    config = {
        "SMTPPort": free_port(), "POP3Port": free_port(), "POP3STLSPort": free_port(),
        "SubmissionPort": free_port(), "SubmissionTLSPort": free_port(),
        "Hostname": HOSTNAME, "ListenAddress": "127.0.0.1",
        "SpoolPath": str(directory / "spool"),
        "Servers": default_server_entries(directory, certs),
    }
    server = Server(mailpopbox_bin, directory, config, name="tls-ciphers").start()
    yield server
    server.stop()
    assert not server.problems, server.problems


def handshake(server, port, context):
    """(TLS version, cipher) of a handshake on the named port; ssl.SSLError if it fails."""
    if port in ("mx", "submission"):
        number = server.smtp_port if port == "mx" else server.config["SubmissionPort"]
        with SMTPConnection(number) as client:
            client.ehlo()
            sock = client.starttls(context=context)
            return sock.version(), sock.cipher()[0]
    if port == "submissions":
        with SMTPConnection(server.config["SubmissionTLSPort"], read_greeting=False) as client:
            client.sock = context.wrap_socket(client.sock)
            return client.sock.version(), client.sock.cipher()[0]
    if port == "pop3s":
        with POP3Connection(server.pop3_port, context=context) as client:
            return client.sock.version(), client.sock.cipher()[0]
    with POP3Connection(server.config["POP3STLSPort"], tls=False) as client:
        client.stls(context=context)
        return client.sock.version(), client.sock.cipher()[0]


@pytest.mark.parametrize("port", STRICT_PORTS)
@pytest.mark.parametrize("what", list(WEAK_TLS12_SUITES))
def test_strict_port_refuses_a_weak_tls12_suite(tls_server, port, what):
    with pytest.raises(ssl.SSLError) as refused:
        handshake(tls_server, port, tls12_offering(WEAK_TLS12_SUITES[what]))
    assert "HANDSHAKE_FAILURE" in str(refused.value).upper() or \
        "handshake failure" in str(refused.value), refused.value


@pytest.mark.parametrize("what", list(WEAK_TLS12_SUITES))
def test_mx_port_still_accepts_a_weak_tls12_suite(tls_server, what):
    suite = WEAK_TLS12_SUITES[what]
    assert handshake(tls_server, "mx", tls12_offering(suite)) == ("TLSv1.2", suite)


@pytest.mark.parametrize("port", ALL_PORTS)
@pytest.mark.parametrize("suite", GOOD_TLS12_SUITES)
def test_every_port_accepts_ecdhe_aead_over_tls12(tls_server, port, suite):
    assert handshake(tls_server, port, tls12_offering(suite)) == ("TLSv1.2", suite)


@pytest.mark.parametrize("port", ALL_PORTS)
def test_every_port_accepts_tls13(tls_server, port):
    version, _ = handshake(tls_server, port, tls13_only())
    assert version == "TLSv1.3"
