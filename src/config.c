/* config.c: loads and validates the original mailpopbox's JSON config (jansson).
 * Every key's type, default and bounds sit in the two tables below (config_keys, server_keys);
 * parsing, defaults and range checks are all driven from them, so a new key is one line. */
#include "config.h"

#include "bounds.h"
#include "alloc.h"
#include "filter/milter.h"
#include "log.h"
#include "password.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum key_kind {
	KEY_INT,         /* int field */
	KEY_UNSIGNED,    /* unsigned field */
	KEY_UINT64,      /* uint64_t field */
	KEY_STRING,      /* char * field, NULL when absent */
	KEY_STRING_LIST, /* char ** field with its size_t count at count_offset */
	KEY_SERVERS,     /* struct server_config * field with its size_t count at count_offset */
	KEY_BOOL,        /* bool field: JSON true or false */
	KEY_ENUM,        /* enum field: one of the names in choices, stored as its index */
	KEY_DESTINATION, /* struct destination_config * field, NULL when absent */
};

enum {
	KEY_REQUIRED = 1 << 0,        /* absent, null or "" is an error */
	KEY_EMPTY_IS_ABSENT = 1 << 1, /* "" means the default, as the original treats TLS paths */
	KEY_LOWERCASE = 1 << 2,       /* stored lower-case so lookups compare plain bytes */
	KEY_PORT = 1 << 3,            /* a listening port: non-zero ports must all differ */
};

/* Returns NULL when value is acceptable, else how it must look (completes "KEY: must ..."). */
typedef const char *(*key_check_fn)(const char *value);

struct key_spec {
	const char *name;
	enum key_kind kind;
	size_t offset;
	size_t count_offset;
	unsigned flags;
	long long def, min, max;
	key_check_fn check;
	const char *const *choices; /* KEY_ENUM: NULL-terminated, index = enum value */
};

/* _Generic makes a table line fail to compile when the field's type does not match its kind. */
#define FIELD(st, field, type) (offsetof(st, field) + 0 * _Generic(((st *)0)->field, type: 0))
#define INT_KEY(st, name, field, flags, def, min, max) \
	{ name, KEY_INT, FIELD(st, field, int), 0, flags, def, min, max, NULL, NULL }
#define PORT_KEY(st, name, field, def, min) INT_KEY(st, name, field, KEY_PORT, def, min, 65535)
#define BOUNDED_KEY(st, name, field, def, min, max) \
	{ name, KEY_UNSIGNED, FIELD(st, field, unsigned), 0, 0, def, min, max, NULL, NULL }
#define UNSIGNED_KEY(st, name, field, def) BOUNDED_KEY(st, name, field, def, 1, INT32_MAX)
#define UINT64_KEY(st, name, field, def) \
	{ name, KEY_UINT64, FIELD(st, field, uint64_t), 0, 0, (long long)(def), 1, INT64_MAX, NULL, \
		NULL }
#define STRING_KEY(st, name, field, flags, check) \
	{ name, KEY_STRING, FIELD(st, field, char *), 0, flags, 0, 0, 0, check, NULL }
#define LIST_KEY(st, name, field, count, flags, check) \
	{ name, KEY_STRING_LIST, FIELD(st, field, char **), FIELD(st, count, size_t), flags, 0, 0, \
		0, check, NULL }
#define SERVERS_KEY(st, name, field, count) \
	{ name, KEY_SERVERS, FIELD(st, field, struct server_config *), FIELD(st, count, size_t), \
		KEY_REQUIRED, 0, 0, 0, NULL, NULL }
#define BOOL_KEY(st, name, field, def) \
	{ name, KEY_BOOL, FIELD(st, field, bool), 0, 0, def, 0, 1, NULL, NULL }
/* Enum fields are read and written as int: config.c is built without -fshort-enums, and the
 * static assertions below the destination table hold that. */
#define ENUM_KEY(st, name, field, type, flags, def, choices) \
	{ name, KEY_ENUM, FIELD(st, field, type), 0, flags, def, 0, 0, NULL, choices }
#define DESTINATION_KEY(st, name, field) \
	{ name, KEY_DESTINATION, FIELD(st, field, struct destination_config *), 0, 0, 0, 0, 0, \
		NULL, NULL }

static const char *check_hostname(const char *value);
static const char *check_domain(const char *value);
static const char *check_ip_address(const char *value);
static const char *check_address(const char *value);
static const char *check_host_port(const char *value);
static const char *check_ip_port(const char *value);
static const char *check_one_line(const char *value);
static const char *check_https_url(const char *value);
static const char *check_milter_spec(const char *value);

/* Top-level keys. docs/config.md documents the same keys and defaults; keep them in step. */
static const struct key_spec config_keys[] = {
	PORT_KEY(struct config, "SMTPPort", smtp_port, 25, 1),
	PORT_KEY(struct config, "POP3Port", pop3_port, 995, 1),
	STRING_KEY(struct config, "Hostname", hostname, KEY_REQUIRED, check_hostname),
	SERVERS_KEY(struct config, "Servers", servers, server_count),
	STRING_KEY(struct config, "ListenAddress", listen_address, KEY_EMPTY_IS_ABSENT,
		check_ip_address),
	UINT64_KEY(struct config, "MaxMessageSize", max_message_size, SMTP_DEFAULT_MAX_MESSAGE_SIZE),
	UNSIGNED_KEY(struct config, "MaxRecipients", max_recipients, SMTP_DEFAULT_MAX_RECIPIENTS),
	UNSIGNED_KEY(struct config, "MaxConnections", max_connections,
		SERVER_DEFAULT_MAX_CONNECTIONS),
	UNSIGNED_KEY(struct config, "MaxConnectionsPerIP", max_connections_per_ip,
		SERVER_DEFAULT_MAX_CONNECTIONS_PER_IP),
	UNSIGNED_KEY(struct config, "SMTPCommandTimeoutSeconds", smtp_command_timeout,
		SMTP_DEFAULT_COMMAND_TIMEOUT_SECONDS),
	UNSIGNED_KEY(struct config, "SMTPDataTimeoutSeconds", smtp_data_timeout,
		SMTP_DEFAULT_DATA_TIMEOUT_SECONDS),
	PORT_KEY(struct config, "POP3STLSPort", pop3_stls_port, 0, 0),
	UNSIGNED_KEY(struct config, "POP3IdleTimeoutSeconds", pop3_idle_timeout,
		POP3_DEFAULT_IDLE_TIMEOUT_SECONDS),
	PORT_KEY(struct config, "SubmissionPort", submission_port, 587, 0),
	PORT_KEY(struct config, "SubmissionTLSPort", submission_tls_port, 465, 0),
	STRING_KEY(struct config, "SpoolPath", spool_path, KEY_EMPTY_IS_ABSENT, NULL),
	STRING_KEY(struct config, "DNSResolver", dns_resolver, KEY_EMPTY_IS_ABSENT, check_ip_port),
	INT_KEY(struct config, "OutboundPort", outbound_port, 0, 25, 1, 65535),
	STRING_KEY(struct config, "OutboundRelayHost", outbound_relay_host, KEY_EMPTY_IS_ABSENT,
		check_host_port),
	STRING_KEY(struct config, "OutboundRelayUser", outbound_relay_user, KEY_EMPTY_IS_ABSENT,
		NULL),
	STRING_KEY(struct config, "OutboundRelayPassword", outbound_relay_password,
		KEY_EMPTY_IS_ABSENT, NULL),
	STRING_KEY(struct config, "OutboundRelayCAFile", outbound_relay_ca_file,
		KEY_EMPTY_IS_ABSENT, NULL),
	UNSIGNED_KEY(struct config, "QueueRetryBaseSeconds", queue_retry_base,
		QUEUE_DEFAULT_RETRY_BASE_SECONDS),
	UNSIGNED_KEY(struct config, "QueueLifetimeSeconds", queue_lifetime,
		QUEUE_DEFAULT_LIFETIME_SECONDS),
	STRING_KEY(struct config, "User", user, KEY_EMPTY_IS_ABSENT, NULL),
	STRING_KEY(struct config, "Group", group, KEY_EMPTY_IS_ABSENT, NULL),
	UNSIGNED_KEY(struct config, "AuthMaxFailures", auth_max_failures,
		AUTH_DEFAULT_MAX_FAILURES),
	UNSIGNED_KEY(struct config, "AuthFailureWindowSeconds", auth_failure_window,
		AUTH_DEFAULT_FAILURE_WINDOW_SECONDS),
	UNSIGNED_KEY(struct config, "AuthLockoutSeconds", auth_lockout,
		AUTH_DEFAULT_LOCKOUT_SECONDS),
	BOOL_KEY(struct config, "VerifySenders", verify_senders, true),
	BOOL_KEY(struct config, "DMARCReject", dmarc_reject, true),
	LIST_KEY(struct config, "DNSBLZones", dnsbl_zones, dnsbl_zone_count, KEY_LOWERCASE,
		check_domain),
	STRING_KEY(struct config, "Milter", milter, KEY_EMPTY_IS_ABSENT, check_milter_spec),
	BOOL_KEY(struct config, "MilterFailOpen", milter_fail_open, true),
	BOUNDED_KEY(struct config, "MilterTimeoutSeconds", milter_timeout, MILTER_TIMEOUT_DEFAULT, 1,
		MILTER_TIMEOUT_MAX),
};

/* Keys of each "Servers" entry. */
static const struct key_spec server_keys[] = {
	STRING_KEY(struct server_config, "Domain", domain, KEY_REQUIRED | KEY_LOWERCASE,
		check_domain),
	/* Neither is KEY_REQUIRED: check_servers() wants exactly one of the two. */
	STRING_KEY(struct server_config, "MailboxPassword", mailbox_password, 0, NULL),
	STRING_KEY(struct server_config, "MailboxPasswordHash", mailbox_password_hash,
		KEY_EMPTY_IS_ABSENT, password_hash_problem),
	STRING_KEY(struct server_config, "TLSKeyPath", tls_key_path, KEY_EMPTY_IS_ABSENT, NULL),
	STRING_KEY(struct server_config, "TLSCertPath", tls_cert_path, KEY_EMPTY_IS_ABSENT, NULL),
	STRING_KEY(struct server_config, "MaildropPath", maildrop_path, KEY_REQUIRED, NULL),
	LIST_KEY(struct server_config, "BlockedAddresses", blocked_addresses, blocked_count,
		KEY_LOWERCASE, check_address),
	STRING_KEY(struct server_config, "DKIMSelector", dkim_selector, KEY_EMPTY_IS_ABSENT, NULL),
	STRING_KEY(struct server_config, "DKIMKeyPath", dkim_key_path, KEY_EMPTY_IS_ABSENT, NULL),
	DESTINATION_KEY(struct server_config, "Destination", destination),
};

/* Indexed by enum destination_type and enum destination_tls. */
static const char *const destination_type_names[] = { "imap", "gmail", NULL };
static const char *const destination_tls_names[] = { "implicit", "starttls", NULL };
_Static_assert(DESTINATION_IMAP == 0 && DESTINATION_GMAIL == 1, "destination_type_names");
_Static_assert(DESTINATION_TLS_IMPLICIT == 0 && DESTINATION_TLS_STARTTLS == 1,
	"destination_tls_names");
_Static_assert(sizeof(enum destination_type) == sizeof(int) &&
	sizeof(enum destination_tls) == sizeof(int), "enum fields are stored as int");

#define DESTINATION_DEFAULT_MAILBOX "INBOX"
#define DESTINATION_DEFAULT_JUNK_MAILBOX "Junk"
#define DESTINATION_DEFAULT_GMAIL_API_URL "https://gmail.googleapis.com"
#define DESTINATION_IMPLICIT_TLS_PORT 993 /* RFC 8314 7.3: imaps */
#define DESTINATION_STARTTLS_PORT 143     /* RFC 9051 2.1 */

/* Keys of a Server's "Destination". Which are required depends on Type: check_destination(). */
static const struct key_spec destination_keys[] = {
	ENUM_KEY(struct destination_config, "Type", type, enum destination_type, KEY_REQUIRED, 0,
		destination_type_names),
	STRING_KEY(struct destination_config, "Host", host, KEY_EMPTY_IS_ABSENT, check_hostname),
	/* 0 until check_destination() picks the TLS mode's port. */
	INT_KEY(struct destination_config, "Port", port, 0, 0, 1, 65535),
	ENUM_KEY(struct destination_config, "TLS", tls, enum destination_tls, 0,
		DESTINATION_TLS_IMPLICIT, destination_tls_names),
	/* Sent in IMAP commands: a line break would end the command early. */
	STRING_KEY(struct destination_config, "Username", username, KEY_EMPTY_IS_ABSENT,
		check_one_line),
	STRING_KEY(struct destination_config, "Password", password, KEY_EMPTY_IS_ABSENT,
		check_one_line),
	STRING_KEY(struct destination_config, "OAuthClientFile", oauth_client_file,
		KEY_EMPTY_IS_ABSENT, NULL),
	STRING_KEY(struct destination_config, "OAuthTokenFile", oauth_token_file,
		KEY_EMPTY_IS_ABSENT, NULL),
	STRING_KEY(struct destination_config, "Mailbox", mailbox, KEY_EMPTY_IS_ABSENT,
		check_one_line),
	STRING_KEY(struct destination_config, "JunkMailbox", junk_mailbox, KEY_EMPTY_IS_ABSENT,
		check_one_line),
	STRING_KEY(struct destination_config, "GmailAPIURL", gmail_api_url, KEY_EMPTY_IS_ABSENT,
		check_https_url),
	STRING_KEY(struct destination_config, "TLSCAFile", tls_ca_file, KEY_EMPTY_IS_ABSENT, NULL),
	BOOL_KEY(struct destination_config, "KeepCopy", keep_copy, false),
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* parse_object() keeps one slot per table key on the stack. */
#define MAX_KEYS_PER_OBJECT 48
_Static_assert(ARRAY_LEN(config_keys) <= MAX_KEYS_PER_OBJECT, "raise MAX_KEYS_PER_OBJECT");
_Static_assert(ARRAY_LEN(server_keys) <= MAX_KEYS_PER_OBJECT, "raise MAX_KEYS_PER_OBJECT");
_Static_assert(ARRAY_LEN(destination_keys) <= MAX_KEYS_PER_OBJECT, "raise MAX_KEYS_PER_OBJECT");

/* Room for "Servers[N]." and a key name; longer unknown names are only logged, truncated. */
#define KEY_PATH_MAX 256

static void set_error(char *err, size_t errsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_error(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (!err || errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

/* ASCII only: config names, domains and addresses must not depend on the process locale. */
static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool ascii_equal_nocase(const char *a, const char *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (ascii_lower(a[i]) != ascii_lower(b[i]))
			return false;
	return true;
}

/* True when the NUL-terminated name equals the len octets at s, ignoring ASCII case. */
static bool name_equal_nocase(const char *name, const char *s, size_t len)
{
	return strlen(name) == len && ascii_equal_nocase(name, s, len);
}

static void ascii_lower_string(char *s)
{
	for (; *s; s++)
		*s = ascii_lower(*s);
}

/* "host:port" or "[ipv6]:port" with a port from 1 to 65535. */
static const char *check_host_port(const char *value)
{
	const char *colon = strrchr(value, ':');
	char *end;

	if (!colon || colon == value)
		return "must be \"host:port\"";
	long port = strtol(colon + 1, &end, 10);
	if (*end || colon[1] == '\0' || port < 1 || port > 65535)
		return "must be \"host:port\" with a port from 1 to 65535";
	return NULL;
}

/* "ip:port" (IPv6 as "[addr]:port") for the DNS resolver. */
static const char *check_ip_port(const char *value)
{
	const char *problem = check_host_port(value);
	const char *colon = strrchr(value, ':');
	char host[INET6_ADDRSTRLEN + 2];
	unsigned char addr[sizeof(struct in6_addr)];

	if (problem)
		return "must be \"ip:port\"";
	size_t len = (size_t)(colon - value);
	if (len >= sizeof(host))
		return "must be \"ip:port\"";
	memcpy(host, value, len);
	host[len] = '\0';
	if (len > 2 && host[0] == '[' && host[len - 1] == ']') {
		host[len - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, addr) == 1)
			return NULL;
	} else if (inet_pton(AF_INET, host, addr) == 1) {
		return NULL;
	}
	return "must be \"ip:port\" with a numeric IP address";
}

static const char *check_hostname(const char *value)
{
	/* Sent in every greeting and EHLO reply: a space or CR/LF would corrupt the protocol. */
	if (strlen(value) > SMTP_DOMAIN_MAX)
		return "must be at most 255 characters";
	for (const char *p = value; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "must be a host name without spaces or control characters";
	return NULL;
}

static const char *check_domain(const char *value)
{
	static const char problem[] =
		"must be a domain name (letters, digits, '-' and '.', at most 255 characters)";
	size_t len = strlen(value);

	/* RFC 5321 4.5.3.1.2: a domain is at most 255 octets; labels are never empty. */
	if (len == 0 || len > SMTP_DOMAIN_MAX || value[0] == '.' || value[len - 1] == '.' ||
		strstr(value, ".."))
		return problem;
	for (const char *p = value; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return problem;
	return NULL;
}

static const char *check_ip_address(const char *value)
{
	unsigned char addr[16];

	if (inet_pton(AF_INET, value, addr) == 1 || inet_pton(AF_INET6, value, addr) == 1)
		return NULL;
	return "must be an IPv4 or IPv6 address";
}

static const char *check_one_line(const char *value)
{
	for (const char *p = value; *p; p++)
		if (*p == '\r' || *p == '\n')
			return "must not contain a line break";
	return NULL;
}

/* Certificates are always verified: the API is never reached over plain HTTP. */
static const char *check_https_url(const char *value)
{
	static const char scheme[] = "https://";

	if (strncmp(value, scheme, sizeof(scheme) - 1) != 0 || value[sizeof(scheme) - 1] == '\0' ||
		value[sizeof(scheme) - 1] == '/')
		return "must be an https:// URL";
	for (const char *p = value; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "must be an https:// URL without spaces or control characters";
	return NULL;
}

/* The milter's address: "inet:HOST:PORT" (an IPv6 HOST in brackets) or "unix:PATH", as the
 * milter client reads it (filter/milter.h). Config loading runs on one thread at a time
 * (start, SIGHUP), so the message may live in a static buffer. */
static const char *check_milter_spec(const char *value)
{
	static char problem[320];
	char why[200] = "";

	if (strncmp(value, "inet:", 5) == 0 && check_hostname(value + 5) != NULL)
		snprintf(why, sizeof(why), "a space or control character in the host");
	else if (check_one_line(value) != NULL)
		snprintf(why, sizeof(why), "a line break");
	else if (milter_spec_valid(value, why, sizeof(why)))
		return NULL;
	snprintf(problem, sizeof(problem), "must be \"inet:HOST:PORT\" or \"unix:PATH\" (%s)",
		why);
	return problem;
}

static const char *check_address(const char *value)
{
	return strchr(value, '@') ? NULL : "must be an address containing '@'";
}

static void *field_at(void *base, size_t offset)
{
	return (char *)base + offset;
}

static void store_integer(const struct key_spec *spec, void *base, long long value)
{
	void *field = field_at(base, spec->offset);

	/* The table bounds keep value inside the field's range. */
	switch (spec->kind) {
	case KEY_INT:
		*(int *)field = (int)value;
		break;
	case KEY_UNSIGNED:
		*(unsigned *)field = (unsigned)value;
		break;
	case KEY_UINT64:
		*(uint64_t *)field = (uint64_t)value;
		break;
	case KEY_BOOL:
		*(bool *)field = value != 0;
		break;
	case KEY_ENUM:
		*(int *)field = (int)value;
		break;
	default:
		fatal("config: store_integer on non-integer key %s", spec->name);
	}
}

static long long load_integer(const struct key_spec *spec, const void *base)
{
	const void *field = (const char *)base + spec->offset;

	switch (spec->kind) {
	case KEY_INT:
		return *(const int *)field;
	case KEY_UNSIGNED:
		return *(const unsigned *)field;
	case KEY_UINT64:
		return (long long)*(const uint64_t *)field;
	default:
		fatal("config: load_integer on non-integer key %s", spec->name);
	}
}

static int parse_integer(const struct key_spec *spec, json_t *value, void *base,
	const char *prefix, char *err, size_t errsz)
{
	long long v = json_is_integer(value) ? json_integer_value(value) : 0;

	/* Only JSON integers: 25.0 or "25" was an error in the original (Go int fields) too. */
	if (json_is_integer(value) && v >= spec->min && v <= spec->max) {
		store_integer(spec, base, v);
		return 0;
	}
	if (spec->max < INT32_MAX)
		set_error(err, errsz, "%s%s: must be an integer from %lld to %lld", prefix, spec->name,
			spec->min, spec->max);
	else if (json_is_integer(value) && v > spec->max)
		set_error(err, errsz, "%s%s: must be at most %lld", prefix, spec->name, spec->max);
	else
		set_error(err, errsz, "%s%s: must be a positive integer", prefix, spec->name);
	return -1;
}

/* Checks and copies one string; *out is NULL for "" when the key allows that. */
static int parse_string(const struct key_spec *spec, json_t *value, const char *path,
	char **out, char *err, size_t errsz)
{
	const char *s, *problem;

	if (!json_is_string(value)) {
		set_error(err, errsz, "%s: must be a string", path);
		return -1;
	}
	s = json_string_value(value);
	if (*s == '\0' && spec->kind == KEY_STRING) {
		if (spec->flags & KEY_REQUIRED) {
			set_error(err, errsz, "%s: must not be empty", path);
			return -1;
		}
		if (spec->flags & KEY_EMPTY_IS_ABSENT) {
			*out = NULL;
			return 0;
		}
	}
	/* jansson rejects \u0000 by default, so the C string is the whole value. */
	if (spec->check && (problem = spec->check(s)) != NULL) {
		set_error(err, errsz, "%s: %s", path, problem);
		return -1;
	}
	*out = xstrdup(s);
	if (spec->flags & KEY_LOWERCASE)
		ascii_lower_string(*out);
	return 0;
}

static int parse_string_list(const struct key_spec *spec, json_t *value, void *base,
	const char *path, char *err, size_t errsz)
{
	char ***list = field_at(base, spec->offset);
	size_t *count = field_at(base, spec->count_offset);
	char element[KEY_PATH_MAX + 32];

	if (!json_is_array(value)) {
		set_error(err, errsz, "%s: must be an array of strings", path);
		return -1;
	}
	/* Count first, so a failure half-way leaves a list config_free() can release. */
	*count = json_array_size(value);
	*list = xcalloc(*count, sizeof(**list));
	for (size_t i = 0; i < *count; i++) {
		snprintf(element, sizeof(element), "%s[%zu]", path, i);
		if (parse_string(spec, json_array_get(value, i), element, &(*list)[i], err, errsz))
			return -1;
	}
	return 0;
}

static int parse_bool(const struct key_spec *spec, json_t *value, void *base, const char *path,
	char *err, size_t errsz)
{
	if (!json_is_boolean(value)) {
		set_error(err, errsz, "%s: must be true or false", path);
		return -1;
	}
	store_integer(spec, base, json_is_true(value));
	return 0;
}

/* Names compare case-insensitively, as key names do. */
static int parse_enum(const struct key_spec *spec, json_t *value, void *base, const char *path,
	char *err, size_t errsz)
{
	char expected[128] = "";
	size_t used = 0;

	if (json_is_string(value)) {
		const char *s = json_string_value(value);

		for (int i = 0; spec->choices[i]; i++) {
			if (name_equal_nocase(spec->choices[i], s, strlen(s))) {
				store_integer(spec, base, i);
				return 0;
			}
		}
	}
	for (int i = 0; spec->choices[i] && used < sizeof(expected); i++) {
		int n = snprintf(expected + used, sizeof(expected) - used, "%s\"%s\"",
			i == 0 ? "" : spec->choices[i + 1] ? ", " : " or ", spec->choices[i]);
		used += n > 0 ? (size_t)n : 0;
	}
	set_error(err, errsz, "%s: must be %s", path, expected);
	return -1;
}

static int parse_object(json_t *object, const struct key_spec *keys, size_t key_count,
	void *base, const char *prefix, char *err, size_t errsz);

static int parse_servers(const struct key_spec *spec, json_t *value, void *base,
	const char *path, char *err, size_t errsz)
{
	struct server_config **servers = field_at(base, spec->offset);
	size_t *count = field_at(base, spec->count_offset);
	char prefix[KEY_PATH_MAX + 32];

	if (!json_is_array(value)) {
		set_error(err, errsz, "%s: must be an array of objects", path);
		return -1;
	}
	if (json_array_size(value) == 0) {
		set_error(err, errsz, "%s: must list at least one server", path);
		return -1;
	}
	*count = json_array_size(value);
	*servers = xcalloc(*count, sizeof(**servers));
	for (size_t i = 0; i < *count; i++) {
		json_t *server = json_array_get(value, i);

		if (!json_is_object(server)) {
			set_error(err, errsz, "%s[%zu]: must be an object", path, i);
			return -1;
		}
		snprintf(prefix, sizeof(prefix), "%s[%zu].", path, i);
		if (parse_object(server, server_keys, ARRAY_LEN(server_keys), &(*servers)[i], prefix,
			err, errsz))
			return -1;
	}
	return 0;
}

/* Warns about a key that means nothing for this Type, so a typo'd Type does not go unseen. */
static void warn_unused_key(const char *prefix, const char *name, const char *type)
{
	log_warn("config", "event=unused_key key=%s%s type=%s", prefix, name, type);
}

/* The rules that depend on Type, and the defaults that depend on other keys. */
static int check_destination(struct destination_config *d, const char *prefix, char *err,
	size_t errsz)
{
	bool oauth = d->oauth_client_file || d->oauth_token_file;

	if (!d->oauth_client_file != !d->oauth_token_file) {
		set_error(err, errsz, "%s%s: missing (%s is set; give both or neither)", prefix,
			d->oauth_client_file ? "OAuthTokenFile" : "OAuthClientFile",
			d->oauth_client_file ? "OAuthClientFile" : "OAuthTokenFile");
		return -1;
	}
	if (d->type == DESTINATION_IMAP) {
		if (!d->host) {
			set_error(err, errsz, "%sHost: missing", prefix);
			return -1;
		}
		if (!d->username) {
			set_error(err, errsz, "%sUsername: missing", prefix);
			return -1;
		}
		if (d->password && oauth) {
			set_error(err, errsz, "%sPassword: OAuthClientFile is set too; give one of them",
				prefix);
			return -1;
		}
		if (!d->password && !oauth) {
			set_error(err, errsz, "%sPassword: missing (or set OAuthClientFile and "
				"OAuthTokenFile)", prefix);
			return -1;
		}
		if (d->gmail_api_url)
			warn_unused_key(prefix, "GmailAPIURL", "imap");
	} else {
		/* The Gmail API takes OAuth access tokens only. */
		if (d->password) {
			set_error(err, errsz, "%sPassword: not used with Type \"gmail\" (it needs "
				"OAuthClientFile and OAuthTokenFile; for an app password use Type \"imap\")",
				prefix);
			return -1;
		}
		if (!oauth) {
			set_error(err, errsz, "%sOAuthClientFile: missing (Type \"gmail\" needs "
				"OAuthClientFile and OAuthTokenFile)", prefix);
			return -1;
		}
		if (d->host)
			warn_unused_key(prefix, "Host", "gmail");
		if (d->port)
			warn_unused_key(prefix, "Port", "gmail");
		if (d->username)
			warn_unused_key(prefix, "Username", "gmail");
		if (d->mailbox)
			warn_unused_key(prefix, "Mailbox", "gmail");
		/* Gmail's Junk is its SPAM label, not a mailbox name. */
		if (d->junk_mailbox)
			warn_unused_key(prefix, "JunkMailbox", "gmail");
	}
	if (d->port == 0)
		d->port = d->tls == DESTINATION_TLS_STARTTLS ? DESTINATION_STARTTLS_PORT :
			DESTINATION_IMPLICIT_TLS_PORT;
	if (!d->mailbox)
		d->mailbox = xstrdup(DESTINATION_DEFAULT_MAILBOX);
	if (!d->junk_mailbox)
		d->junk_mailbox = xstrdup(DESTINATION_DEFAULT_JUNK_MAILBOX);
	if (!d->gmail_api_url)
		d->gmail_api_url = xstrdup(DESTINATION_DEFAULT_GMAIL_API_URL);
	return 0;
}

static int parse_destination(const struct key_spec *spec, json_t *value, void *base,
	const char *path, char *err, size_t errsz)
{
	struct destination_config **destination = field_at(base, spec->offset);
	char prefix[KEY_PATH_MAX + 32];

	if (!json_is_object(value)) {
		set_error(err, errsz, "%s: must be an object", path);
		return -1;
	}
	/* Stored before it is filled, so a failure half-way leaves it for config_free(). */
	*destination = xcalloc(1, sizeof(**destination));
	snprintf(prefix, sizeof(prefix), "%s.", path);
	if (parse_object(value, destination_keys, ARRAY_LEN(destination_keys), *destination,
		prefix, err, errsz))
		return -1;
	return check_destination(*destination, prefix, err, errsz);
}

static void apply_default(const struct key_spec *spec, void *base)
{
	/* Strings, lists, servers and the destination are already NULL/0 in the zeroed struct. */
	if (spec->kind == KEY_INT || spec->kind == KEY_UNSIGNED || spec->kind == KEY_UINT64 ||
		spec->kind == KEY_BOOL || spec->kind == KEY_ENUM)
		store_integer(spec, base, spec->def);
}

static int parse_value(const struct key_spec *spec, json_t *value, void *base,
	const char *prefix, char *err, size_t errsz)
{
	char path[KEY_PATH_MAX];

	snprintf(path, sizeof(path), "%s%s", prefix, spec->name);
	switch (spec->kind) {
	case KEY_INT:
	case KEY_UNSIGNED:
	case KEY_UINT64:
		return parse_integer(spec, value, base, prefix, err, errsz);
	case KEY_STRING:
		return parse_string(spec, value, path, field_at(base, spec->offset), err, errsz);
	case KEY_STRING_LIST:
		return parse_string_list(spec, value, base, path, err, errsz);
	case KEY_SERVERS:
		return parse_servers(spec, value, base, path, err, errsz);
	case KEY_BOOL:
		return parse_bool(spec, value, base, path, err, errsz);
	case KEY_ENUM:
		return parse_enum(spec, value, base, path, err, errsz);
	case KEY_DESTINATION:
		return parse_destination(spec, value, base, path, err, errsz);
	}
	fatal("config: unknown kind for key %s", spec->name);
}

static bool key_name_is_plain(const char *name)
{
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == '"' || *p == '\\')
			return false;
	return true;
}

static void warn_unknown_key(const char *prefix, const char *name)
{
	char path[KEY_PATH_MAX], quoted[KEY_PATH_MAX * 4];

	snprintf(path, sizeof(path), "%s%s", prefix, name);
	/* The name comes from the file: quote it when it could break the key=value line. */
	if (key_name_is_plain(path))
		log_warn("config", "event=unknown_key key=%s", path);
	else
		log_warn("config", "event=unknown_key key=%s",
			log_quote(quoted, sizeof(quoted), path, strlen(path)));
}

/* Fills base from object following keys: unknown keys are warned about, absent ones get their
 * default. Key names match case-insensitively because the original's Go decoder did so. */
static int parse_object(json_t *object, const struct key_spec *keys, size_t key_count,
	void *base, const char *prefix, char *err, size_t errsz)
{
	json_t *values[MAX_KEYS_PER_OBJECT] = {0};
	const char *name;
	json_t *value;
	size_t i;

	json_object_foreach(object, name, value) {
		size_t len = strlen(name);

		for (i = 0; i < key_count; i++)
			if (name_equal_nocase(keys[i].name, name, len))
				break;
		if (i == key_count) {
			warn_unknown_key(prefix, name);
			continue;
		}
		/* Exact duplicates are already refused by JSON_REJECT_DUPLICATES. */
		if (values[i]) {
			set_error(err, errsz, "%s%s: given twice (key names are case-insensitive)",
				prefix, keys[i].name);
			return -1;
		}
		values[i] = value;
	}
	for (i = 0; i < key_count; i++) {
		/* null means absent, as it did for the original's Go decoder. */
		if (!values[i] || json_is_null(values[i])) {
			if (keys[i].flags & KEY_REQUIRED) {
				set_error(err, errsz, "%s%s: missing", prefix, keys[i].name);
				return -1;
			}
			apply_default(&keys[i], base);
		} else if (parse_value(&keys[i], values[i], base, prefix, err, errsz)) {
			return -1;
		}
	}
	return 0;
}

/* Two listeners on one port would fail at bind time with a less helpful message. */
static int check_ports_differ(const struct config *cfg, char *err, size_t errsz)
{
	for (size_t i = 0; i < ARRAY_LEN(config_keys); i++) {
		long long port;

		if (!(config_keys[i].flags & KEY_PORT))
			continue;
		port = load_integer(&config_keys[i], cfg);
		if (port == 0)
			continue;
		for (size_t j = 0; j < i; j++) {
			if ((config_keys[j].flags & KEY_PORT) &&
				load_integer(&config_keys[j], cfg) == port) {
				set_error(err, errsz, "%s: must differ from %s", config_keys[i].name,
					config_keys[j].name);
				return -1;
			}
		}
	}
	return 0;
}

static int check_servers(const struct config *cfg, char *err, size_t errsz)
{
	for (size_t i = 0; i < cfg->server_count; i++) {
		const struct server_config *server = &cfg->servers[i];

		if (server->mailbox_password && server->mailbox_password_hash) {
			set_error(err, errsz, "Servers[%zu].MailboxPasswordHash: MailboxPassword is set "
				"too; give one of them", i);
			return -1;
		}
		if (!server->mailbox_password && !server->mailbox_password_hash) {
			set_error(err, errsz, "Servers[%zu].MailboxPassword: missing (or set "
				"MailboxPasswordHash)", i);
			return -1;
		}
		/* An empty password would let anyone in who sends an empty one. */
		if (server->mailbox_password && server->mailbox_password[0] == '\0') {
			set_error(err, errsz, "Servers[%zu].MailboxPassword: must not be empty", i);
			return -1;
		}
		/* A key without a certificate (or the reverse) is a half-finished TLS setup. */
		if (!server->tls_key_path != !server->tls_cert_path) {
			set_error(err, errsz, "Servers[%zu].%s: missing (%s is set; give both or neither)",
				i, server->tls_key_path ? "TLSCertPath" : "TLSKeyPath",
				server->tls_key_path ? "TLSKeyPath" : "TLSCertPath");
			return -1;
		}
		if (!server->dkim_selector != !server->dkim_key_path) {
			set_error(err, errsz, "Servers[%zu].%s: missing (%s is set; give both or neither)",
				i, server->dkim_selector ? "DKIMKeyPath" : "DKIMSelector",
				server->dkim_selector ? "DKIMSelector" : "DKIMKeyPath");
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(cfg->servers[j].domain, server->domain) == 0) {
				set_error(err, errsz, "Servers[%zu].Domain: duplicate of Servers[%zu]", i, j);
				return -1;
			}
		}
	}
	return 0;
}

/* Some releases of the original called BlockedAddresses "BlacklistedAddresses"; a config
 * written for them keeps its blocks. (Both given: the new name wins, the old one is unknown.) */
static void accept_old_key_names(json_t *root)
{
	json_t *servers = json_object_get(root, "Servers");
	size_t i;
	json_t *server;

	if (!json_is_array(servers))
		return;
	json_array_foreach(servers, i, server) {
		json_t *old = json_object_get(server, "BlacklistedAddresses");
		if (!json_is_object(server) || !old || json_object_get(server, "BlockedAddresses"))
			continue;
		json_object_set(server, "BlockedAddresses", old);
		json_object_del(server, "BlacklistedAddresses");
	}
}

/* True when object has a non-null value for name (compared as parse_object does). */
static bool key_given(json_t *object, const char *name)
{
	const char *key;
	json_t *value;
	size_t len = strlen(name);

	json_object_foreach(object, key, value)
		if (name_equal_nocase(key, name, len) && !json_is_null(value))
			return true;
	return false;
}

static int config_from_json(json_t *root, struct config *out, char *err, size_t errsz)
{
	struct config cfg = {0};

	memset(out, 0, sizeof(*out));
	if (!json_is_object(root)) {
		set_error(err, errsz, "config: the top level must be a JSON object");
		return -1;
	}
	accept_old_key_names(root);
	if (parse_object(root, config_keys, ARRAY_LEN(config_keys), &cfg, "", err, errsz) ||
		check_ports_differ(&cfg, err, errsz) || check_servers(&cfg, err, errsz)) {
		config_free(&cfg);
		return -1;
	}
	if (cfg.dnsbl_zone_count > DNSBL_ZONES_MAX) {
		set_error(err, errsz, "DNSBLZones: must have at most %d zones", DNSBL_ZONES_MAX);
		config_free(&cfg);
		return -1;
	}
	cfg.submission_port_given = key_given(root, "SubmissionPort");
	cfg.submission_tls_port_given = key_given(root, "SubmissionTLSPort");
	cfg.spool_path_given = cfg.spool_path != NULL;
	if (!cfg.spool_path)
		cfg.spool_path = xstrdup(CONFIG_DEFAULT_SPOOL_PATH);
	/* Credentials for the smarthost only make sense together. */
	if (!cfg.outbound_relay_user != !cfg.outbound_relay_password) {
		set_error(err, errsz, "%s: missing (%s is set; give both or neither)",
			cfg.outbound_relay_user ? "OutboundRelayPassword" : "OutboundRelayUser",
			cfg.outbound_relay_user ? "OutboundRelayUser" : "OutboundRelayPassword");
		config_free(&cfg);
		return -1;
	}
	*out = cfg;
	return 0;
}

/* source names the input: jansson's own error.source says "<stream>" for files. */
static void set_json_error(const json_error_t *error, const char *source, char *err,
	size_t errsz)
{
	/* jansson reports line -1 when there is no position, e.g. the file cannot be opened. */
	if (error->line > 0)
		set_error(err, errsz, "%s:%d:%d: JSON syntax error: %s", source, error->line,
			error->column, error->text);
	else
		set_error(err, errsz, "%s", error->text);
}

/* The tail both loaders share; root is NULL when jansson could not parse the input. */
static int config_from_parse(json_t *root, const json_error_t *error, const char *source,
	struct config *out, char *err, size_t errsz)
{
	int ret;

	if (!root) {
		memset(out, 0, sizeof(*out));
		set_json_error(error, source, err, errsz);
		return -1;
	}
	ret = config_from_json(root, out, err, errsz);
	json_decref(root);
	return ret;
}

int config_load(const char *path, struct config *out, char *err, size_t errsz)
{
	json_error_t error;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &error);

	return config_from_parse(root, &error, path, out, err, errsz);
}

int config_load_string(const char *json, struct config *out, char *err, size_t errsz)
{
	json_error_t error;
	json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &error);

	return config_from_parse(root, &error, "<string>", out, err, errsz);
}

/* Frees what parse_object() may have stored under keys, complete or half-filled. */
static void free_object(const struct key_spec *keys, size_t key_count, void *base)
{
	for (size_t i = 0; i < key_count; i++) {
		void *field = field_at(base, keys[i].offset);
		size_t count = 0;

		if (keys[i].kind == KEY_STRING_LIST || keys[i].kind == KEY_SERVERS)
			count = *(size_t *)field_at(base, keys[i].count_offset);
		switch (keys[i].kind) {
		case KEY_STRING:
			free(*(char **)field);
			break;
		case KEY_STRING_LIST:
			for (size_t j = 0; j < count; j++)
				free((*(char ***)field)[j]);
			free(*(char ***)field);
			break;
		case KEY_SERVERS:
			for (size_t j = 0; j < count; j++)
				free_object(server_keys, ARRAY_LEN(server_keys),
					&(*(struct server_config **)field)[j]);
			free(*(struct server_config **)field);
			break;
		case KEY_DESTINATION:
			if (*(struct destination_config **)field)
				free_object(destination_keys, ARRAY_LEN(destination_keys),
					*(struct destination_config **)field);
			free(*(struct destination_config **)field);
			break;
		default:
			break;
		}
	}
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	free_object(config_keys, ARRAY_LEN(config_keys), cfg);
	memset(cfg, 0, sizeof(*cfg));
}

const struct server_config *config_find_domain(const struct config *cfg, const char *domain,
	size_t len)
{
	for (size_t i = 0; i < cfg->server_count; i++) {
		const char *candidate = cfg->servers[i].domain;

		if (name_equal_nocase(candidate, domain, len))
			return &cfg->servers[i];
	}
	return NULL;
}

bool config_address_blocked(const struct server_config *server, const char *address, size_t len)
{
	for (size_t i = 0; i < server->blocked_count; i++) {
		const char *blocked = server->blocked_addresses[i];

		if (name_equal_nocase(blocked, address, len))
			return true;
	}
	return false;
}

bool config_has_tls(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->server_count; i++)
		if (cfg->servers[i].tls_cert_path)
			return true;
	return false;
}
