/* auth.c: mailbox login names, constant-time password checks, SASL PLAIN decoding. */
#include "auth.h"

#include "mail/base64.h"
#include "password.h"

#include <openssl/crypto.h>
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
	/* RFC 4954 4: "=" alone is an empty response, which plain base64 has no spelling for. */
	if (len == 1 && in[0] == '=')
		return 0;
	return base64_decode(in, len, out, outsz);
}
