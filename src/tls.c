/* tls.c: OpenSSL server contexts, SNI selection and connection descriptions. */
#include "tls.h"

#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"

struct tls_domain {
	char *domain;
	SSL_CTX *ctx;
};

struct tls_contexts {
	struct tls_domain *domains;
	size_t count;
};

const char *tls_last_error(char *buf, size_t size)
{
	unsigned long e = ERR_get_error();

	if (e)
		ERR_error_string_n(e, buf, size);
	else
		snprintf(buf, size, "unknown error");
	ERR_clear_error();
	return buf;
}

const char *tls_error_reason(unsigned long error, char *buf, size_t size)
{
	const char *reason = error ? ERR_reason_error_string(error) : NULL;

	if (reason)
		snprintf(buf, size, "%s", reason);
	else if (error)
		ERR_error_string_n(error, buf, size);
	else
		snprintf(buf, size, "unknown error");
	return buf;
}

/* True when name is domain or a subdomain of it. */
static bool name_matches(const char *name, const char *domain)
{
	size_t n = strlen(name), d = strlen(domain);

	if (n == d)
		return strcasecmp(name, domain) == 0;
	return n > d && name[n - d - 1] == '.' && strcasecmp(name + n - d, domain) == 0;
}

static int servername_callback(SSL *ssl, int *alert, void *arg)
{
	struct tls_contexts *tls = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	(void)alert;
	if (!name)
		return SSL_TLSEXT_ERR_NOACK;
	for (size_t i = 0; i < tls->count; i++) {
		if (name_matches(name, tls->domains[i].domain)) {
			if (SSL_get_SSL_CTX(ssl) != tls->domains[i].ctx)
				SSL_set_SSL_CTX(ssl, tls->domains[i].ctx);
			return SSL_TLSEXT_ERR_OK;
		}
	}
	/* Unknown name: keep the default certificate rather than failing the handshake. */
	return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *load_context(const struct server_config *server, struct tls_contexts *tls,
	char *err, size_t errsz)
{
	char why[256];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx) {
		snprintf(err, errsz, "TLS: %s", tls_last_error(why, sizeof(why)));
		return NULL;
	}
	/* RFC 8996: TLS 1.0 and 1.1 are deprecated. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Idle connections should not hold 2 x 16 KB record buffers each. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, server->tls_cert_path) != 1) {
		snprintf(err, errsz, "Servers[%s].TLSCertPath: cannot load %s: %s", server->domain,
			server->tls_cert_path, tls_last_error(why, sizeof(why)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, server->tls_key_path, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errsz, "Servers[%s].TLSKeyPath: cannot load %s: %s", server->domain,
			server->tls_key_path, tls_last_error(why, sizeof(why)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errsz, "Servers[%s].TLSKeyPath: key does not match the certificate",
			server->domain);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_tlsext_servername_callback(ctx, servername_callback);
	SSL_CTX_set_tlsext_servername_arg(ctx, tls);
	return ctx;
}

struct tls_contexts *tls_contexts_load(const struct config *cfg, char *err, size_t errsz)
{
	struct tls_contexts *tls = xcalloc(1, sizeof(*tls));

	tls->domains = xcalloc(cfg->server_count, sizeof(*tls->domains));
	for (size_t i = 0; i < cfg->server_count; i++) {
		const struct server_config *server = &cfg->servers[i];
		if (!server->tls_cert_path)
			continue;
		SSL_CTX *ctx = load_context(server, tls, err, errsz);
		if (!ctx) {
			tls_contexts_free(tls);
			return NULL;
		}
		tls->domains[tls->count].domain = xstrdup(server->domain);
		tls->domains[tls->count].ctx = ctx;
		tls->count++;
	}
	return tls;
}

void tls_contexts_free(struct tls_contexts *tls)
{
	if (!tls)
		return;
	for (size_t i = 0; i < tls->count; i++) {
		free(tls->domains[i].domain);
		SSL_CTX_free(tls->domains[i].ctx);
	}
	free(tls->domains);
	free(tls);
}

bool tls_available(const struct tls_contexts *tls)
{
	return tls && tls->count > 0;
}

SSL *tls_new_session(struct tls_contexts *tls)
{
	if (!tls_available(tls))
		return NULL;
	SSL *ssl = SSL_new(tls->domains[0].ctx);
	if (!ssl)
		fatal("event=ssl_new_failed");
	return ssl;
}

void tls_describe(const SSL *ssl, char *buf, size_t size)
{
	snprintf(buf, size, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}
