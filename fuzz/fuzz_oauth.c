/* fuzz_oauth.c: the OAuth parsers of push delivery (src/push/oauth.c) on arbitrary bytes. The
 * first octet picks the parser: the client file, the token file, a token endpoint's answer
 * (the next octet picks the HTTP status; the lifetime stays within its bound), or a scope list (list NUL scope). Each reads only
 * the octets given (ASan sees an exact copy), fills its output completely on success and not
 * at all on failure, always leaves a terminated error text, and the scope test agrees with a
 * plain word-by-word comparison. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "push/oauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* err is filled by snprintf: terminated within its size. */
static void check_err(const char *err, size_t errsz)
{
	check(strnlen(err, errsz) < errsz);
}

static void client(const char *json, size_t len)
{
	struct oauth_client c = {(char *)1, (char *)1, (char *)1, (char *)1};
	char err[200];

	if (oauth_client_parse(json, len, &c, err, sizeof(err)) != 0) {
		check_err(err, sizeof(err));
		check(c.client_id == (char *)1 && c.client_secret == (char *)1 &&
		      c.auth_uri == (char *)1 && c.token_uri == (char *)1);
		return;
	}
	check(c.client_id != NULL && c.auth_uri != NULL && c.token_uri != NULL);
	check(strncmp(c.auth_uri, "https://", 8) == 0 && strncmp(c.token_uri, "https://", 8) == 0);
	check(c.client_secret == NULL || c.client_secret[0] != '\0');
	oauth_client_free(&c);
}

static void token_file(const char *json, size_t len)
{
	struct oauth_token_file t = {(char *)1, (char *)1};
	char err[200];

	if (oauth_token_file_parse(json, len, &t, err, sizeof(err)) != 0) {
		check_err(err, sizeof(err));
		check(t.refresh_token == (char *)1 && t.scope == (char *)1);
		return;
	}
	check(t.refresh_token != NULL && t.refresh_token[0] != '\0' && t.scope != NULL);
	oauth_token_file_free(&t);
}

static void token_response(long status, const char *json, size_t len)
{
	struct oauth_token_response r;
	char err[200] = "";
	enum push_status verdict = oauth_token_response_parse(status, json, len, &r, err,
		sizeof(err));

	check_err(err, sizeof(err));
	switch (verdict) {
	case PUSH_OK:
		check(status == 200 && r.access_token != NULL && r.access_token[0] != '\0' &&
		      strlen(r.access_token) <= OAUTH_ACCESS_TOKEN_MAX && r.expires_in > 0 &&
		      r.expires_in <= OAUTH_EXPIRES_IN_MAX);
		break;
	case PUSH_TEMPORARY:
		check(r.access_token == NULL && r.refresh_token == NULL && r.scope == NULL);
		break;
	case PUSH_AUTH:
		check(r.access_token == NULL && status >= 400 && status < 500 && status != 429);
		break;
	default:
		abort();
	}
	oauth_token_response_free(&r);
}

/* The reference: the list's space-separated words, one by one. */
static bool scope_reference(const char *list, const char *scope)
{
	size_t n = strlen(scope);

	if (n == 0)
		return false;
	for (const char *p = list; *p != '\0';) {
		if (*p == ' ') {
			p++;
			continue;
		}
		const char *end = strchr(p, ' ');
		size_t word = end != NULL ? (size_t)(end - p) : strlen(p);
		if (word == n && strncmp(p, scope, n) == 0)
			return true;
		p += word;
	}
	return false;
}

static void scopes(const char *in, size_t len)
{
	char *buf = malloc(len + 2);

	if (buf == NULL)
		return;
	memcpy(buf, in, len);
	buf[len] = '\0';
	buf[len + 1] = '\0';
	const char *list = buf;
	const char *scope = buf + strlen(buf) + 1; /* after the first NUL; "" when none */
	if (scope > buf + len)
		scope = buf + len + 1;
	check(oauth_scope_list_has(list, scope) == scope_reference(list, scope));
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = {200, 400, 401, 403, 408, 429, 500, 503, 302, 0, 599, 418};

	if (size < 2)
		return 0;
	uint8_t which = data[0] % 4;
	long status = statuses[data[1] % (sizeof(statuses) / sizeof(statuses[0]))];
	size_t len = size - 2;
	char *in = malloc(len ? len : 1);
	if (in == NULL)
		return 0;
	memcpy(in, data + 2, len);
	switch (which) {
	case 0:
		client(in, len);
		break;
	case 1:
		token_file(in, len);
		break;
	case 2:
		token_response(status, in, len);
		break;
	default:
		scopes(in, len);
		break;
	}
	free(in);
	return 0;
}
