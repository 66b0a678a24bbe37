/* dkim_keygen.c: `mailpopbox dkim-keygen`: a new RSA signing key written durably with mode 0600,
 * and the DKIM key record (RFC 6376 3.6.1) to publish in DNS, printed as a zone-file line. */
#include "mail/dkim_keygen.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "alloc.h"
#include "fsutil.h"
#include "mail/base64.h"
#include "mail/dkim.h"

/* RFC 1035 3.3.14: a TXT record is a sequence of character-strings of at most 255 octets each;
 * RFC 6376 3.6.2.2: verifiers join them with nothing in between. */
#define TXT_STRING_MAX 255

/* The key record of RFC 6376 3.6.1: "v=DKIM1; k=rsa; p=" and, for p=, the base64 of the DER
 * SubjectPublicKeyInfo (RFC 6376 3.3.1: an RSA public key in that ASN.1 structure). */
static char *dkim_key_record(EVP_PKEY *pkey, char *err, size_t errsz)
{
	static const char prefix[] = "v=DKIM1; k=rsa; p=";
	char detail[256];
	unsigned char *der = NULL;
	struct strbuf record;
	int der_len;

	der_len = i2d_PUBKEY(pkey, &der);
	if (der_len <= 0) {
		dkim_error_set(err, errsz, "cannot encode the public key: %s",
			dkim_openssl_error(detail, sizeof(detail)));
		return NULL;
	}
	strbuf_init(&record);
	strbuf_append_str(&record, prefix);
	base64_encode(&record, der, (size_t)der_len);
	OPENSSL_free(der);
	return record.data;
}


/* Creates key_path (never replacing anything) and stores the PEM there durably; returns 0 or
 * -1 with err set and no file left behind. */
static int dkim_key_write(const char *pem, size_t pem_len, const char *key_path, char *err,
	size_t errsz)
{
	struct fs_durable_file key;

	/* Created in place, exclusively: an existing key may be the one published in DNS;
	 * overwriting it would break every signature until the new record propagates.
	 * fs_durable_create also refuses symlinks. */
	if (fs_durable_create(&key, key_path) < 0) {
		if (errno == EEXIST)
			dkim_error_set(err, errsz, "%s already exists; refusing to overwrite "
				"it (remove it first if it is really unused, or choose another "
				"KEYFILE)", key_path);
		else
			dkim_error_set(err, errsz, "cannot create %s: %s", key_path,
				strerror(errno));
		return -1;
	}
	/* The umask may only narrow 0600; fchmod makes it exactly owner read/write. */
	if (fchmod(key.fd, 0600) != 0 || fs_write_all(key.fd, pem, pem_len) != 0 ||
	    fs_durable_sync(&key, 0) != 0) {
		dkim_error_set(err, errsz, "cannot write %s: %s", key_path, strerror(errno));
		fs_durable_free(&key, "dkim");
		return -1;
	}
	/* Published under the name it was written to: only its directory entry is made durable. */
	if (fs_durable_publish(&key, NULL, NULL) != 0) {
		dkim_error_set(err, errsz, "cannot make %s durable (fsync of its directory): %s",
			key_path, strerror(errno));
		unlink(key_path);
		fs_durable_free(&key, "dkim");
		return -1;
	}
	fs_durable_free(&key, "dkim");
	return 0;
}

/* The zone-file line for the key record and a hint for the operator. */
static void dkim_record_print(FILE *out, const char *domain, const char *selector,
	const char *record, const char *key_path)
{
	size_t len = strlen(record);
	char *abs_path = realpath(key_path, NULL);

	fprintf(out, "%s._domainkey.%s. IN TXT", selector, domain);
	for (size_t off = 0; off < len; off += TXT_STRING_MAX) {
		size_t n = len - off < TXT_STRING_MAX ? len - off : TXT_STRING_MAX;

		fprintf(out, " \"%.*s\"", (int)n, record + off);
	}
	fprintf(out, "\n; Publish this TXT record for %s (web DNS panels: the quoted parts "
		"joined, without quotes), then set \"DKIMSelector\": \"%s\" and "
		"\"DKIMKeyPath\": \"%s\" in its Server.\n", domain, selector,
		abs_path ? abs_path : key_path);
	free(abs_path);
}

int dkim_keygen(const char *domain, const char *selector, const char *key_path, FILE *out,
	char *err, size_t errsz)
{
	char detail[256];
	unsigned char *pem;
	size_t pem_len;
	EVP_PKEY *pkey;
	char *record;
	int written;

	if (dkim_names_check(domain, selector, err, errsz) != 0)
		return -1;
	ERR_clear_error();
	pkey = EVP_RSA_gen(DKIM_KEYGEN_RSA_BITS);
	if (!pkey) {
		dkim_error_set(err, errsz, "cannot generate an RSA key: %s",
			dkim_openssl_error(detail, sizeof(detail)));
		return -1;
	}
	/* Both encodings before the file exists, so a failure leaves nothing behind. */
	record = dkim_key_record(pkey, err, errsz);
	pem = record ? dkim_private_key_pem(pkey, &pem_len, err, errsz) : NULL;
	EVP_PKEY_free(pkey);
	if (!pem) {
		free(record);
		return -1;
	}
	written = dkim_key_write((const char *)pem, pem_len, key_path, err, errsz);
	dkim_private_key_pem_free(pem, pem_len);
	if (written != 0) {
		free(record);
		return -1;
	}
	dkim_record_print(out, domain, selector, record, key_path);
	free(record);
	/* The key is already on disk and a second run would refuse to replace it, so say where
	 * it is if the record got lost. */
	if (fflush(out) != 0 || ferror(out)) {
		dkim_error_set(err, errsz, "the key was written to %s but the DNS record could "
			"not be printed: %s", key_path, strerror(errno));
		return -1;
	}
	return 0;
}
