/* dkim_keygen.h: `mailpopbox dkim-keygen DOMAIN SELECTOR KEYFILE`: makes a DKIM signing key and
 * prints the DNS TXT record that publishes its public half (RFC 6376 3.6.1). */
#ifndef MAILPOPBOX_MAIL_DKIM_KEYGEN_H
#define MAILPOPBOX_MAIL_DKIM_KEYGEN_H

#include <stddef.h>
#include <stdio.h>

/* Bits of the RSA keys we generate (RFC 8301 3.2 recommends at least 2048). */
#define DKIM_KEYGEN_RSA_BITS 2048

/* Generates a DKIM_KEYGEN_RSA_BITS RSA key, writes it as unencrypted PKCS#8 PEM to key_path
 * (created with mode 0600; an existing file, even a dangling symlink, is never overwritten),
 * fsyncs the file and its directory, then prints to out the zone-file line
 *   SELECTOR._domainkey.DOMAIN. IN TXT "v=DKIM1; k=rsa; p=..." "..."
 * (the value split into quoted strings of at most 255 octets) and a one-line "; " hint.
 * Returns 0, or -1 with a message in err. A failure leaves no key file behind, except when
 * only printing to out failed: then err names the key file that was written. */
int dkim_keygen(const char *domain, const char *selector, const char *key_path, FILE *out,
	char *err, size_t errsz);

#endif
