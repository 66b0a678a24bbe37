/* auth.c: mailbox login names, constant-time password checks, SASL PLAIN decoding. */
#include "auth.h"

#include "password.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>
#include <strings.h>

#define MAILBOX_USER "mailbox@"

const struct server_config *auth_find_mailbox(const struct config *cfg, const char *user,
	size_t len)
{
	size_t prefix = strlen(MAILBOX_USER);

	if (len <= prefix || strncasecmp(user, MAILBOX_USER, prefix) != 0)
		return NULL;
	return config_find_domain(cfg, user + prefix, len - prefix);
}

bool auth_check_password(const struct server_config *server, const char *password, size_t len)
{
	unsigned char want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];

	/* The config holds exactly one of the two. */
	if (server->mailbox_password_hash)
		return password_hash_verify(server->mailbox_password_hash, password, len);
	if (!server->mailbox_password)
		return false;
	/* Comparing digests makes the time independent of both lengths and contents. */
	SHA256((const unsigned char *)server->mailbox_password, strlen(server->mailbox_password),
		want);
	SHA256((const unsigned char *)password, len, got);
	return CRYPTO_memcmp(want, got, sizeof(want)) == 0;
}

int auth_parse_plain(const char *msg, size_t len, const char **authzid, size_t *authzid_len,
	const char **authcid, size_t *authcid_len, const char **password, size_t *password_len)
{
	const char *first = memchr(msg, '\0', len);
	const char *second;

	if (!first)
		return -1;
	second = memchr(first + 1, '\0', len - (size_t)(first + 1 - msg));
	if (!second)
		return -1;
	/* RFC 4616 2: exactly three fields; authcid and passwd are non-empty. */
	if (second == first + 1 || second + 1 == msg + len)
		return -1;
	*authzid = msg;
	*authzid_len = (size_t)(first - msg);
	*authcid = first + 1;
	*authcid_len = (size_t)(second - first - 1);
	*password = second + 1;
	*password_len = len - (size_t)(second + 1 - msg);
	if (memchr(*password, '\0', *password_len))
		return -1;
	return 0;
}

long auth_base64_decode(const char *in, size_t len, unsigned char *out, size_t outsz)
{
	unsigned char tmp[3];
	size_t o = 0;
	unsigned val = 0;
	int bits = 0, pad = 0;

	if (len == 1 && in[0] == '=')
		return 0;
	if (len % 4 != 0)
		return -1;
	(void)tmp;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		int v;
		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '+')
			v = 62;
		else if (c == '/')
			v = 63;
		else if (c == '=' && i >= len - 2) {
			pad++;
			continue;
		} else
			return -1;
		if (pad)
			return -1; /* data after padding */
		val = (val << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= outsz)
				return -1;
			out[o++] = (unsigned char)(val >> bits);
			val &= (1u << bits) - 1;
		}
	}
	if (bits >= 6 || (pad == 1 && bits != 2) || (pad == 2 && bits != 4))
		return -1;
	return (long)o;
}
