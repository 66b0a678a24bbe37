"""POP3 and TLS: the certificate chosen by SNI on the implicit-TLS port, each Server's mailbox
seeing only its own maildrop, plain POP3 without certificates, and STLS (RFC 2595) on
POP3STLSPort."""

import poplib
import ssl
import time

import pytest

from conftest import free_port, insecure_client_context, make_message, \
    verifying_client_context
from pop3util import (AUTH_FAILED, GREETING, POP3Connection, deliver, maildrop_files, password,
                      pop3_ssl, user)


@pytest.fixture
def stls_server(make_server):
    """The default two-domain server with POP3STLSPort on."""
    return make_server({"POP3STLSPort": free_port()})


def peer_certificate_der(server, server_hostname):
    with POP3Connection(server.pop3_port, server_hostname=server_hostname) as conn:
        assert conn.greeting == GREETING
        return conn.sock.getpeercert(binary_form=True)


def certificate_der(certs, domain):
    return ssl.PEM_cert_to_DER_cert(certs[domain][0].read_text())


# --- implicit TLS and SNI ----------------------------------------------------------------------

def test_sni_mx_example_net_gets_example_net_certificate(server, certs):
    assert peer_certificate_der(server, "mx.example.net") == certificate_der(certs, "example.net")


def test_sni_mx_example_org_gets_example_org_certificate(server, certs):
    assert peer_certificate_der(server, "mx.example.org") == certificate_der(certs, "example.org")


def test_no_sni_gets_first_servers_certificate(server, certs):
    assert peer_certificate_der(server, None) == certificate_der(certs, "example.org")


def test_unknown_sni_gets_first_servers_certificate(server, certs):
    assert peer_certificate_der(server, "mx.unknown.test") == certificate_der(certs, "example.org")


def test_certificate_verifies_for_its_host_name(server, certs):
    context = verifying_client_context(certs["example.net"][0])
    with POP3Connection(server.pop3_port, server_hostname="mx.example.net",
                        context=context) as conn:
        assert conn.greeting == GREETING


def test_poplib_with_sni_logs_in(server):
    client = pop3_ssl(server, server_hostname="mx.example.net")
    client.user(user("example.net"))
    client.pass_(password("example.net"))
    assert client.stat() == (0, 0)
    client.quit()


def test_each_mailbox_sees_only_its_own_maildrop(server):
    deliver(server, make_message("for org", b"org body\r\n"), recipient="a@example.org")
    deliver(server, make_message("for net 1", b"net body 1\r\n"), recipient="b@example.net")
    deliver(server, make_message("for net 2", b"net body 2\r\n"), recipient="c@example.net")
    for domain, expected in (("example.org", [b"org body"]),
                             ("example.net", [b"net body 1", b"net body 2"])):
        with POP3Connection(server.pop3_port, server_hostname=f"mx.{domain}") as conn:
            conn.login(domain)
            bodies = [conn.retr(n).rsplit(b"\r\n\r\n", 1)[1].strip()
                      for n in sorted(conn.list_map())]
            assert bodies == expected, domain
            conn.quit()


def test_mailbox_login_does_not_depend_on_sni(server):
    """The user name picks the Server; SNI only picks the certificate."""
    with POP3Connection(server.pop3_port, server_hostname="mx.example.org") as conn:
        conn.login("example.net")
        assert conn.command("STAT") == b"+OK 0 0"


def test_plain_pop3_port_when_no_server_has_a_certificate(make_server):
    server = make_server(tls=False)
    deliver(server, make_message("plain"))
    with POP3Connection(server.pop3_port, tls=False) as conn:
        assert conn.greeting == GREETING
        conn.login()
        assert conn.retr(1) == maildrop_files(server)[0].read_bytes()


# --- STLS --------------------------------------------------------------------------------------

def test_stls_port_greets_in_plaintext_and_offers_stls(stls_server):
    client = poplib.POP3("127.0.0.1", stls_server.config["POP3STLSPort"], timeout=30)
    assert client.getwelcome() == GREETING
    capabilities = client.capa()
    assert "STLS" in capabilities
    assert "USER" not in capabilities, "USER offered before TLS"
    assert "SASL" not in capabilities, "SASL offered before TLS"
    client.quit()


def test_user_before_stls_is_refused(stls_server):
    with POP3Connection(stls_server.config["POP3STLSPort"], tls=False) as conn:
        assert conn.command(f"USER {user()}").startswith(b"-ERR")


def test_pass_and_auth_before_stls_are_refused(stls_server):
    with POP3Connection(stls_server.config["POP3STLSPort"], tls=False) as conn:
        assert conn.command(f"PASS {password()}").startswith(b"-ERR")
        assert conn.command("AUTH PLAIN AG1haWxib3hAZXhhbXBsZS5vcmcAcHc=").startswith(b"-ERR")
        assert conn.command("AUTH PLAIN").startswith(b"-ERR")


def test_poplib_stls_then_login_works(stls_server):
    deliver(stls_server, make_message("over stls"))
    client = poplib.POP3("127.0.0.1", stls_server.config["POP3STLSPort"], timeout=30)
    client.stls(context=insecure_client_context())
    capabilities = client.capa()
    assert "STLS" not in capabilities, "STLS offered again after TLS"
    assert "USER" in capabilities and "SASL" in capabilities
    client.user(user())
    client.pass_(password())
    assert client.stat()[0] == 1
    client.quit()


def test_stls_presents_the_certificate_chosen_by_sni(stls_server, certs):
    with POP3Connection(stls_server.config["POP3STLSPort"], tls=False) as conn:
        conn.stls(server_hostname="mx.example.net")
        assert conn.sock.getpeercert(binary_form=True) == certificate_der(certs, "example.net")


def test_bad_password_after_stls_gets_auth_response_code(stls_server):
    with POP3Connection(stls_server.config["POP3STLSPort"], tls=False) as conn:
        conn.stls()
        conn.ok(f"USER {user()}")
        assert conn.command("PASS nope") == AUTH_FAILED


def test_stls_twice_is_refused(stls_server):
    with POP3Connection(stls_server.config["POP3STLSPort"], tls=False) as conn:
        conn.stls()
        assert conn.command("STLS").startswith(b"-ERR")
        conn.login()


def test_stls_on_implicit_tls_port_is_refused(server):
    with POP3Connection(server.pop3_port) as conn:
        assert conn.command("STLS").startswith(b"-ERR")


def test_plaintext_pipelined_after_stls_is_not_executed(stls_server):
    """RFC 2595 4 / CVE-2011-0411 style injection: what follows STLS in the same plaintext write
    is thrown away, not run inside the TLS session. The handshake itself must succeed: a
    server that broke it would pass an injection test by being unusable."""
    with POP3Connection(stls_server.config["POP3STLSPort"], tls=False) as conn:
        conn.send(f"STLS\r\nUSER {user()}\r\n")
        assert conn.read_line().startswith(b"+OK")
        time.sleep(0.2)  # give a stray plaintext reply a chance to show up before the handshake
        conn.sock.setblocking(False)
        try:
            stray = bytes(conn.buffer) + conn.sock.recv(4096)
        except BlockingIOError:
            stray = bytes(conn.buffer)
        conn.sock.setblocking(True)
        assert stray == b"", f"server answered injected plaintext: {stray!r}"
        conn.sock.settimeout(conn.timeout)
        conn.sock = insecure_client_context().wrap_socket(conn.sock)
        # Had the injected USER run, PASS would log in (or an extra +OK would come first).
        reply = conn.command(f"PASS {password()}")
        assert reply.startswith(b"-ERR"), f"injected plaintext was executed: {reply!r}"
        assert not conn.buffer, f"extra replies: {bytes(conn.buffer)!r}"
        conn.login()  # after refusing the injection, the session still works

