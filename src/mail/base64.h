/* mail/base64.h: base64 (RFC 4648 4) for SASL (RFC 4954), MIME encoded-words (RFC 2047) and
 * DKIM key records (RFC 6376), on OpenSSL's EVP block coder. Pure: no I/O. */
#ifndef MAILPOPBOX_MAIL_BASE64_H
#define MAILPOPBOX_MAIL_BASE64_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

/* Characters base64_encode appends for len octets (padding included). */
size_t base64_encoded_length(size_t len);
/* Appends the padded base64 of the len octets at in to out. */
void base64_encode(struct strbuf *out, const void *in, size_t len);
/* Strict decoding (RFC 4648 3.3: anything outside the alphabet is an error): len is a
 * multiple of 4, "=" only as the one or two final characters. Writes into out (capacity
 * outsz) and returns the decoded length, or -1 for bad input or too small a buffer (out may
 * then hold part of the result). */
long base64_decode(const char *in, size_t len, unsigned char *out, size_t outsz);
/* Decoding as mail readers do for RFC 2047 4.1 B words: the final padding may be missing or
 * longer, anything else as base64_decode. Appends the octets to out; false (out unchanged)
 * on bad input. */
bool base64_decode_unpadded(const char *in, size_t len, struct strbuf *out);

#endif
