"""POP3 commands over implicit TLS (RFC 1939, RFC 2449 CAPA, RFC 5034 AUTH, RFC 3206 codes):
poplib as the client where it can be, the raw client where the wire matters."""

import base64
import poplib
import time

import pytest

from conftest import make_message
from pop3util import (AUTH_FAILED, GREETING, POP3Connection, deliver, deliver_many, login, maildrop_files,
                      password, pop3_connect, pop3_ssl, user)


@pytest.fixture
def three(server):
    """The default server with three small messages for example.org."""
    deliver_many(server, 3)
    assert len(maildrop_files(server)) == 3
    return server


def test_greeting_is_ok_mailpopbox_ready(server):
    with POP3Connection(server.pop3_port) as conn:
        assert conn.greeting == GREETING


def test_poplib_login_and_stat_count_all_octets(three):
    files = maildrop_files(three)
    client = login(three)
    assert client.stat() == (3, sum(p.stat().st_size for p in files))
    client.quit()


def test_list_gives_each_message_size(three):
    files = maildrop_files(three)
    client = login(three)
    response, lines, _ = client.list()
    assert response.startswith(b"+OK")
    assert lines == [f"{i} {p.stat().st_size}".encode() for i, p in enumerate(files, 1)]
    assert client.list(2) == f"+OK 2 {files[1].stat().st_size}".encode()
    client.quit()


def test_uidl_lists_every_message(three):
    client = login(three)
    _, lines, _ = client.uidl()
    numbers = [int(line.split()[0]) for line in lines]
    ids = [line.split()[1] for line in lines]
    assert numbers == [1, 2, 3]
    assert len(set(ids)) == 3
    assert client.uidl(3) == b"+OK 3 " + ids[2]
    client.quit()


def test_retr_returns_the_stored_file(three):
    files = maildrop_files(three)
    client = login(three)
    for number, path in enumerate(files, 1):
        response, lines, octets = client.retr(number)
        assert response.startswith(b"+OK")
        assert b"\r\n".join(lines) + b"\r\n" == path.read_bytes()
        assert octets == path.stat().st_size
    client.quit()


def test_top_returns_headers_and_first_lines(server):
    body = b"first\r\nsecond\r\nthird\r\n"
    message = make_message("top", body)
    deliver(server, message)
    stored = maildrop_files(server)[0].read_bytes()
    headers = stored[:stored.index(b"\r\n\r\n") + 4]
    client = login(server)
    _, lines, _ = client.top(1, 1)
    assert b"\r\n".join(lines) + b"\r\n" == headers + b"first\r\n"
    client.quit()


def test_noop_answers_ok(three):
    client = login(three)
    assert client.noop().startswith(b"+OK")
    client.quit()


def test_dele_hides_message_from_stat_list_and_retr(three):
    files = maildrop_files(three)
    client = login(three)
    assert client.dele(2).startswith(b"+OK")
    assert client.stat() == (2, files[0].stat().st_size + files[2].stat().st_size)
    _, lines, _ = client.list()
    assert [int(line.split()[0]) for line in lines] == [1, 3]
    _, lines, _ = client.uidl()
    assert [int(line.split()[0]) for line in lines] == [1, 3]
    with pytest.raises(poplib.error_proto):
        client.retr(2)
    client.quit()


def test_rset_undeletes_and_quit_then_removes_nothing(three):
    files = maildrop_files(three)
    client = login(three)
    client.dele(1)
    client.dele(3)
    assert client.rset().startswith(b"+OK")
    assert client.stat()[0] == 3
    client.retr(1)
    client.quit()
    assert maildrop_files(three) == files


def test_quit_in_authorization_signs_off_without_update(three):
    with POP3Connection(three.pop3_port) as conn:
        assert conn.quit().startswith(b"+OK")
    assert len(maildrop_files(three)) == 3


def test_quit_closes_the_connection(three):
    with pop3_connect(three) as conn:
        assert conn.command("QUIT").startswith(b"+OK")
        assert conn.wait_closed(5)


def test_capa_lists_the_extensions(server):
    client = pop3_ssl(server)
    capabilities = client.capa()
    for name in ("TOP", "UIDL", "USER", "SASL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE",
                 "EXPIRE", "IMPLEMENTATION"):
        assert name in capabilities, f"{name} missing from CAPA: {capabilities}"
    assert capabilities["SASL"] == ["PLAIN"]
    assert capabilities["EXPIRE"] == ["NEVER"]
    assert "STLS" not in capabilities, "STLS offered on an implicit-TLS connection"
    client.quit()


def test_capa_works_in_transaction_state(three):
    client = login(three)
    capabilities = client.capa()
    assert "UIDL" in capabilities and "TOP" in capabilities
    assert "STLS" not in capabilities
    client.quit()


def test_bad_password_gets_auth_response_code(server):
    with POP3Connection(server.pop3_port) as conn:
        assert conn.command(f"USER {user()}").startswith(b"+OK")
        assert conn.command("PASS wrong-password") == AUTH_FAILED


def test_unknown_user_gets_auth_response_code(server):
    with POP3Connection(server.pop3_port) as conn:
        assert conn.command("USER nobody@example.org").startswith(b"+OK")
        assert conn.command(f"PASS {password()}") == AUTH_FAILED


def test_other_domains_password_is_refused(server):
    with POP3Connection(server.pop3_port) as conn:
        conn.ok(f"USER {user('example.org')}")
        assert conn.command(f"PASS {password('example.net')}") == AUTH_FAILED


def test_poplib_raises_on_bad_password(server):
    client = pop3_ssl(server)
    client.user(user())
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        client.pass_("nope")


def test_login_works_after_one_failed_attempt(three):
    with POP3Connection(three.pop3_port) as conn:
        conn.ok(f"USER {user()}")
        assert conn.command("PASS nope") == AUTH_FAILED
        conn.login()
        assert conn.command("STAT").startswith(b"+OK 3 ")


def plain_response(authcid, secret, authzid=""):
    return base64.b64encode(f"{authzid}\0{authcid}\0{secret}".encode()).decode()


def test_auth_plain_with_initial_response(three):
    with POP3Connection(three.pop3_port) as conn:
        status = conn.command(f"AUTH PLAIN {plain_response(user(), password())}")
        assert status.startswith(b"+OK"), status
        assert conn.command("STAT").startswith(b"+OK 3 ")


def test_auth_plain_with_continuation(three):
    with POP3Connection(three.pop3_port) as conn:
        assert conn.command("AUTH PLAIN") in (b"+ ", b"+")
        status = conn.command(plain_response(user(), password()))
        assert status.startswith(b"+OK"), status
        assert conn.command("STAT").startswith(b"+OK 3 ")


def test_auth_plain_with_authzid_equal_to_user(three):
    with POP3Connection(three.pop3_port) as conn:
        status = conn.command(f"AUTH PLAIN {plain_response(user(), password(), user())}")
        assert status.startswith(b"+OK"), status


def test_auth_plain_wrong_password_gets_auth_response_code(server):
    with POP3Connection(server.pop3_port) as conn:
        assert conn.command(f"AUTH PLAIN {plain_response(user(), 'nope')}") == AUTH_FAILED


def test_auth_plain_as_another_user_is_refused(server):
    with POP3Connection(server.pop3_port) as conn:
        status = conn.command(
            f"AUTH PLAIN {plain_response(user(), password(), 'mailbox@example.net')}")
        assert status.startswith(b"-ERR"), status


def test_auth_plain_cancelled_with_star(server):
    with POP3Connection(server.pop3_port) as conn:
        assert conn.command("AUTH PLAIN").startswith(b"+")
        assert conn.command("*").startswith(b"-ERR")
        conn.login()


def test_auth_plain_bad_base64_is_refused(server):
    with POP3Connection(server.pop3_port) as conn:
        assert conn.command("AUTH PLAIN !!!notbase64!!!").startswith(b"-ERR")


def test_auth_unknown_mechanism_is_refused(server):
    with POP3Connection(server.pop3_port) as conn:
        assert conn.command("AUTH CRAM-MD5").startswith(b"-ERR")


def test_poplib_auth_plain_through_capa(three):
    """What a SASL client does: CAPA, then AUTH PLAIN with the initial response."""
    client = pop3_ssl(three)
    assert "PLAIN" in client.capa()["SASL"]
    response = client._shortcmd(f"AUTH PLAIN {plain_response(user(), password())}")
    assert response.startswith(b"+OK")
    assert client.stat()[0] == 3
    client.quit()


@pytest.mark.parametrize("command", ["STAT", "LIST", "LIST 1", "RETR 1", "DELE 1", "TOP 1 0",
                                     "UIDL", "NOOP", "RSET"])
def test_transaction_command_in_authorization_state_is_refused(three, command):
    with POP3Connection(three.pop3_port) as conn:
        assert conn.command(command).startswith(b"-ERR")
        conn.login()  # the session is still usable


@pytest.mark.parametrize("command", [f"USER {user()}", f"PASS {password()}",
                                     "AUTH PLAIN", "STLS"])
def test_authorization_command_in_transaction_state_is_refused(three, command):
    with pop3_connect(three) as conn:
        assert conn.command(command).startswith(b"-ERR")
        assert conn.command("STAT").startswith(b"+OK 3 ")


def test_pass_without_user_is_refused(server):
    with POP3Connection(server.pop3_port) as conn:
        assert conn.command(f"PASS {password()}").startswith(b"-ERR")


def test_unknown_command_is_refused(three):
    with pop3_connect(three) as conn:
        assert conn.command("XYZZY").startswith(b"-ERR")
        assert conn.command("STAT").startswith(b"+OK")


def test_commands_are_case_insensitive(three):
    with POP3Connection(three.pop3_port) as conn:
        conn.ok(f"user {user()}")
        conn.ok(f"pass {password()}")
        assert conn.command("stat").startswith(b"+OK 3 ")


@pytest.mark.parametrize("command", ["RETR 0", "RETR 4", "RETR 99999999999999999999",
                                     "RETR abc", "RETR -1", "RETR 1x", "RETR", "RETR 1 2",
                                     "LIST 0", "LIST 4", "LIST abc", "UIDL 0", "UIDL 4",
                                     "DELE 0", "DELE 4", "DELE abc", "TOP 0 1", "TOP 4 1",
                                     "TOP 1", "TOP 1 abc", "TOP 1 -1"])
def test_bad_message_number_or_argument_gets_err(three, command):
    with pop3_connect(three) as conn:
        assert conn.command(command).startswith(b"-ERR"), command
        assert conn.command("STAT").startswith(b"+OK 3 ")


@pytest.mark.parametrize("command", ["RETR 2", "LIST 2", "UIDL 2", "DELE 2", "TOP 2 0"])
def test_deleted_message_number_gets_err(three, command):
    with pop3_connect(three) as conn:
        conn.ok("DELE 2")
        assert conn.command(command).startswith(b"-ERR"), command


def test_pipelined_commands_are_answered_in_order(three):
    files = maildrop_files(three)
    with POP3Connection(three.pop3_port) as conn:
        conn.send(f"USER {user()}\r\nPASS {password()}\r\nSTAT\r\nLIST\r\nUIDL 2\r\n"
                  "RETR 1\r\nXYZZY\r\nDELE 3\r\nLIST 3\r\nNOOP\r\nRSET\r\nSTAT\r\nQUIT\r\n")
        assert conn.read_line().startswith(b"+OK")  # USER
        assert conn.read_line().startswith(b"+OK")  # PASS
        total = sum(p.stat().st_size for p in files)
        assert conn.read_line() == f"+OK 3 {total}".encode()  # STAT
        assert conn.read_line().startswith(b"+OK")  # LIST
        assert conn.read_multiline_raw() == b"".join(
            f"{i} {p.stat().st_size}\r\n".encode() for i, p in enumerate(files, 1))
        assert conn.read_line().startswith(b"+OK 2 ")  # UIDL 2
        assert conn.read_line().startswith(b"+OK")  # RETR 1
        assert conn.read_multiline_raw() == files[0].read_bytes()  # nothing to stuff here
        assert conn.read_line().startswith(b"-ERR")  # XYZZY
        assert conn.read_line().startswith(b"+OK")  # DELE 3
        assert conn.read_line().startswith(b"-ERR")  # LIST 3 (deleted)
        assert conn.read_line().startswith(b"+OK")  # NOOP
        assert conn.read_line().startswith(b"+OK")  # RSET
        assert conn.read_line() == f"+OK 3 {total}".encode()  # STAT
        assert conn.read_line().startswith(b"+OK")  # QUIT
        assert conn.wait_closed(5)
    assert maildrop_files(three) == files


def test_overlong_command_line_is_refused_and_session_continues(three):
    with pop3_connect(three) as conn:
        assert conn.command("NOOP " + "x" * 5000).startswith(b"-ERR")
        assert conn.command("STAT").startswith(b"+OK 3 ")


def test_three_failed_logins_close_the_connection(server):
    with POP3Connection(server.pop3_port) as conn:
        for _ in range(3):
            conn.ok(f"USER {user()}")
            assert conn.command("PASS nope") == AUTH_FAILED
        assert conn.wait_closed(5)


def test_command_sent_one_byte_at_a_time_is_understood(three):
    with pop3_connect(three) as conn:
        for byte in b"STAT\r\n":
            conn.send(bytes([byte]))
            time.sleep(0.01)
        assert conn.read_line().startswith(b"+OK 3 ")


def test_many_pipelined_commands_in_one_write_are_all_answered_in_order(three):
    files = maildrop_files(three)
    with pop3_connect(three) as conn:
        conn.send(b"".join(b"LIST %d\r\n" % (1 + i % 3) for i in range(600)))
        for i in range(600):
            number = 1 + i % 3
            assert conn.read_line() == f"+OK {number} {files[number - 1].stat().st_size}".encode()
        assert conn.command("NOOP").startswith(b"+OK")


def test_large_maildrop_opens_and_lists_quickly(server):
    """10,000 messages (seeded straight into new/, as Maildir names): login, STAT, LIST and UIDL
    within a generous bound (the benchmark issue measures it properly)."""
    new = server.maildrop() / "new"
    new.mkdir(parents=True, exist_ok=True)
    body = b"Subject: bulk\r\n\r\nbody\r\n"
    for i in range(10000):
        (new / f"1700000000.M{i}P1Q{i}.bulk,S={len(body)}").write_bytes(body)
    started = time.monotonic()
    with pop3_connect(server, timeout=60) as conn:
        assert conn.command("STAT") == f"+OK 10000 {10000 * len(body)}".encode()
        assert len(conn.list_map()) == 10000
        listing = conn.uidl_map()
        conn.quit()
    elapsed = time.monotonic() - started
    assert len(set(listing.values())) == 10000
    assert listing[1] == "1700000000.M0P1Q0.bulk" and listing[10000] == "1700000000.M9999P1Q9999.bulk"
    assert elapsed < 10, f"10,000 messages took {elapsed:.1f}s to open and list"


def test_overlong_line_without_line_end_is_discarded_until_crlf(three):
    """200 KB with no CRLF: not buffered without bound; the line is refused once it ends and
    the session goes on."""
    with pop3_connect(three) as conn:
        conn.send(b"NOOP " + b"y" * 200000)
        conn.send(b"\r\nSTAT\r\n")
        assert conn.read_line().startswith(b"-ERR")
        assert conn.read_line().startswith(b"+OK 3 ")
