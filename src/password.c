/* password.c: crypt(3) hashes for "MailboxPasswordHash" (libxcrypt's crypt_rn and
 * crypt_gensalt_rn), and the "mailpopbox hash-password" command. */
#include "password.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "alloc.h"

/* The alphabet of crypt(3) salts and hashes ("./0-9A-Za-z", bcrypt's in another order). */
static bool is_crypt_char(char c)
{
	return c == '.' || c == '/' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		(c >= 'a' && c <= 'z');
}

static size_t crypt_char_run(const char *s)
{
	size_t n = 0;

	while (is_crypt_char(s[n]))
		n++;
	return n;
}

/* After "$6$": ["rounds=N$"] SALT "$" HASH. libxcrypt refuses rounds outside 1000..999999999
 * and uses at most 16 salt characters; the hash is 64 bytes, 86 characters. */
static bool sha512_well_formed(const char *p)
{
	size_t n;

	if (strncmp(p, "rounds=", 7) == 0) {
		p += 7;
		n = strspn(p, "0123456789");
		if (n == 0 || n > 9 || p[0] == '0' || p[n] != '$' || strtoul(p, NULL, 10) < 1000)
			return false;
		p += n + 1;
	}
	n = crypt_char_run(p);
	if (n == 0 || n > 16 || p[n] != '$')
		return false;
	p += n + 1;
	return crypt_char_run(p) == 86 && p[86] == '\0';
}

/* After "$2b$" or "$2y$": a two-digit cost 04..31, "$", 22 salt and 31 hash characters. */
static bool bcrypt_well_formed(const char *p)
{
	if (p[0] < '0' || p[0] > '3' || p[1] < '0' || p[1] > '9' || p[2] != '$')
		return false;
	int cost = (p[0] - '0') * 10 + (p[1] - '0');
	if (cost < 4 || cost > 31)
		return false;
	return crypt_char_run(p + 3) == 53 && p[3 + 53] == '\0';
}

/* After "$y$": PARAMS "$" SALT "$" HASH, the hash 32 bytes, 43 characters. */
static bool yescrypt_well_formed(const char *p)
{
	size_t n = crypt_char_run(p);

	if (n == 0 || p[n] != '$')
		return false;
	p += n + 1;
	n = crypt_char_run(p);
	if (n == 0 || p[n] != '$')
		return false;
	p += n + 1;
	return crypt_char_run(p) == 43 && p[43] == '\0';
}

struct hash_scheme {
	const char *prefix;
	bool (*well_formed)(const char *after_prefix);
	const char *problem;
};

static const struct hash_scheme hash_schemes[] = {
	{"$y$", yescrypt_well_formed,
		"must be a complete yescrypt hash: $y$PARAMS$SALT$ and 43 hash characters"},
	{"$6$", sha512_well_formed,
		"must be a complete SHA-512-crypt hash: $6$[rounds=N$]SALT$ and 86 hash characters"},
	{"$2b$", bcrypt_well_formed,
		"must be a complete bcrypt hash: $2b$COST$ and 53 salt and hash characters"},
	{"$2y$", bcrypt_well_formed,
		"must be a complete bcrypt hash: $2y$COST$ and 53 salt and hash characters"},
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* crypt_data is about 32 KB: too big for a worker thread's stack, and one per call keeps
 * threads from sharing state (crypt(3) itself uses a static buffer). Zeroed, as crypt_rn
 * requires before first use. */
static struct crypt_data *crypt_data_new(void)
{
	return xcalloc(1, sizeof(struct crypt_data));
}

/* It held the password's intermediate state. */
static void crypt_data_free(struct crypt_data *data)
{
	OPENSSL_clear_free(data, sizeof(*data));
}

#ifndef CRYPT_CHECKSALT_AVAILABLE
/* Without crypt_checksalt() only a trial hash tells whether libcrypt has the method. */
static bool method_available(const char *hash)
{
	struct crypt_data *data = crypt_data_new();
	const char *out = crypt_rn("", hash, data, sizeof(*data));
	bool ok = out && out[0] != '*';

	crypt_data_free(data);
	return ok;
}
#endif

const char *password_hash_problem(const char *hash)
{
	const struct hash_scheme *scheme = NULL;

	for (size_t i = 0; i < ARRAY_LEN(hash_schemes); i++)
		if (strncmp(hash, hash_schemes[i].prefix, strlen(hash_schemes[i].prefix)) == 0)
			scheme = &hash_schemes[i];
	if (!scheme)
		return "must be a yescrypt ($y$), SHA-512-crypt ($6$) or bcrypt ($2b$, $2y$) hash, "
			"as printed by mailpopbox hash-password";
	if (strlen(hash) >= CRYPT_OUTPUT_SIZE || !scheme->well_formed(hash + strlen(scheme->prefix)))
		return scheme->problem;
#ifdef CRYPT_CHECKSALT_AVAILABLE
	if (crypt_checksalt(hash) != CRYPT_SALT_OK)
#else
	if (!method_available(hash))
#endif
		return "must use a hashing method this system's libcrypt supports and has enabled";
	return NULL;
}

bool password_hash_verify(const char *hash, const char *password, size_t len)
{
	size_t hash_len = strlen(hash);
	bool match = false;

	/* crypt(3) reads a C string: a NUL would cut the password short and let a prefix in. */
	if (memchr(password, '\0', len))
		return false;
	char *phrase = xmalloc(len + 1);
	memcpy(phrase, password, len);
	phrase[len] = '\0';
	struct crypt_data *data = crypt_data_new();
	const char *out = crypt_rn(phrase, hash, data, sizeof(*data));
	/* The hash's length is no secret (it is fixed per scheme); its bytes are. */
	if (out && out[0] != '*' && strlen(out) == hash_len)
		match = CRYPTO_memcmp(out, hash, hash_len) == 0;
	crypt_data_free(data);
	OPENSSL_clear_free(phrase, len + 1);
	return match;
}

int password_hash_make(const char *prefix, unsigned long count, const char *password, char *out,
	size_t outsz)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	int status = -1;

	/* NULL entropy makes libcrypt take the salt from the kernel's random source. */
	if (!crypt_gensalt_rn(prefix, count, NULL, 0, setting, (int)sizeof(setting)))
		return -1;
	struct crypt_data *data = crypt_data_new();
	const char *hash = crypt_rn(password, setting, data, sizeof(*data));
	if (hash && hash[0] != '*' && strlen(hash) < outsz) {
		memcpy(out, hash, strlen(hash) + 1);
		status = 0;
	}
	crypt_data_free(data);
	return status;
}

/* ---- hash-password ---- */

struct scheme_name {
	const char *name;
	const char *prefix;
	unsigned long count; /* crypt_gensalt(3) cost */
	const char *description;
};

/* libcrypt's default costs, but for bcrypt: its default of 5 (32 rounds) is far below the
 * 10 (1024 rounds) OpenBSD, where bcrypt comes from, has long used. */
static const struct scheme_name scheme_names[] = {
	{"yescrypt", "$y$", 0, "yescrypt"},
	{"sha512", "$6$", 0, "SHA-512-crypt"},
	{"bcrypt", "$2b$", 10, "bcrypt"},
};

enum read_status {
	READ_OK,
	READ_TOO_LONG,
	READ_NUL,
	READ_ERROR,
};

/* One line from in without its LF (or CRLF) into buf, which holds PASSWORD_INPUT_MAX bytes
 * and a NUL. End of input ends the line too. */
static enum read_status read_password_line(FILE *in, char buf[PASSWORD_INPUT_MAX + 2],
	size_t *len)
{
	size_t n = 0;
	bool nul = false, too_long = false;
	int c;

	/* Reads the whole line even when it is refused, so nothing of it is left in stdio. */
	while ((c = getc(in)) != EOF && c != '\n') {
		if (c == '\0')
			nul = true;
		if (n < PASSWORD_INPUT_MAX + 1)
			buf[n++] = (char)c;
		else
			too_long = true;
	}
	if (c == EOF && ferror(in))
		return READ_ERROR;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	*len = n;
	if (too_long || n > PASSWORD_INPUT_MAX)
		return READ_TOO_LONG;
	return nul ? READ_NUL : READ_OK;
}

static struct termios saved_termios;
static volatile sig_atomic_t echo_is_off;

/* Ctrl-C at the prompt must not leave the terminal without echo. */
static void restore_echo_and_die(int sig)
{
	if (echo_is_off)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
	signal(sig, SIG_DFL);
	raise(sig);
}

static enum read_status read_password_no_echo(const char *prompt,
	char buf[PASSWORD_INPUT_MAX + 2], size_t *len)
{
	static const int signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	struct sigaction action = {.sa_handler = restore_echo_and_die};
	struct termios quiet;
	enum read_status status;

	fputs(prompt, stderr);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &saved_termios) != 0)
		return read_password_line(stdin, buf, len);
	for (size_t i = 0; i < ARRAY_LEN(signals); i++)
		sigaction(signals[i], &action, NULL);
	quiet = saved_termios;
	/* ECHONL still shows the Enter key, so the next prompt starts on a new line. */
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	echo_is_off = 1;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	status = read_password_line(stdin, buf, len);
	tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
	echo_is_off = 0;
	return status;
}

/* Reads the password (twice from a terminal) into buf. Returns 0, or 1 with a message. */
static int read_password(char buf[PASSWORD_INPUT_MAX + 2], size_t *len)
{
	char again[PASSWORD_INPUT_MAX + 2];
	size_t again_len = 0;
	enum read_status status;
	bool tty = isatty(STDIN_FILENO);
	int result = 1;

	status = tty ? read_password_no_echo("Password: ", buf, len) :
		read_password_line(stdin, buf, len);
	if (status == READ_OK && *len > 0 && tty) {
		status = read_password_no_echo("Again: ", again, &again_len);
		if (status == READ_OK && (again_len != *len || memcmp(again, buf, *len) != 0)) {
			fprintf(stderr, "mailpopbox: the two passwords differ; nothing hashed\n");
			goto out;
		}
	}
	switch (status) {
	case READ_OK:
		if (*len == 0) {
			fprintf(stderr, "mailpopbox: empty password; nothing hashed\n");
			goto out;
		}
		result = 0;
		break;
	case READ_TOO_LONG:
		fprintf(stderr, "mailpopbox: password longer than %d bytes; nothing hashed\n",
			PASSWORD_INPUT_MAX);
		break;
	case READ_NUL:
		fprintf(stderr, "mailpopbox: password contains a NUL byte, which crypt(3) cannot "
			"hash\n");
		break;
	case READ_ERROR:
		perror("mailpopbox: reading the password");
		break;
	}
out:
	OPENSSL_cleanse(again, sizeof(again));
	return result;
}

/* Says why on stderr when libcrypt cannot. */
static int hash_with(const struct scheme_name *scheme, const char *password,
	char hash[CRYPT_OUTPUT_SIZE])
{
	if (password_hash_make(scheme->prefix, scheme->count, password, hash, CRYPT_OUTPUT_SIZE) == 0)
		return 0;
	fprintf(stderr, "mailpopbox: this system's libcrypt cannot make %s hashes\n",
		scheme->description);
	return -1;
}

static void hash_password_usage(void)
{
	fprintf(stderr, "usage: mailpopbox hash-password [--scheme yescrypt|sha512|bcrypt]\n");
}

int password_command(int argc, char **argv)
{
	const struct scheme_name *scheme = &scheme_names[0];
	bool chosen = false;
	char password[PASSWORD_INPUT_MAX + 2], hash[CRYPT_OUTPUT_SIZE];
	size_t len = 0;
	int status = 1;

	if (argc == 2 && strcmp(argv[0], "--scheme") == 0) {
		scheme = NULL;
		for (size_t i = 0; i < ARRAY_LEN(scheme_names); i++)
			if (strcmp(argv[1], scheme_names[i].name) == 0)
				scheme = &scheme_names[i];
		chosen = true;
	}
	if (!scheme || (argc != 0 && !chosen)) {
		hash_password_usage();
		return 2;
	}
	if (read_password(password, &len) != 0)
		goto out;
	if (strcmp(scheme->prefix, "$2b$") == 0 && len > PASSWORD_BCRYPT_INPUT_MAX)
		fprintf(stderr, "mailpopbox: warning: bcrypt uses only the first %d bytes of a "
			"password\n", PASSWORD_BCRYPT_INPUT_MAX);
	if (hash_with(scheme, password, hash) != 0) {
		/* Some distributions build libxcrypt without yescrypt; SHA-512-crypt is everywhere. */
		if (chosen)
			goto out;
		scheme = &scheme_names[1];
		fprintf(stderr, "mailpopbox: using %s instead\n", scheme->description);
		if (hash_with(scheme, password, hash) != 0)
			goto out;
	}
	printf("%s\n", hash);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("mailpopbox: writing the hash");
		goto out;
	}
	status = 0;
out:
	OPENSSL_cleanse(password, sizeof(password));
	return status;
}
