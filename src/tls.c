/* tls.c: OpenSSL server contexts, SNI selection and connection descriptions. */
#include "tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alloc.h"
#include "bounds.h"
#include "log.h"

/* TLS 1.2 suites for the ports where clients are our own (submission, POP3): forward secret
 * (ECDHE) and authenticated encryption (AEAD) only, Mozilla's "intermediate" configuration
 * (Server Side TLS 5.7) without its finite-field DHE. No static RSA key exchange, no CBC
 * (LUCKY13, RFC 7457 2.8). TLS 1.3 suites (RFC 8446 B.4) are all ECDHE/DHE and AEAD. */
#define TLS_STRICT_TLS12_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct tls_domain {
	char *domain;
	SSL_CTX *ctx[TLS_POLICY_COUNT];
};

/* What the servername callback of a context needs: the domains, and which of their
 * contexts (policies) to switch to. */
struct tls_sni {
	struct tls_contexts *tls;
	enum tls_policy policy;
};

struct tls_contexts {
	struct tls_domain *domains;
	size_t count;
	struct tls_sni sni[TLS_POLICY_COUNT];
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

void tls_log_handshake_failure(const char *module, const char *client, const char *reason)
{
	static struct log_rate_limit limit =
		LOG_RATE_LIMIT_INIT(TLS_FAILURE_LOG_BURST, TLS_FAILURE_LOG_INTERVAL_SECONDS);
	unsigned long suppressed;
	char quoted[256];

	if (!log_rate_limit_allow(&limit, time(NULL), &suppressed))
		return;
	if (suppressed)
		log_info("tls", "event=tls_failed_suppressed count=%lu", suppressed);
	log_info(module, "event=tls_failed client=%s reason=%s", client,
		log_quote(quoted, sizeof(quoted), reason, strlen(reason)));
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
	const struct tls_sni *sni = arg;
	const struct tls_contexts *tls = sni->tls;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	(void)alert;
	if (!name)
		return SSL_TLSEXT_ERR_NOACK;
	for (size_t i = 0; i < tls->count; i++) {
		if (name_matches(name, tls->domains[i].domain)) {
			SSL_CTX *ctx = tls->domains[i].ctx[sni->policy];
			if (SSL_get_SSL_CTX(ssl) != ctx)
				SSL_set_SSL_CTX(ssl, ctx);
			return SSL_TLSEXT_ERR_OK;
		}
	}
	/* Unknown name: keep the default certificate rather than failing the handshake. */
	return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *load_context(const struct server_config *server, struct tls_sni *sni,
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
	/* The MX port keeps OpenSSL's default list: RFC 7435 opportunistic TLS, where a sender
	 * that only has older suites would otherwise send in clear text. */
	if (sni->policy == TLS_POLICY_STRICT &&
	    SSL_CTX_set_cipher_list(ctx, TLS_STRICT_TLS12_CIPHERS) != 1)
		fatal("event=tls_cipher_list_failed");
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
	SSL_CTX_set_tlsext_servername_arg(ctx, sni);
	return ctx;
}

struct tls_contexts *tls_contexts_load(const struct config *cfg, char *err, size_t errsz)
{
	struct tls_contexts *tls = xcalloc(1, sizeof(*tls));

	tls->domains = xcalloc(cfg->server_count, sizeof(*tls->domains));
	for (int p = 0; p < TLS_POLICY_COUNT; p++)
		tls->sni[p] = (struct tls_sni){.tls = tls, .policy = (enum tls_policy)p};
	for (size_t i = 0; i < cfg->server_count; i++) {
		const struct server_config *server = &cfg->servers[i];
		if (!server->tls_cert_path)
			continue;
		struct tls_domain *domain = &tls->domains[tls->count];
		for (int p = 0; p < TLS_POLICY_COUNT; p++) {
			domain->ctx[p] = load_context(server, &tls->sni[p], err, errsz);
			if (!domain->ctx[p]) {
				tls->count++; /* freed with the others */
				tls_contexts_free(tls);
				return NULL;
			}
		}
		domain->domain = xstrdup(server->domain);
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
		for (int p = 0; p < TLS_POLICY_COUNT; p++)
			SSL_CTX_free(tls->domains[i].ctx[p]); /* NULL is fine */
	}
	free(tls->domains);
	free(tls);
}

bool tls_available(const struct tls_contexts *tls)
{
	return tls && tls->count > 0;
}

SSL *tls_new_session(struct tls_contexts *tls, enum tls_policy policy)
{
	if (!tls_available(tls))
		return NULL;
	SSL *ssl = SSL_new(tls->domains[0].ctx[policy]);
	if (!ssl)
		fatal("event=ssl_new_failed");
	return ssl;
}

void tls_describe(const SSL *ssl, char *buf, size_t size)
{
	snprintf(buf, size, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}

SSL_CTX *tls_client_context_new(bool verify, const char *ca_file, const char *what, char *err,
	size_t errsz)
{
	char why[256];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		fatal("event=ssl_ctx_failed");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (!verify)
		return ctx;
	int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) :
		SSL_CTX_set_default_verify_paths(ctx);
	if (ok == 1)
		return ctx;
	if (ca_file)
		snprintf(err, errsz, "%s: cannot load %s: %s", what, ca_file,
			tls_last_error(why, sizeof(why)));
	else
		snprintf(err, errsz, "%s: cannot load the system's CA certificates: %s", what,
			tls_last_error(why, sizeof(why)));
	SSL_CTX_free(ctx);
	return NULL;
}

bool tls_host_is_address(const char *host)
{
	struct in6_addr addr;

	return inet_pton(AF_INET, host, &addr) == 1 || inet_pton(AF_INET6, host, &addr) == 1;
}

void tls_client_name(SSL *ssl, const char *host, bool verify)
{
	if (tls_host_is_address(host)) {
		if (verify && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1)
			fatal("event=ssl_set_ip_failed");
		return;
	}
	SSL_set_tlsext_host_name(ssl, host);
	if (!verify)
		return;
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set1_host(ssl, host) != 1)
		fatal("event=ssl_set_host_failed");
}
