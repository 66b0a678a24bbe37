/* connection.h: closing a client connection politely. The last reply (221, 421, +OK) is
 * flushed to the socket, including what a TLS filter has handed to the socket bufferevent
 * below it, and then the owner's free function runs from the event loop, never from inside
 * the caller's own callback. Shared by the SMTP and POP3 glue. */
#ifndef MAILPOPBOX_CONNECTION_H
#define MAILPOPBOX_CONNECTION_H

#include "bounds.h"

#include <event2/util.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct event_base;

/* Stops reading from bev; once its output (and its underlying's) is empty, or after
 * CONNECTION_CLOSE_FLUSH_SECONDS, calls free_fn(arg), which frees bev. */
void connection_close_when_flushed(struct event_base *base, struct bufferevent *bev,
	void (*free_fn)(void *arg), void *arg);
/* Sends data on bev: on a plain socket with nothing queued, written at once as far as the
 * socket takes it; the rest (and everything on TLS) queued in bev's output. */
void connection_send(struct bufferevent *bev, const void *data, size_t len);
/* A last reply before bev is freed at once (not after a flush): written straight to the
 * socket, through TLS if bev has it, as far as the socket takes it without waiting; nothing
 * is written when earlier output is still queued (it would come out of order). */
void connection_send_last(struct bufferevent *bev, const void *data, size_t len);
/* Octets waiting to be written on bev and on the bufferevent under it (TLS). */
size_t connection_output_pending(struct bufferevent *bev);

/* The time a client has for its next command line (or a TLS handshake): started when the
 * server begins waiting and not moved by partial input, so a client trickling bytes cannot
 * keep a connection for ever (slowloris). */
struct connection_deadline {
	struct event *event;
	bool armed;
};

void connection_deadline_init(struct connection_deadline *d, struct event_base *base,
	void (*expired)(evutil_socket_t fd, short what, void *arg), void *arg);
/* Starts the deadline unless it is already running. */
void connection_deadline_arm(struct connection_deadline *d, unsigned seconds);
void connection_deadline_disarm(struct connection_deadline *d);
/* To be called first by the expired callback: the deadline is no longer running. */
void connection_deadline_expired(struct connection_deadline *d);
void connection_deadline_free(struct connection_deadline *d);

/* A server-side TLS handshake whose steps (the certificate signature and key exchange, the
 * expensive part) run on the worker pool: a burst of handshakes neither stalls the event loop
 * nor leaves the other cores idle. done(arg, bev, failure) runs on the event loop thread once,
 * with a TLS bufferevent over the socket (handshake complete, it owns the socket and the SSL)
 * and failure NULL, or with bev NULL when the handshake failed (socket closed, SSL freed) and
 * failure saying why in OpenSSL's words ("unsupported protocol"), valid during the call. */
struct tls_accept;
struct worker_pool;
typedef void (*tls_accept_done_fn)(void *arg, struct bufferevent *bev, const char *failure);

/* Implicit TLS (RFC 8314): the handshake on a freshly accepted, non-blocking socket. */
struct tls_accept *tls_accept_start(struct event_base *base, struct worker_pool *workers,
	evutil_socket_t fd, SSL *ssl, tls_accept_done_fn done, void *arg);
/* STARTTLS (RFC 3207) / STLS (RFC 2595): throws away whatever the client sent in clear after
 * the command (it must not be obeyed inside TLS: CVE-2011-0411), frees plain after taking
 * its socket, writes the reply still in plain's output, then does the handshake. */
struct tls_accept *connection_start_tls(struct event_base *base, struct worker_pool *workers,
	struct bufferevent *plain, SSL *ssl, tls_accept_done_fn done, void *arg);
/* The owner gives up (timeout, shutdown): done is not called; the socket is closed. */
void tls_accept_cancel(struct tls_accept *t);

#endif
