/* mail/base64.c: base64 encoding and decoding around EVP_EncodeBlock/EVP_DecodeBlock, which
 * work on whole groups and know nothing of padding: the checks and lengths here add that. */
#include "mail/base64.h"

#include <string.h>

#include <openssl/evp.h>

/* Octets encoded per EVP_EncodeBlock call: a multiple of 3, so only the last chunk pads, and
 * small enough for a stack buffer and for EVP's int lengths. */
#define ENCODE_CHUNK 3072

static bool is_base64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '+' || c == '/';
}

size_t base64_encoded_length(size_t len)
{
	return (len + 2) / 3 * 4;
}

void base64_encode(struct strbuf *out, const void *in, size_t len)
{
	unsigned char chunk[ENCODE_CHUNK / 3 * 4 + 1];
	const unsigned char *p = in;

	while (len > 0) {
		size_t n = len < ENCODE_CHUNK ? len : ENCODE_CHUNK;
		int written = EVP_EncodeBlock(chunk, p, (int)n);

		strbuf_append(out, chunk, (size_t)written);
		p += n;
		len -= n;
	}
	/* The input may be a SASL password. */
	explicit_bzero(chunk, sizeof(chunk));
}

/* Characters EVP_DecodeBlock is given at once: whole groups, bounded for its int length. */
#define DECODE_PIECE (ENCODE_CHUNK / 3 * 4)

/* Decodes whole groups of four alphabet characters (len % 4 == 0, no "=") into out, which
 * has room for len / 4 * 3 octets. */
static void decode_whole_groups(const char *in, size_t len, unsigned char *out)
{
	for (size_t off = 0; off < len; off += DECODE_PIECE) {
		size_t piece = len - off < DECODE_PIECE ? len - off : DECODE_PIECE;

		EVP_DecodeBlock(out + off / 4 * 3, (const unsigned char *)in + off, (int)piece);
	}
}

/* Decodes a final group of 2 or 3 alphabet characters into tail and returns the octets it
 * holds (1 or 2). EVP_DecodeBlock decodes "=" as zero bits and counts those octets too, so
 * the padding is added here and its octets are not counted. */
static size_t decode_short_group(const char *in, size_t rest, unsigned char tail[3])
{
	char group[4];

	memcpy(group, in, rest);
	memset(group + rest, '=', sizeof(group) - rest);
	EVP_DecodeBlock(tail, (const unsigned char *)group, (int)sizeof(group));
	return rest - 1;
}

static bool alphabet_only(const char *in, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!is_base64_char(in[i]))
			return false;
	return true;
}

/* Octets that len alphabet characters (len % 4 != 1) decode to. */
static size_t decoded_length(size_t len)
{
	return len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
}

long base64_decode(const char *in, size_t len, unsigned char *out, size_t outsz)
{
	size_t data = len, whole;
	unsigned char tail[3];

	if (len % 4 != 0)
		return -1;
	/* RFC 4648 3.2: one or two "=" complete the final group. */
	while (data > 0 && len - data < 2 && in[data - 1] == '=')
		data--;
	if (!alphabet_only(in, data) || data % 4 == 1 || decoded_length(data) > outsz)
		return -1;
	whole = data / 4 * 4;
	decode_whole_groups(in, whole, out);
	if (data > whole) {
		size_t n = decode_short_group(in + whole, data - whole, tail);

		memcpy(out + whole / 4 * 3, tail, n);
		explicit_bzero(tail, sizeof(tail));
	}
	return (long)decoded_length(data);
}

bool base64_decode_unpadded(const char *in, size_t len, struct strbuf *out)
{
	unsigned char piece[DECODE_PIECE / 4 * 3];
	size_t whole;

	while (len > 0 && in[len - 1] == '=')
		len--;
	if (!alphabet_only(in, len) || len % 4 == 1)
		return false;
	whole = len / 4 * 4;
	for (size_t off = 0; off < whole; off += DECODE_PIECE) {
		size_t n = whole - off < DECODE_PIECE ? whole - off : DECODE_PIECE;

		decode_whole_groups(in + off, n, piece);
		strbuf_append(out, piece, n / 4 * 3);
	}
	if (len > whole)
		strbuf_append(out, piece, decode_short_group(in + whole, len - whole, piece));
	return true;
}
