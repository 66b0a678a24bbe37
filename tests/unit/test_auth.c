/* test_auth.c: mailbox passwords, plain and crypt(3)-hashed (src/auth.c, src/password.c), the
 * MailboxPasswordHash config key, login-name lookup, and SASL PLAIN / base64 decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <crypt.h>
#include <pthread.h>

#include "auth.h"
#include "config.h"
#include "password.h"

/* ---- helpers ---- */

/* A hash made the way an operator's tools would, independent of password_hash_make(). */
static void make_hash(const char *prefix, unsigned long count, const char *password,
	char out[CRYPT_OUTPUT_SIZE])
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *data = calloc(1, sizeof(*data));

	assert_non_null(data);
	assert_non_null(crypt_gensalt_rn(prefix, count, NULL, 0, setting, (int)sizeof(setting)));
	const char *hash = crypt_rn(password, setting, data, sizeof(*data));
	assert_non_null(hash);
	assert_true(strlen(hash) < CRYPT_OUTPUT_SIZE);
	strcpy(out, hash);
	free(data);
}

static bool check(const struct server_config *server, const char *password)
{
	return auth_check_password(server, password, strlen(password));
}

/* A one-Server config with extra members spliced into the Server. */
static char *server_json(const char *members)
{
	static char json[2048];

	snprintf(json, sizeof(json),
		"{\"Hostname\": \"mx.example.org\", \"Servers\": [{\"Domain\": \"example.org\", "
		"\"MaildropPath\": \"/var/mail/x\", %s}]}", members);
	return json;
}

static char *hash_json(const char *hash)
{
	static char members[CRYPT_OUTPUT_SIZE + 64];

	snprintf(members, sizeof(members), "\"MailboxPasswordHash\": \"%s\"", hash);
	return server_json(members);
}

static void assert_load_error(const char *json, const char *want)
{
	struct config cfg;
	char err[512] = "";

	if (config_load_string(json, &cfg, err, sizeof(err)) == 0) {
		config_free(&cfg);
		fail_msg("loaded, but wanted the error \"%s\"", want);
	}
	assert_string_equal(err, want);
}

/* ---- plain MailboxPassword ---- */

static const struct server_config plain_server = {
	.domain = "example.org",
	.mailbox_password = "secret",
};

static void test_plain_password_right_is_accepted(void **state)
{
	(void)state;
	assert_true(check(&plain_server, "secret"));
}

static void test_plain_password_wrong_is_refused(void **state)
{
	(void)state;
	assert_false(check(&plain_server, "Secret"));
	assert_false(check(&plain_server, "public"));
	assert_false(check(&plain_server, ""));
}

static void test_plain_password_prefix_is_refused(void **state)
{
	(void)state;
	assert_false(check(&plain_server, "secre"));
	assert_false(auth_check_password(&plain_server, "secret", 5));
}

static void test_plain_password_longer_is_refused(void **state)
{
	(void)state;
	assert_false(check(&plain_server, "secret1"));
	assert_false(auth_check_password(&plain_server, "secret\0", 7));
}

static void test_server_without_any_password_refuses_everything(void **state)
{
	const struct server_config none = {.domain = "example.org"};

	(void)state;
	assert_false(check(&none, ""));
	assert_false(check(&none, "secret"));
}

/* ---- MailboxPasswordHash ---- */

static void assert_hash_checks(const char *prefix, unsigned long count)
{
	char hash[CRYPT_OUTPUT_SIZE];

	make_hash(prefix, count, "correct horse", hash);
	assert_null(password_hash_problem(hash));
	const struct server_config server = {.domain = "example.org", .mailbox_password_hash = hash};
	assert_true(check(&server, "correct horse"));
	assert_false(check(&server, "correct horsE"));
	assert_false(check(&server, "correct hors"));
	assert_false(check(&server, "correct horse "));
	assert_false(check(&server, ""));
	/* The hash itself is not the password. */
	assert_false(check(&server, hash));
}

static void test_yescrypt_hash_right_accepted_wrong_refused(void **state)
{
	(void)state;
	assert_hash_checks("$y$", 0);
}

static void test_sha512_crypt_hash_right_accepted_wrong_refused(void **state)
{
	(void)state;
	assert_hash_checks("$6$", 0);
	assert_hash_checks("$6$", 6000); /* with "rounds=6000$" */
}

static void test_bcrypt_hash_right_accepted_wrong_refused(void **state)
{
	(void)state;
	assert_hash_checks("$2b$", 5);
	assert_hash_checks("$2y$", 5);
}

static void test_hash_with_nul_in_password_fails(void **state)
{
	char hash[CRYPT_OUTPUT_SIZE];

	(void)state;
	make_hash("$6$", 0, "secret", hash);
	const struct server_config server = {.domain = "example.org", .mailbox_password_hash = hash};
	assert_true(check(&server, "secret"));
	/* crypt(3) would stop at the NUL and see "secret". */
	assert_false(auth_check_password(&server, "secret\0", 7));
	assert_false(auth_check_password(&server, "secret\0anything", 15));
	assert_false(auth_check_password(&server, "\0secret", 7));
}

static void test_bcrypt_ignores_bytes_after_72(void **state)
{
	char hash[CRYPT_OUTPUT_SIZE], password[81];

	(void)state;
	memset(password, 'a', 80);
	password[80] = '\0';
	make_hash("$2b$", 4, password, hash);
	const struct server_config server = {.domain = "example.org", .mailbox_password_hash = hash};
	/* Why hash-password warns about long bcrypt passwords. */
	password[75] = 'b';
	assert_true(check(&server, password));
	password[PASSWORD_BCRYPT_INPUT_MAX - 1] = 'b';
	assert_false(check(&server, password));
}

static void test_password_hash_make_makes_hashes_that_verify(void **state)
{
	static const char *const prefixes[] = {"$y$", "$6$", "$2b$"};
	char hash[CRYPT_OUTPUT_SIZE];

	(void)state;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		assert_int_equal(password_hash_make(prefixes[i], 0, "pw", hash, sizeof(hash)), 0);
		assert_memory_equal(hash, prefixes[i], strlen(prefixes[i]));
		assert_null(password_hash_problem(hash));
		assert_true(password_hash_verify(hash, "pw", 2));
		assert_false(password_hash_verify(hash, "pW", 2));
	}
	assert_int_equal(password_hash_make("$unknown$", 0, "pw", hash, sizeof(hash)), -1);
	assert_int_equal(password_hash_make("$6$", 0, "pw", hash, 10), -1); /* no room */
}

/* Each hash gets a fresh salt, so equal passwords do not give equal hashes. */
static void test_password_hash_make_uses_a_new_salt_each_time(void **state)
{
	char first[CRYPT_OUTPUT_SIZE], second[CRYPT_OUTPUT_SIZE];

	(void)state;
	assert_int_equal(password_hash_make("$6$", 0, "pw", first, sizeof(first)), 0);
	assert_int_equal(password_hash_make("$6$", 0, "pw", second, sizeof(second)), 0);
	assert_string_not_equal(first, second);
}

struct verify_job {
	const char *hash;
	int mismatches;
};

static void *verify_many(void *arg)
{
	struct verify_job *job = arg;

	for (int i = 0; i < 6; i++) {
		bool right = auth_check_password(&(struct server_config){.mailbox_password_hash =
			(char *)job->hash}, "pw", 2);
		bool wrong = auth_check_password(&(struct server_config){.mailbox_password_hash =
			(char *)job->hash}, "px", 2);
		if (!right || wrong)
			job->mismatches++;
	}
	return NULL;
}

/* SMTP and POP3 verify on worker threads: results must not bleed between concurrent calls. */
static void test_hash_verification_is_thread_safe(void **state)
{
	static const char *const prefixes[] = {"$y$", "$6$", "$2b$", "$6$"};
	char hashes[4][CRYPT_OUTPUT_SIZE];
	struct verify_job jobs[4];
	pthread_t threads[4];

	(void)state;
	for (int i = 0; i < 4; i++) {
		make_hash(prefixes[i], prefixes[i][1] == '2' ? 4 : 0, "pw", hashes[i]);
		jobs[i] = (struct verify_job){.hash = hashes[i]};
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, verify_many, &jobs[i]), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(threads[i], NULL), 0);
		assert_int_equal(jobs[i].mismatches, 0);
	}
}

/* ---- the config key ---- */

static void test_config_with_only_a_hash_loads_and_checks(void **state)
{
	char hash[CRYPT_OUTPUT_SIZE], err[512] = "";
	struct config cfg;

	(void)state;
	make_hash("$y$", 0, "secret", hash);
	if (config_load_string(hash_json(hash), &cfg, err, sizeof(err)) != 0)
		fail_msg("unexpected error: %s", err);
	assert_null(cfg.servers[0].mailbox_password);
	assert_string_equal(cfg.servers[0].mailbox_password_hash, hash);
	assert_true(check(&cfg.servers[0], "secret"));
	assert_false(check(&cfg.servers[0], "Secret"));
	config_free(&cfg);
}

static void test_config_with_neither_password_nor_hash_is_rejected(void **state)
{
	(void)state;
	assert_load_error(server_json("\"BlockedAddresses\": []"),
		"Servers[0].MailboxPassword: missing (or set MailboxPasswordHash)");
	/* "" counts as absent for the hash, as for the TLS paths. */
	assert_load_error(server_json("\"MailboxPasswordHash\": \"\""),
		"Servers[0].MailboxPassword: missing (or set MailboxPasswordHash)");
}

static void test_config_with_both_password_and_hash_is_rejected(void **state)
{
	char hash[CRYPT_OUTPUT_SIZE], members[CRYPT_OUTPUT_SIZE + 128];

	(void)state;
	make_hash("$6$", 0, "secret", hash);
	snprintf(members, sizeof(members),
		"\"MailboxPassword\": \"secret\", \"MailboxPasswordHash\": \"%s\"", hash);
	assert_load_error(server_json(members),
		"Servers[0].MailboxPasswordHash: MailboxPassword is set too; give one of them");
}

static void test_config_empty_plain_password_is_still_rejected(void **state)
{
	(void)state;
	assert_load_error(server_json("\"MailboxPassword\": \"\""),
		"Servers[0].MailboxPassword: must not be empty");
}

static void test_malformed_hash_is_rejected_by_config_load(void **state)
{
	static const char unsupported[] = "Servers[0].MailboxPasswordHash: must be a yescrypt ($y$), "
		"SHA-512-crypt ($6$) or bcrypt ($2b$, $2y$) hash, as printed by mailpopbox hash-password";
	char hash[CRYPT_OUTPUT_SIZE], broken[CRYPT_OUTPUT_SIZE + 16];
	size_t len;

	(void)state;
	/* Not a hash at all, or a scheme we do not take (MD5-crypt, DES, old bcrypt). */
	assert_load_error(hash_json("secret"), unsupported);
	assert_load_error(hash_json("$1$abcdefgh$0123456789012345678901"), unsupported);
	assert_load_error(hash_json("abJnggxhB/yWI"), unsupported);
	assert_load_error(hash_json("$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui"),
		unsupported);

	/* A setting without its hash, a truncated or lengthened hash, a stray character. */
	make_hash("$6$", 0, "secret", hash);
	len = strlen(hash);
	assert_load_error(hash_json("$6$"), "Servers[0].MailboxPasswordHash: must be a complete "
		"SHA-512-crypt hash: $6$[rounds=N$]SALT$ and 86 hash characters");
	snprintf(broken, sizeof(broken), "%.*s", (int)(len - 1), hash);
	assert_load_error(hash_json(broken), "Servers[0].MailboxPasswordHash: must be a complete "
		"SHA-512-crypt hash: $6$[rounds=N$]SALT$ and 86 hash characters");
	snprintf(broken, sizeof(broken), "%sA", hash);
	assert_load_error(hash_json(broken), "Servers[0].MailboxPasswordHash: must be a complete "
		"SHA-512-crypt hash: $6$[rounds=N$]SALT$ and 86 hash characters");
	snprintf(broken, sizeof(broken), "%s", hash);
	broken[len - 5] = '*';
	assert_load_error(hash_json(broken), "Servers[0].MailboxPasswordHash: must be a complete "
		"SHA-512-crypt hash: $6$[rounds=N$]SALT$ and 86 hash characters");
	snprintf(broken, sizeof(broken), "$6$rounds=10$%s", hash + 3);
	assert_load_error(hash_json(broken), "Servers[0].MailboxPasswordHash: must be a complete "
		"SHA-512-crypt hash: $6$[rounds=N$]SALT$ and 86 hash characters");

	make_hash("$y$", 0, "secret", hash);
	hash[strlen(hash) - 1] = '\0';
	assert_load_error(hash_json(hash), "Servers[0].MailboxPasswordHash: must be a complete "
		"yescrypt hash: $y$PARAMS$SALT$ and 43 hash characters");
	assert_load_error(hash_json("$y$j9T$"), "Servers[0].MailboxPasswordHash: must be a "
		"complete yescrypt hash: $y$PARAMS$SALT$ and 43 hash characters");

	make_hash("$2b$", 4, "secret", hash);
	hash[4] = '9'; /* cost 94 */
	assert_load_error(hash_json(hash), "Servers[0].MailboxPasswordHash: must be a complete "
		"bcrypt hash: $2b$COST$ and 53 salt and hash characters");
	make_hash("$2b$", 4, "secret", hash);
	hash[strlen(hash) - 1] = '\0';
	assert_load_error(hash_json(hash), "Servers[0].MailboxPasswordHash: must be a complete "
		"bcrypt hash: $2b$COST$ and 53 salt and hash characters");
}

static void test_malformed_hash_never_verifies(void **state)
{
	const struct server_config server = {.domain = "example.org",
		.mailbox_password_hash = "$6$"};

	(void)state;
	assert_false(check(&server, ""));
	assert_false(check(&server, "secret"));
}

/* ---- login names ---- */

static struct config two_domains;

static int load_two_domains(void **state)
{
	char err[256] = "";

	(void)state;
	return config_load_string("{\"Hostname\": \"mx.example.org\", \"Servers\": ["
		"{\"Domain\": \"example.org\", \"MailboxPassword\": \"a\", \"MaildropPath\": \"/a\"},"
		"{\"Domain\": \"Example.NET\", \"MailboxPassword\": \"b\", \"MaildropPath\": \"/b\"}]}",
		&two_domains, err, sizeof(err));
}

static int free_two_domains(void **state)
{
	(void)state;
	config_free(&two_domains);
	return 0;
}

static const struct server_config *find(const char *user)
{
	return auth_find_mailbox(&two_domains, user, strlen(user));
}

static void test_find_mailbox_names_the_server_of_its_domain(void **state)
{
	(void)state;
	assert_ptr_equal(find("mailbox@example.org"), &two_domains.servers[0]);
	assert_ptr_equal(find("mailbox@example.net"), &two_domains.servers[1]);
}

static void test_find_mailbox_is_case_insensitive(void **state)
{
	(void)state;
	assert_ptr_equal(find("MAILBOX@EXAMPLE.ORG"), &two_domains.servers[0]);
	assert_ptr_equal(find("Mailbox@Example.Net"), &two_domains.servers[1]);
}

static void test_find_mailbox_refuses_other_users_and_domains(void **state)
{
	(void)state;
	assert_null(find("user@example.org"));
	assert_null(find("mailbox@example.com"));
	assert_null(find("mailbox@sub.example.org"));
	assert_null(find("mailbox@"));
	assert_null(find("mailbox"));
	assert_null(find("mailboxexample.org"));
	assert_null(find(""));
	assert_null(find("xmailbox@example.org"));
}

static void test_find_mailbox_reads_only_len_bytes(void **state)
{
	static const char user[] = "mailbox@example.orgX";

	(void)state;
	assert_ptr_equal(auth_find_mailbox(&two_domains, user, strlen(user) - 1),
		&two_domains.servers[0]);
	assert_null(auth_find_mailbox(&two_domains, user, strlen(user) - 2));
	assert_null(auth_find_mailbox(&two_domains, user, 8));
}

/* ---- SASL PLAIN (RFC 4616) ---- */

struct plain {
	int status;
	const char *authzid, *authcid, *password;
	size_t authzid_len, authcid_len, password_len;
};

static struct plain parse(const char *msg, size_t len)
{
	struct plain p = {0};

	p.status = auth_parse_plain(msg, len, &p.authzid, &p.authzid_len, &p.authcid,
		&p.authcid_len, &p.password, &p.password_len);
	return p;
}

#define PARSE(literal) parse(literal, sizeof(literal) - 1)

static void test_plain_without_authzid_splits_three_fields(void **state)
{
	struct plain p = PARSE("\0mailbox@example.org\0secret");

	(void)state;
	assert_int_equal(p.status, 0);
	assert_int_equal(p.authzid_len, 0);
	assert_int_equal(p.authcid_len, 19);
	assert_memory_equal(p.authcid, "mailbox@example.org", 19);
	assert_int_equal(p.password_len, 6);
	assert_memory_equal(p.password, "secret", 6);
}

static void test_plain_with_authzid_splits_three_fields(void **state)
{
	struct plain p = PARSE("admin\0user\0pass word");

	(void)state;
	assert_int_equal(p.status, 0);
	assert_int_equal(p.authzid_len, 5);
	assert_memory_equal(p.authzid, "admin", 5);
	assert_int_equal(p.authcid_len, 4);
	assert_memory_equal(p.authcid, "user", 4);
	assert_int_equal(p.password_len, 9);
	assert_memory_equal(p.password, "pass word", 9);
}

static void test_plain_malformed_messages_are_refused(void **state)
{
	(void)state;
	assert_int_equal(PARSE("").status, -1);
	assert_int_equal(PARSE("userpass").status, -1);
	assert_int_equal(PARSE("\0userpass").status, -1);   /* one separator */
	assert_int_equal(PARSE("\0\0pass").status, -1);     /* empty authcid */
	assert_int_equal(PARSE("\0user\0").status, -1);     /* empty password */
	assert_int_equal(PARSE("\0user\0pa\0ss").status, -1); /* four fields */
	assert_int_equal(PARSE("\0\0").status, -1);
}

/* ---- base64 (RFC 4648) ---- */

static long decode(const char *in, unsigned char *out, size_t outsz)
{
	return auth_base64_decode(in, strlen(in), out, outsz);
}

/* The decoding itself is mail/base64.c's (test_base64.c); SASL adds the lone "=". */
static void test_base64_decodes_through_the_one_base64(void **state)
{
	unsigned char out[32];

	(void)state;
	assert_int_equal(decode("AG1haWxib3hAZXhhbXBsZS5vcmcAc2VjcmV0", out, sizeof(out)), 27);
	assert_memory_equal(out, "\0mailbox@example.org\0secret", 27);
	assert_int_equal(decode("Zm9v", out, 2), -1);
}

static void test_base64_lone_equals_is_the_empty_string(void **state)
{
	unsigned char out[4];

	(void)state;
	/* RFC 4954 4: "=" is an empty initial response. */
	assert_int_equal(decode("=", out, sizeof(out)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_password_right_is_accepted),
		cmocka_unit_test(test_plain_password_wrong_is_refused),
		cmocka_unit_test(test_plain_password_prefix_is_refused),
		cmocka_unit_test(test_plain_password_longer_is_refused),
		cmocka_unit_test(test_server_without_any_password_refuses_everything),
		cmocka_unit_test(test_yescrypt_hash_right_accepted_wrong_refused),
		cmocka_unit_test(test_sha512_crypt_hash_right_accepted_wrong_refused),
		cmocka_unit_test(test_bcrypt_hash_right_accepted_wrong_refused),
		cmocka_unit_test(test_hash_with_nul_in_password_fails),
		cmocka_unit_test(test_bcrypt_ignores_bytes_after_72),
		cmocka_unit_test(test_password_hash_make_makes_hashes_that_verify),
		cmocka_unit_test(test_password_hash_make_uses_a_new_salt_each_time),
		cmocka_unit_test(test_hash_verification_is_thread_safe),
		cmocka_unit_test(test_config_with_only_a_hash_loads_and_checks),
		cmocka_unit_test(test_config_with_neither_password_nor_hash_is_rejected),
		cmocka_unit_test(test_config_with_both_password_and_hash_is_rejected),
		cmocka_unit_test(test_config_empty_plain_password_is_still_rejected),
		cmocka_unit_test(test_malformed_hash_is_rejected_by_config_load),
		cmocka_unit_test(test_malformed_hash_never_verifies),
		cmocka_unit_test_setup_teardown(test_find_mailbox_names_the_server_of_its_domain,
			load_two_domains, free_two_domains),
		cmocka_unit_test_setup_teardown(test_find_mailbox_is_case_insensitive,
			load_two_domains, free_two_domains),
		cmocka_unit_test_setup_teardown(test_find_mailbox_refuses_other_users_and_domains,
			load_two_domains, free_two_domains),
		cmocka_unit_test_setup_teardown(test_find_mailbox_reads_only_len_bytes,
			load_two_domains, free_two_domains),
		cmocka_unit_test(test_plain_without_authzid_splits_three_fields),
		cmocka_unit_test(test_plain_with_authzid_splits_three_fields),
		cmocka_unit_test(test_plain_malformed_messages_are_refused),
		cmocka_unit_test(test_base64_decodes_through_the_one_base64),
		cmocka_unit_test(test_base64_lone_equals_is_the_empty_string),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
