/* net/handshake.h: a server-side TLS handshake whose steps (the certificate signature and key
 * exchange, the expensive part) run on the worker pool: a burst of handshakes neither stalls
 * the event loop nor leaves the other cores idle. Used by net/conn.c for implicit TLS
 * (RFC 8314) and for STARTTLS (RFC 3207) / STLS (RFC 2595). */
#ifndef MAILPOPBOX_NET_HANDSHAKE_H
#define MAILPOPBOX_NET_HANDSHAKE_H

#include <event2/util.h>
#include <openssl/ssl.h>

struct bufferevent;
struct event_base;
struct evbuffer;
struct net_handshake;
struct worker_pool;

/* Runs on the event loop thread once, with a TLS bufferevent over the socket (handshake
 * complete, it owns the socket and the SSL) and failure NULL, or with bev NULL when the
 * handshake failed (socket closed, SSL freed) and failure saying why in OpenSSL's words
 * ("unsupported protocol"), valid during the call. */
typedef void (*net_handshake_done_fn)(void *arg, struct bufferevent *bev, const char *failure);

/* Starts the handshake on a non-blocking socket, taking over fd and ssl. clear: a reply to
 * write in clear first (the answer to STARTTLS), taken over, or NULL. */
struct net_handshake *net_handshake_start(struct event_base *base, struct worker_pool *workers,
	evutil_socket_t fd, SSL *ssl, struct evbuffer *clear, net_handshake_done_fn done,
	void *arg);
/* The owner gives up (timeout, shutdown): done is not called; the socket is closed. */
void net_handshake_cancel(struct net_handshake *t);

#endif
