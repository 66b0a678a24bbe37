/* dkim.c: DKIM-Signature generation for outbound mail (RFC 6376) on top of libopendkim, which
 * does the canonicalization, hashing and tag formatting; this file chooses the parameters,
 * loads and checks the key, feeds the message and hands back a folded header field. */
#include "mail/dkim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <opendkim/dkim.h>

#include "alloc.h"
#include "log.h"

/* RFC 8301 3.2: signers MUST use RSA keys of at least 1024 bits and SHOULD use 2048. */
#define DKIM_RSA_MIN_BITS 1024
#define DKIM_RSA_RECOMMENDED_BITS 2048
/* RFC 1035 2.3.4 / RFC 6376 3.6.2.1: DNS labels and names. */
#define DNS_LABEL_MAX 63
#define DNS_NAME_MAX 253
/* Octets read from the body per dkim_chunk() call. */
#define DKIM_BODY_CHUNK 16384

/* RFC 6376 5.4.1: the fields that carry the message's meaning to its reader. Only those present
 * are signed (libopendkim matches this list against the message); From is always required. */
static const char *const signed_fields[] = {
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "In-Reply-To",
	"References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding", NULL,
};

/* RFC 6376 5.4.2 and 8.15: naming a field once more in h= than it occurs signs its absence, so
 * nobody can add a second From or Subject (which many readers display instead of ours) without
 * breaking the signature. We oversign the fields a reader sees, as large mailbox providers do;
 * a field that is absent (say Cc) is signed as absent, so it cannot be added either. */
static const char *const oversigned_fields[] = {
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", NULL,
};

struct dkim_signer {
	/* Configured once in dkim_signer_new and only read afterwards: libopendkim documents a
	 * DKIM_LIB as usable by several threads at once, each with its own DKIM handle (this is
	 * how the opendkim milter uses it), so signing needs no lock. */
	DKIM_LIB *lib;
	char *domain;
	char *selector;
	/* The key re-encoded as unencrypted PKCS#8 PEM, NUL-terminated, as dkim_sign() wants it. */
	unsigned char *key_pem;
	size_t key_pem_len;
};

void dkim_error_set(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

const char *dkim_openssl_error(char *buf, size_t bufsz)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, bufsz, "no further detail");
	else
		ERR_error_string_n(e, buf, bufsz);
	ERR_clear_error();
	return buf;
}

/* RFC 5321 4.1.2 sub-domain (Let-dig [Ldh-str]), which RFC 6376 3.1 uses for selectors too. */
static bool dns_label_valid(const char *s, size_t len)
{
	if (len == 0 || len > DNS_LABEL_MAX || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '-'))
			return false;
	}
	return true;
}

static bool dns_name_valid(const char *name)
{
	const char *label = name;

	for (;;) {
		const char *dot = strchr(label, '.');
		size_t len = dot ? (size_t)(dot - label) : strlen(label);

		if (!dns_label_valid(label, len))
			return false;
		if (!dot)
			return true;
		label = dot + 1;
	}
}

int dkim_names_check(const char *domain, const char *selector, char *err, size_t errsz)
{
	if (!dns_name_valid(domain)) {
		dkim_error_set(err, errsz, "DKIM domain \"%s\" is not a valid domain name "
			"(letters, digits and hyphens in dot-separated labels, no trailing dot)",
			domain);
		return -1;
	}
	if (!dns_name_valid(selector)) {
		dkim_error_set(err, errsz, "DKIM selector \"%s\" is not valid (RFC 6376 3.1: "
			"letters, digits and hyphens in dot-separated labels)", selector);
		return -1;
	}
	/* The key record lives at SELECTOR._domainkey.DOMAIN (RFC 6376 3.6.2.1). */
	if (strlen(selector) + strlen("._domainkey.") + strlen(domain) > DNS_NAME_MAX) {
		dkim_error_set(err, errsz, "DKIM key record name %s._domainkey.%s is longer "
			"than %d octets", selector, domain, DNS_NAME_MAX);
		return -1;
	}
	return 0;
}

/* PEM callback for encrypted keys: a daemon has nobody to ask, and without a callback OpenSSL
 * would prompt on the terminal. */
static int refuse_passphrase(char *buf, int size, int rwflag, void *asked)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	*(bool *)asked = true;
	return -1;
}

/* Reads and checks the private key; returns it or NULL with err set. */
static EVP_PKEY *dkim_key_load(const char *key_path, char *err, size_t errsz)
{
	char detail[256];
	struct stat st;
	bool asked = false;
	EVP_PKEY *pkey;
	FILE *f;
	int bits;

	f = fopen(key_path, "re");
	if (!f) {
		dkim_error_set(err, errsz, "cannot open DKIM key %s: %s", key_path,
			strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		dkim_error_set(err, errsz, "DKIM key %s is not a regular file", key_path);
		fclose(f);
		return NULL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		log_warn("dkim", "event=key_readable_by_others path=%s mode=%04o "
			"hint=\"chmod 600\"", key_path, (unsigned)(st.st_mode & 07777));
	ERR_clear_error();
	pkey = PEM_read_PrivateKey(f, NULL, refuse_passphrase, &asked);
	if (!pkey && ferror(f)) {
		dkim_error_set(err, errsz, "cannot read DKIM key %s: %s", key_path,
			strerror(errno));
		ERR_clear_error();
		fclose(f);
		return NULL;
	}
	fclose(f);
	if (!pkey) {
		if (asked)
			dkim_error_set(err, errsz, "DKIM key %s is encrypted; it must be stored "
				"without a passphrase (protect it with mode 0600 instead)",
				key_path);
		else
			dkim_error_set(err, errsz, "DKIM key %s holds no PEM private key (%s)",
				key_path, dkim_openssl_error(detail, sizeof(detail)));
		ERR_clear_error();
		return NULL;
	}
	/* RFC 8463 ed25519 and RSA-PSS keys cannot make rsa-sha256 (RSASSA-PKCS1-v1_5)
	 * signatures. */
	if (!EVP_PKEY_is_a(pkey, "RSA")) {
		const char *type = EVP_PKEY_get0_type_name(pkey);

		dkim_error_set(err, errsz, "DKIM key %s is of type %s; DKIM rsa-sha256 needs "
			"an RSA key", key_path, type ? type : "unknown");
		EVP_PKEY_free(pkey);
		return NULL;
	}
	bits = EVP_PKEY_get_bits(pkey);
	if (bits < DKIM_RSA_MIN_BITS) {
		dkim_error_set(err, errsz, "DKIM key %s has %d bits; RFC 8301 3.2 requires at "
			"least %d (make a new one with: mailpopbox dkim-keygen)", key_path, bits,
			DKIM_RSA_MIN_BITS);
		EVP_PKEY_free(pkey);
		return NULL;
	}
	if (bits < DKIM_RSA_RECOMMENDED_BITS)
		log_warn("dkim", "event=key_short path=%s bits=%d recommended=%d", key_path, bits,
			DKIM_RSA_RECOMMENDED_BITS);
	return pkey;
}

unsigned char *dkim_private_key_pem(EVP_PKEY *pkey, size_t *len_out, char *err, size_t errsz)
{
	char detail[256];
	unsigned char *pem;
	char *data;
	long len;
	BIO *bio;

	bio = BIO_new(BIO_s_mem());
	if (!bio)
		fatal("event=out_of_memory where=dkim_private_key_pem");
	if (!PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)) {
		dkim_error_set(err, errsz, "cannot encode the DKIM private key: %s",
			dkim_openssl_error(detail, sizeof(detail)));
		BIO_free(bio);
		return NULL;
	}
	len = BIO_get_mem_data(bio, &data);
	pem = xmalloc((size_t)len + 1);
	memcpy(pem, data, (size_t)len);
	pem[len] = '\0';
	/* BIO_free does not wipe what it frees. */
	OPENSSL_cleanse(data, (size_t)len);
	BIO_free(bio);
	*len_out = (size_t)len;
	return pem;
}

void dkim_private_key_pem_free(unsigned char *pem, size_t len)
{
	if (!pem)
		return;
	OPENSSL_cleanse(pem, len);
	free(pem);
}

/* Applies our choice of header fields to a fresh DKIM_LIB. */
static int dkim_lib_configure(DKIM_LIB *lib, char *err, size_t errsz)
{
	DKIM_STAT status;

	/* SIGNHDRS is compiled into a regular expression inside the library; OVERSIGNHDRS keeps
	 * the pointer, which is why both lists are static. */
	status = dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, (void *)signed_fields,
		sizeof(char **));
	if (status != DKIM_STAT_OK) {
		dkim_error_set(err, errsz, "libopendkim refused the signed header list: %s",
			dkim_getresultstr(status));
		return -1;
	}
	if (!dkim_libfeature(lib, DKIM_FEATURE_OVERSIGN)) {
		dkim_error_set(err, errsz, "libopendkim was built without header oversigning");
		return -1;
	}
	status = dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS,
		(void *)oversigned_fields, sizeof(char **));
	if (status != DKIM_STAT_OK) {
		dkim_error_set(err, errsz, "libopendkim refused the oversigned header list: %s",
			dkim_getresultstr(status));
		return -1;
	}
	return 0;
}

struct dkim_signer *dkim_signer_new(const char *domain, const char *selector, const char *key_path,
	char *err, size_t errsz)
{
	struct dkim_signer *signer;
	unsigned char *pem;
	size_t pem_len;
	EVP_PKEY *pkey;
	DKIM_LIB *lib;

	if (dkim_names_check(domain, selector, err, errsz) != 0)
		return NULL;
	pkey = dkim_key_load(key_path, err, errsz);
	if (!pkey)
		return NULL;
	/* Re-encoded, so libopendkim parses exactly the key checked above, whatever PEM flavour
	 * the file used. */
	pem = dkim_private_key_pem(pkey, &pem_len, err, errsz);
	EVP_PKEY_free(pkey);
	if (!pem)
		return NULL;
	lib = dkim_init(NULL, NULL);
	if (!lib)
		fatal("event=out_of_memory where=dkim_init");
	if (dkim_lib_configure(lib, err, errsz) != 0) {
		dkim_close(lib);
		dkim_private_key_pem_free(pem, pem_len);
		return NULL;
	}
	signer = xcalloc(1, sizeof(*signer));
	signer->lib = lib;
	signer->domain = xstrdup(domain);
	signer->selector = xstrdup(selector);
	signer->key_pem = pem;
	signer->key_pem_len = pem_len;
	return signer;
}

void dkim_signer_free(struct dkim_signer *signer)
{
	if (!signer)
		return;
	dkim_close(signer->lib);
	dkim_private_key_pem_free(signer->key_pem, signer->key_pem_len);
	free(signer->domain);
	free(signer->selector);
	free(signer);
}

/* libopendkim's own message for a failed step, or the status name when it left none. */
static void set_dkim_error(char *err, size_t errsz, DKIM *dkim, const char *step,
	DKIM_STAT status)
{
	const char *msg = dkim_geterror(dkim);

	if (!msg)
		msg = dkim_getresultstr(status);
	dkim_error_set(err, errsz, "DKIM signing failed at %s: %s", step,
		msg ? msg : "unknown error");
}

/* Feeds body_fd to EOF; returns 0 or -1 with err set. */
static int dkim_feed_body(DKIM *dkim, int body_fd, char *err, size_t errsz)
{
	unsigned char buf[DKIM_BODY_CHUNK];
	unsigned char last[2] = {'\r', '\n'};
	DKIM_STAT status;
	ssize_t n;

	for (;;) {
		n = read(body_fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			dkim_error_set(err, errsz, "DKIM signing failed reading the body: %s",
				strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		if (n == 1) {
			last[0] = last[1];
			last[1] = buf[0];
		} else {
			memcpy(last, buf + n - 2, 2);
		}
		status = dkim_chunk(dkim, buf, (size_t)n);
		if (status != DKIM_STAT_OK) {
			set_dkim_error(err, errsz, dkim, "body", status);
			return -1;
		}
	}
	/* RFC 5321 4.1.1.4: the CRLF before the terminating "." belongs to the message, so a body
	 * that does not end in CRLF gets one on the wire; sign what the receiver will see
	 * (libopendkim refuses such a body rather than add it). */
	if (memcmp(last, "\r\n", 2) != 0) {
		status = dkim_chunk(dkim, (unsigned char *)"\r\n", 2);
		if (status != DKIM_STAT_OK) {
			set_dkim_error(err, errsz, dkim, "body", status);
			return -1;
		}
	}
	return 0;
}

int dkim_signer_sign(struct dkim_signer *signer, const char *header_section, size_t header_len,
	int body_fd, struct strbuf *signature_field, char *err, size_t errsz)
{
	/* RFC 5322 2.1: the header section ends with an empty line; dkim_chunk() finds the end of
	 * the header fields by it, so without it the body would be taken for header fields. */
	static const char end_of_header[] = "\r\n\r\n";
	const size_t name_len = strlen(DKIM_SIGNHEADER ": ");
	unsigned char *value = NULL;
	size_t value_len = 0;
	DKIM_STAT status;
	DKIM *dkim;
	int ret = -1;

	if (header_len < strlen(end_of_header) ||
		memcmp(header_section + header_len - strlen(end_of_header), end_of_header,
			strlen(end_of_header)) != 0) {
		dkim_error_set(err, errsz, "DKIM signing needs the header section to end with an "
			"empty CRLF line");
		return -1;
	}
	dkim = dkim_sign(signer->lib, (const unsigned char *)"mailpopbox", NULL, signer->key_pem,
		(const unsigned char *)signer->selector, (const unsigned char *)signer->domain,
		DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &status);
	if (!dkim) {
		dkim_error_set(err, errsz, "DKIM signing failed to start: %s",
			dkim_getresultstr(status));
		return -1;
	}
	/* dkim_chunk() only reads its input; its prototype just lacks the const. */
	status = dkim_chunk(dkim, (unsigned char *)header_section, header_len);
	if (status != DKIM_STAT_OK) {
		set_dkim_error(err, errsz, dkim, "header", status);
		goto out;
	}
	if (dkim_feed_body(dkim, body_fd, err, errsz) != 0)
		goto out;
	status = dkim_chunk(dkim, NULL, 0);
	if (status != DKIM_STAT_OK) {
		set_dkim_error(err, errsz, dkim, "end of message", status);
		goto out;
	}
	status = dkim_eom(dkim, NULL);
	if (status != DKIM_STAT_OK) {
		set_dkim_error(err, errsz, dkim, "signature", status);
		goto out;
	}
	/* Folded at libopendkim's 75-octet margin with CRLF + whitespace (RFC 5322 2.2.3, lines
	 * under 78); "initial" reserves the room the field name takes on the first line. With
	 * relaxed header canonicalization (RFC 6376 3.4.2) the folding is not part of the hash. */
	status = dkim_getsighdr_d(dkim, name_len, &value, &value_len);
	if (status != DKIM_STAT_OK) {
		set_dkim_error(err, errsz, dkim, "header generation", status);
		goto out;
	}
	strbuf_append_str(signature_field, DKIM_SIGNHEADER ": ");
	strbuf_append(signature_field, value, value_len);
	strbuf_append(signature_field, "\r\n", 2);
	ret = 0;
out:
	dkim_free(dkim);
	return ret;
}
