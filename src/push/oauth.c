/* push/oauth.c: the OAuth 2.0 client of push delivery (see oauth.h): client JSON and token
 * file parsing, the token file's durable writes, and access tokens refreshed at the token_uri
 * (RFC 6749 6) and kept in memory only. */
#include "push/oauth.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "bounds.h"
#include "fsutil.h"
#include "log.h"
#include "push/http.h"
#include "strbuf.h"

struct oauth_session {
	struct oauth_client client;
	char *token_file;
	struct oauth_token_file token;  /* refresh_token NULL until the file is read */
	struct stat token_stat;         /* of the file last read, to see it change */
	bool token_read;
	struct http_client *http;
	char access_token[OAUTH_ACCESS_TOKEN_MAX + 1]; /* "" when none */
	struct timespec refresh_at;     /* CLOCK_MONOTONIC: time to get a new one */
};

static char *dup_string_member(json_t *obj, const char *key)
{
	const char *v = json_string_value(json_object_get(obj, key));
	return v != NULL ? xstrdup(v) : NULL;
}

static json_t *parse_json(const char *json, size_t len, const char *what, char *err, size_t errsz)
{
	json_error_t jerr;
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);

	if (root == NULL) {
		/* Not jansson's text: it quotes the octets "near" the error, which in these
		 * files are a client secret's or a refresh token's, and err is logged. */
		snprintf(err, errsz, "%s is not JSON: syntax error at line %d column %d", what,
			jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		snprintf(err, errsz, "%s is not a JSON object", what);
		json_decref(root);
		return NULL;
	}
	return root;
}

/* Entra app manifests name their audience, not their endpoints: the Microsoft identity
 * platform's v2.0 endpoints for the audiences that have a tenant-independent one. */
static const struct {
	const char *audience;
	const char *tenant;
} entra_audiences[] = {
	{"AzureADandPersonalMicrosoftAccount", "common"},
	{"PersonalMicrosoftAccount", "consumers"},
	{"AzureADMultipleOrgs", "organizations"},
};

int oauth_client_parse(const char *json, size_t len, struct oauth_client *out, char *err,
	size_t errsz)
{
	json_t *root = parse_json(json, len, "the OAuth client file", err, errsz);
	if (root == NULL)
		return -1;

	json_t *obj = json_object_get(root, "installed");
	if (!json_is_object(obj))
		obj = json_object_get(root, "web");
	if (!json_is_object(obj))
		obj = root;

	struct oauth_client c = {0};
	c.client_id = dup_string_member(obj, "client_id");
	if (c.client_id == NULL)
		c.client_id = dup_string_member(obj, "appId");
	c.client_secret = dup_string_member(obj, "client_secret");
	c.auth_uri = dup_string_member(obj, "auth_uri");
	c.token_uri = dup_string_member(obj, "token_uri");
	const char *audience = json_string_value(json_object_get(obj, "signInAudience"));
	if (audience != NULL && c.auth_uri == NULL && c.token_uri == NULL) {
		for (size_t i = 0; i < sizeof(entra_audiences) / sizeof(entra_audiences[0]); i++) {
			if (strcmp(audience, entra_audiences[i].audience) != 0)
				continue;
			c.auth_uri = fs_path_printf(
				"https://login.microsoftonline.com/%s/oauth2/v2.0/authorize",
				entra_audiences[i].tenant);
			c.token_uri = fs_path_printf(
				"https://login.microsoftonline.com/%s/oauth2/v2.0/token",
				entra_audiences[i].tenant);
		}
	}
	json_decref(root);

	const char *missing = c.client_id == NULL ? "client_id" :
			      c.token_uri == NULL ? "token_uri" :
			      c.auth_uri == NULL ? "auth_uri" : NULL;
	if (missing == NULL && (strncmp(c.token_uri, "https://", 8) != 0 ||
				strncmp(c.auth_uri, "https://", 8) != 0)) {
		snprintf(err, errsz, "the OAuth client file's auth_uri and token_uri must be https://");
		oauth_client_free(&c);
		return -1;
	}
	if (missing != NULL) {
		snprintf(err, errsz, "the OAuth client file has no %s (expected Google's "
			"{\"installed\": {...}} or {\"web\": {...}}, or client_id, auth_uri and "
			"token_uri)", missing);
		oauth_client_free(&c);
		return -1;
	}
	if (c.client_secret != NULL && c.client_secret[0] == '\0') {
		free(c.client_secret);
		c.client_secret = NULL;
	}
	*out = c;
	return 0;
}

void oauth_client_free(struct oauth_client *c)
{
	free(c->client_id);
	if (c->client_secret != NULL)
		OPENSSL_cleanse(c->client_secret, strlen(c->client_secret));
	free(c->client_secret);
	free(c->auth_uri);
	free(c->token_uri);
	memset(c, 0, sizeof(*c));
}

/* The whole of a small file into out (NUL-terminated). Returns 0, or -1 with errno (EFBIG:
 * over OAUTH_FILE_MAX); st (may be NULL) gets its fstat. */
static int read_small_file(const char *path, struct strbuf *out, struct stat *st)
{
	struct stat local;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (st == NULL)
		st = &local;
	if (fstat(fd, st) != 0 || st->st_size > OAUTH_FILE_MAX) {
		int saved = st->st_size > OAUTH_FILE_MAX ? EFBIG : errno;
		close(fd);
		errno = saved;
		return -1;
	}
	char buf[4096];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		if (out->len + (size_t)n > OAUTH_FILE_MAX) {
			close(fd);
			errno = EFBIG;
			return -1;
		}
		strbuf_append(out, buf, (size_t)n);
	}
	close(fd);
	if (out->data == NULL)
		strbuf_append(out, "", 0);
	return 0;
}

static void cleanse_strbuf(struct strbuf *sb)
{
	if (sb->data != NULL)
		OPENSSL_cleanse(sb->data, sb->cap);
	strbuf_free(sb);
}

int oauth_client_load(const char *path, struct oauth_client *out, char *err, size_t errsz)
{
	struct strbuf sb;
	strbuf_init(&sb);
	if (read_small_file(path, &sb, NULL) != 0) {
		snprintf(err, errsz, "cannot read the OAuth client file %s: %s", path,
			strerror(errno));
		strbuf_free(&sb);
		return -1;
	}
	char inner[400];
	int rc = oauth_client_parse(sb.data, sb.len, out, inner, sizeof(inner));
	if (rc != 0)
		snprintf(err, errsz, "%s: %s", path, inner);
	cleanse_strbuf(&sb);
	return rc;
}

int oauth_token_file_parse(const char *json, size_t len, struct oauth_token_file *out,
	char *err, size_t errsz)
{
	json_t *root = parse_json(json, len, "the OAuth token file", err, errsz);
	if (root == NULL)
		return -1;
	const char *refresh = json_string_value(json_object_get(root, "refresh_token"));
	const char *scope = json_string_value(json_object_get(root, "scope"));
	if (refresh == NULL || refresh[0] == '\0') {
		snprintf(err, errsz, "the OAuth token file has no refresh_token");
		json_decref(root);
		return -1;
	}
	out->refresh_token = xstrdup(refresh);
	out->scope = xstrdup(scope != NULL ? scope : "");
	json_decref(root);
	return 0;
}

void oauth_token_file_free(struct oauth_token_file *t)
{
	if (t->refresh_token != NULL)
		OPENSSL_cleanse(t->refresh_token, strlen(t->refresh_token));
	free(t->refresh_token);
	free(t->scope);
	t->refresh_token = NULL;
	t->scope = NULL;
}

int oauth_token_file_store(const char *path, const char *refresh_token, const char *scope,
	uid_t owner, gid_t group, char *err, size_t errsz)
{
	json_t *root = json_pack("{s:s, s:s}", "refresh_token", refresh_token, "scope",
		scope != NULL ? scope : "");
	if (root == NULL)
		fatal("json_pack failed");
	char *text = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	if (text == NULL)
		fatal("json_dumps failed");
	size_t len = strlen(text);

	/* A staging file of this process, next to the final name so the rename is atomic; one
	 * left by a crashed run of the same pid is stale. */
	char *tmp = fs_path_printf("%s.%ld.tmp", path, fs_process_id());
	(void)unlink(tmp);
	struct fs_durable_file f;
	int rc = -1;
	bool renamed = false;
	if (fs_durable_create(&f, tmp) != 0) {
		snprintf(err, errsz, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (owner != (uid_t)-1 && fchown(f.fd, owner, group) != 0) {
		snprintf(err, errsz, "cannot give %s to uid %ld: %s", tmp, (long)owner,
			strerror(errno));
		fs_durable_free(&f, "oauth");
		goto out;
	}
	if (fs_durable_sync_content(&f, text, len, 0) != 0 ||
	    fs_durable_publish(&f, path, &renamed) != 0) {
		snprintf(err, errsz, "cannot write %s: %s", path, strerror(errno));
		fs_durable_free(&f, "oauth");
		goto out;
	}
	fs_durable_free(&f, "oauth");
	rc = 0;
out:
	OPENSSL_cleanse(text, len);
	free(text);
	free(tmp);
	return rc;
}

bool oauth_scope_list_has(const char *list, const char *scope)
{
	size_t n = strlen(scope);
	const char *p = list;

	if (list == NULL || n == 0)
		return false;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		size_t word = strcspn(p, " ");
		if (word == n && memcmp(p, scope, n) == 0)
			return true;
		p += word;
	}
	return false;
}

/* RFC 6749 5.2's error codes that only the operator can mend (a new authorization, a fixed
 * client file); anything else a token endpoint says with 4xx is treated the same way. */
enum push_status oauth_token_response_parse(long http_status, const char *body, size_t len,
	struct oauth_token_response *out, char *err, size_t errsz)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, 0, &jerr);
	const char *error = json_string_value(json_object_get(root, "error"));
	const char *description = json_string_value(json_object_get(root, "error_description"));
	enum push_status status;

	memset(out, 0, sizeof(*out));
	if (http_status == 200 && json_is_object(root) && error == NULL) {
		const char *access = json_string_value(json_object_get(root, "access_token"));
		json_t *expires = json_object_get(root, "expires_in");
		if (access == NULL || access[0] == '\0' || strlen(access) > OAUTH_ACCESS_TOKEN_MAX) {
			snprintf(err, errsz, "the token endpoint answered 200 without a usable "
				"access_token");
			json_decref(root);
			return PUSH_TEMPORARY;
		}
		out->access_token = xstrdup(access);
		out->expires_in = 3600; /* RFC 6749 5.1: RECOMMENDED, so may be absent */
		if (json_is_integer(expires) && json_integer_value(expires) > 0)
			out->expires_in = (long)json_integer_value(expires);
		else if (json_is_string(expires)) /* some providers send a string */
			out->expires_in = strtol(json_string_value(expires), NULL, 10);
		if (out->expires_in <= 0)
			out->expires_in = 3600;
		if (out->expires_in > OAUTH_EXPIRES_IN_MAX)
			out->expires_in = OAUTH_EXPIRES_IN_MAX;
		out->refresh_token = dup_string_member(root, "refresh_token");
		out->scope = dup_string_member(root, "scope");
		json_decref(root);
		return PUSH_OK;
	}
	char what[160];
	if (error != NULL)
		snprintf(what, sizeof(what), "%s%s%s", error, description != NULL ? ": " : "",
			description != NULL ? description : "");
	else
		snprintf(what, sizeof(what), "no error code in the answer");
	if (http_status == 429 || http_status >= 500 || http_status < 400 || http_status == 408) {
		status = PUSH_TEMPORARY;
		snprintf(err, errsz, "the token endpoint answered HTTP %ld (%s)", http_status, what);
	} else {
		status = PUSH_AUTH;
		snprintf(err, errsz, "the token endpoint refused (HTTP %ld, %s)", http_status, what);
	}
	json_decref(root);
	return status;
}

void oauth_token_response_free(struct oauth_token_response *r)
{
	if (r->access_token != NULL)
		OPENSSL_cleanse(r->access_token, strlen(r->access_token));
	if (r->refresh_token != NULL)
		OPENSSL_cleanse(r->refresh_token, strlen(r->refresh_token));
	free(r->access_token);
	free(r->refresh_token);
	free(r->scope);
	memset(r, 0, sizeof(*r));
}

enum push_status oauth_token_request(struct http_client *http, const struct oauth_client *client,
	const char *form, struct oauth_token_response *out, char *err, size_t errsz)
{
	struct strbuf body;
	struct http_response resp;
	char neterr[256];

	strbuf_init(&body);
	strbuf_append_str(&body, form);
	http_append_param(&body, "client_id", client->client_id);
	/* RFC 6749 2.3.1: client_secret_post, which Google and Microsoft both take. */
	if (client->client_secret != NULL)
		http_append_param(&body, "client_secret", client->client_secret);
	struct http_request req = {
		.method = "POST",
		.url = client->token_uri,
		.content_type = "application/x-www-form-urlencoded",
		.body = body.data,
		.body_len = body.len,
	};
	int rc = http_client_run(http, &req, &resp, neterr, sizeof(neterr));
	cleanse_strbuf(&body);
	if (rc != 0) {
		snprintf(err, errsz, "token endpoint: %s", neterr);
		return PUSH_TEMPORARY;
	}
	enum push_status status = oauth_token_response_parse(resp.status, resp.body.data,
		resp.body.len, out, err, errsz);
	cleanse_strbuf(&resp.body);
	http_response_free(&resp);
	return status;
}

/* Reads the token file when it is new or changed since the last read. */
static enum push_status session_read_token(struct oauth_session *s, char *err, size_t errsz)
{
	struct stat st;
	if (stat(s->token_file, &st) != 0) {
		snprintf(err, errsz, "no OAuth token file %s (%s): run mailpopbox authorize",
			s->token_file, strerror(errno));
		return PUSH_AUTH;
	}
	if (s->token_read && st.st_ino == s->token_stat.st_ino &&
	    st.st_dev == s->token_stat.st_dev && st.st_size == s->token_stat.st_size &&
	    st.st_mtim.tv_sec == s->token_stat.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == s->token_stat.st_mtim.tv_nsec)
		return PUSH_OK;

	struct strbuf sb;
	struct oauth_token_file token = {0};
	char inner[300];
	strbuf_init(&sb);
	if (read_small_file(s->token_file, &sb, &st) != 0) {
		snprintf(err, errsz, "cannot read the OAuth token file %s: %s", s->token_file,
			strerror(errno));
		strbuf_free(&sb);
		return PUSH_AUTH;
	}
	int rc = oauth_token_file_parse(sb.data, sb.len, &token, inner, sizeof(inner));
	cleanse_strbuf(&sb);
	if (rc != 0) {
		snprintf(err, errsz, "%s: %s: run mailpopbox authorize", s->token_file, inner);
		return PUSH_AUTH;
	}
	oauth_token_file_free(&s->token);
	s->token = token;
	s->token_stat = st;
	s->token_read = true;
	/* Another refresh token: the access token came from the old grant. */
	oauth_forget_access_token(s);
	return PUSH_OK;
}

struct oauth_session *oauth_session_new(const char *client_file, const char *token_file,
	const char *ca_file, char *err, size_t errsz)
{
	struct oauth_session *s = xcalloc(1, sizeof(*s));
	if (oauth_client_load(client_file, &s->client, err, errsz) != 0) {
		free(s);
		return NULL;
	}
	s->token_file = xstrdup(token_file);
	char inner[400];
	if (access(token_file, F_OK) == 0 &&
	    session_read_token(s, inner, sizeof(inner)) != PUSH_OK) {
		snprintf(err, errsz, "%s", inner);
		oauth_session_free(s);
		return NULL;
	}
	s->http = http_client_new(ca_file);
	return s;
}

void oauth_session_free(struct oauth_session *s)
{
	if (s == NULL)
		return;
	oauth_client_free(&s->client);
	oauth_token_file_free(&s->token);
	OPENSSL_cleanse(s->access_token, sizeof(s->access_token));
	http_client_free(s->http);
	free(s->token_file);
	free(s);
}

void oauth_forget_access_token(struct oauth_session *s)
{
	OPENSSL_cleanse(s->access_token, sizeof(s->access_token));
	s->access_token[0] = '\0';
}

bool oauth_has_scope(const struct oauth_session *s, const char *scope)
{
	return s->token.scope != NULL && oauth_scope_list_has(s->token.scope, scope);
}

static bool access_token_fresh(const struct oauth_session *s)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return s->access_token[0] != '\0' && now.tv_sec < s->refresh_at.tv_sec;
}

enum push_status oauth_access_token(struct oauth_session *s, char *token, size_t tokensz,
	char *err, size_t errsz)
{
	enum push_status status = session_read_token(s, err, errsz);
	if (status != PUSH_OK)
		return status;
	if (!access_token_fresh(s)) {
		struct strbuf form;
		struct oauth_token_response resp;
		strbuf_init(&form);
		http_append_param(&form, "grant_type", "refresh_token");
		http_append_param(&form, "refresh_token", s->token.refresh_token);
		status = oauth_token_request(s->http, &s->client, form.data, &resp, err, errsz);
		cleanse_strbuf(&form);
		if (status != PUSH_OK)
			return status;
		oauth_forget_access_token(s);
		snprintf(s->access_token, sizeof(s->access_token), "%s", resp.access_token);
		clock_gettime(CLOCK_MONOTONIC, &s->refresh_at);
		long margin = resp.expires_in > 2 * OAUTH_REFRESH_MARGIN_SECONDS ?
				      OAUTH_REFRESH_MARGIN_SECONDS : resp.expires_in / 2;
		s->refresh_at.tv_sec += resp.expires_in - margin;
		/* Microsoft rotates refresh tokens: keep the newest, or the next start fails. */
		if (resp.refresh_token != NULL &&
		    strcmp(resp.refresh_token, s->token.refresh_token) != 0) {
			char werr[300], quoted[340];
			if (oauth_token_file_store(s->token_file, resp.refresh_token, s->token.scope,
				    (uid_t)-1, (gid_t)-1, werr, sizeof(werr)) != 0) {
				log_warn("push", "event=token_file_not_updated error=%s",
					log_quote(quoted, sizeof(quoted), werr, strlen(werr)));
			} else {
				free(s->token.refresh_token);
				s->token.refresh_token = xstrdup(resp.refresh_token);
				stat(s->token_file, &s->token_stat);
			}
		}
		oauth_token_response_free(&resp);
	}
	if (strlen(s->access_token) >= tokensz) {
		snprintf(err, errsz, "access token longer than the buffer");
		return PUSH_TEMPORARY;
	}
	memcpy(token, s->access_token, strlen(s->access_token) + 1);
	return PUSH_OK;
}
