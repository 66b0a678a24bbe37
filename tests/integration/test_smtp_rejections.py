"""Every refusal leaves nothing on disk, and the session goes on afterwards."""

import pytest

from conftest import dot_stuff, make_message, queue_id


def finish_with_good_message(client, server, subject="good"):
    """After a refusal the session is still usable: a normal message goes through."""
    message = make_message(subject, b"the good one\r\n")
    queue_id(client.transaction("a@elsewhere.example", ["good@example.org"], message))
    return message


def test_unknown_domain_leaves_nothing_on_disk(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("RCPT TO:<victim@gmail.com>").code == 550
        assert client.command("DATA").code == 503
    server.assert_nothing_stored()


def test_blocked_address_leaves_nothing_on_disk(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("RCPT TO:<spam@example.org>").code == 553
        assert client.command("DATA").code == 503
    server.assert_nothing_stored()


def test_blocked_address_among_others_is_not_delivered(server):
    message = make_message("partly blocked")
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("RCPT TO:<spam@example.org>").code == 553
        assert client.command("RCPT TO:<ok@example.org>").code == 250
        assert client.command("DATA").code == 354
        client.send(dot_stuff(message) + b".\r\n")
        queue_id(client.read_reply())
    headers = server.message().split(message)
    delivered = [v.strip("<>") for k, v in headers if k.lower() == "delivered-to"]
    assert delivered == ["ok@example.org"]


def test_local_mail_from_without_auth_leaves_nothing_on_disk(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<owner@example.org>").code == 550
        assert client.command("RCPT TO:<anyone@example.org>").code == 503
        assert client.command("DATA").code == 503
    server.assert_nothing_stored()


def test_declared_size_over_limit_leaves_nothing_on_disk(make_server):
    server = make_server({"MaxMessageSize": 5000})
    with server.connect() as client:
        client.ehlo()
        reply = client.command("MAIL FROM:<a@elsewhere.example> SIZE=50000")
        assert (reply.code, reply.enhanced) == (552, "5.3.4"), reply
        assert client.command("RCPT TO:<anyone@example.org>").code == 503
    server.assert_nothing_stored()


@pytest.mark.parametrize("declared", ["", " SIZE=100"])
def test_message_over_max_size_is_552_after_the_dot_and_not_stored(make_server, declared):
    server = make_server({"MaxMessageSize": 5000})
    message = make_message("too big", b"0123456789" * 1000 + b"\r\n")
    with server.connect() as client:
        client.ehlo()
        assert client.command(f"MAIL FROM:<a@elsewhere.example>{declared}").code == 250
        assert client.command("RCPT TO:<big@example.org>").code == 250
        assert client.command("DATA").code == 354
        client.send(dot_stuff(message) + b".\r\n")
        reply = client.read_reply()
        assert (reply.code, reply.enhanced) == (552, "5.3.4"), reply
        server.assert_nothing_stored()
        assert client.command("NOOP").code == 250
        finish_with_good_message(client, server)
    assert len(server.messages()) == 1


def test_message_of_exactly_max_size_is_accepted(make_server):
    message = make_message("exact size", b"y" * 3000 + b"\r\n")
    server = make_server({"MaxMessageSize": len(message)})
    with server.connect() as client:
        client.ehlo()
        queue_id(client.transaction("a@elsewhere.example", ["fits@example.org"], message))
    server.message().split(message)


def test_oversize_message_far_over_limit_is_refused_without_storing(make_server):
    server = make_server({"MaxMessageSize": 100000})
    chunk = b"z" * 998 + b"\r\n"
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("RCPT TO:<big@example.org>").code == 250
        assert client.command("DATA").code == 354
        client.send(b"Subject: huge\r\n\r\n" + chunk * 5000 + b".\r\n")  # 5 MB
        reply = client.read_reply()
        assert (reply.code, reply.enhanced) == (552, "5.3.4"), reply
        assert client.command("NOOP").code == 250
    server.assert_nothing_stored()


@pytest.mark.parametrize("data", [
    pytest.param(b"Subject: lf\r\n\r\nbare\nline feed\r\n", id="bare-LF-in-body"),
    pytest.param(b"Subject: lf\nX: y\r\n\r\nbody\r\n", id="bare-LF-in-header"),
    pytest.param(b"Subject: cr\r\n\r\nbare\rcarriage return\r\n", id="bare-CR-in-body"),
    pytest.param(b"Subject: cr\r\n\r\nends with bare CR\r\r\n", id="CR-CR-LF"),
    pytest.param(b"Subject: lf\r\n\r\nbody\n\r\n", id="LF-before-CRLF"),
    # The lone LF is followed by CRLF: "<LF>.<CRLF>" would be a smuggling sequence that must
    # not end the data at all (see test_smtp_smuggling.py).
    pytest.param(b"Subject: lf\r\n\r\n\n\r\n", id="lone-LF-line"),
])
def test_bare_newline_in_data_is_554_and_session_continues(server, data):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("RCPT TO:<bare@example.org>").code == 250
        assert client.command("DATA").code == 354
        client.send(data + b".\r\n")
        reply = client.read_reply()
        assert (reply.code, reply.enhanced) == (554, "5.6.0"), reply
        server.assert_nothing_stored()
        assert client.command("NOOP").code == 250
        good = finish_with_good_message(client, server)
    server.message().split(good)


def test_client_disconnect_in_the_middle_of_data_leaves_nothing(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("RCPT TO:<gone@example.org>").code == 250
        assert client.command("DATA").code == 354
        client.send(b"Subject: cut\r\n\r\n" + b"partial line\r\n" * 10000)
    server.assert_nothing_stored(settle=5.0)
    with server.connect() as client:
        client.ehlo()
        finish_with_good_message(client, server)
    assert len(server.messages()) == 1
