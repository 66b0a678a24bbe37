"""Brute-force throttling of logins per client IP (issue 5): each failure is answered later
than the one before, AuthMaxFailures failures lock the address out (even the right password
is refused then, without being checked), and every failure leaves a line fail2ban can match."""
import base64
import re
import time

from conftest import insecure_client_context

GOOD = "password-example.org"


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def auth(client, password):
    started = time.monotonic()
    reply = client.command("AUTH PLAIN " + plain("mailbox@example.org", password), timeout=30)
    return reply, time.monotonic() - started


def tls_client(server):
    client = server.connect()
    client.ehlo()
    client.starttls(server_hostname="mx.example.org", context=insecure_client_context())
    client.ehlo()
    return client


def test_failed_logins_are_answered_ever_later_then_locked_out(make_server):
    server = make_server({"AuthMaxFailures": 3, "AuthFailureWindowSeconds": 600,
                          "AuthLockoutSeconds": 600})
    with tls_client(server) as client:
        reply, first = auth(client, "wrong-1")
        assert (reply.code, reply.enhanced) == (535, "5.7.8"), reply
        reply, second = auth(client, "wrong-2")
        assert reply.code == 535, reply
        assert second > first + 0.5, (first, second)
        reply, _ = auth(client, "wrong-3")
        assert reply.code == 535, reply
        # Locked out: the right password gets a temporary refusal, not a login.
        reply, _ = auth(client, GOOD)
        assert (reply.code, reply.enhanced) == (454, "4.7.0"), reply
    # The lockout holds for a new connection from the same address.
    with tls_client(server) as client:
        reply, _ = auth(client, GOOD)
        assert reply.code == 454, reply
    log = server.log_text()
    assert len(re.findall(r"event=auth_failed client=127\.0\.0\.1\b", log)) == 3, log
    assert "event=auth_lockout client=127.0.0.1" in log
    assert "event=auth_blocked client=127.0.0.1" in log
    assert GOOD not in log and "wrong-1" not in log


def test_a_success_clears_the_failures(make_server):
    server = make_server({"AuthMaxFailures": 3})
    with tls_client(server) as client:
        assert auth(client, "wrong")[0].code == 535
        assert auth(client, "wrong")[0].code == 535
        assert auth(client, GOOD)[0].code == 235
    with tls_client(server) as client:
        reply, elapsed = auth(client, "wrong")
        assert reply.code == 535
        assert elapsed < 1.9, "the count should have started again at one"


def pop3_login(server, password):
    import poplib
    pop = poplib.POP3_SSL("127.0.0.1", server.pop3_port, context=insecure_client_context(),
                          timeout=30)
    try:
        pop.user("mailbox@example.org")
        try:
            return pop.pass_(password).decode()
        except poplib.error_proto as error:
            return error.args[0].decode()
    finally:
        try:
            pop.quit()
        except Exception:
            pass


def test_pop3_failed_logins_lock_the_address_out(make_server):
    server = make_server({"AuthMaxFailures": 3, "AuthLockoutSeconds": 600})
    for attempt in range(3):
        assert pop3_login(server, f"wrong-{attempt}").startswith("-ERR [AUTH]")
    # The right password is refused without being checked while the address is locked out.
    assert pop3_login(server, GOOD).startswith("-ERR [SYS/TEMP]")
    log = server.log_text()
    assert len(re.findall(r"module=pop3 event=auth_failed client=127\.0\.0\.1\b", log)) == 3
    assert "module=pop3 event=auth_blocked client=127.0.0.1" in log
    assert GOOD not in log


def test_one_lockout_covers_smtp_and_pop3(make_server):
    server = make_server({"AuthMaxFailures": 2, "AuthLockoutSeconds": 600})
    with tls_client(server) as client:
        assert auth(client, "wrong")[0].code == 535
    assert pop3_login(server, "wrong").startswith("-ERR [AUTH]")
    assert pop3_login(server, GOOD).startswith("-ERR [SYS/TEMP]")
