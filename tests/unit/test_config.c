/* test_config.c: config loading: the original's file, defaults, every error naming its key,
 * unknown keys, TLS pairs, and the domain/blocked-address lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "bounds.h"

/* The example from the original mailpopbox's README, byte for byte in spirit. */
static const char original_example[] =
	"{\n"
	"  \"SMTPPort\": 25, \"POP3Port\": 995, \"Hostname\": \"mx.example.org\",\n"
	"  \"Servers\": [{\n"
	"    \"Domain\": \"example.org\", \"MailboxPassword\": \"secret\",\n"
	"    \"TLSKeyPath\": \"/etc/ssl/key.pem\", \"TLSCertPath\": \"/etc/ssl/cert.pem\",\n"
	"    \"MaildropPath\": \"/var/mail/example.org\",\n"
	"    \"BlockedAddresses\": [\"spammed@example.org\"]\n"
	"  }]\n"
	"}\n";

/* A minimal valid config with extra top-level and server members spliced in. */
static char *config_with(const char *top, const char *server)
{
	static char json[4096];

	snprintf(json, sizeof(json),
		"{\"Hostname\": \"mx.example.org\"%s%s, \"Servers\": [{\"Domain\": \"example.org\", "
		"\"MailboxPassword\": \"pw\", \"MaildropPath\": \"/var/mail/x\"%s%s}]}",
		*top ? ", " : "", top, *server ? ", " : "", server);
	return json;
}

static void load_ok(const char *json, struct config *cfg)
{
	char err[256] = "";

	if (config_load_string(json, cfg, err, sizeof(err)) != 0)
		fail_msg("unexpected error: %s", err);
}

static void assert_load_error(const char *json, const char *want)
{
	struct config cfg;
	char err[256] = "";

	memset(&cfg, 0xa5, sizeof(cfg));
	assert_int_equal(config_load_string(json, &cfg, err, sizeof(err)), -1);
	assert_string_equal(err, want);
	/* Failure leaves nothing to free: the struct is zeroed. */
	assert_null(cfg.hostname);
	assert_null(cfg.servers);
	assert_int_equal(cfg.server_count, 0);
}

/* Runs config_load_string with stderr captured, so tests can see the warnings it logs. */
static int load_capturing_log(const char *json, struct config *cfg, char *log, size_t logsz)
{
	char err[256] = "";
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO);
	int ret;
	size_t n;

	assert_non_null(tmp);
	assert_true(saved >= 0);
	fflush(stderr);
	dup2(fileno(tmp), STDERR_FILENO);
	ret = config_load_string(json, cfg, err, sizeof(err));
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	n = fread(log, 1, logsz - 1, tmp);
	log[n] = '\0';
	fclose(tmp);
	return ret;
}

static void test_original_example_config_loads_with_defaults(void **state)
{
	struct config cfg;
	const struct server_config *s;

	(void)state;
	load_ok(original_example, &cfg);
	assert_int_equal(cfg.smtp_port, 25);
	assert_int_equal(cfg.pop3_port, 995);
	assert_string_equal(cfg.hostname, "mx.example.org");
	assert_int_equal(cfg.server_count, 1);
	s = &cfg.servers[0];
	assert_string_equal(s->domain, "example.org");
	assert_string_equal(s->mailbox_password, "secret");
	assert_string_equal(s->tls_key_path, "/etc/ssl/key.pem");
	assert_string_equal(s->tls_cert_path, "/etc/ssl/cert.pem");
	assert_string_equal(s->maildrop_path, "/var/mail/example.org");
	assert_int_equal(s->blocked_count, 1);
	assert_string_equal(s->blocked_addresses[0], "spammed@example.org");
	assert_null(cfg.listen_address);
	assert_true(cfg.max_message_size == SMTP_DEFAULT_MAX_MESSAGE_SIZE);
	assert_int_equal(cfg.max_recipients, SMTP_DEFAULT_MAX_RECIPIENTS);
	assert_int_equal(cfg.max_connections, SERVER_DEFAULT_MAX_CONNECTIONS);
	assert_int_equal(cfg.max_connections_per_ip, SERVER_DEFAULT_MAX_CONNECTIONS_PER_IP);
	assert_int_equal(cfg.smtp_command_timeout, SMTP_DEFAULT_COMMAND_TIMEOUT_SECONDS);
	assert_int_equal(cfg.smtp_data_timeout, SMTP_DEFAULT_DATA_TIMEOUT_SECONDS);
	assert_int_equal(cfg.pop3_stls_port, 0);
	assert_int_equal(cfg.pop3_idle_timeout, POP3_DEFAULT_IDLE_TIMEOUT_SECONDS);
	assert_true(config_has_tls(&cfg));
	config_free(&cfg);
}

static void test_absent_ports_default_to_25_and_995(void **state)
{
	struct config cfg;

	(void)state;
	load_ok(config_with("", ""), &cfg);
	assert_int_equal(cfg.smtp_port, 25);
	assert_int_equal(cfg.pop3_port, 995);
	assert_false(config_has_tls(&cfg));
	config_free(&cfg);
}

static void test_all_new_keys_are_read(void **state)
{
	struct config cfg;

	(void)state;
	load_ok(config_with("\"ListenAddress\": \"192.0.2.1\", \"MaxMessageSize\": 10000000000, "
		"\"MaxRecipients\": 5, \"MaxConnections\": 50, \"MaxConnectionsPerIP\": 3, "
		"\"SMTPCommandTimeoutSeconds\": 60, \"SMTPDataTimeoutSeconds\": 120, "
		"\"POP3STLSPort\": 110, \"POP3IdleTimeoutSeconds\": 700", ""), &cfg);
	assert_string_equal(cfg.listen_address, "192.0.2.1");
	assert_true(cfg.max_message_size == 10000000000ULL);
	assert_int_equal(cfg.max_recipients, 5);
	assert_int_equal(cfg.max_connections, 50);
	assert_int_equal(cfg.max_connections_per_ip, 3);
	assert_int_equal(cfg.smtp_command_timeout, 60);
	assert_int_equal(cfg.smtp_data_timeout, 120);
	assert_int_equal(cfg.pop3_stls_port, 110);
	assert_int_equal(cfg.pop3_idle_timeout, 700);
	config_free(&cfg);
}

static void test_missing_hostname_names_the_key(void **state)
{
	(void)state;
	assert_load_error("{\"Servers\": [{\"Domain\": \"example.org\", \"MailboxPassword\": \"pw\", "
		"\"MaildropPath\": \"/m\"}]}", "Hostname: missing");
}

static void test_empty_hostname_is_rejected(void **state)
{
	(void)state;
	assert_load_error("{\"Hostname\": \"\", \"Servers\": []}", "Hostname: must not be empty");
}

static void test_hostname_with_spaces_is_rejected(void **state)
{
	(void)state;
	assert_load_error("{\"Hostname\": \"mx example\\r\\n\", \"Servers\": []}",
		"Hostname: must be a host name without spaces or control characters");
}

static void test_hostname_of_wrong_type_names_expected_type(void **state)
{
	(void)state;
	assert_load_error("{\"Hostname\": true}", "Hostname: must be a string");
}

static void test_missing_servers_names_the_key(void **state)
{
	(void)state;
	assert_load_error("{\"Hostname\": \"mx.example.org\"}", "Servers: missing");
}

static void test_empty_servers_is_rejected(void **state)
{
	(void)state;
	assert_load_error("{\"Hostname\": \"mx.example.org\", \"Servers\": []}",
		"Servers: must list at least one server");
}

static void test_servers_of_wrong_type_names_expected_type(void **state)
{
	(void)state;
	assert_load_error("{\"Hostname\": \"h\", \"Servers\": {}}",
		"Servers: must be an array of objects");
	assert_load_error("{\"Hostname\": \"h\", \"Servers\": [\"example.org\"]}",
		"Servers[0]: must be an object");
}

static void test_missing_maildrop_path_names_the_server(void **state)
{
	(void)state;
	assert_load_error("{\"Hostname\": \"h\", \"Servers\": [{\"Domain\": \"example.org\", "
		"\"MailboxPassword\": \"pw\"}]}", "Servers[0].MaildropPath: missing");
}

static void test_missing_domain_names_the_server(void **state)
{
	(void)state;
	assert_load_error("{\"Hostname\": \"h\", \"Servers\": [{\"MailboxPassword\": \"pw\", "
		"\"MaildropPath\": \"/m\"}]}", "Servers[0].Domain: missing");
}

static void test_empty_mailbox_password_is_rejected(void **state)
{
	(void)state;
	assert_load_error("{\"Hostname\": \"h\", \"Servers\": [{\"Domain\": \"example.org\", "
		"\"MailboxPassword\": \"\", \"MaildropPath\": \"/m\"}]}",
		"Servers[0].MailboxPassword: must not be empty");
}

static void test_error_in_second_server_names_its_index(void **state)
{
	(void)state;
	assert_load_error("{\"Hostname\": \"h\", \"Servers\": [{\"Domain\": \"a.org\", "
		"\"MailboxPassword\": \"pw\", \"MaildropPath\": \"/a\"}, {\"Domain\": \"b.org\", "
		"\"MaildropPath\": \"/b\"}]}", "Servers[1].MailboxPassword: missing (or set MailboxPasswordHash)");
}

static void test_port_out_of_range_names_the_key(void **state)
{
	(void)state;
	assert_load_error(config_with("\"SMTPPort\": 0", ""),
		"SMTPPort: must be an integer from 1 to 65535");
	assert_load_error(config_with("\"SMTPPort\": 65536", ""),
		"SMTPPort: must be an integer from 1 to 65535");
	assert_load_error(config_with("\"POP3Port\": -995", ""),
		"POP3Port: must be an integer from 1 to 65535");
	assert_load_error(config_with("\"POP3STLSPort\": 70000", ""),
		"POP3STLSPort: must be an integer from 0 to 65535");
}

static void test_port_must_be_a_json_integer(void **state)
{
	(void)state;
	assert_load_error(config_with("\"SMTPPort\": 25.0", ""),
		"SMTPPort: must be an integer from 1 to 65535");
	assert_load_error(config_with("\"SMTPPort\": \"25\"", ""),
		"SMTPPort: must be an integer from 1 to 65535");
	assert_load_error(config_with("\"SMTPPort\": true", ""),
		"SMTPPort: must be an integer from 1 to 65535");
}

static void test_max_message_size_must_be_a_positive_integer(void **state)
{
	(void)state;
	assert_load_error(config_with("\"MaxMessageSize\": 0", ""),
		"MaxMessageSize: must be a positive integer");
	assert_load_error(config_with("\"MaxMessageSize\": -1", ""),
		"MaxMessageSize: must be a positive integer");
	assert_load_error(config_with("\"MaxMessageSize\": 1.5", ""),
		"MaxMessageSize: must be a positive integer");
}

static void test_counts_and_timeouts_must_be_positive(void **state)
{
	(void)state;
	assert_load_error(config_with("\"MaxRecipients\": 0", ""),
		"MaxRecipients: must be a positive integer");
	assert_load_error(config_with("\"MaxConnections\": false", ""),
		"MaxConnections: must be a positive integer");
	assert_load_error(config_with("\"MaxConnectionsPerIP\": -3", ""),
		"MaxConnectionsPerIP: must be a positive integer");
	assert_load_error(config_with("\"SMTPCommandTimeoutSeconds\": 0", ""),
		"SMTPCommandTimeoutSeconds: must be a positive integer");
	assert_load_error(config_with("\"SMTPDataTimeoutSeconds\": \"600\"", ""),
		"SMTPDataTimeoutSeconds: must be a positive integer");
	assert_load_error(config_with("\"POP3IdleTimeoutSeconds\": 0", ""),
		"POP3IdleTimeoutSeconds: must be a positive integer");
}

static void test_count_beyond_int_range_is_rejected(void **state)
{
	(void)state;
	assert_load_error(config_with("\"MaxRecipients\": 4294967296", ""),
		"MaxRecipients: must be at most 2147483647");
}

static void test_integer_overflow_is_a_syntax_error(void **state)
{
	struct config cfg;
	char err[256] = "";

	(void)state;
	assert_int_equal(config_load_string(config_with("\"MaxMessageSize\": "
		"99999999999999999999999", ""), &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "JSON syntax error"));
	assert_non_null(strstr(err, "too big"));
}

static void test_ports_must_differ(void **state)
{
	(void)state;
	assert_load_error(config_with("\"SMTPPort\": 995", ""), "POP3Port: must differ from SMTPPort");
	assert_load_error(config_with("\"POP3STLSPort\": 25", ""),
		"POP3STLSPort: must differ from SMTPPort");
	assert_load_error(config_with("\"POP3STLSPort\": 995", ""),
		"POP3STLSPort: must differ from POP3Port");
}

static void test_pop3_stls_port_zero_is_off(void **state)
{
	struct config cfg;

	(void)state;
	load_ok(config_with("\"POP3STLSPort\": 0", ""), &cfg);
	assert_int_equal(cfg.pop3_stls_port, 0);
	config_free(&cfg);
}

static void test_listen_address_accepts_ipv4_and_ipv6(void **state)
{
	struct config cfg;

	(void)state;
	load_ok(config_with("\"ListenAddress\": \"127.0.0.1\"", ""), &cfg);
	assert_string_equal(cfg.listen_address, "127.0.0.1");
	config_free(&cfg);
	load_ok(config_with("\"ListenAddress\": \"2001:db8::25\"", ""), &cfg);
	assert_string_equal(cfg.listen_address, "2001:db8::25");
	config_free(&cfg);
	load_ok(config_with("\"ListenAddress\": \"\"", ""), &cfg);
	assert_null(cfg.listen_address);
	config_free(&cfg);
}

static void test_listen_address_must_be_an_ip_address(void **state)
{
	(void)state;
	assert_load_error(config_with("\"ListenAddress\": \"localhost\"", ""),
		"ListenAddress: must be an IPv4 or IPv6 address");
	assert_load_error(config_with("\"ListenAddress\": 127", ""), "ListenAddress: must be a string");
}

static void test_unknown_keys_warn_but_load(void **state)
{
	struct config cfg;
	char log[4096];

	(void)state;
	assert_int_equal(load_capturing_log(config_with("\"Colour\": \"blue\"", "\"Foo\": 1"), &cfg,
		log, sizeof(log)), 0);
	assert_non_null(strstr(log, "event=unknown_key key=Colour"));
	assert_non_null(strstr(log, "event=unknown_key key=Servers[0].Foo"));
	assert_string_equal(cfg.servers[0].domain, "example.org");
	config_free(&cfg);
}

static void test_unknown_key_with_odd_characters_is_quoted_in_the_log(void **state)
{
	struct config cfg;
	char log[4096];

	(void)state;
	assert_int_equal(load_capturing_log(config_with("\"a b\\nlevel=error\": 1", ""), &cfg, log,
		sizeof(log)), 0);
	assert_non_null(strstr(log, "key=\"a b\\x0alevel=error\""));
	config_free(&cfg);
}

static void test_duplicate_json_keys_are_rejected(void **state)
{
	struct config cfg;
	char err[256] = "";

	(void)state;
	assert_int_equal(config_load_string("{\"Hostname\": \"a\", \"Hostname\": \"b\"}", &cfg, err,
		sizeof(err)), -1);
	assert_non_null(strstr(err, "JSON syntax error: duplicate object key"));
}

static void test_keys_match_case_insensitively_like_the_original(void **state)
{
	struct config cfg;

	(void)state;
	/* Go's encoding/json, which the original used, accepts any letter case. */
	load_ok("{\"hostname\": \"mx.example.org\", \"smtpport\": 2525, \"servers\": [{\"domain\": "
		"\"example.org\", \"mailboxpassword\": \"pw\", \"MAILDROPPATH\": \"/m\"}]}", &cfg);
	assert_string_equal(cfg.hostname, "mx.example.org");
	assert_int_equal(cfg.smtp_port, 2525);
	assert_string_equal(cfg.servers[0].maildrop_path, "/m");
	config_free(&cfg);
}

static void test_same_key_in_two_cases_is_rejected(void **state)
{
	(void)state;
	assert_load_error(config_with("\"hostname\": \"other\"", ""),
		"Hostname: given twice (key names are case-insensitive)");
}

static void test_null_counts_as_absent(void **state)
{
	struct config cfg;

	(void)state;
	load_ok(config_with("\"SMTPPort\": null", "\"TLSKeyPath\": null"), &cfg);
	assert_int_equal(cfg.smtp_port, 25);
	assert_null(cfg.servers[0].tls_key_path);
	config_free(&cfg);
	assert_load_error("{\"Hostname\": null}", "Hostname: missing");
}

static void test_tls_key_without_cert_is_rejected(void **state)
{
	(void)state;
	assert_load_error(config_with("", "\"TLSKeyPath\": \"/k.pem\""),
		"Servers[0].TLSCertPath: missing (TLSKeyPath is set; give both or neither)");
}

static void test_tls_cert_without_key_is_rejected(void **state)
{
	(void)state;
	assert_load_error(config_with("", "\"TLSCertPath\": \"/c.pem\", \"TLSKeyPath\": \"\""),
		"Servers[0].TLSKeyPath: missing (TLSCertPath is set; give both or neither)");
}

static void test_empty_tls_paths_count_as_absent(void **state)
{
	struct config cfg;

	(void)state;
	load_ok(config_with("", "\"TLSCertPath\": \"\", \"TLSKeyPath\": \"\""), &cfg);
	assert_null(cfg.servers[0].tls_key_path);
	assert_null(cfg.servers[0].tls_cert_path);
	assert_false(config_has_tls(&cfg));
	config_free(&cfg);
}

static void test_tls_path_of_wrong_type_names_expected_type(void **state)
{
	(void)state;
	assert_load_error(config_with("", "\"TLSCertPath\": [\"/c.pem\"]"),
		"Servers[0].TLSCertPath: must be a string");
}

static void test_domain_is_stored_lower_case(void **state)
{
	struct config cfg;

	(void)state;
	load_ok("{\"Hostname\": \"h\", \"Servers\": [{\"Domain\": \"Example.ORG\", "
		"\"MailboxPassword\": \"pw\", \"MaildropPath\": \"/m\"}]}", &cfg);
	assert_string_equal(cfg.servers[0].domain, "example.org");
	config_free(&cfg);
}

static void test_domain_must_look_like_a_domain(void **state)
{
	static const char *const bad[] = {"", ".example.org", "example.org.", "exa..mple.org",
		"exa mple.org", "user@example.org", "exämple.org"};
	char json[512], want[160];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(json, sizeof(json), "{\"Hostname\": \"h\", \"Servers\": [{\"Domain\": \"%s\", "
			"\"MailboxPassword\": \"pw\", \"MaildropPath\": \"/m\"}]}", bad[i]);
		snprintf(want, sizeof(want), "Servers[0].Domain: %s", *bad[i] ? "must be a domain name "
			"(letters, digits, '-' and '.', at most 255 characters)" : "must not be empty");
		assert_load_error(json, want);
	}
}

static void test_domain_longer_than_255_is_rejected(void **state)
{
	char label[300], json[512];

	(void)state;
	memset(label, 'a', 256);
	label[256] = '\0';
	snprintf(json, sizeof(json), "{\"Hostname\": \"h\", \"Servers\": [{\"Domain\": \"%s\", "
		"\"MailboxPassword\": \"pw\", \"MaildropPath\": \"/m\"}]}", label);
	assert_load_error(json, "Servers[0].Domain: must be a domain name (letters, digits, '-' and "
		"'.', at most 255 characters)");
}

static void test_duplicate_domain_names_both_servers(void **state)
{
	(void)state;
	assert_load_error("{\"Hostname\": \"h\", \"Servers\": [{\"Domain\": \"a.org\", "
		"\"MailboxPassword\": \"pw\", \"MaildropPath\": \"/a\"}, {\"Domain\": \"A.ORG\", "
		"\"MailboxPassword\": \"pw\", \"MaildropPath\": \"/b\"}]}",
		"Servers[1].Domain: duplicate of Servers[0]");
}

static void test_find_domain_with_non_nul_terminated_input(void **state)
{
	struct config cfg;
	const char *rcpt = "alice@EXAMPLE.org>";
	const char *domain = rcpt + 6;

	(void)state;
	load_ok("{\"Hostname\": \"h\", \"Servers\": [{\"Domain\": \"a.org\", \"MailboxPassword\": "
		"\"pw\", \"MaildropPath\": \"/a\"}, {\"Domain\": \"example.org\", \"MailboxPassword\": "
		"\"pw\", \"MaildropPath\": \"/b\"}]}", &cfg);
	assert_ptr_equal(config_find_domain(&cfg, domain, 11), &cfg.servers[1]);
	assert_null(config_find_domain(&cfg, domain, 12));
	assert_null(config_find_domain(&cfg, domain, 10));
	assert_null(config_find_domain(&cfg, "", 0));
	config_free(&cfg);
}

static void test_blocked_lookup_is_case_insensitive(void **state)
{
	struct config cfg;
	const struct server_config *s;

	(void)state;
	load_ok(config_with("", "\"BlockedAddresses\": [\"Spammed@Example.org\", \"x@example.org\"]"),
		&cfg);
	s = &cfg.servers[0];
	assert_string_equal(s->blocked_addresses[0], "spammed@example.org");
	assert_true(config_address_blocked(s, "SPAMMED@example.ORG", 19));
	assert_true(config_address_blocked(s, "x@example.org>", 13));
	assert_false(config_address_blocked(s, "spammed@example.or", 18));
	assert_false(config_address_blocked(s, "spammed@example.org.", 20));
	config_free(&cfg);
}

static void test_blocked_address_must_contain_at(void **state)
{
	(void)state;
	assert_load_error(config_with("", "\"BlockedAddresses\": [\"a@example.org\", \"spammed\"]"),
		"Servers[0].BlockedAddresses[1]: must be an address containing '@'");
}

static void test_blocked_addresses_of_wrong_type_names_expected_type(void **state)
{
	(void)state;
	assert_load_error(config_with("", "\"BlockedAddresses\": \"a@example.org\""),
		"Servers[0].BlockedAddresses: must be an array of strings");
	assert_load_error(config_with("", "\"BlockedAddresses\": [\"a@example.org\", 7]"),
		"Servers[0].BlockedAddresses[1]: must be a string");
}

static void test_top_level_must_be_an_object(void **state)
{
	(void)state;
	assert_load_error("[1, 2]", "config: the top level must be a JSON object");
}

static void test_syntax_error_reports_file_line_and_column(void **state)
{
	char path[] = "/tmp/test_config_XXXXXX";
	char err[512] = "", want[512];
	struct config cfg;
	int fd;
	FILE *f;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("{\n  \"Hostname\": \"h\",\n  \"SMTPPort\": 25,,\n}\n", f);
	fclose(f);
	assert_int_equal(config_load(path, &cfg, err, sizeof(err)), -1);
	unlink(path);
	snprintf(want, sizeof(want), "%s:3:18: JSON syntax error: ", path);
	assert_memory_equal(err, want, strlen(want));
}

static void test_config_load_reads_a_file(void **state)
{
	char path[] = "/tmp/test_config_XXXXXX";
	char err[256] = "";
	struct config cfg;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, original_example, strlen(original_example)),
		(ssize_t)strlen(original_example));
	close(fd);
	assert_int_equal(config_load(path, &cfg, err, sizeof(err)), 0);
	unlink(path);
	assert_string_equal(cfg.hostname, "mx.example.org");
	config_free(&cfg);
}

static void test_missing_file_names_the_file(void **state)
{
	struct config cfg;
	char err[256] = "";

	(void)state;
	assert_int_equal(config_load("/nonexistent/mailpopbox.json", &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/mailpopbox.json"));
	assert_non_null(strstr(err, "No such file"));
}

static void test_small_or_absent_error_buffer_is_safe(void **state)
{
	struct config cfg;
	char err[8];

	(void)state;
	assert_int_equal(config_load_string("{\"Hostname\": 1}", &cfg, err, sizeof(err)), -1);
	assert_string_equal(err, "Hostnam");
	assert_int_equal(config_load_string("{\"Hostname\": 1}", &cfg, NULL, 0), -1);
}

static void test_config_free_is_safe_on_a_zeroed_config(void **state)
{
	struct config cfg = {0};

	(void)state;
	config_free(&cfg);
	config_free(NULL);
	assert_null(cfg.servers);
}

/* Some releases of the original named the list BlacklistedAddresses. */
static void test_blacklisted_addresses_is_the_old_name_of_blocked_addresses(void **state)
{
	struct config cfg;
	char err[256];

	(void)state;
	assert_int_equal(config_load_string("{\"Hostname\": \"mx.example.org\", \"Servers\": ["
		"{\"Domain\": \"example.org\", \"MailboxPassword\": \"pw\", "
		"\"MaildropPath\": \"/tmp/m\", \"BlacklistedAddresses\": [\"Spam@Example.org\"]}]}",
		&cfg, err, sizeof(err)), 0);
	assert_true(config_address_blocked(&cfg.servers[0], "spam@example.org", 16));
	config_free(&cfg);
}

/* A server member "Destination": {...} with the given members. */
static char *config_with_destination(const char *members)
{
	static char server[2048];

	snprintf(server, sizeof(server), "\"Destination\": {%s}", members);
	return config_with("", server);
}

#define IMAP_PASSWORD "\"Type\": \"imap\", \"Host\": \"imap.example.net\", " \
	"\"Username\": \"me@example.net\", \"Password\": \"app pw\""
#define OAUTH_FILES "\"OAuthClientFile\": \"/etc/mailpopbox/client.json\", " \
	"\"OAuthTokenFile\": \"/var/lib/mailpopbox/token.json\""

static void test_destination_is_absent_by_default(void **state)
{
	struct config cfg;

	(void)state;
	load_ok(original_example, &cfg);
	assert_null(cfg.servers[0].destination);
	config_free(&cfg);
	load_ok(config_with("", "\"Destination\": null"), &cfg);
	assert_null(cfg.servers[0].destination);
	config_free(&cfg);
}

static void test_imap_destination_gets_its_defaults(void **state)
{
	struct config cfg;
	const struct destination_config *d;

	(void)state;
	load_ok(config_with_destination(IMAP_PASSWORD), &cfg);
	d = cfg.servers[0].destination;
	assert_non_null(d);
	assert_int_equal(d->type, DESTINATION_IMAP);
	assert_string_equal(d->host, "imap.example.net");
	assert_int_equal(d->port, 993);
	assert_int_equal(d->tls, DESTINATION_TLS_IMPLICIT);
	assert_string_equal(d->username, "me@example.net");
	assert_string_equal(d->password, "app pw");
	assert_null(d->oauth_client_file);
	assert_null(d->oauth_token_file);
	assert_string_equal(d->mailbox, "INBOX");
	assert_string_equal(d->junk_mailbox, "Junk");
	assert_string_equal(d->gmail_api_url, "https://gmail.googleapis.com");
	assert_null(d->tls_ca_file);
	assert_false(d->keep_copy);
	config_free(&cfg);
}

static void test_imap_destination_reads_every_key(void **state)
{
	struct config cfg;
	const struct destination_config *d;

	(void)state;
	load_ok(config_with_destination("\"Type\": \"imap\", \"Host\": \"127.0.0.1\", "
		"\"Port\": 10143, \"TLS\": \"starttls\", \"Username\": \"u\", " OAUTH_FILES ", "
		"\"Mailbox\": \"Archive/In\", \"JunkMailbox\": \"[Gmail]/Spam\", "
		"\"TLSCAFile\": \"/etc/ca.pem\", \"KeepCopy\": true"), &cfg);
	d = cfg.servers[0].destination;
	assert_int_equal(d->port, 10143);
	assert_int_equal(d->tls, DESTINATION_TLS_STARTTLS);
	assert_null(d->password);
	assert_string_equal(d->oauth_client_file, "/etc/mailpopbox/client.json");
	assert_string_equal(d->oauth_token_file, "/var/lib/mailpopbox/token.json");
	assert_string_equal(d->mailbox, "Archive/In");
	assert_string_equal(d->junk_mailbox, "[Gmail]/Spam");
	assert_string_equal(d->tls_ca_file, "/etc/ca.pem");
	assert_true(d->keep_copy);
	config_free(&cfg);
}

static void test_starttls_defaults_to_port_143(void **state)
{
	struct config cfg;

	(void)state;
	load_ok(config_with_destination(IMAP_PASSWORD ", \"TLS\": \"starttls\""), &cfg);
	assert_int_equal(cfg.servers[0].destination->port, 143);
	config_free(&cfg);
	load_ok(config_with_destination(IMAP_PASSWORD ", \"TLS\": \"implicit\""), &cfg);
	assert_int_equal(cfg.servers[0].destination->port, 993);
	config_free(&cfg);
}

static void test_gmail_destination_needs_oauth(void **state)
{
	struct config cfg;
	const struct destination_config *d;

	(void)state;
	load_ok(config_with_destination("\"Type\": \"gmail\", " OAUTH_FILES
		", \"GmailAPIURL\": \"https://127.0.0.1:8443\""), &cfg);
	d = cfg.servers[0].destination;
	assert_int_equal(d->type, DESTINATION_GMAIL);
	assert_string_equal(d->gmail_api_url, "https://127.0.0.1:8443");
	assert_null(d->host);
	config_free(&cfg);
	assert_load_error(config_with_destination("\"Type\": \"gmail\""),
		"Servers[0].Destination.OAuthClientFile: missing (Type \"gmail\" needs "
		"OAuthClientFile and OAuthTokenFile)");
	assert_load_error(config_with_destination("\"Type\": \"gmail\", \"Password\": \"x\", "
		OAUTH_FILES), "Servers[0].Destination.Password: not used with Type \"gmail\" (it needs "
		"OAuthClientFile and OAuthTokenFile; for an app password use Type \"imap\")");
}

static void test_destination_type_is_required_and_checked(void **state)
{
	(void)state;
	assert_load_error(config_with_destination("\"Host\": \"h\""),
		"Servers[0].Destination.Type: missing");
	assert_load_error(config_with_destination("\"Type\": \"pop3\""),
		"Servers[0].Destination.Type: must be \"imap\" or \"gmail\"");
	assert_load_error(config_with_destination("\"Type\": 1"),
		"Servers[0].Destination.Type: must be \"imap\" or \"gmail\"");
	assert_load_error(config_with("", "\"Destination\": \"imap\""),
		"Servers[0].Destination: must be an object");
}

static void test_imap_destination_required_keys_are_named(void **state)
{
	(void)state;
	assert_load_error(config_with_destination("\"Type\": \"imap\", \"Username\": \"u\", "
		"\"Password\": \"p\""), "Servers[0].Destination.Host: missing");
	assert_load_error(config_with_destination("\"Type\": \"imap\", \"Host\": \"h\", "
		"\"Password\": \"p\""), "Servers[0].Destination.Username: missing");
	assert_load_error(config_with_destination("\"Type\": \"imap\", \"Host\": \"\", "
		"\"Username\": \"u\", \"Password\": \"p\""), "Servers[0].Destination.Host: missing");
	assert_load_error(config_with_destination("\"Type\": \"imap\", \"Host\": \"h\", "
		"\"Username\": \"u\""), "Servers[0].Destination.Password: missing (or set "
		"OAuthClientFile and OAuthTokenFile)");
}

static void test_imap_destination_takes_password_or_oauth_not_both(void **state)
{
	(void)state;
	assert_load_error(config_with_destination(IMAP_PASSWORD ", " OAUTH_FILES),
		"Servers[0].Destination.Password: OAuthClientFile is set too; give one of them");
	assert_load_error(config_with_destination(IMAP_PASSWORD
		", \"OAuthClientFile\": \"/c.json\""),
		"Servers[0].Destination.OAuthTokenFile: missing (OAuthClientFile is set; give both "
		"or neither)");
	assert_load_error(config_with_destination("\"Type\": \"gmail\", "
		"\"OAuthTokenFile\": \"/t.json\""),
		"Servers[0].Destination.OAuthClientFile: missing (OAuthTokenFile is set; give both "
		"or neither)");
}

static void test_destination_tls_is_never_plaintext(void **state)
{
	(void)state;
	assert_load_error(config_with_destination(IMAP_PASSWORD ", \"TLS\": \"none\""),
		"Servers[0].Destination.TLS: must be \"implicit\" or \"starttls\"");
	assert_load_error(config_with_destination(IMAP_PASSWORD ", \"TLS\": false"),
		"Servers[0].Destination.TLS: must be \"implicit\" or \"starttls\"");
}

static void test_destination_values_are_checked(void **state)
{
	(void)state;
	assert_load_error(config_with_destination(IMAP_PASSWORD ", \"Port\": 0"),
		"Servers[0].Destination.Port: must be an integer from 1 to 65535");
	assert_load_error(config_with_destination(IMAP_PASSWORD ", \"Port\": \"993\""),
		"Servers[0].Destination.Port: must be an integer from 1 to 65535");
	assert_load_error(config_with_destination(IMAP_PASSWORD ", \"KeepCopy\": 1"),
		"Servers[0].Destination.KeepCopy: must be true or false");
	assert_load_error(config_with_destination(IMAP_PASSWORD ", \"Mailbox\": \"a\\r\\nb\""),
		"Servers[0].Destination.Mailbox: must not contain a line break");
	assert_load_error(config_with_destination(IMAP_PASSWORD ", \"JunkMailbox\": \"a\\nb\""),
		"Servers[0].Destination.JunkMailbox: must not contain a line break");
	assert_load_error(config_with_destination("\"Type\": \"imap\", \"Host\": \"h\", "
		"\"Username\": \"u\\n\", \"Password\": \"p\""),
		"Servers[0].Destination.Username: must not contain a line break");
	assert_load_error(config_with_destination("\"Type\": \"imap\", \"Host\": \"a b\", "
		"\"Username\": \"u\", \"Password\": \"p\""),
		"Servers[0].Destination.Host: must be a host name without spaces or control characters");
	assert_load_error(config_with_destination("\"Type\": \"gmail\", " OAUTH_FILES
		", \"GmailAPIURL\": \"http://127.0.0.1:8080\""),
		"Servers[0].Destination.GmailAPIURL: must be an https:// URL");
	assert_load_error(config_with_destination("\"Type\": \"gmail\", " OAUTH_FILES
		", \"GmailAPIURL\": \"https://\""),
		"Servers[0].Destination.GmailAPIURL: must be an https:// URL");
}

static void test_destination_keys_match_case_insensitively(void **state)
{
	struct config cfg;
	const struct destination_config *d;

	(void)state;
	load_ok(config_with("", "\"destination\": {\"type\": \"IMAP\", \"host\": \"h\", "
		"\"username\": \"u\", \"password\": \"p\", \"tls\": \"STARTTLS\", \"keepcopy\": true}"),
		&cfg);
	d = cfg.servers[0].destination;
	assert_int_equal(d->type, DESTINATION_IMAP);
	assert_int_equal(d->tls, DESTINATION_TLS_STARTTLS);
	assert_true(d->keep_copy);
	config_free(&cfg);
}

static void test_unknown_destination_keys_warn_but_load(void **state)
{
	struct config cfg;
	char log[4096];

	(void)state;
	assert_int_equal(load_capturing_log(config_with_destination(IMAP_PASSWORD
		", \"Folder\": \"x\", \"GmailAPIURL\": \"https://g.example\""), &cfg, log,
		sizeof(log)), 0);
	assert_non_null(strstr(log, "event=unknown_key key=Servers[0].Destination.Folder"));
	assert_non_null(strstr(log, "event=unused_key key=Servers[0].Destination.GmailAPIURL "
		"type=imap"));
	/* Never a password in the log. */
	assert_null(strstr(log, "app pw"));
	assert_non_null(cfg.servers[0].destination);
	config_free(&cfg);
}

static void test_destination_error_in_second_server_names_its_index(void **state)
{
	(void)state;
	assert_load_error("{\"Hostname\": \"mx.example.org\", \"Servers\": [{\"Domain\": \"a.org\", "
		"\"MailboxPassword\": \"pw\", \"MaildropPath\": \"/a\", \"Destination\": {"
		IMAP_PASSWORD "}}, {\"Domain\": \"b.org\", \"MailboxPassword\": \"pw\", "
		"\"MaildropPath\": \"/b\", \"Destination\": {\"Type\": \"imap\"}}]}",
		"Servers[1].Destination.Host: missing");
}

/* ---- sender checks, DNSBLs, the milter (issue 14) ---- */

static void test_verification_keys_default(void **state)
{
	struct config cfg;

	(void)state;
	load_ok(config_with("", ""), &cfg);
	assert_true(cfg.verify_senders);
	assert_true(cfg.dmarc_reject);
	assert_int_equal(cfg.dnsbl_zone_count, 0);
	assert_null(cfg.milter);
	assert_true(cfg.milter_fail_open);
	assert_int_equal(cfg.milter_timeout, MILTER_TIMEOUT_DEFAULT);
	config_free(&cfg);
}

static void test_verification_keys_are_read(void **state)
{
	struct config cfg;

	(void)state;
	load_ok(config_with("\"VerifySenders\": false, \"DMARCReject\": false, "
		"\"DNSBLZones\": [\"Zen.Spamhaus.org\", \"bl.example\"], "
		"\"Milter\": \"inet:127.0.0.1:11332\", \"MilterFailOpen\": false, "
		"\"MilterTimeoutSeconds\": 600", ""), &cfg);
	assert_false(cfg.verify_senders);
	assert_false(cfg.dmarc_reject);
	assert_int_equal(cfg.dnsbl_zone_count, 2);
	assert_string_equal(cfg.dnsbl_zones[0], "zen.spamhaus.org");
	assert_string_equal(cfg.dnsbl_zones[1], "bl.example");
	assert_string_equal(cfg.milter, "inet:127.0.0.1:11332");
	assert_false(cfg.milter_fail_open);
	assert_int_equal(cfg.milter_timeout, 600);
	config_free(&cfg);
}

static void test_milter_spec_forms(void **state)
{
	static const char *const good[] = {"inet:127.0.0.1:11332", "inet:[::1]:8890",
		"inet:rspamd.example:11332", "unix:/run/rspamd/milter.sock"};
	static const char *const bad[] = {"127.0.0.1:11332", "inet:127.0.0.1", "inet::25",
		"inet:host:0", "inet:host:65536", "inet:host:x", "inet:::1:25", "inet:[::1:25",
		"unix:relative", "unix:", "tcp:host:25", "inet:bad host:25"};
	char json[256];
	struct config cfg;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(json, sizeof(json), "\"Milter\": \"%s\"", good[i]);
		load_ok(config_with(json, ""), &cfg);
		assert_string_equal(cfg.milter, good[i]);
		config_free(&cfg);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";
		snprintf(json, sizeof(json), "\"Milter\": \"%s\"", bad[i]);
		if (config_load_string(config_with(json, ""), &cfg, err, sizeof(err)) == 0)
			fail_msg("Milter \"%s\" was accepted", bad[i]);
		static const char want[] = "Milter: must be \"inet:HOST:PORT\" or \"unix:PATH\" (";
		if (strncmp(err, want, sizeof(want) - 1) != 0)
			fail_msg("Milter \"%s\": %s", bad[i], err);
	}
	/* "" is no milter, as an absent key. */
	load_ok(config_with("\"Milter\": \"\"", ""), &cfg);
	assert_null(cfg.milter);
	config_free(&cfg);
}

static void test_milter_timeout_is_bounded(void **state)
{
	(void)state;
	assert_load_error(config_with("\"MilterTimeoutSeconds\": 0", ""),
		"MilterTimeoutSeconds: must be an integer from 1 to 600");
	assert_load_error(config_with("\"MilterTimeoutSeconds\": 601", ""),
		"MilterTimeoutSeconds: must be an integer from 1 to 600");
}

static void test_verification_bools_must_be_bools(void **state)
{
	(void)state;
	assert_load_error(config_with("\"VerifySenders\": 1", ""),
		"VerifySenders: must be true or false");
	assert_load_error(config_with("\"DMARCReject\": \"yes\"", ""),
		"DMARCReject: must be true or false");
	assert_load_error(config_with("\"MilterFailOpen\": null, \"VerifySenders\": 0", ""),
		"VerifySenders: must be true or false");
}

static void test_dnsbl_zones_are_checked(void **state)
{
	(void)state;
	assert_load_error(config_with("\"DNSBLZones\": \"zen.spamhaus.org\"", ""),
		"DNSBLZones: must be an array of strings");
	assert_load_error(config_with("\"DNSBLZones\": [\"ok.example\", \"bad zone\"]", ""),
		"DNSBLZones[1]: must be a domain name (letters, digits, '-' and '.', at most 255 "
		"characters)");
	assert_load_error(config_with("\"DNSBLZones\": [\"\"]", ""),
		"DNSBLZones[0]: must be a domain name (letters, digits, '-' and '.', at most 255 "
		"characters)");
	assert_load_error(config_with("\"DNSBLZones\": [\"a1.x\", \"a2.x\", \"a3.x\", "
		"\"a4.x\", \"a5.x\", \"a6.x\", \"a7.x\", \"a8.x\", \"a9.x\"]", ""),
		"DNSBLZones: must have at most 8 zones");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blacklisted_addresses_is_the_old_name_of_blocked_addresses),
		cmocka_unit_test(test_original_example_config_loads_with_defaults),
		cmocka_unit_test(test_absent_ports_default_to_25_and_995),
		cmocka_unit_test(test_all_new_keys_are_read),
		cmocka_unit_test(test_missing_hostname_names_the_key),
		cmocka_unit_test(test_empty_hostname_is_rejected),
		cmocka_unit_test(test_hostname_with_spaces_is_rejected),
		cmocka_unit_test(test_hostname_of_wrong_type_names_expected_type),
		cmocka_unit_test(test_missing_servers_names_the_key),
		cmocka_unit_test(test_empty_servers_is_rejected),
		cmocka_unit_test(test_servers_of_wrong_type_names_expected_type),
		cmocka_unit_test(test_missing_maildrop_path_names_the_server),
		cmocka_unit_test(test_missing_domain_names_the_server),
		cmocka_unit_test(test_empty_mailbox_password_is_rejected),
		cmocka_unit_test(test_error_in_second_server_names_its_index),
		cmocka_unit_test(test_port_out_of_range_names_the_key),
		cmocka_unit_test(test_port_must_be_a_json_integer),
		cmocka_unit_test(test_max_message_size_must_be_a_positive_integer),
		cmocka_unit_test(test_counts_and_timeouts_must_be_positive),
		cmocka_unit_test(test_count_beyond_int_range_is_rejected),
		cmocka_unit_test(test_integer_overflow_is_a_syntax_error),
		cmocka_unit_test(test_ports_must_differ),
		cmocka_unit_test(test_pop3_stls_port_zero_is_off),
		cmocka_unit_test(test_listen_address_accepts_ipv4_and_ipv6),
		cmocka_unit_test(test_listen_address_must_be_an_ip_address),
		cmocka_unit_test(test_unknown_keys_warn_but_load),
		cmocka_unit_test(test_unknown_key_with_odd_characters_is_quoted_in_the_log),
		cmocka_unit_test(test_duplicate_json_keys_are_rejected),
		cmocka_unit_test(test_keys_match_case_insensitively_like_the_original),
		cmocka_unit_test(test_same_key_in_two_cases_is_rejected),
		cmocka_unit_test(test_null_counts_as_absent),
		cmocka_unit_test(test_tls_key_without_cert_is_rejected),
		cmocka_unit_test(test_tls_cert_without_key_is_rejected),
		cmocka_unit_test(test_empty_tls_paths_count_as_absent),
		cmocka_unit_test(test_tls_path_of_wrong_type_names_expected_type),
		cmocka_unit_test(test_domain_is_stored_lower_case),
		cmocka_unit_test(test_domain_must_look_like_a_domain),
		cmocka_unit_test(test_domain_longer_than_255_is_rejected),
		cmocka_unit_test(test_duplicate_domain_names_both_servers),
		cmocka_unit_test(test_find_domain_with_non_nul_terminated_input),
		cmocka_unit_test(test_blocked_lookup_is_case_insensitive),
		cmocka_unit_test(test_blocked_address_must_contain_at),
		cmocka_unit_test(test_blocked_addresses_of_wrong_type_names_expected_type),
		cmocka_unit_test(test_top_level_must_be_an_object),
		cmocka_unit_test(test_syntax_error_reports_file_line_and_column),
		cmocka_unit_test(test_config_load_reads_a_file),
		cmocka_unit_test(test_missing_file_names_the_file),
		cmocka_unit_test(test_small_or_absent_error_buffer_is_safe),
		cmocka_unit_test(test_config_free_is_safe_on_a_zeroed_config),
		cmocka_unit_test(test_destination_is_absent_by_default),
		cmocka_unit_test(test_imap_destination_gets_its_defaults),
		cmocka_unit_test(test_imap_destination_reads_every_key),
		cmocka_unit_test(test_starttls_defaults_to_port_143),
		cmocka_unit_test(test_gmail_destination_needs_oauth),
		cmocka_unit_test(test_destination_type_is_required_and_checked),
		cmocka_unit_test(test_imap_destination_required_keys_are_named),
		cmocka_unit_test(test_imap_destination_takes_password_or_oauth_not_both),
		cmocka_unit_test(test_destination_tls_is_never_plaintext),
		cmocka_unit_test(test_destination_values_are_checked),
		cmocka_unit_test(test_destination_keys_match_case_insensitively),
		cmocka_unit_test(test_unknown_destination_keys_warn_but_load),
		cmocka_unit_test(test_destination_error_in_second_server_names_its_index),
		cmocka_unit_test(test_verification_keys_default),
		cmocka_unit_test(test_verification_keys_are_read),
		cmocka_unit_test(test_milter_spec_forms),
		cmocka_unit_test(test_milter_timeout_is_bounded),
		cmocka_unit_test(test_verification_bools_must_be_bools),
		cmocka_unit_test(test_dnsbl_zones_are_checked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
