"""`mailpopbox authorize CONFIG DOMAIN` end to end against the Gmail fake (gmailfake.py): the
authorization-code flow with PKCE S256 (RFC 7636) and a loopback redirect (RFC 8252), the
state check, the code exchange, and the refresh token stored in OAuthTokenFile (mode 0600,
given to User when run as root). The test plays the browser: it opens the printed URL, the
fake's authorization endpoint redirects at once to the loopback listener.
"""

import json
import os
import pwd
import re
import selectors
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import free_port, server_config
from gmailfake import GmailFake, SCOPE_INSERT, SCOPE_READ, pkce_s256

WAIT = 60


@pytest.fixture
def fake(test_ca, tmp_path):
    made = GmailFake(test_ca, tmp_path).start()
    yield made
    made.stop()


class Authorize:
    """One run of `mailpopbox authorize` with its config."""

    def __init__(self, binary, fake, directory, certs, destination=None, overrides=None):
        self.binary = binary
        self.fake = fake
        self.directory = directory
        self.client_file = fake.write_client_file(directory / "client.json")
        self.token_file = directory / "token.json"
        self.destination = fake.destination(self.client_file, self.token_file)
        self.destination.update(destination or {})
        self.destination = {k: v for k, v in self.destination.items() if v is not None}

        def servers(entries):
            entries[0]["Destination"] = self.destination
            return entries
        config = server_config(directory, certs, overrides, servers)
        self.config_path = directory / "config.json"
        self.config_path.write_text(json.dumps(config))
        self.process = None
        self.stdout = ""
        self.stderr = ""

    def start(self, *arguments, domain="example.org"):
        self.process = subprocess.Popen(
            [str(self.binary), "authorize", str(self.config_path), domain, *arguments],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return self

    def read_url(self):
        """The authorization URL printed on stdout (waits for it, bounded)."""
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + WAIT
        buffer = b""
        while time.monotonic() < deadline:
            match = re.search(rb"^(https://\S+)$", buffer, re.M)
            if match and b"Waiting" in buffer:
                self.stdout += buffer.decode()
                return match.group(1).decode()
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
        self.stdout += buffer.decode()
        raise AssertionError(f"no URL printed: {buffer!r}, stderr "
                             f"{self.process.stderr.read().decode() if self.process.poll() is not None else ''}")

    def browse(self, url):
        """What a browser does: GET the URL, follow the redirect to the loopback listener.
        Returns (status, page text)."""
        context = ssl.create_default_context(cafile=self.fake.ca_file)
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
        try:
            with opener.open(url, timeout=WAIT) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def finish(self):
        out, err = self.process.communicate(timeout=WAIT)
        self.stdout += out.decode()
        self.stderr += err.decode()
        return self.process.returncode

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def assert_no_secrets_shown(self):
        for secret in self.fake.secrets_issued() + [self.fake.client_secret]:
            assert secret not in self.stdout + self.stderr, "a token, code or secret was printed"


@pytest.fixture
def authorize(mailpopbox_bin, fake, tmp_path, certs):
    made = []

    def factory(destination=None, overrides=None):
        directory = tmp_path / f"authorize{len(made)}"
        directory.mkdir()
        run = Authorize(mailpopbox_bin, fake, directory, certs, destination, overrides)
        made.append(run)
        return run
    yield factory
    for run in made:
        run.kill()
        run.assert_no_secrets_shown()


def query_of(url):
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_authorize_stores_a_refresh_token_after_the_pkce_exchange(authorize, fake):
    run = authorize().start("--read-scope")
    url = run.read_url()
    assert url.startswith(fake.auth_uri + "?")
    query = query_of(url)
    assert query["response_type"] == "code"
    assert query["client_id"] == fake.client_id
    assert query["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", query["code_challenge"])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", query["redirect_uri"])
    assert query["scope"].split() == [SCOPE_INSERT, SCOPE_READ]
    assert query["access_type"] == "offline"
    assert len(query["state"]) >= 16

    status, page = run.browse(url)
    assert status == 200 and "authorized" in page, page
    assert run.finish() == 0, run.stderr
    assert "Stored the refresh token" in run.stdout

    assert run.token_file.stat().st_mode & 0o777 == 0o600
    stored = json.loads(run.token_file.read_text())
    assert fake.refresh_tokens[stored["refresh_token"]]["scope"] == f"{SCOPE_INSERT} {SCOPE_READ}"
    assert stored["scope"].split() == [SCOPE_INSERT, SCOPE_READ]
    assert fake.token_grants == ["authorization_code"]
    assert not fake.codes, "the code was exchanged (and the fake checked the verifier)"


def test_default_scope_is_insert_only_and_says_what_that_means(authorize, fake):
    run = authorize().start()
    url = run.read_url()
    assert query_of(url)["scope"] == SCOPE_INSERT
    run.browse(url)
    assert run.finish() == 0, run.stderr
    assert json.loads(run.token_file.read_text())["scope"] == SCOPE_INSERT
    assert "--read-scope" in run.stdout


def test_the_given_port_is_used_for_the_redirect(authorize):
    port = free_port()
    run = authorize().start("--port", str(port))
    url = run.read_url()
    assert query_of(url)["redirect_uri"] == f"http://127.0.0.1:{port}"
    assert f"ssh -L {port}:127.0.0.1:{port}" in run.stdout
    run.browse(url)
    assert run.finish() == 0, run.stderr


def test_a_redirect_with_another_state_is_refused_and_the_wait_goes_on(authorize):
    run = authorize().start()
    url = run.read_url()
    redirect = query_of(url)["redirect_uri"]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{redirect}/?code=forged&state=not-this-one", timeout=WAIT)
    assert refused.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as elsewhere:
        urllib.request.urlopen(f"{redirect}/favicon.ico", timeout=WAIT)
    assert elsewhere.value.code == 404
    assert run.process.poll() is None, "still waiting for the real answer"
    status, page = run.browse(url)
    assert status == 200, page
    assert run.finish() == 0, run.stderr


def test_a_denied_authorization_stores_nothing(authorize, fake):
    fake.deny_authorization = True
    run = authorize().start()
    status, page = run.browse(run.read_url())
    assert status == 200 and "not given" in page
    assert run.finish() == 1
    assert "access_denied" in run.stderr
    assert not run.token_file.exists()


def test_the_token_endpoint_is_verified_against_TLSCAFile(authorize, fake):
    run = authorize(destination={"TLSCAFile": None}).start()
    run.browse(run.read_url())
    assert run.finish() == 1
    assert "certificate" in run.stderr.lower() or "ssl" in run.stderr.lower(), run.stderr
    assert not run.token_file.exists()


def test_imap_with_an_unknown_provider_needs_a_scope(authorize, fake):
    imap = {"Type": "imap", "Host": "127.0.0.1", "Username": "owner@example.net",
            "GmailAPIURL": None}
    run = authorize(destination=imap).start()
    assert run.finish() == 1
    assert "--scope" in run.stderr

    run = authorize(destination=imap).start("--scope", "https://mail.google.com/")
    url = run.read_url()
    assert query_of(url)["scope"] == "https://mail.google.com/"
    run.browse(url)
    assert run.finish() == 0, run.stderr
    assert json.loads(run.token_file.read_text())["scope"] == "https://mail.google.com/"


def test_a_domain_without_an_oauth_destination_is_reported(authorize):
    run = authorize().start(domain="example.net")
    assert run.finish() == 1
    assert "OAuthClientFile" in run.stderr
    run = authorize().start(domain="nowhere.example")
    assert run.finish() == 1
    assert "nowhere.example" in run.stderr


def test_a_garbled_client_file_is_reported(authorize):
    run = authorize()
    run.client_file.write_text("{\"installed\": ")
    run.start()
    assert run.finish() == 1
    assert "not JSON" in run.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file away")
def test_run_as_root_the_token_file_belongs_to_User(authorize, open_directory):
    run = authorize(overrides={"User": "nobody"})
    run.token_file = open_directory / "token.json"
    run.destination["OAuthTokenFile"] = str(run.token_file)
    config = json.loads(run.config_path.read_text())
    config["Servers"][0]["Destination"] = run.destination
    run.config_path.write_text(json.dumps(config))
    run.start()
    run.browse(run.read_url())
    assert run.finish() == 0, run.stderr
    nobody = pwd.getpwnam("nobody")
    assert run.token_file.stat().st_uid == nobody.pw_uid
    assert run.token_file.stat().st_gid == nobody.pw_gid
    assert run.token_file.stat().st_mode & 0o777 == 0o600


def test_pkce_s256_matches_rfc_7636_appendix_b():
    """The fake's own check, against the RFC's example (the C side has a unit test)."""
    assert pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == \
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
