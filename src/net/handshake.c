/* net/handshake.c: server-side TLS handshakes whose steps run on the worker pool, waiting for
 * the client's next flight on the event loop in between. */
#include "net/handshake.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "tls.h"
#include "worker.h"


struct net_handshake {
	struct event_base *base;
	struct worker_pool *workers;
	evutil_socket_t fd;
	SSL *ssl;
	struct event *ready;     /* the socket is readable/writable for the next step */
	struct evbuffer *clear;  /* the last clear-text reply (STARTTLS), written first */
	net_handshake_done_fn done;
	void *arg;
	int error;               /* SSL_get_error of the last step, set on the worker */
	char failure[160];       /* why the handshake failed, for the log */
	bool running;            /* a step is on the worker pool */
	bool cancelled;          /* the owner gave up while a step was running */
};

static void handshake_free(struct net_handshake *t)
{
	if (t->ready)
		event_free(t->ready);
	if (t->clear)
		evbuffer_free(t->clear);
	if (t->ssl)
		SSL_free(t->ssl);
	if (t->fd >= 0)
		evutil_closesocket(t->fd);
	free(t);
}

static void handshake_finish(struct net_handshake *t, struct bufferevent *bev)
{
	net_handshake_done_fn done = t->done;
	void *arg = t->arg;
	char failure[sizeof(t->failure)];

	memcpy(failure, t->failure, sizeof(failure));
	if (bev) { /* the bufferevent owns the socket and the SSL now */
		t->fd = -1;
		t->ssl = NULL;
	}
	handshake_free(t);
	done(arg, bev, bev ? NULL : failure[0] ? failure : "handshake failed");
}

static void handshake_wait(struct net_handshake *t, short what);

/* On a worker: one step of the handshake. The socket is non-blocking, so the step never
 * waits for the client; it ends where the client has to answer, or at the end. */
static void handshake_step(void *arg)
{
	struct net_handshake *t = arg;

	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(t->ssl);
	t->error = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
	/* OpenSSL's own words (unsupported protocol, no shared cipher, an alert the client
	 * sent): read here, since the error queue belongs to this thread. */
	unsigned long e = ERR_peek_error();
	if (t->error == SSL_ERROR_SSL || (t->error == SSL_ERROR_SYSCALL && e))
		tls_error_reason(e, t->failure, sizeof(t->failure));
	else if (t->error == SSL_ERROR_SYSCALL && errno)
		snprintf(t->failure, sizeof(t->failure), "%s", strerror(errno));
	else if (t->error == SSL_ERROR_SYSCALL || t->error == SSL_ERROR_ZERO_RETURN)
		snprintf(t->failure, sizeof(t->failure), "the client closed the connection");
	ERR_clear_error(); /* the error queue is per thread: leave nothing for the next job */
}

static void handshake_stepped(void *arg)
{
	struct net_handshake *t = arg;

	t->running = false;
	if (t->cancelled) {
		handshake_free(t);
		return;
	}
	switch (t->error) {
	case SSL_ERROR_NONE: {
		struct bufferevent *bev = bufferevent_openssl_socket_new(t->base, t->fd, t->ssl,
			BUFFEREVENT_SSL_OPEN, BEV_OPT_CLOSE_ON_FREE);
		if (!bev) /* out of memory: libevent versions differ on who frees the SSL then */
			t->ssl = NULL;
		handshake_finish(t, bev);
		return;
	}
	case SSL_ERROR_WANT_READ:
		handshake_wait(t, EV_READ);
		return;
	case SSL_ERROR_WANT_WRITE:
		handshake_wait(t, EV_WRITE);
		return;
	default: /* a bad or truncated handshake: nothing to say in clear */
		handshake_finish(t, NULL);
		return;
	}
}

static void handshake_ready(evutil_socket_t fd, short what, void *arg)
{
	struct net_handshake *t = arg;

	(void)what;
	if (t->clear && evbuffer_get_length(t->clear) > 0) {
		if (evbuffer_write(t->clear, fd) < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR) {
			snprintf(t->failure, sizeof(t->failure), "writing the reply: %s",
				strerror(errno));
			handshake_finish(t, NULL);
			return;
		}
		if (evbuffer_get_length(t->clear) > 0) {
			handshake_wait(t, EV_WRITE);
			return;
		}
		/* The client answers the reply with its ClientHello. */
		handshake_wait(t, EV_READ);
		return;
	}
	t->running = true;
	worker_pool_submit(t->workers, handshake_step, handshake_stepped, t);
}

static void handshake_wait(struct net_handshake *t, short what)
{
	event_del(t->ready);
	event_assign(t->ready, t->base, t->fd, what, handshake_ready, t);
	event_add(t->ready, NULL);
}

struct net_handshake *net_handshake_start(struct event_base *base, struct worker_pool *workers,
	evutil_socket_t fd, SSL *ssl, struct evbuffer *clear, net_handshake_done_fn done, void *arg)
{
	struct net_handshake *t = xcalloc(1, sizeof(*t));

	t->base = base;
	t->workers = workers;
	t->fd = fd;
	t->ssl = ssl;
	t->clear = clear;
	t->done = done;
	t->arg = arg;
	/* First the reply, if any; then the client's ClientHello. */
	short first = clear && evbuffer_get_length(clear) > 0 ? EV_WRITE : EV_READ;
	t->ready = event_new(base, fd, first, handshake_ready, t);
	if (!t->ready || SSL_set_fd(ssl, (int)fd) != 1)
		fatal("event=tls_accept_setup_failed");
	SSL_set_accept_state(ssl);
	event_add(t->ready, NULL);
	return t;
}

void net_handshake_cancel(struct net_handshake *t)
{
	if (t->running)
		t->cancelled = true; /* freed when the step comes back */
	else
		handshake_free(t);
}
