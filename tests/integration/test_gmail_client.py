"""push/gmail.c and push/oauth.c against the Gmail fake (gmailfake.py), through the test-only
driver gmail_push_probe (tests/integration/gmail_push_probe.c, built beside the binary): the
same code the push engine runs, one session and client per probe run.

Covers issue 13's Gmail calls: the multipart import with INBOX+UNREAD (SPAM for junk) and the
Date header as internal date, the lookup by Message-ID, the refresh of an access token and the
retry after a 401, the verdicts for 429/500/400/413/403, a revoked refresh token, a missing
token file, garbled client files, the certificate check, and no token in any output.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from gmailfake import GmailFake, SCOPE_INSERT, SCOPE_READ

PROBE_TIMEOUT = 60


@pytest.fixture
def probe_bin(mailpopbox_bin):
    """build/tests/gmail_push_probe beside build/src/mailpopbox."""
    path = Path(os.environ.get("GMAIL_PUSH_PROBE", mailpopbox_bin.parents[1] / "tests" /
                               "gmail_push_probe"))
    if not path.is_file():
        pytest.fail(f"gmail_push_probe not found at {path} (built by tests/meson.build)")
    return path


@pytest.fixture
def fake(test_ca, tmp_path):
    made = GmailFake(test_ca, tmp_path).start()
    yield made
    made.stop()


class Probe:
    def __init__(self, binary, fake, directory):
        self.binary = binary
        self.fake = fake
        self.directory = directory
        self.client_file = fake.write_client_file(directory / "client.json")
        self.token_file = directory / "token.json"
        self.ca = fake.ca_file
        self.api_url = fake.url
        self.outputs = []

    def run(self, command, *arguments, check=True):
        result = subprocess.run(
            [str(self.binary), command, str(self.client_file), str(self.token_file),
             self.api_url, self.ca, *map(str, arguments)],
            capture_output=True, timeout=PROBE_TIMEOUT)
        text = result.stdout.decode() + result.stderr.decode()
        self.outputs.append(text)
        if check:
            assert result.returncode == 0, text
        return result.returncode, [dict(field.split("=", 1) for field in
                                        line.split(" detail=")[0].split())
                                   | {"detail": line.split(" detail=", 1)[1] if " detail=" in line else ""}
                                   for line in result.stdout.decode().splitlines()]

    def import_files(self, *files, junk=False):
        arguments = (["--junk"] if junk else []) + list(files)
        return self.run("import", *arguments)[1]

    def find(self, *ids):
        return self.run("find", *ids)[1]

    def assert_no_secrets_shown(self):
        everything = "\n".join(self.outputs)
        for secret in self.fake.secrets_issued() + [self.fake.client_secret]:
            assert secret not in everything, "a token or secret reached the output"


@pytest.fixture
def probe(probe_bin, fake, tmp_path):
    made = Probe(probe_bin, fake, tmp_path)
    yield made
    made.assert_no_secrets_shown()


def message_file(directory, name, message_id, body=b"Hello.\r\n"):
    path = directory / name
    path.write_bytes(b"Return-Path: <sender@example.net>\r\n"
                     b"From: sender@example.net\r\nTo: someone@example.org\r\n"
                     b"Subject: " + name.encode() + b"\r\n"
                     b"Date: Wed, 02 Dec 2026 10:00:00 +0000\r\n"
                     b"Message-ID: " + message_id.encode() + b"\r\n\r\n" + body)
    return path


def test_import_sends_the_message_with_inbox_and_unread(probe, fake, tmp_path):
    fake.write_token_file(probe.token_file, SCOPE_INSERT)
    path = message_file(tmp_path, "one", "<one@example.net>", b"line\r\n.dot\r\nend\r\n")
    [line] = probe.import_files(path)
    assert line["status"] == "ok" and line["item_status"] == "ok", line
    [stored] = fake.messages
    assert line["remote_id"] == stored["id"]
    assert stored["raw"] == path.read_bytes(), "the message must arrive byte for byte"
    assert stored["labelIds"] == ["INBOX", "UNREAD"]
    assert stored["internalDateSource"] == "dateHeader"
    assert stored["authorization"] == "Bearer"


def test_junk_is_imported_with_the_spam_label(probe, fake, tmp_path):
    fake.write_token_file(probe.token_file, SCOPE_INSERT)
    [line] = probe.import_files(message_file(tmp_path, "junk", "<junk@example.net>"), junk=True)
    assert line["status"] == "ok", line
    assert fake.messages[0]["labelIds"] == ["SPAM", "UNREAD"]


def test_one_token_serves_many_imports(probe, fake, tmp_path):
    fake.write_token_file(probe.token_file, SCOPE_INSERT)
    files = [message_file(tmp_path, f"m{i}", f"<m{i}@example.net>") for i in range(5)]
    lines = probe.import_files(*files)
    assert [l["status"] for l in lines] == ["ok"] * 5, lines
    assert [m["message_id"] for m in fake.messages] == [f"m{i}@example.net" for i in range(5)]
    assert fake.token_grants == ["refresh_token"], "the access token is kept in memory"


def test_a_401_refreshes_the_token_and_retries_once(probe, fake, tmp_path):
    fake.write_token_file(probe.token_file, SCOPE_INSERT)
    fake.inject("import", 401)
    [line] = probe.import_files(message_file(tmp_path, "expired", "<expired@example.net>"))
    assert line["status"] == "ok", line
    assert len(fake.messages) == 1
    assert fake.token_grants == ["refresh_token", "refresh_token"]
    assert fake.count("import") == 2


def test_a_second_401_is_an_authentication_failure(probe, fake, tmp_path):
    fake.write_token_file(probe.token_file, SCOPE_INSERT)
    fake.inject("import", 401, times=2)
    [line] = probe.import_files(message_file(tmp_path, "twice", "<twice@example.net>"))
    assert line["status"] == "auth", line
    assert "401" in line["detail"]
    assert fake.count("import") == 2, "one retry only"
    assert not fake.messages


@pytest.mark.parametrize("status,verdict", [(429, "temporary"), (500, "temporary"),
                                            (503, "temporary"), (400, "refused"),
                                            (413, "refused")])
def test_api_answers_become_verdicts(probe, fake, tmp_path, status, verdict):
    fake.write_token_file(probe.token_file, SCOPE_INSERT)
    fake.inject("import", status)
    path = message_file(tmp_path, "v", "<v@example.net>")
    [line] = probe.import_files(path)
    assert line["status"] == verdict, line
    assert f"HTTP {status}" in line["detail"], line
    assert fake.count("import") == 1, "no retry inside the transport: the engine backs off"


def test_a_message_over_the_upload_limit_is_refused(probe, fake, tmp_path):
    fake.write_token_file(probe.token_file, SCOPE_INSERT)
    fake.max_upload = 10000
    big = message_file(tmp_path, "big", "<big@example.net>", b"x" * 78 + b"\r\n" * 1 + (b"y" * 78 + b"\r\n") * 200)
    [line] = probe.import_files(big)
    assert line["status"] == "refused", line
    assert "413" in line["detail"]


def test_missing_insert_scope_is_an_authentication_failure(probe, fake, tmp_path):
    fake.write_token_file(probe.token_file, SCOPE_READ)
    [line] = probe.import_files(message_file(tmp_path, "s", "<s@example.net>"))
    assert line["status"] == "auth", line
    assert "insufficientPermissions" in line["detail"], line


def test_revoked_refresh_token_is_an_authentication_failure(probe, fake, tmp_path):
    token = fake.write_token_file(probe.token_file, SCOPE_INSERT)
    fake.revoke(token)
    [line] = probe.import_files(message_file(tmp_path, "r", "<r@example.net>"))
    assert line["status"] == "auth", line
    assert "invalid_grant" in line["detail"], line
    assert fake.count("import") == 0


def test_missing_token_file_says_to_run_authorize(probe, fake, tmp_path):
    [line] = probe.import_files(message_file(tmp_path, "n", "<n@example.net>"))
    assert line["status"] == "auth", line
    assert "mailpopbox authorize" in line["detail"], line


def test_token_endpoint_failure_is_temporary(probe, fake, tmp_path):
    fake.write_token_file(probe.token_file, SCOPE_INSERT)
    fake.inject("token", 503)
    [line] = probe.import_files(message_file(tmp_path, "t", "<t@example.net>"))
    assert line["status"] == "temporary", line


def test_wrong_client_secret_is_an_authentication_failure(probe, fake, tmp_path):
    fake.write_token_file(probe.token_file, SCOPE_INSERT)
    document = fake.client_json()
    document["installed"]["client_secret"] = "wrong"
    probe.client_file.write_text(json.dumps(document))
    [line] = probe.import_files(message_file(tmp_path, "c", "<c@example.net>"))
    assert line["status"] == "auth", line
    assert "invalid_client" in line["detail"], line


@pytest.mark.parametrize("kind", ["installed", "web", "flat"])
def test_client_files_as_providers_give_them(probe, fake, tmp_path, kind):
    fake.public_client = kind == "flat"
    fake.write_client_file(probe.client_file, kind)
    fake.write_token_file(probe.token_file, SCOPE_INSERT)
    [line] = probe.import_files(message_file(tmp_path, "k", "<k@example.net>"))
    assert line["status"] == "ok", line


@pytest.mark.parametrize("content,words", [
    ("{not json", "not JSON"),
    ('{"installed": {"client_secret": "x"}}', "client_id"),
    ('["a"]', "not a JSON object"),
])
def test_garbled_client_file_is_reported(probe, fake, content, words):
    probe.client_file.write_text(content)
    code, _ = probe.run("import", "/dev/null", check=False)
    assert code == 1
    assert words in probe.outputs[-1], probe.outputs[-1]


def test_garbled_token_file_is_reported(probe, fake):
    probe.token_file.write_text('{"scope": "x"}')
    code, _ = probe.run("import", "/dev/null", check=False)
    assert code == 1
    assert "refresh_token" in probe.outputs[-1]


def test_untrusted_certificate_is_refused(probe, fake, tmp_path):
    fake.write_token_file(probe.token_file, SCOPE_INSERT)
    probe.ca = "-"  # the system's store does not trust the test CA
    [line] = probe.import_files(message_file(tmp_path, "u", "<u@example.net>"))
    assert line["status"] == "temporary", line
    assert "certificate" in line["detail"].lower() or "SSL" in line["detail"], line
    assert fake.count("import") == 0


def test_plain_http_is_refused(probe, fake, tmp_path):
    fake.write_token_file(probe.token_file, SCOPE_INSERT)
    probe.api_url = fake.url.replace("https://", "http://")
    [line] = probe.import_files(message_file(tmp_path, "h", "<h@example.net>"))
    assert line["status"] == "temporary", line
    assert fake.count("import") == 0


def test_find_looks_a_message_up_by_message_id(probe, fake, tmp_path):
    fake.write_token_file(probe.token_file, f"{SCOPE_INSERT} {SCOPE_READ}")
    probe.import_files(message_file(tmp_path, "f", "<find-me@example.net>"))
    probe.import_files(message_file(tmp_path, "g", "<in-spam@example.net>"), junk=True)
    lines = probe.find("<find-me@example.net>", "<in-spam@example.net>", "<absent@example.net>")
    assert [(l["status"], l["found"]) for l in lines] == [("ok", "1"), ("ok", "1"), ("ok", "0")], lines


def test_find_without_a_read_scope_is_an_authentication_failure(probe, fake, tmp_path):
    fake.write_token_file(probe.token_file, SCOPE_INSERT)
    [line] = probe.find("<x@example.net>")
    assert line["status"] == "auth", line
    assert "--read-scope" in line["detail"]
    assert fake.count("list") == 0


def test_find_retries_after_a_401_and_reports_5xx(probe, fake):
    fake.write_token_file(probe.token_file, f"{SCOPE_INSERT} {SCOPE_READ}")
    fake.inject("list", 401)
    [line] = probe.find("<x@example.net>")
    assert (line["status"], line["found"]) == ("ok", "0"), line
    fake.inject("list", 500)
    [line] = probe.find("<x@example.net>")
    assert line["status"] == "temporary", line
