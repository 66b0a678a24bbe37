"""A local HTTPS fake of the Google endpoints push delivery uses, following Google's published
API for exactly these calls (standard library only: http.server + ssl):

  GET  /o/oauth2/auth                       the authorization endpoint (OAuth 2.0 for installed
                                            apps): checks the request, then redirects at once
                                            to redirect_uri with code and state (no login page)
  POST /token                               the token endpoint: authorization_code with PKCE
                                            (RFC 7636 S256 checked), refresh_token, and Google's
                                            error answers (invalid_grant, invalid_client)
  POST /upload/gmail/v1/users/me/messages/import?uploadType=multipart
                                            users.messages.import, multipart/related upload:
                                            JSON metadata with labelIds, then message/rfc822
  GET  /gmail/v1/users/me/messages?q=rfc822msgid:ID
                                            users.messages.list

Access tokens are checked (Authorization: Bearer) with their scopes, as Google does: 401 for an
unknown or expired token, 403 insufficientPermissions for a missing scope. Tests may inject the
next answers of an endpoint (401 expired token, 429 rate limit, 500 backend error, 400...).

Usage:
    fake = GmailFake(test_ca, directory).start()
    fake.write_client_file(path)             # Google's {"installed": {...}} JSON
    refresh = fake.grant(scope)              # a refresh token without the browser dance
    fake.inject("import", 500)
    fake.messages                            # what was imported
    fake.hold_import_answers()               # keep messages, answer only when released
    fake.stop()
"""

import base64
import hashlib
import json
import re
import secrets
import ssl
import threading
import time
from email.parser import BytesHeaderParser
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

SCOPE_INSERT = "https://www.googleapis.com/auth/gmail.insert"
SCOPE_READ = "https://www.googleapis.com/auth/gmail.readonly"
SCOPE_MODIFY = "https://www.googleapis.com/auth/gmail.modify"
SCOPE_FULL = "https://mail.google.com/"
# Which scopes allow which call (Google's API reference, "Authorization scopes").
IMPORT_SCOPES = {SCOPE_INSERT, SCOPE_MODIFY, SCOPE_FULL, "https://www.googleapis.com/auth/gmail.import"}
LIST_SCOPES = {SCOPE_READ, SCOPE_MODIFY, SCOPE_FULL}
# System labels a message may be imported with.
SYSTEM_LABELS = {"INBOX", "SPAM", "TRASH", "UNREAD", "STARRED", "IMPORTANT", "SENT", "DRAFT",
                 "CATEGORY_PERSONAL", "CATEGORY_SOCIAL", "CATEGORY_PROMOTIONS",
                 "CATEGORY_UPDATES", "CATEGORY_FORUMS"}
# Gmail's upload limit for messages.import (the media upload's maxSize).
MAX_UPLOAD = 150 * 1024 * 1024
ACCESS_TOKEN_SECONDS = 3599


def google_error(code, message, reason, status, domain="global", extra=None):
    """Google's JSON error document (the Gmail API's "error" object)."""
    error = {"message": message, "domain": domain, "reason": reason}
    error.update(extra or {})
    return {"error": {"code": code, "message": message, "errors": [error], "status": status}}


UNAUTHENTICATED = google_error(
    401, "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project.",
    "authError", "UNAUTHENTICATED",
    extra={"location": "Authorization", "locationType": "header"})
INSUFFICIENT_SCOPES = google_error(
    403, "Request had insufficient authentication scopes.", "insufficientPermissions",
    "PERMISSION_DENIED")
RATE_LIMITED = google_error(
    429, "User-rate limit exceeded.  Retry after 2026-12-02T12:00:00.000Z",
    "rateLimitExceeded", "RESOURCE_EXHAUSTED", domain="usageLimits")
BACKEND_ERROR = google_error(500, "Backend Error", "backendError", "INTERNAL")
INVALID_ARGUMENT = google_error(400, "Invalid message", "invalidArgument", "INVALID_ARGUMENT")
TOO_LARGE = google_error(413, "Request Entity Too Large", "uploadTooLarge", "OUT_OF_RANGE")
CANNED = {401: UNAUTHENTICATED, 403: INSUFFICIENT_SCOPES, 429: RATE_LIMITED, 500: BACKEND_ERROR,
          400: INVALID_ARGUMENT, 413: TOO_LARGE}


def pkce_s256(verifier):
    """RFC 7636 4.2."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def parse_multipart_related(content_type, body):
    """The parts of a multipart/related body (RFC 2046 5.1, RFC 2387) as (headers dict with
    lower-case names, content bytes). Raises ValueError when it is not well formed."""
    match = re.match(r'multipart/related\s*;\s*boundary="?([^";]+)"?\s*$', content_type or "", re.I)
    if not match:
        raise ValueError(f"Content-Type is not multipart/related with a boundary: {content_type!r}")
    boundary = match.group(1).encode()
    if len(boundary) > 70:
        raise ValueError("boundary longer than 70 characters")
    delimiter = b"--" + boundary
    if not body.startswith(delimiter + b"\r\n"):
        raise ValueError("body does not start with the boundary delimiter")
    close = b"\r\n" + delimiter + b"--"
    end = body.find(close)
    if end < 0:
        raise ValueError("no close delimiter")
    if body[end + len(close):] not in (b"", b"\r\n"):
        raise ValueError("data after the close delimiter")
    inner = body[len(delimiter) + 2:end]
    chunks = inner.split(b"\r\n" + delimiter + b"\r\n")
    parts = []
    for chunk in chunks:
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("a part without a blank line after its headers")
        headers = {}
        for line in head.split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if not colon:
                raise ValueError(f"bad part header {line!r}")
            headers[name.strip().lower().decode()] = value.strip().decode()
        parts.append((headers, content))
    return parts


class GmailFake:
    def __init__(self, test_ca, directory, host="127.0.0.1"):
        self.directory = directory
        self.host = host
        self.cert, self.key = test_ca.issue(host)
        self.ca_file = str(test_ca.cert)
        self.client_id = "1234567890-fake.apps.googleusercontent.com"
        self.client_secret = "GOCSPX-" + secrets.token_urlsafe(20)
        self.public_client = False  # True: no client_secret needed (an Entra-like public client)
        self.lock = threading.Lock()
        self.codes = {}           # code -> dict(client_id, redirect_uri, challenge, scope)
        self.refresh_tokens = {}  # refresh token -> dict(scope, revoked)
        self.access_tokens = {}   # access token -> dict(scope, expires)
        self.messages = []        # dict(id, threadId, labelIds, raw, internalDateSource, query)
        self.injected = {}        # endpoint -> list of statuses for its next answers
        self.requests = []        # (method, path, endpoint) of every request
        self.token_grants = []    # grant_type of every token request
        self.authorization_requests = []  # query dicts of the authorization endpoint
        self.deny_authorization = False
        self.max_upload = MAX_UPLOAD
        self.held = None          # threading.Event while import answers are held back
        self.server = None

    # --- running

    @property
    def url(self):
        return f"https://{self.host}:{self.server.server_address[1]}"

    @property
    def auth_uri(self):
        return self.url + "/o/oauth2/auth"

    @property
    def token_uri(self):
        return self.url + "/token"

    def start(self):
        fake = self

        class Handler(FakeHandler):
            pass
        Handler.fake = fake
        self.server = ThreadingHTTPServer((self.host, 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert), str(self.key))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       kwargs={"poll_interval": 0.05})
        self.thread.start()
        return self

    def stop(self):
        self.release_import_answers()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # --- what tests set up

    def client_json(self, kind="installed"):
        """The client JSON as Google Cloud's console lets one download it."""
        inner = {
            "client_id": self.client_id,
            "project_id": "mailpopbox-test",
            "auth_uri": self.auth_uri,
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_secret": self.client_secret,
            "redirect_uris": ["http://localhost"],
        }
        if kind == "flat":
            del inner["client_secret"]
            del inner["project_id"]
            del inner["auth_provider_x509_cert_url"]
            del inner["redirect_uris"]
            return inner
        return {kind: inner}

    def write_client_file(self, path, kind="installed"):
        path.write_text(json.dumps(self.client_json(kind)))
        return path

    def grant(self, scope=SCOPE_INSERT):
        """A refresh token for scope, as if the owner had authorized."""
        token = "1//0" + secrets.token_urlsafe(40)
        with self.lock:
            self.refresh_tokens[token] = {"scope": scope, "revoked": False}
        return token

    def write_token_file(self, path, scope=SCOPE_INSERT):
        token = self.grant(scope)
        path.write_text(json.dumps({"refresh_token": token, "scope": scope}))
        path.chmod(0o600)
        return token

    def destination(self, client_file, token_file, **extra):
        """A Servers[].Destination of Type gmail that talks to this fake."""
        return {"Type": "gmail", "OAuthClientFile": str(client_file),
                "OAuthTokenFile": str(token_file), "GmailAPIURL": self.url,
                "TLSCAFile": self.ca_file, **extra}

    def revoke(self, refresh_token=None):
        """Revokes one refresh token (or all) and every access token."""
        with self.lock:
            for token, grant in self.refresh_tokens.items():
                if refresh_token in (None, token):
                    grant["revoked"] = True
            self.access_tokens.clear()

    def expire_access_tokens(self):
        with self.lock:
            for token in self.access_tokens.values():
                token["expires"] = 0

    def inject(self, endpoint, status, times=1):
        """The next `times` requests to endpoint ("import", "list", "token") get status."""
        with self.lock:
            self.injected.setdefault(endpoint, []).extend([status] * times)

    def hold_import_answers(self):
        """From now on an import is kept (the message is in the mailbox) but its answer is held
        back until release_import_answers() (or 60 s): a crash of the client in between is
        the "in doubt" case of issue 13."""
        self.held = threading.Event()

    def release_import_answers(self):
        if self.held is not None:
            self.held.set()
            self.held = None

    def count(self, endpoint):
        with self.lock:
            return sum(1 for _, _, e in self.requests if e == endpoint)

    def secrets_issued(self):
        """Every token and code handed out, to check none of them reaches a log."""
        with self.lock:
            return list(self.refresh_tokens) + list(self.access_tokens) + list(self.codes)

    def find(self, message_id):
        """Imported messages whose Message-ID header is message_id (with or without <>)."""
        wanted = message_id.strip("<>")
        with self.lock:
            return [m for m in self.messages if m["message_id"] == wanted]

    # --- endpoint logic (called by the handler under no lock)

    def take_injected(self, endpoint):
        with self.lock:
            queue = self.injected.get(endpoint)
            return queue.pop(0) if queue else None

    def check_bearer(self, headers, allowed_scopes):
        """None when the access token is valid and has one of allowed_scopes, else the
        (status, document) Google answers."""
        match = re.fullmatch(r"Bearer ([^\s]+)", headers.get("Authorization", ""))
        with self.lock:
            token = self.access_tokens.get(match.group(1)) if match else None
            if token is None or token["expires"] < time.time():
                return 401, UNAUTHENTICATED
            if not set(token["scope"].split()) & allowed_scopes:
                return 403, INSUFFICIENT_SCOPES
        return None

    def new_access_token(self, scope):
        token = "ya29.a0" + secrets.token_urlsafe(60)
        with self.lock:
            self.access_tokens[token] = {"scope": scope,
                                         "expires": time.time() + ACCESS_TOKEN_SECONDS}
        return token


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Google: clients reuse the connection
    fake = None

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.connection.settimeout(30)
        self.handshake_done = False
        try:
            self.connection.do_handshake()
            self.handshake_done = True
        except (ssl.SSLError, OSError):
            pass  # a client that does not trust us, or went away

    def handle(self):
        if self.handshake_done:
            try:
                super().handle()
            except (ssl.SSLError, ConnectionError, TimeoutError):
                pass

    # --- plumbing

    def send_json(self, status, document, headers=None):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_canned(self, status):
        headers = {"Retry-After": "1"} if status == 429 else None
        if status == 401:
            headers = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                       'error="invalid_token"'}
        self.send_json(status, CANNED.get(status, google_error(status, "Injected", "injected",
                                                              "UNKNOWN")), headers)

    def read_body(self, limit):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
                if len(data) > limit:
                    return None
        if length is None:
            return b""
        length = int(length)
        if length > limit:
            # Read and drop it, so the connection stays usable, then refuse.
            left = length
            while left > 0:
                left -= len(self.rfile.read(min(left, 65536)))
            return None
        return self.rfile.read(length)

    def record(self, endpoint):
        with self.fake.lock:
            self.fake.requests.append((self.command, self.path, endpoint))

    # --- routes

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        if url.path == "/o/oauth2/auth":
            return self.authorization(query)
        if url.path == "/gmail/v1/users/me/messages":
            return self.messages_list(query)
        self.record("unknown")
        self.send_json(404, google_error(404, "Not Found", "notFound", "NOT_FOUND"))

    def do_POST(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        if url.path == "/token":
            return self.token()
        if url.path == "/upload/gmail/v1/users/me/messages/import":
            return self.messages_import(query)
        self.record("unknown")
        self.read_body(1 << 20)
        self.send_json(404, google_error(404, "Not Found", "notFound", "NOT_FOUND"))

    # The authorization endpoint (Google's "OAuth 2.0 for Mobile & Desktop Apps", step 2).
    def authorization(self, query):
        self.record("authorize")
        single = {k: v[0] for k, v in query.items()}
        with self.fake.lock:
            self.fake.authorization_requests.append(single)
        problems = []
        if single.get("response_type") != "code":
            problems.append("response_type must be code")
        if single.get("client_id") != self.fake.client_id:
            problems.append("The OAuth client was not found.")
        redirect = single.get("redirect_uri", "")
        if not re.fullmatch(r"http://(127\.0\.0\.1|\[::1\]|localhost)(:\d+)?(/.*)?", redirect):
            problems.append("redirect_uri must be a loopback address (http://127.0.0.1:PORT)")
        if not single.get("scope"):
            problems.append("Missing required parameter: scope")
        if single.get("code_challenge_method") != "S256" or not re.fullmatch(
                r"[A-Za-z0-9_-]{43}", single.get("code_challenge", "")):
            problems.append("code_challenge with code_challenge_method S256 required")
        if problems:
            # Google shows an error page to the user, never redirects, for these.
            body = ("Error 400: invalid_request\n" + "\n".join(problems)).encode()
            self.send_response(400)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.fake.deny_authorization:
            answer = {"error": "access_denied"}
        else:
            code = "4/0" + secrets.token_urlsafe(40)
            with self.fake.lock:
                self.fake.codes[code] = {"client_id": single["client_id"],
                                         "redirect_uri": redirect,
                                         "challenge": single["code_challenge"],
                                         "scope": single["scope"]}
            answer = {"code": code, "scope": single["scope"]}
        if "state" in single:
            answer["state"] = single["state"]
        separator = "&" if "?" in redirect else "?"
        self.send_response(302)
        self.send_header("Location", redirect + separator + urlencode(answer))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def token(self):
        self.record("token")
        form = parse_qs((self.read_body(1 << 16) or b"").decode(), keep_blank_values=True)
        single = {k: v[0] for k, v in form.items()}
        with self.fake.lock:
            self.fake.token_grants.append(single.get("grant_type"))
        injected = self.fake.take_injected("token")
        if injected is not None:
            return self.send_json(injected, {"error": "internal_failure",
                                             "error_description": "Injected"})
        if self.headers.get("Content-Type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return self.send_json(400, {"error": "invalid_request",
                                        "error_description": "Bad Request"})
        client_id, secret = single.get("client_id"), single.get("client_secret")
        basic = self.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        if client_id != self.fake.client_id or (
                not self.fake.public_client and secret != self.fake.client_secret):
            return self.send_json(401, {"error": "invalid_client",
                                        "error_description": "Unauthorized"})
        grant_type = single.get("grant_type")
        if grant_type == "authorization_code":
            with self.fake.lock:
                code = self.fake.codes.pop(single.get("code", ""), None)
            if code is None:
                return self.send_json(400, {"error": "invalid_grant",
                                            "error_description": "Bad Request"})
            if single.get("redirect_uri") != code["redirect_uri"]:
                return self.send_json(400, {"error": "redirect_uri_mismatch",
                                            "error_description": "Bad Request"})
            verifier = single.get("code_verifier", "")
            if not re.fullmatch(r"[A-Za-z0-9._~-]{43,128}", verifier) or \
                    pkce_s256(verifier) != code["challenge"]:
                return self.send_json(400, {"error": "invalid_grant",
                                            "error_description": "Invalid code verifier."})
            refresh = self.fake.grant(code["scope"])
            access = self.fake.new_access_token(code["scope"])
            return self.send_json(200, {"access_token": access, "expires_in": ACCESS_TOKEN_SECONDS,
                                        "refresh_token": refresh, "scope": code["scope"],
                                        "token_type": "Bearer"})
        if grant_type == "refresh_token":
            with self.fake.lock:
                grant = self.fake.refresh_tokens.get(single.get("refresh_token", ""))
                valid = grant is not None and not grant["revoked"]
            if not valid:
                return self.send_json(400, {"error": "invalid_grant",
                                            "error_description": "Token has been expired or revoked."})
            access = self.fake.new_access_token(grant["scope"])
            return self.send_json(200, {"access_token": access, "expires_in": ACCESS_TOKEN_SECONDS,
                                        "scope": grant["scope"], "token_type": "Bearer"})
        return self.send_json(400, {"error": "unsupported_grant_type",
                                    "error_description": f"Invalid grant_type: {grant_type}"})

    # users.messages.import with uploadType=multipart.
    def messages_import(self, query):
        self.record("import")
        body = self.read_body(self.fake.max_upload + (1 << 16))
        injected = self.fake.take_injected("import")
        if injected is not None:
            return self.send_canned(injected)
        refusal = self.fake.check_bearer(self.headers, IMPORT_SCOPES)
        if refusal:
            return self.send_json(*refusal)
        if body is None:
            return self.send_canned(413)
        if query.get("uploadType") != ["multipart"]:
            return self.send_json(400, google_error(400, "Invalid uploadType", "invalid",
                                                    "INVALID_ARGUMENT"))
        try:
            parts = parse_multipart_related(self.headers.get("Content-Type"), body)
            if len(parts) != 2:
                raise ValueError(f"{len(parts)} parts, expected metadata and media")
            (meta_headers, meta), (media_headers, raw) = parts
            if not meta_headers.get("content-type", "").startswith("application/json"):
                raise ValueError("the first part is not application/json")
            if media_headers.get("content-type") != "message/rfc822":
                raise ValueError("the second part is not message/rfc822")
            metadata = json.loads(meta)
            labels = metadata.get("labelIds", [])
            if not isinstance(labels, list) or not all(l in SYSTEM_LABELS for l in labels):
                return self.send_json(400, google_error(400, f"Invalid label: {labels}",
                                                        "invalidArgument", "INVALID_ARGUMENT"))
            if not raw.strip():
                raise ValueError("empty message")
        except (ValueError, UnicodeDecodeError) as error:
            return self.send_json(400, google_error(400, f"Bad Request: {error}", "badRequest",
                                                    "INVALID_ARGUMENT"))
        if len(raw) > self.fake.max_upload:
            return self.send_canned(413)
        headers = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
        message_id = (headers.get("Message-ID") or "").strip().strip("<>")
        message = {
            "id": "18c" + secrets.token_hex(6),
            "threadId": "18c" + secrets.token_hex(6),
            "labelIds": labels,
            "raw": raw,
            "internalDateSource": query.get("internalDateSource", ["receivedTime"])[0],
            "message_id": message_id,
            "authorization": self.headers.get("Authorization", "").split()[0],
        }
        with self.fake.lock:
            self.fake.messages.append(message)
        held = self.fake.held
        if held is not None:
            held.wait(60)
        self.send_json(200, {"id": message["id"], "threadId": message["threadId"],
                             "labelIds": labels})

    # users.messages.list with q=rfc822msgid:.
    def messages_list(self, query):
        self.record("list")
        injected = self.fake.take_injected("list")
        if injected is not None:
            return self.send_canned(injected)
        refusal = self.fake.check_bearer(self.headers, LIST_SCOPES)
        if refusal:
            return self.send_json(*refusal)
        q = query.get("q", [""])[0]
        match = re.fullmatch(r"rfc822msgid:(\S+)", q.strip())
        if not match:
            return self.send_json(400, google_error(400, f"fake supports only rfc822msgid: ({q!r})",
                                                    "invalidArgument", "INVALID_ARGUMENT"))
        spam_trash = query.get("includeSpamTrash", ["false"])[0] == "true"
        found = [m for m in self.fake.find(match.group(1))
                 if spam_trash or not {"SPAM", "TRASH"} & set(m["labelIds"])]
        limit = int(query.get("maxResults", ["100"])[0])
        document = {"resultSizeEstimate": len(found)}
        if found:
            document["messages"] = [{"id": m["id"], "threadId": m["threadId"]}
                                    for m in found[:limit]]
        self.send_json(200, document)
