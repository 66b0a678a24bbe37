/* queue/delivery.h: one delivery attempt of one queued message to one destination (a
 * recipient domain's mail exchangers, or the smarthost) for a group of its recipients.
 * Resolves the route, tries the hosts and their addresses in order while failures are the
 * host's (RFC 5321 5.1), speaks SMTP through smtp/client.c with opportunistic STARTTLS, and
 * streams the spooled message. Runs on the event loop; reports each recipient's outcome. */
#ifndef MAILPOPBOX_QUEUE_DELIVERY_H
#define MAILPOPBOX_QUEUE_DELIVERY_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "smtp/client.h"

struct event_base;
struct dns_resolver;

struct delivery_recipient {
	const char *address;
	const char *notify; /* wire form for NOTIFY= ("SUCCESS,FAILURE"), or NULL */
	const char *orcpt;  /* decoded "rfc822;x@y", or NULL */
};

struct delivery_request {
	struct event_base *base;
	const struct config *cfg;
	struct dns_resolver *dns;
	SSL_CTX *tls_ctx;          /* client context (no certificate check: opportunistic) */
	SSL_CTX *relay_tls_ctx;    /* the smarthost's (certificate and name checked), or NULL */
	const char *message_path;  /* the spooled message */
	const char *sender;
	const char *domain;        /* recipient domain; ignored with a smarthost */
	const char *ret;           /* NULL, "FULL", "HDRS" */
	const char *envid;         /* decoded, or NULL */
	unsigned long long size;
	bool body_8bit, smtputf8;
	const struct delivery_recipient *recipients;
	size_t recipient_count;
};

/* results[i] is recipient i's outcome; remote_dsn[i] says whether the accepting server took
 * its DSN duties (RFC 3461 5.2.2). Both arrays live until the callback returns. */
typedef void (*delivery_done_cb)(void *arg, const struct smtp_client_result *results,
	const bool *remote_dsn);

/* Starts the attempt; cb runs exactly once, later, from the event loop. The request's strings
 * must stay valid until then. */
void delivery_start(const struct delivery_request *req, delivery_done_cb cb, void *arg);

/* The client TLS context for connections to MX hosts: opportunistic, no certificate check. */
SSL_CTX *delivery_tls_context_new(void);
/* Whether the smarthost's certificate is checked: OutboundRelayHost with credentials, or with
 * OutboundRelayCAFile. Then TLS is required, and a certificate that does not chain to a
 * trusted CA or does not name the host fails the attempt (temporarily). */
bool delivery_relay_verified(const struct config *cfg);
/* The client context for the smarthost: peer verification against OutboundRelayCAFile, or
 * the system's CA store without it. NULL with a one-line message in err when they cannot be
 * loaded. */
SSL_CTX *delivery_relay_tls_context_new(const struct config *cfg, char *err, size_t errsz);

#endif
