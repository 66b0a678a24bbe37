/* dkim.h: DKIM signing of outbound mail (RFC 6376) with libopendkim: rsa-sha256,
 * relaxed/relaxed, a fixed list of header fields, From and the other display fields oversigned.
 *
 * A signer is made once per Server from "DKIMSelector" and "DKIMKeyPath" and then shared: any
 * number of worker threads may call dkim_signer_sign() on it at the same time. */
#ifndef MAILPOPBOX_MAIL_DKIM_H
#define MAILPOPBOX_MAIL_DKIM_H

#include <stddef.h>

#include <openssl/evp.h>

#include "strbuf.h"

struct dkim_signer;

/* Checks that domain and selector are DNS names that can form "SELECTOR._domainkey.DOMAIN"
 * (RFC 6376 3.1 and 3.6.2.1: dot-separated letter/digit/hyphen labels, at most 63 octets each,
 * the whole name at most 253). Returns 0, or -1 with a message in err. */
int dkim_names_check(const char *domain, const char *selector, char *err, size_t errsz);

/* Reads the PEM private key at key_path (PKCS#8 or traditional "RSA PRIVATE KEY", not
 * encrypted) and keeps it in memory. The key must be RSA of at least 1024 bits (RFC 8301 3.2);
 * below 2048 bits a warning is logged. Returns NULL with a message in err on failure. */
struct dkim_signer *dkim_signer_new(const char *domain, const char *selector, const char *key_path,
	char *err, size_t errsz);

/* Signs one message and appends "DKIM-Signature: ...\r\n" to signature_field: folded with
 * CRLF + whitespace, lines at most 78 octets, to be placed above the message's header fields.
 *
 * header_section holds the message's header fields as CRLF lines, ending with the empty line
 * that separates them from the body (so it ends in "\r\n\r\n"). body_fd is read from its
 * current position to EOF; the body must use CRLF line ends and be free of SMTP dot-stuffing,
 * i.e. exactly the octets that will be sent after the header section. A non-empty body that
 * does not end in CRLF is signed as if it did, as SMTP transmission adds one (RFC 5321 4.1.1.4).
 *
 * A message without a From field cannot be signed (RFC 6376 5.4). Returns 0, or -1 with a
 * message in err and signature_field unchanged. Safe to call from several threads at once. */
int dkim_signer_sign(struct dkim_signer *signer, const char *header_section, size_t header_len,
	int body_fd, struct strbuf *signature_field, char *err, size_t errsz);

/* Frees the signer and wipes its copy of the private key. NULL is a no-op. */
void dkim_signer_free(struct dkim_signer *signer);

/* ---- shared with dkim_keygen.c ---- */

/* Formats into err like snprintf (nothing when errsz is 0). */
void dkim_error_set(char *err, size_t errsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The calling thread's oldest OpenSSL error as text in buf; clears the thread's error queue. */
const char *dkim_openssl_error(char *buf, size_t bufsz);
/* pkey as unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY"), NUL-terminated, length in *len; NULL
 * with err set on failure. Release with dkim_private_key_pem_free, which wipes it. */
unsigned char *dkim_private_key_pem(EVP_PKEY *pkey, size_t *len, char *err, size_t errsz);
void dkim_private_key_pem_free(unsigned char *pem, size_t len);

#endif
