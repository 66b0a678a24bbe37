/* tls.h: one OpenSSL server context per Server with a certificate; SNI picks the context
 * whose Domain matches the requested name (or a subdomain of it, e.g. mx.example.org), and
 * the first Server's certificate is the default. */
#ifndef MAILPOPBOX_TLS_H
#define MAILPOPBOX_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct tls_contexts;

/* Which suites a port offers (docs/tls.md). */
enum tls_policy {
	/* The MX port: OpenSSL's defaults from TLS 1.2 up (RFC 7435: for a sender that can do
	 * no better, any encryption beats clear text). */
	TLS_POLICY_OPPORTUNISTIC,
	/* Submission and POP3, whose clients are the owner's: TLS 1.3, and TLS 1.2 with ECDHE
	 * and AEAD suites only. */
	TLS_POLICY_STRICT,
	TLS_POLICY_COUNT
};

/* Loads every Server's key and certificate. Returns NULL with a one-line message in err when a
 * file cannot be read or a key does not match its certificate. With no certificates at all,
 * returns a struct whose tls_new_session() returns NULL. */
struct tls_contexts *tls_contexts_load(const struct config *cfg, char *err, size_t errsz);
void tls_contexts_free(struct tls_contexts *tls);
bool tls_available(const struct tls_contexts *tls);
/* A new server-side SSL object for one connection (SNI handled), or NULL without TLS. */
SSL *tls_new_session(struct tls_contexts *tls, enum tls_policy policy);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for logs and Received headers. */
void tls_describe(const SSL *ssl, char *buf, size_t size);
/* The last OpenSSL error queue entry as text (and clears the queue). */
const char *tls_last_error(char *buf, size_t size);
/* Logs a failed server-side handshake as event=tls_failed client=IP reason="..." under a
 * budget shared by every port: TLS_FAILURE_LOG_BURST lines per
 * TLS_FAILURE_LOG_INTERVAL_SECONDS, then event=tls_failed_suppressed count=N before the next
 * line written. */
void tls_log_handshake_failure(const char *module, const char *client, const char *reason);
/* The reason of one OpenSSL error code in words ("unsupported protocol", "no shared cipher",
 * "tlsv1 alert unknown ca"), for logs; written to buf, which is returned. */
const char *tls_error_reason(unsigned long error, char *buf, size_t size);

/* ---- Client side (outbound SMTP, push destinations) ---- */

/* A client context, TLS 1.2 and up. With verify, the peer's certificate must chain to
 * ca_file's certificates (or the system store when ca_file is NULL); a context that cannot
 * load them is not made: NULL with "KEY: cannot load FILE: reason" in err (what names the
 * config key, e.g. "TLSCAFile"). Without verify, ca_file is ignored and NULL is never returned. */
SSL_CTX *tls_client_context_new(bool verify, const char *ca_file, const char *what, char *err,
	size_t errsz);
/* True when host is an IPv4 or IPv6 address literal rather than a name. */
bool tls_host_is_address(const char *host);
/* Names host on ssl before the handshake: SNI for a name (never for an address literal, RFC
 * 6066 3), and with verify the certificate must name it (RFC 6125 6: a name, no partial
 * wildcards; an address literal matched against the certificate's IP addresses). */
void tls_client_name(SSL *ssl, const char *host, bool verify);

#endif
