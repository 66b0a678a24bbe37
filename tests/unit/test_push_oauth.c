/* test_push_oauth.c: the pure parts of OAuth 2.0 for push delivery: client JSON as Google and
 * Entra give it, the token file, token endpoint answers (src/push/oauth.c), PKCE and the
 * loopback redirect's request line (src/push/authorize.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bounds.h"
#include "push/authorize.h"
#include "push/gmail.h"
#include "push/oauth.h"
#include "strbuf.h"

static int parse_client(const char *json, struct oauth_client *c, char *err, size_t errsz)
{
	return oauth_client_parse(json, strlen(json), c, err, errsz);
}

/* The file Google Cloud's console downloads for a "Desktop app" client. */
static void test_google_installed_client_file_is_read(void **state)
{
	struct oauth_client c;
	char err[300];
	const char *json = "{\"installed\":{\"client_id\":\"123-abc.apps.googleusercontent.com\","
		"\"project_id\":\"p\",\"auth_uri\":\"https://accounts.google.com/o/oauth2/auth\","
		"\"token_uri\":\"https://oauth2.googleapis.com/token\","
		"\"auth_provider_x509_cert_url\":\"https://www.googleapis.com/oauth2/v1/certs\","
		"\"client_secret\":\"GOCSPX-secret\",\"redirect_uris\":[\"http://localhost\"]}}";

	(void)state;
	assert_int_equal(parse_client(json, &c, err, sizeof(err)), 0);
	assert_string_equal(c.client_id, "123-abc.apps.googleusercontent.com");
	assert_string_equal(c.client_secret, "GOCSPX-secret");
	assert_string_equal(c.auth_uri, "https://accounts.google.com/o/oauth2/auth");
	assert_string_equal(c.token_uri, "https://oauth2.googleapis.com/token");
	oauth_client_free(&c);
}

static void test_google_web_client_file_is_read(void **state)
{
	struct oauth_client c;
	char err[300];
	const char *json = "{\"web\":{\"client_id\":\"w\",\"client_secret\":\"s\","
		"\"auth_uri\":\"https://a.example/auth\",\"token_uri\":\"https://a.example/token\"}}";

	(void)state;
	assert_int_equal(parse_client(json, &c, err, sizeof(err)), 0);
	assert_string_equal(c.client_id, "w");
	oauth_client_free(&c);
}

static void test_flat_client_file_needs_no_secret(void **state)
{
	struct oauth_client c;
	char err[300];
	const char *json = "{\"client_id\":\"f\",\"client_secret\":\"\","
		"\"auth_uri\":\"https://login.microsoftonline.com/common/oauth2/v2.0/authorize\","
		"\"token_uri\":\"https://login.microsoftonline.com/common/oauth2/v2.0/token\"}";

	(void)state;
	assert_int_equal(parse_client(json, &c, err, sizeof(err)), 0);
	assert_string_equal(c.client_id, "f");
	assert_null(c.client_secret);
	oauth_client_free(&c);
}

/* An Entra app manifest names its audience; the v2.0 endpoints follow from it. */
static void test_entra_manifest_gets_the_audience_endpoints(void **state)
{
	struct oauth_client c;
	char err[300];
	const char *json = "{\"id\":\"x\",\"appId\":\"00000000-1111-2222-3333-444444444444\","
		"\"signInAudience\":\"PersonalMicrosoftAccount\",\"name\":\"mailpopbox\"}";

	(void)state;
	assert_int_equal(parse_client(json, &c, err, sizeof(err)), 0);
	assert_string_equal(c.client_id, "00000000-1111-2222-3333-444444444444");
	assert_string_equal(c.token_uri,
		"https://login.microsoftonline.com/consumers/oauth2/v2.0/token");
	assert_string_equal(c.auth_uri,
		"https://login.microsoftonline.com/consumers/oauth2/v2.0/authorize");
	oauth_client_free(&c);

	/* A single-tenant manifest has no tenant-independent endpoint. */
	json = "{\"appId\":\"a\",\"signInAudience\":\"AzureADMyOrg\"}";
	assert_int_equal(parse_client(json, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "token_uri"));
}

static void test_garbled_client_files_are_refused_with_a_reason(void **state)
{
	static const char *const cases[][2] = {
		{"{\"installed\": ", "not JSON"},
		{"[1]", "not a JSON object"},
		{"{\"installed\":{\"client_secret\":\"s\"}}", "client_id"},
		{"{\"client_id\":\"c\",\"auth_uri\":\"https://a/\"}", "token_uri"},
		{"{\"client_id\":\"c\",\"token_uri\":\"https://a/\"}", "auth_uri"},
		{"{\"client_id\":\"c\",\"auth_uri\":\"http://a/\",\"token_uri\":\"https://a/\"}",
			"https://"},
		{"{\"client_id\":\"a\",\"client_id\":\"b\"}", "not JSON"}, /* duplicate key */
	};
	struct oauth_client c;
	char err[300];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse_client(cases[i][0], &c, err, sizeof(err)), -1);
		if (strstr(err, cases[i][1]) == NULL)
			fail_msg("case %zu: \"%s\" not in \"%s\"", i, cases[i][1], err);
	}
}

static void test_token_file_holds_refresh_token_and_scope(void **state)
{
	struct oauth_token_file t;
	char err[300];
	const char *json = "{\"refresh_token\":\"1//r\",\"scope\":\"a b\"}";

	(void)state;
	assert_int_equal(oauth_token_file_parse(json, strlen(json), &t, err, sizeof(err)), 0);
	assert_string_equal(t.refresh_token, "1//r");
	assert_string_equal(t.scope, "a b");
	oauth_token_file_free(&t);
	json = "{\"scope\":\"a\"}";
	assert_int_equal(oauth_token_file_parse(json, strlen(json), &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "refresh_token"));
}

static void test_scope_lists_match_whole_words(void **state)
{
	(void)state;
	assert_true(oauth_scope_list_has(GMAIL_SCOPE_INSERT " " GMAIL_SCOPE_READ, GMAIL_SCOPE_READ));
	assert_true(oauth_scope_list_has("  x   y ", "y"));
	assert_false(oauth_scope_list_has(GMAIL_SCOPE_INSERT, GMAIL_SCOPE_READ));
	assert_false(oauth_scope_list_has("https://mail.google.com/x", "https://mail.google.com/"));
	assert_false(oauth_scope_list_has("", "a"));
}

static enum push_status token_answer(long status, const char *body,
	struct oauth_token_response *r, char *err, size_t errsz)
{
	return oauth_token_response_parse(status, body, strlen(body), r, err, errsz);
}

static void test_token_endpoint_answers_become_verdicts(void **state)
{
	struct oauth_token_response r;
	char err[300];

	(void)state;
	assert_int_equal(token_answer(200, "{\"access_token\":\"ya29.x\",\"expires_in\":3599,"
		"\"scope\":\"s\",\"token_type\":\"Bearer\"}", &r, err, sizeof(err)), PUSH_OK);
	assert_string_equal(r.access_token, "ya29.x");
	assert_int_equal(r.expires_in, 3599);
	assert_null(r.refresh_token);
	assert_string_equal(r.scope, "s");
	oauth_token_response_free(&r);

	/* Microsoft rotates the refresh token; expires_in may be absent (RFC 6749 5.1). */
	assert_int_equal(token_answer(200, "{\"access_token\":\"a\",\"refresh_token\":\"new\"}",
		&r, err, sizeof(err)), PUSH_OK);
	assert_string_equal(r.refresh_token, "new");
	assert_int_equal(r.expires_in, 3600);
	oauth_token_response_free(&r);

	assert_int_equal(token_answer(400, "{\"error\":\"invalid_grant\",\"error_description\":"
		"\"Token has been expired or revoked.\"}", &r, err, sizeof(err)), PUSH_AUTH);
	assert_non_null(strstr(err, "invalid_grant: Token has been expired or revoked."));
	assert_int_equal(token_answer(401, "{\"error\":\"invalid_client\"}", &r, err, sizeof(err)),
		PUSH_AUTH);
	assert_int_equal(token_answer(500, "oops", &r, err, sizeof(err)), PUSH_TEMPORARY);
	assert_int_equal(token_answer(503, "{\"error\":\"x\"}", &r, err, sizeof(err)), PUSH_TEMPORARY);
	assert_int_equal(token_answer(429, "", &r, err, sizeof(err)), PUSH_TEMPORARY);
	assert_int_equal(token_answer(200, "{\"token_type\":\"Bearer\"}", &r, err, sizeof(err)),
		PUSH_TEMPORARY);
	assert_int_equal(token_answer(200, "not json", &r, err, sizeof(err)), PUSH_TEMPORARY);
}

/* RFC 7636 Appendix B: the verifier and challenge of the example. */
static void test_pkce_challenge_is_rfc_7636_appendix_b(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	authorize_pkce_challenge(&sb, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
	assert_string_equal(sb.data, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
	strbuf_free(&sb);

	/* The verifier from 32 random octets: 43 unreserved characters (RFC 7636 4.1). */
	static const unsigned char octets[] = {116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96,
		125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132,
		141, 121};
	strbuf_init(&sb);
	authorize_base64url(&sb, octets, sizeof(octets));
	assert_string_equal(sb.data, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
	strbuf_free(&sb);

	strbuf_init(&sb);
	authorize_random_string(&sb, 32);
	assert_int_equal(sb.len, 43);
	assert_int_equal(strspn(sb.data, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		"0123456789-_"), 43);
	strbuf_free(&sb);
}

static void test_default_scopes_follow_type_and_provider(void **state)
{
	(void)state;
	assert_string_equal(authorize_default_scope(DESTINATION_GMAIL, NULL, false),
		GMAIL_SCOPE_INSERT);
	assert_string_equal(authorize_default_scope(DESTINATION_GMAIL, NULL, true),
		GMAIL_SCOPE_INSERT " " GMAIL_SCOPE_READ);
	assert_string_equal(authorize_default_scope(DESTINATION_IMAP,
		"https://oauth2.googleapis.com/token", false), "https://mail.google.com/");
	assert_string_equal(authorize_default_scope(DESTINATION_IMAP,
		"https://login.microsoftonline.com/common/oauth2/v2.0/token", false),
		"https://outlook.office.com/IMAP.AccessAsUser.All offline_access");
	assert_null(authorize_default_scope(DESTINATION_IMAP, "https://idp.example/token", false));
}

static void test_redirect_request_line_is_parsed(void **state)
{
	struct authorize_redirect r;

	(void)state;
	assert_int_equal(authorize_parse_request_line(
		"GET /?state=s%2Bt&code=4%2F0A-b&scope=a+b HTTP/1.1", &r), 1);
	assert_string_equal(r.code, "4/0A-b");
	assert_string_equal(r.state, "s+t");
	assert_null(r.error);
	authorize_redirect_free(&r);

	assert_int_equal(authorize_parse_request_line(
		"GET /?error=access_denied&state=x HTTP/1.1", &r), 1);
	assert_string_equal(r.error, "access_denied");
	assert_null(r.code);
	authorize_redirect_free(&r);

	/* The first of a repeated parameter is kept. */
	assert_int_equal(authorize_parse_request_line("GET /?code=a&code=b HTTP/1.0", &r), 1);
	assert_string_equal(r.code, "a");
	authorize_redirect_free(&r);

	assert_int_equal(authorize_parse_request_line("GET /favicon.ico HTTP/1.1", &r), 0);
	assert_int_equal(authorize_parse_request_line("POST / HTTP/1.1", &r), -1);
	assert_int_equal(authorize_parse_request_line("GET /", &r), -1);
	/* A truncated escape and an encoded NUL stay harmless. */
	assert_int_equal(authorize_parse_request_line("GET /?code=%2&state=%00a HTTP/1.1", &r), 1);
	assert_string_equal(r.code, "%2");
	assert_string_equal(r.state, "a");
	authorize_redirect_free(&r);
}

/* expires_in as some providers send it (a string), nonsense (zero, negative) and beyond
 * belief (the refresh time must not overflow); an access token past its bound; statuses
 * that are neither a refusal nor 200. */
static void test_token_endpoint_lifetimes_and_odd_answers(void **state)
{
	struct oauth_token_response r;
	char err[300];
	struct strbuf big;

	(void)state;
	assert_int_equal(token_answer(200, "{\"access_token\":\"a\",\"expires_in\":\"5399\"}",
		&r, err, sizeof(err)), PUSH_OK);
	assert_int_equal(r.expires_in, 5399);
	oauth_token_response_free(&r);
	const char *nonsense[] = {"0", "-5", "\"-5\"", "\"soon\"", "1.5", "null"};
	for (size_t i = 0; i < sizeof(nonsense) / sizeof(nonsense[0]); i++) {
		char body[100];
		snprintf(body, sizeof(body), "{\"access_token\":\"a\",\"expires_in\":%s}",
			nonsense[i]);
		assert_int_equal(token_answer(200, body, &r, err, sizeof(err)), PUSH_OK);
		assert_int_equal(r.expires_in, 3600);
		oauth_token_response_free(&r);
	}
	const char *huge[] = {"86401", "9223372036854775807", "\"99999999999999999999999\""};
	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		char body[100];
		snprintf(body, sizeof(body), "{\"access_token\":\"a\",\"expires_in\":%s}",
			huge[i]);
		assert_int_equal(token_answer(200, body, &r, err, sizeof(err)), PUSH_OK);
		assert_int_equal(r.expires_in, OAUTH_EXPIRES_IN_MAX);
		oauth_token_response_free(&r);
	}

	strbuf_init(&big);
	strbuf_appendf(&big, "{\"access_token\":\"");
	for (size_t i = 0; i <= OAUTH_ACCESS_TOKEN_MAX; i++)
		strbuf_append(&big, "x", 1);
	strbuf_appendf(&big, "\"}");
	assert_int_equal(token_answer(200, big.data, &r, err, sizeof(err)), PUSH_TEMPORARY);
	assert_null(r.access_token);
	strbuf_free(&big);
	assert_int_equal(token_answer(200, "{\"access_token\":\"\"}", &r, err, sizeof(err)),
		PUSH_TEMPORARY);
	assert_int_equal(token_answer(200, "[\"access_token\"]", &r, err, sizeof(err)),
		PUSH_TEMPORARY);
	assert_int_equal(token_answer(200, "{\"access_token\":\"a\",\"error\":\"e\"}", &r, err,
		sizeof(err)), PUSH_TEMPORARY);
	assert_int_equal(token_answer(408, "", &r, err, sizeof(err)), PUSH_TEMPORARY);
	assert_int_equal(token_answer(302, "{\"error\":\"moved\"}", &r, err, sizeof(err)),
		PUSH_TEMPORARY);
	assert_non_null(strstr(err, "HTTP 302 (moved)"));
	assert_int_equal(token_answer(403, "{}", &r, err, sizeof(err)), PUSH_AUTH);
	assert_non_null(strstr(err, "no error code"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_google_installed_client_file_is_read),
		cmocka_unit_test(test_google_web_client_file_is_read),
		cmocka_unit_test(test_flat_client_file_needs_no_secret),
		cmocka_unit_test(test_entra_manifest_gets_the_audience_endpoints),
		cmocka_unit_test(test_garbled_client_files_are_refused_with_a_reason),
		cmocka_unit_test(test_token_file_holds_refresh_token_and_scope),
		cmocka_unit_test(test_scope_lists_match_whole_words),
		cmocka_unit_test(test_token_endpoint_answers_become_verdicts),
		cmocka_unit_test(test_pkce_challenge_is_rfc_7636_appendix_b),
		cmocka_unit_test(test_default_scopes_follow_type_and_provider),
		cmocka_unit_test(test_redirect_request_line_is_parsed),
		cmocka_unit_test(test_token_endpoint_lifetimes_and_odd_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
