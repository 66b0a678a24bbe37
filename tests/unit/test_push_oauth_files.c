/* test_push_oauth_files.c: the OAuth files of push delivery on a real file system under /tmp
 * (src/push/oauth.c): the client file refused with its path and reason when it is missing, a
 * directory, too large or garbled; the token file written 0600 and read back, and not written
 * where it cannot be; a session before and after `authorize` has written the token file (no
 * network: the token endpoint is a closed loopback port, so a refresh fails temporarily). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "push/oauth.h"
#include "remove_tree.h"

#define CLIENT_JSON "{\"installed\": {\"client_id\": \"id.apps.example\", " \
	"\"client_secret\": \"s\", \"auth_uri\": \"https://127.0.0.1:1/auth\", " \
	"\"token_uri\": \"https://127.0.0.1:1/token\"}}"

struct fixture {
	char root[64];
	char client[128];
	char token[128];
};

static void write_text(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test_push_oauth_files.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->client, sizeof(f->client), "%s/client.json", f->root);
	snprintf(f->token, sizeof(f->token), "%s/token.json", f->root);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	remove_tree(f->root);
	free(f);
	return 0;
}

static void test_client_file_problems_name_the_file(void **state)
{
	struct fixture *f = *state;
	struct oauth_client c = {0};
	char err[600];

	assert_int_equal(oauth_client_load(f->client, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, f->client));
	assert_non_null(strstr(err, strerror(ENOENT)));

	assert_int_equal(oauth_client_load(f->root, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, strerror(EISDIR)));

	char *big = malloc(OAUTH_FILE_MAX + 1);
	assert_non_null(big);
	memset(big, ' ', OAUTH_FILE_MAX + 1);
	write_text(f->client, big, OAUTH_FILE_MAX + 1);
	free(big);
	assert_int_equal(oauth_client_load(f->client, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, strerror(EFBIG)));

	write_text(f->client, "{\"installed\": ", 14);
	assert_int_equal(oauth_client_load(f->client, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, f->client));
	assert_non_null(strstr(err, "is not JSON"));
	assert_null(c.client_id);

	write_text(f->client, "", 0);
	assert_int_equal(oauth_client_load(f->client, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "is not JSON"));

	write_text(f->client, CLIENT_JSON, strlen(CLIENT_JSON));
	assert_int_equal(oauth_client_load(f->client, &c, err, sizeof(err)), 0);
	assert_string_equal(c.client_id, "id.apps.example");
	assert_string_equal(c.token_uri, "https://127.0.0.1:1/token");
	oauth_client_free(&c);
}

static void test_token_file_is_stored_private_and_read_back(void **state)
{
	struct fixture *f = *state;
	struct oauth_token_file t = {0};
	struct stat st;
	char err[600], missing[192], text[512];

	assert_int_equal(oauth_token_file_store(f->token, "1//refresh", "a b", (uid_t)-1,
		(gid_t)-1, err, sizeof(err)), 0);
	assert_int_equal(stat(f->token, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	int fd = open(f->token, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	assert_true(n > 0);
	assert_int_equal(oauth_token_file_parse(text, (size_t)n, &t, err, sizeof(err)), 0);
	assert_string_equal(t.refresh_token, "1//refresh");
	assert_string_equal(t.scope, "a b");
	oauth_token_file_free(&t);

	/* Replaced whole (a new grant); with the owner given explicitly as the current one. */
	assert_int_equal(oauth_token_file_store(f->token, "1//other", NULL, getuid(), getgid(),
		err, sizeof(err)), 0);
	fd = open(f->token, O_RDONLY | O_CLOEXEC);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	assert_int_equal(oauth_token_file_parse(text, (size_t)n, &t, err, sizeof(err)), 0);
	assert_string_equal(t.refresh_token, "1//other");
	assert_string_equal(t.scope, "");
	oauth_token_file_free(&t);

	snprintf(missing, sizeof(missing), "%s/no/such/dir/token.json", f->root);
	assert_int_equal(oauth_token_file_store(missing, "1//x", "s", (uid_t)-1, (gid_t)-1, err,
		sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot create"));
	assert_null(strstr(err, "1//x"));
}

static void test_session_before_and_after_authorize(void **state)
{
	struct fixture *f = *state;
	char err[600], token[OAUTH_ACCESS_TOKEN_MAX + 1];

	/* No client file: no session. */
	assert_null(oauth_session_new(f->client, f->token, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot read the OAuth client file"));
	write_text(f->client, CLIENT_JSON, strlen(CLIENT_JSON));

	/* No token file yet: the session is made, the first token asks for `authorize`. */
	struct oauth_session *s = oauth_session_new(f->client, f->token, NULL, err, sizeof(err));
	assert_non_null(s);
	assert_false(oauth_has_scope(s, "a"));
	assert_int_equal(oauth_access_token(s, token, sizeof(token), err, sizeof(err)), PUSH_AUTH);
	assert_non_null(strstr(err, "run mailpopbox authorize"));

	/* `authorize` wrote it meanwhile: read without a restart; the refresh cannot reach the
	 * (closed) token endpoint, a temporary failure; the refresh token never in err. */
	assert_int_equal(oauth_token_file_store(f->token, "1//secret-refresh", "a b", (uid_t)-1,
		(gid_t)-1, err, sizeof(err)), 0);
	assert_int_equal(oauth_access_token(s, token, sizeof(token), err, sizeof(err)),
		PUSH_TEMPORARY);
	assert_null(strstr(err, "1//secret-refresh"));
	assert_true(oauth_has_scope(s, "b"));
	assert_false(oauth_has_scope(s, "a b"));

	/* Garbled since: an operator matter. */
	write_text(f->token, "{\"scope\": \"a b c\"}", 18);
	assert_int_equal(oauth_access_token(s, token, sizeof(token), err, sizeof(err)), PUSH_AUTH);
	assert_non_null(strstr(err, "no refresh_token"));
	oauth_forget_access_token(s);
	oauth_session_free(s);

	/* A token file that is there but cannot be read stops the session at once. */
	assert_int_equal(unlink(f->token), 0);
	assert_int_equal(mkdir(f->token, 0700), 0);
	assert_null(oauth_session_new(f->client, f->token, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot read the OAuth token file"));
	write_text(f->client, "{}", 2);
	assert_null(oauth_session_new(f->client, f->token, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "has no client_id"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_client_file_problems_name_the_file, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_token_file_is_stored_private_and_read_back,
			setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_before_and_after_authorize, setup,
			teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
