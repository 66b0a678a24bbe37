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

/* STARTTLS (RFC 3207) / STLS (RFC 2595): throws away whatever the client sent in clear after
 * the command (it must not be obeyed inside TLS: CVE-2011-0411), and returns a TLS server
 * filter over plain, or NULL (ssl then freed). The filter owns plain from then on. */
struct bufferevent *connection_start_tls(struct event_base *base, struct bufferevent *plain,
	SSL *ssl);

#endif
