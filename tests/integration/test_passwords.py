"""Hashed mailbox passwords: "MailboxPasswordHash" (yescrypt, SHA-512-crypt, bcrypt) made with
`mailpopbox hash-password`, used for POP3 USER/PASS and SMTP AUTH PLAIN on the submission port
in place of a plain "MailboxPassword"."""

import poplib
import smtplib
import subprocess

import pytest

from conftest import IO_TIMEOUT, insecure_client_context

SCHEMES = {"yescrypt": "$y$", "sha512": "$6$", "bcrypt": "$2b$"}


def user(domain="example.org"):
    return f"mailbox@{domain}"


def password(domain="example.org"):
    return f"hashed password of {domain}"


def hash_password(binary, secret, scheme=None):
    """Runs `mailpopbox hash-password`, the password fed on stdin; returns the CompletedProcess."""
    args = [str(binary), "hash-password"] + (["--scheme", scheme] if scheme else [])
    return subprocess.run(args, input=secret, capture_output=True, timeout=60)


def make_hash(binary, secret, scheme=None):
    done = hash_password(binary, secret.encode() + b"\n", scheme)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 1, done.stdout
    return lines[0]


@pytest.fixture(params=sorted(SCHEMES))
def hashed_server(request, make_server, mailpopbox_bin):
    """A running server whose Servers have only a MailboxPasswordHash, of the param's scheme."""
    scheme = request.param

    def with_hashes(entries):
        for entry in entries:
            del entry["MailboxPassword"]
            entry["MailboxPasswordHash"] = make_hash(mailpopbox_bin, password(entry["Domain"]),
                                                     scheme)
            assert entry["MailboxPasswordHash"].startswith(SCHEMES[scheme])
        return entries

    return make_server(servers=with_hashes)


def pop3_ssl(server):
    return poplib.POP3_SSL("127.0.0.1", server.pop3_port, context=insecure_client_context(),
                           timeout=IO_TIMEOUT)


def submission(server):
    client = smtplib.SMTP("127.0.0.1", server.config["SubmissionPort"], timeout=IO_TIMEOUT)
    client.ehlo("client.example.net")
    client.starttls(context=insecure_client_context())
    client.ehlo("client.example.net")
    return client


def test_pop3_pass_with_the_hashed_password_is_accepted(hashed_server):
    for domain in ("example.org", "example.net"):
        pop = pop3_ssl(hashed_server)
        try:
            assert pop.user(user(domain)).startswith(b"+OK")
            assert pop.pass_(password(domain)).startswith(b"+OK")
            count, _ = pop.stat()
            assert count == 0
        finally:
            pop.quit()


def test_pop3_pass_with_a_wrong_password_gets_err_auth(hashed_server):
    pop = pop3_ssl(hashed_server)
    try:
        pop.user(user())
        with pytest.raises(poplib.error_proto) as refused:
            pop.pass_(password() + "x")
        assert refused.value.args[0].startswith(b"-ERR [AUTH]"), refused.value.args
    finally:
        pop.close()
    # Another domain's password is wrong too: each Server has its own hash.
    pop = pop3_ssl(hashed_server)
    try:
        pop.user(user())
        with pytest.raises(poplib.error_proto) as refused:
            pop.pass_(password("example.net"))
        assert refused.value.args[0].startswith(b"-ERR [AUTH]"), refused.value.args
    finally:
        pop.close()


def test_smtp_auth_plain_on_submission_with_the_hashed_password(hashed_server):
    client = submission(hashed_server)
    try:
        code, _ = client.login(user(), password())
        assert code == 235
    finally:
        client.quit()


def test_smtp_auth_plain_with_a_wrong_password_gets_535(hashed_server):
    client = submission(hashed_server)
    try:
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login(user(), "not " + password())
        assert refused.value.smtp_code == 535
    finally:
        client.close()


# --- hash-password itself ----------------------------------------------------------------------

def test_hash_password_defaults_to_yescrypt(mailpopbox_bin):
    assert make_hash(mailpopbox_bin, "secret").startswith("$y$")


def test_hash_password_gives_a_new_salt_each_time(mailpopbox_bin):
    assert make_hash(mailpopbox_bin, "secret") != make_hash(mailpopbox_bin, "secret")


@pytest.mark.parametrize("data", [b"", b"\n", b"\r\n"])
def test_hash_password_refuses_an_empty_password(mailpopbox_bin, data):
    done = hash_password(mailpopbox_bin, data)
    assert done.returncode == 1
    assert done.stdout == b""
    assert b"empty password" in done.stderr


def test_hash_password_refuses_a_nul_byte(mailpopbox_bin):
    done = hash_password(mailpopbox_bin, b"sec\0ret\n")
    assert done.returncode == 1
    assert done.stdout == b""
    assert b"NUL" in done.stderr


@pytest.mark.parametrize("args", [["--scheme", "md5"], ["--scheme"], ["extra"]])
def test_hash_password_refuses_unknown_arguments(mailpopbox_bin, args):
    done = subprocess.run([str(mailpopbox_bin), "hash-password"] + args, input=b"secret\n",
                          capture_output=True, timeout=60)
    assert done.returncode == 2
    assert b"usage: mailpopbox hash-password" in done.stderr


def test_hash_password_never_echoes_the_password(mailpopbox_bin):
    done = hash_password(mailpopbox_bin, b"very-secret-words\n")
    assert b"very-secret-words" not in done.stdout + done.stderr


# --- the config key, through the real binary ---------------------------------------------------

def run_serve(server):
    """Starts the binary on a config that must not load; returns the CompletedProcess."""
    return subprocess.run([str(server.binary), str(server.config_path)], capture_output=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def test_server_refuses_a_malformed_hash_naming_the_key(make_server):
    def broken(entries):
        del entries[0]["MailboxPassword"]
        entries[0]["MailboxPasswordHash"] = "$6$saltsalt$tooshort"
        return entries

    done = run_serve(make_server(servers=broken, start=False))
    assert done.returncode == 1
    assert b"Servers[0].MailboxPasswordHash: must be a complete SHA-512-crypt hash" in done.stderr


def test_server_refuses_a_server_with_neither_password_nor_hash(make_server):
    def neither(entries):
        del entries[1]["MailboxPassword"]
        return entries

    done = run_serve(make_server(servers=neither, start=False))
    assert done.returncode == 1
    assert b"Servers[1].MailboxPassword: missing (or set MailboxPasswordHash)" in done.stderr


def test_hash_password_reads_one_line_without_its_line_end(make_server, mailpopbox_bin):
    """Only the first line counts, and its CRLF is not part of the password."""
    done = hash_password(mailpopbox_bin, b"secret\r\nsecond line\n", "sha512")
    assert done.returncode == 0, done.stderr

    def hashed(entries):
        del entries[0]["MailboxPassword"]
        entries[0]["MailboxPasswordHash"] = done.stdout.decode().strip()
        return entries

    server = make_server(servers=hashed)
    pop = pop3_ssl(server)
    try:
        pop.user(user())
        assert pop.pass_("secret").startswith(b"+OK")
    finally:
        pop.quit()
