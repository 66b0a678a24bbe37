/* push/authorize.c: "mailpopbox authorize CONFIG DOMAIN" (see authorize.h): prints the URL to
 * open, waits (AUTHORIZE_WAIT_SECONDS at most) for the browser's redirect on 127.0.0.1 (an
 * ephemeral port, or --port N to work through `ssh -L N:127.0.0.1:N`), checks its state,
 * exchanges the code with the PKCE code_verifier at the token_uri (over TLSCAFile when set)
 * and stores the refresh token in OAuthTokenFile (given to User when run as root). */
#include "push/authorize.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "bounds.h"
#include "fsutil.h"
#include "hex.h"
#include "log.h"
#include "mail/base64.h"
#include "privileges.h"
#include "push/gmail.h"
#include "push/http.h"
#include "push/oauth.h"

#define GOOGLE_TOKEN_URI_HOST "https://oauth2.googleapis.com/"
#define MICROSOFT_HOST "https://login.microsoftonline.com/"

void authorize_base64url(struct strbuf *out, const void *data, size_t len)
{
	struct strbuf b64;
	strbuf_init(&b64);
	base64_encode(&b64, data, len);
	for (size_t i = 0; i < b64.len; i++) {
		char ch = b64.data[i];
		if (ch == '=')
			break;
		ch = ch == '+' ? '-' : ch == '/' ? '_' : ch;
		strbuf_append(out, &ch, 1);
	}
	strbuf_free(&b64);
}

void authorize_random_string(struct strbuf *out, size_t bytes)
{
	unsigned char random[64];
	if (bytes > sizeof(random) || RAND_bytes(random, (int)bytes) != 1)
		fatal("RAND_bytes failed");
	authorize_base64url(out, random, bytes);
	OPENSSL_cleanse(random, sizeof(random));
}

void authorize_pkce_challenge(struct strbuf *out, const char *verifier)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)verifier, strlen(verifier), digest);
	authorize_base64url(out, digest, sizeof(digest));
}

const char *authorize_default_scope(enum destination_type type, const char *token_uri,
	bool read_scope)
{
	if (type == DESTINATION_GMAIL)
		return read_scope ? GMAIL_SCOPE_INSERT " " GMAIL_SCOPE_READ : GMAIL_SCOPE_INSERT;
	if (token_uri == NULL)
		return NULL;
	/* IMAP over OAuth: Google grants IMAP only with its full-mail scope; Microsoft's IMAP
	 * scope needs offline_access to give a refresh token at all. */
	if (strncasecmp(token_uri, GOOGLE_TOKEN_URI_HOST, strlen(GOOGLE_TOKEN_URI_HOST)) == 0 ||
	    strncasecmp(token_uri, "https://accounts.google.com/", 28) == 0)
		return "https://mail.google.com/";
	if (strncasecmp(token_uri, MICROSOFT_HOST, strlen(MICROSOFT_HOST)) == 0)
		return "https://outlook.office.com/IMAP.AccessAsUser.All offline_access";
	return NULL;
}

/* application/x-www-form-urlencoded decoding of [s, s+len): "+" is a space, %XX an octet. */
static char *form_decode(const char *s, size_t len)
{
	struct strbuf out;
	strbuf_init(&out);
	strbuf_append(&out, "", 0);
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (ch == '+') {
			ch = ' ';
		} else if (ch == '%' && i + 2 < len && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
			ch = (char)(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
			i += 2;
		}
		if (ch == '\0')
			continue; /* no NUL inside a C string */
		strbuf_append(&out, &ch, 1);
	}
	return out.data;
}

int authorize_parse_request_line(const char *line, struct authorize_redirect *out)
{
	memset(out, 0, sizeof(*out));
	if (strncmp(line, "GET ", 4) != 0)
		return -1;
	const char *target = line + 4;
	size_t target_len = strcspn(target, " ");
	if (target[target_len] != ' ' || strncmp(target + target_len + 1, "HTTP/", 5) != 0)
		return -1;
	size_t path_len = strcspn(target, "? ");
	if (path_len != 1 || target[0] != '/')
		return 0;
	const char *p = target + path_len;
	const char *end = target + target_len;
	if (*p == '?')
		p++;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *pair_end = amp != NULL ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(pair_end - p));
		if (eq != NULL) {
			char *name = form_decode(p, (size_t)(eq - p));
			char **slot = strcmp(name, "code") == 0 ? &out->code :
				      strcmp(name, "state") == 0 ? &out->state :
				      strcmp(name, "error") == 0 ? &out->error :
				      strcmp(name, "error_description") == 0 ? &out->error_description :
									      NULL;
			/* RFC 6749 3.1: a parameter sent twice makes the request invalid; the
			 * first is kept, the state check then decides. */
			if (slot != NULL && *slot == NULL)
				*slot = form_decode(eq + 1, (size_t)(pair_end - eq - 1));
			free(name);
		}
		p = pair_end + (amp != NULL ? 1 : 0);
	}
	return 1;
}

void authorize_redirect_free(struct authorize_redirect *r)
{
	if (r->code != NULL)
		OPENSSL_cleanse(r->code, strlen(r->code));
	free(r->code);
	free(r->state);
	free(r->error);
	free(r->error_description);
	memset(r, 0, sizeof(*r));
}

static void usage(void)
{
	fprintf(stderr, "usage: mailpopbox authorize CONFIG.json DOMAIN [--read-scope] [--scope S] "
		"[--port N]\n");
}

static long seconds_left(const struct timespec *deadline)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return deadline->tv_sec - now.tv_sec;
}

/* The request head of one loopback connection, within AUTHORIZE_REQUEST_TIMEOUT_SECONDS and
 * AUTHORIZE_REQUEST_MAX octets; only its first line matters. Returns it (NUL-terminated in
 * buf), or NULL. */
static char *read_request_line(int fd, char *buf, size_t bufsz)
{
	struct timespec deadline;
	size_t len = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += AUTHORIZE_REQUEST_TIMEOUT_SECONDS;
	while (len + 1 < bufsz) {
		long left = seconds_left(&deadline);
		if (left <= 0)
			return NULL;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int ready = poll(&pfd, 1, (int)left * 1000);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready <= 0)
			return NULL;
		ssize_t n = read(fd, buf + len, bufsz - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		len += (size_t)n;
		buf[len] = '\0';
		/* The whole head is read before answering, so the browser sees no reset. */
		if (strstr(buf, "\r\n\r\n") != NULL || strstr(buf, "\n\n") != NULL) {
			buf[strcspn(buf, "\r\n")] = '\0';
			return buf;
		}
	}
	return NULL;
}

static void answer(int fd, int code, const char *reason, const char *text)
{
	struct strbuf page;
	strbuf_init(&page);
	size_t body_len = strlen("<!doctype html><title>mailpopbox</title><p>") + strlen(text) +
			  strlen("</p>\n");
	strbuf_appendf(&page, "HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
		"Cache-Control: no-store\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n"
		"<!doctype html><title>mailpopbox</title><p>%s</p>\n", code, reason, body_len, text);
	/* A browser that left is no reason to die of SIGPIPE; the page is only a courtesy. */
	(void)send(fd, page.data, page.len, MSG_NOSIGNAL);
	strbuf_free(&page);
}

struct flow {
	const struct server_config *server;
	struct oauth_client client;
	const char *scope;
	char *redirect_uri;
	struct strbuf verifier;
	struct strbuf state;
};

/* Exchanges the code (RFC 6749 4.1.3, RFC 7636 4.5) and stores the refresh token. Returns 0,
 * or -1 with err. */
static int exchange_and_store(const struct config *cfg, struct flow *f, const char *code,
	char *err, size_t errsz)
{
	const struct destination_config *dest = f->server->destination;
	struct strbuf form;
	struct oauth_token_response resp;
	char inner[400];

	strbuf_init(&form);
	http_append_param(&form, "grant_type", "authorization_code");
	http_append_param(&form, "code", code);
	http_append_param(&form, "redirect_uri", f->redirect_uri);
	http_append_param(&form, "code_verifier", f->verifier.data);
	struct http_client *http = http_client_new(dest->tls_ca_file);
	enum push_status status = oauth_token_request(http, &f->client, form.data, &resp, inner,
		sizeof(inner));
	http_client_free(http);
	OPENSSL_cleanse(form.data, form.len);
	strbuf_free(&form);
	if (status != PUSH_OK) {
		snprintf(err, errsz, "%s", inner);
		return -1;
	}
	int rc = -1;
	const char *granted = resp.scope != NULL ? resp.scope : f->scope;
	if (resp.refresh_token == NULL) {
		snprintf(err, errsz, "the token endpoint gave no refresh token (remove mailpopbox's "
			"access in the account's security settings, then authorize again)");
		goto out;
	}
	if (dest->type == DESTINATION_GMAIL && !oauth_scope_list_has(granted, GMAIL_SCOPE_INSERT)) {
		snprintf(err, errsz, "the account did not grant %s (granted: %s)", GMAIL_SCOPE_INSERT,
			granted);
		goto out;
	}
	uid_t owner = (uid_t)-1;
	gid_t group = (gid_t)-1;
	if (geteuid() == 0 && cfg->user != NULL &&
	    privileges_resolve(cfg, &owner, &group, inner, sizeof(inner)) != 0) {
		snprintf(err, errsz, "%s", inner);
		goto out;
	}
	if (oauth_token_file_store(dest->oauth_token_file, resp.refresh_token, granted, owner,
		    group, inner, sizeof(inner)) != 0) {
		snprintf(err, errsz, "%s", inner);
		goto out;
	}
	printf("Stored the refresh token in %s (scopes: %s).\n", dest->oauth_token_file, granted);
	if (dest->type == DESTINATION_GMAIL && !oauth_scope_list_has(granted, GMAIL_SCOPE_READ))
		printf("Without %s a message in flight during a crash may be imported twice "
		       "(docs/clients.md); --read-scope asks for it.\n", GMAIL_SCOPE_READ);
	rc = 0;
out:
	oauth_token_response_free(&resp);
	return rc;
}

/* Serves the loopback redirect until a valid one came and was used, an error came back, or
 * the wait is over. Returns the exit status. */
static int wait_for_redirect(const struct config *cfg, struct flow *f, int listener)
{
	struct timespec deadline;
	char buf[AUTHORIZE_REQUEST_MAX + 1];

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += AUTHORIZE_WAIT_SECONDS;
	for (;;) {
		long left = seconds_left(&deadline);
		if (left <= 0) {
			fprintf(stderr, "mailpopbox: no answer from the browser within %d seconds\n",
				AUTHORIZE_WAIT_SECONDS);
			return 1;
		}
		struct pollfd pfd = {.fd = listener, .events = POLLIN};
		int ready = poll(&pfd, 1, (int)(left > 60 ? 60 : left) * 1000);
		if (ready <= 0)
			continue;
		int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		char *line = read_request_line(fd, buf, sizeof(buf));
		struct authorize_redirect r;
		int kind = line != NULL ? authorize_parse_request_line(line, &r) : -1;
		if (kind <= 0) {
			answer(fd, kind == 0 ? 404 : 400, kind == 0 ? "Not Found" : "Bad Request",
				"Not the authorization answer.");
			close(fd);
			continue;
		}
		/* RFC 6749 10.12: the state ties the answer to this run (CSRF). */
		if (r.state == NULL || strlen(r.state) != f->state.len ||
		    CRYPTO_memcmp(r.state, f->state.data, f->state.len) != 0) {
			answer(fd, 400, "Bad Request", "This answer is not for this run of mailpopbox "
				"authorize (state mismatch); it is still waiting.");
			close(fd);
			authorize_redirect_free(&r);
			fprintf(stderr, "mailpopbox: ignored a redirect with a wrong state\n");
			continue;
		}
		int status = 1;
		char err[600];
		if (r.error != NULL) {
			answer(fd, 200, "OK", "The authorization was not given. See the terminal.");
			char quoted[300];
			fprintf(stderr, "mailpopbox: the authorization server answered %s%s%s\n",
				log_quote(quoted, 150, r.error, strlen(r.error)),
				r.error_description != NULL ? " " : "",
				r.error_description != NULL ?
					log_quote(quoted + 150, 150, r.error_description,
						strlen(r.error_description)) : "");
		} else if (r.code == NULL || r.code[0] == '\0') {
			answer(fd, 400, "Bad Request", "No authorization code came back.");
			fprintf(stderr, "mailpopbox: the redirect carried no code\n");
		} else if (exchange_and_store(cfg, f, r.code, err, sizeof(err)) != 0) {
			answer(fd, 200, "OK", "mailpopbox could not complete the authorization. "
				"See the terminal.");
			fprintf(stderr, "mailpopbox: %s\n", err);
		} else {
			answer(fd, 200, "OK", "mailpopbox is authorized. You can close this page.");
			status = 0;
		}
		close(fd);
		authorize_redirect_free(&r);
		return status;
	}
}

static int open_listener(int port, int *bound_port)
{
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	socklen_t len = sizeof(addr);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, 8) != 0 ||
	    getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	*bound_port = ntohs(addr.sin_port);
	return fd;
}

static const struct server_config *find_server(const struct config *cfg, const char *domain)
{
	for (size_t i = 0; i < cfg->server_count; i++)
		if (strcasecmp(cfg->servers[i].domain, domain) == 0)
			return &cfg->servers[i];
	return NULL;
}

static char *authorization_url(const struct flow *f)
{
	struct strbuf url, challenge;
	strbuf_init(&url);
	strbuf_init(&challenge);
	authorize_pkce_challenge(&challenge, f->verifier.data);
	strbuf_append_str(&url, f->client.auth_uri);
	strbuf_append_str(&url, strchr(f->client.auth_uri, '?') != NULL ? "&" : "?");
	http_append_param(&url, "response_type", "code");
	http_append_param(&url, "client_id", f->client.client_id);
	http_append_param(&url, "redirect_uri", f->redirect_uri);
	http_append_param(&url, "scope", f->scope);
	http_append_param(&url, "state", f->state.data);
	http_append_param(&url, "code_challenge", challenge.data);
	http_append_param(&url, "code_challenge_method", "S256");
	/* Google gives a refresh token only for access_type=offline, and again only with
	 * prompt=consent; Microsoft's is asked by the offline_access scope. */
	if (strncasecmp(f->client.auth_uri, MICROSOFT_HOST, strlen(MICROSOFT_HOST)) != 0)
		http_append_param(&url, "access_type", "offline");
	http_append_param(&url, "prompt", "consent");
	strbuf_free(&challenge);
	return url.data;
}

int authorize_command(int argc, char **argv)
{
	bool read_scope = false;
	const char *scope = NULL;
	int port = 0;

	if (argc < 2) {
		usage();
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--read-scope") == 0) {
			read_scope = true;
		} else if (strcmp(argv[i], "--scope") == 0 && i + 1 < argc) {
			scope = argv[++i];
		} else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
			char *end;
			long value = strtol(argv[++i], &end, 10);
			if (*end != '\0' || value < 1 || value > 65535) {
				fprintf(stderr, "mailpopbox: --port wants 1 to 65535\n");
				return 2;
			}
			port = (int)value;
		} else {
			usage();
			return 2;
		}
	}

	struct config cfg;
	char err[600];
	log_set_level(LOG_LEVEL_ERROR); /* unknown-key warnings are for the server's log */
	if (config_load(argv[0], &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "mailpopbox: %s\n", err);
		return 1;
	}
	int status = 1;
	int listener = -1;
	struct flow f = {0};
	strbuf_init(&f.verifier);
	strbuf_init(&f.state);
	f.server = find_server(&cfg, argv[1]);
	const struct destination_config *dest = f.server != NULL ? f.server->destination : NULL;
	if (f.server == NULL) {
		fprintf(stderr, "mailpopbox: %s has no Servers entry for %s\n", argv[0], argv[1]);
		goto out;
	}
	if (dest == NULL || dest->oauth_client_file == NULL || dest->oauth_token_file == NULL) {
		fprintf(stderr, "mailpopbox: the Destination of %s has no OAuthClientFile and "
			"OAuthTokenFile\n", f.server->domain);
		goto out;
	}
	if (oauth_client_load(dest->oauth_client_file, &f.client, err, sizeof(err)) != 0) {
		fprintf(stderr, "mailpopbox: %s\n", err);
		goto out;
	}
	f.scope = scope != NULL ? scope : authorize_default_scope(dest->type, f.client.token_uri,
		read_scope);
	if (f.scope == NULL) {
		fprintf(stderr, "mailpopbox: no default scope for the token endpoint %s: give the "
			"provider's IMAP scope with --scope\n", f.client.token_uri);
		goto out;
	}
	int bound_port;
	listener = open_listener(port, &bound_port);
	if (listener < 0) {
		fprintf(stderr, "mailpopbox: cannot listen on 127.0.0.1:%d: %s\n", port,
			strerror(errno));
		goto out;
	}
	/* RFC 8252 7.3: the loopback IP literal, any port. */
	f.redirect_uri = fs_path_printf("http://127.0.0.1:%d", bound_port);
	authorize_random_string(&f.verifier, 32); /* RFC 7636 4.1: 43 characters */
	authorize_random_string(&f.state, 16);
	char *url = authorization_url(&f);
	printf("Open this address in a browser, signed in as the mailbox owner:\n\n%s\n\n"
	       "The browser comes back to %s; from another machine, first run\n"
	       "  ssh -L %d:127.0.0.1:%d THIS-SERVER\n"
	       "(and give --port %d to keep the port). Waiting up to %d minutes...\n",
		url, f.redirect_uri, bound_port, bound_port, bound_port,
		AUTHORIZE_WAIT_SECONDS / 60);
	fflush(stdout);
	free(url);
	status = wait_for_redirect(&cfg, &f, listener);
out:
	if (listener >= 0)
		close(listener);
	if (f.verifier.data != NULL)
		OPENSSL_cleanse(f.verifier.data, f.verifier.len);
	strbuf_free(&f.verifier);
	strbuf_free(&f.state);
	free(f.redirect_uri);
	oauth_client_free(&f.client);
	config_free(&cfg);
	return status;
}
