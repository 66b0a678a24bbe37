"""SMTP dialogue of the MX receiver (RFC 5321): greeting, EHLO, commands, replies, recipients."""

import smtplib

from conftest import HOSTNAME, make_message, queue_id


def test_greeting_names_hostname(server):
    with server.connect() as client:
        assert client.greeting.code == 220
        assert client.greeting.lines[0].startswith(f"{HOSTNAME} ESMTP mailpopbox"), client.greeting


def test_ehlo_names_hostname_and_lists_extensions(server):
    with server.connect() as client:
        reply = client.ehlo()
        assert reply.lines[0].split()[0] == HOSTNAME, reply
        keywords = {line.split()[0].upper(): line for line in reply.lines[1:]}
        for keyword in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8",
                        "STARTTLS"):
            assert keyword in keywords, reply
        assert keywords["SIZE"].split()[1:] == [str(server.config["MaxMessageSize"])], reply
        assert "AUTH" not in keywords, "AUTH is not offered before TLS"


def test_ehlo_without_certificates_does_not_offer_starttls(make_server):
    server = make_server(tls=False)
    with server.connect() as client:
        reply = client.ehlo()
        assert "STARTTLS" not in [line.split()[0].upper() for line in reply.lines[1:]], reply
        assert client.command("STARTTLS").code in (454, 502), "STARTTLS without a certificate"


def test_helo_is_accepted(server):
    with server.connect() as client:
        reply = client.command("HELO client.example.net")
        assert reply.code == 250, reply
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250


def test_ehlo_without_domain_is_501(server):
    with server.connect() as client:
        assert client.command("EHLO").code == 501


def test_noop_rset_vrfy_help_quit(server):
    with server.connect() as client:
        assert client.command("NOOP").code == 250
        assert client.command("RSET").code == 250
        assert client.command("VRFY someone@example.org").code == 252
        assert client.command("HELP").code == 214
        reply = client.command("QUIT")
        assert reply.code == 221, reply
        assert client.wait_closed(), "server must close after 221"


def test_commands_are_case_insensitive(server):
    with server.connect() as client:
        assert client.command("ehlo client.example.net").code == 250
        assert client.command("mail from:<a@elsewhere.example>").code == 250
        assert client.command("rcpt to:<b@example.org>").code == 250


def test_unknown_command_is_500(server):
    with server.connect() as client:
        assert client.command("FROB nicate").code == 500
        assert client.command("NOOP").code == 250


def test_mail_before_ehlo_is_503(server):
    with server.connect() as client:
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 503


def test_rcpt_before_mail_is_503(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("RCPT TO:<b@example.org>").code == 503


def test_data_before_rcpt_is_503(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("DATA").code == 503
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("DATA").code == 503


def test_second_mail_in_a_transaction_is_503(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("MAIL FROM:<b@elsewhere.example>").code == 503


def test_rset_ends_the_transaction(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        assert client.command("RCPT TO:<b@example.org>").code == 250
        assert client.command("RSET").code == 250
        assert client.command("RCPT TO:<b@example.org>").code == 503
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250


def test_bad_mail_syntax_is_501(server):
    with server.connect() as client:
        client.ehlo()
        for line in ("MAIL FROM:<unterminated@elsewhere.example", "MAIL FROM:", "MAIL TO:<a@elsewhere.example>",
                     "MAIL FROM:<a@elsewhere.example> SIZE=abc"):
            reply = client.command(line)
            assert reply.code == 501, f"{line}: {reply}"


def test_bad_rcpt_syntax_is_501(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        for line in ("RCPT TO:", "RCPT TO:<b@example.org", "RCPT FROM:<b@example.org>"):
            reply = client.command(line)
            assert reply.code == 501, f"{line}: {reply}"


def test_null_reverse_path_is_accepted(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<>").code == 250
        assert client.command("RCPT TO:<postmaster@example.org>").code == 250


def test_mail_from_a_configured_domain_without_auth_is_550(server):
    with server.connect() as client:
        client.ehlo()
        for sender in ("owner@example.org", "Someone@EXAMPLE.NET"):
            reply = client.command(f"MAIL FROM:<{sender}>")
            assert reply.code == 550, f"{sender}: {reply}"
            assert reply.enhanced == "5.7.1", reply


def test_rcpt_any_local_part_at_a_configured_domain_is_250(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@example.net.invalid>").code == 250
        for recipient in ("github@example.org", "bank-2026@example.org", "x.y+z@example.net",
                          "Alice@EXAMPLE.ORG", "bob@Example.Net"):
            reply = client.command(f"RCPT TO:<{recipient}>")
            assert reply.code == 250, f"{recipient}: {reply}"


def test_rcpt_blocked_address_is_553(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        for recipient in ("spam@example.org", "SPAM@Example.ORG", "blocked@example.net"):
            reply = client.command(f"RCPT TO:<{recipient}>")
            assert reply.code == 553, f"{recipient}: {reply}"
            assert reply.enhanced == "5.7.1", reply
        assert client.command("RCPT TO:<not-spam@example.org>").code == 250


def test_rcpt_other_domain_is_550_no_relay(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        for recipient in ("victim@gmail.com", "x@sub.example.org", "x@example.org.evil.example",
                          "x@example.com"):
            reply = client.command(f"RCPT TO:<{recipient}>")
            assert reply.code == 550, f"{recipient}: {reply}"
            assert reply.enhanced == "5.7.1", reply


def test_rcpt_source_route_to_other_domain_is_not_relayed(server):
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        reply = client.command("RCPT TO:<@example.org:victim@gmail.com>")
        assert reply.code in (501, 550, 553), reply
        reply = client.command('RCPT TO:<"victim@gmail.com"@gmail.com>')
        assert reply.code in (501, 550, 553), reply


def test_recipients_beyond_max_recipients_get_452(make_server):
    server = make_server({"MaxRecipients": 3})
    with server.connect() as client:
        client.ehlo()
        assert client.command("MAIL FROM:<a@elsewhere.example>").code == 250
        for number in range(3):
            assert client.command(f"RCPT TO:<r{number}@example.org>").code == 250
        reply = client.command("RCPT TO:<r3@example.org>")
        assert reply.code == 452, reply
        assert reply.enhanced == "4.5.3", reply
        assert client.command("DATA").code == 354
        message = make_message("three recipients")
        client.send(message + b".\r\n")
        queue_id(client.read_reply())
    headers = server.message().split(message)
    delivered = sorted(v.strip("<>") for k, v in headers if k.lower() == "delivered-to")
    assert delivered == ["r0@example.org", "r1@example.org", "r2@example.org"]


def test_mail_with_declared_size_over_limit_is_552(make_server):
    server = make_server({"MaxMessageSize": 10000})
    with server.connect() as client:
        client.ehlo()
        reply = client.command("MAIL FROM:<a@elsewhere.example> SIZE=10001")
        assert reply.code == 552, reply
        assert reply.enhanced == "5.3.4", reply
        assert client.command("MAIL FROM:<a@elsewhere.example> SIZE=9000").code == 250


def test_mail_parameters_8bitmime_and_smtputf8_are_accepted(server):
    with server.connect() as client:
        client.ehlo()
        reply = client.command("MAIL FROM:<a@elsewhere.example> BODY=8BITMIME SMTPUTF8 SIZE=100")
        assert reply.code == 250, reply


def test_pipelined_commands_get_replies_in_order(server):
    message = make_message("pipelined")
    with server.connect() as client:
        client.ehlo()
        client.send(b"MAIL FROM:<a@elsewhere.example>\r\nRCPT TO:<x@example.org>\r\n"
                    b"RCPT TO:<spam@example.org>\r\nRCPT TO:<y@example.org>\r\nDATA\r\n")
        codes = [client.read_reply().code for _ in range(5)]
        assert codes == [250, 250, 553, 250, 354]
        client.send(message + b".\r\nNOOP\r\nQUIT\r\n")
        queue_id(client.read_reply())
        assert client.read_reply().code == 250
        assert client.read_reply().code == 221
    server.message().split(message)


def test_smtplib_sendmail_reports_refused_recipients(server):
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="lib.example.net",
                      timeout=30) as client:
        refused = client.sendmail("a@elsewhere.example",
                                  ["good@example.org", "spam@example.org", "x@gmail.com"],
                                  make_message("smtplib"))
    assert set(refused) == {"spam@example.org", "x@gmail.com"}
    assert refused["spam@example.org"][0] == 553
    assert refused["x@gmail.com"][0] == 550
    assert len(server.messages()) == 1
