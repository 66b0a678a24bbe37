/* connection.c: flush-then-free for client connections, polled on a short timer so it works
 * the same for plain sockets and TLS filters. */
#include "connection.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <errno.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "alloc.h"
#include "log.h"
#include "tls.h"
#include "worker.h"

#define CLOSE_POLL_MS 10

struct closer {
	struct bufferevent *bev;
	struct event *timer;
	time_t deadline;
	void (*free_fn)(void *arg);
	void *arg;
	bool tls_shutdown_sent;
};

size_t connection_output_pending(struct bufferevent *bev)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(bev));
	struct bufferevent *under = bufferevent_get_underlying(bev);

	if (under)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

void connection_send(struct bufferevent *bev, const void *data, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(bev);

	/* A plain socket with nothing queued: write now. Waiting for libevent to see the
	 * socket writable costs two epoll_ctl(2) and a loop iteration per reply, for a
	 * socket that nearly always has room. Whatever does not fit is queued as before. */
	if (evbuffer_get_length(out) == 0 && !bufferevent_get_underlying(bev) &&
	    !bufferevent_openssl_get_ssl(bev)) {
		evutil_socket_t fd = bufferevent_getfd(bev);
		ssize_t n = fd >= 0 ? send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL) : -1;
		/* An error is left for the queued write to find and report as usual. */
		if (n > 0) {
			data = (const char *)data + n;
			len -= (size_t)n;
		}
	}
	if (len > 0 && evbuffer_add(out, data, len) != 0)
		fatal("event=out_of_memory");
}

void connection_send_last(struct bufferevent *bev, const void *data, size_t len)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (connection_output_pending(bev) > 0)
		return;
	if (!ssl) {
		connection_send(bev, data, len);
		return;
	}
	/* Nothing is queued, so no TLS record is half written: the SSL may write directly. */
	ERR_clear_error();
	if (SSL_write(ssl, data, (int)len) > 0)
		SSL_shutdown(ssl);
	ERR_clear_error();
}

static void closer_check(evutil_socket_t fd, short what, void *arg)
{
	struct closer *cl = arg;

	(void)fd;
	(void)what;
	bool flushed = connection_output_pending(cl->bev) == 0;
	SSL *ssl = bufferevent_openssl_get_ssl(cl->bev);

	if (flushed && ssl && !cl->tls_shutdown_sent && time(NULL) < cl->deadline) {
		/* RFC 8446 6.1: end with close_notify so the client sees a clean end of the
		 * session, not a truncation. Through a filter it lands in the output polled above. */
		cl->tls_shutdown_sent = true;
		SSL_shutdown(ssl);
		flushed = connection_output_pending(cl->bev) == 0;
	}
	if (!flushed && time(NULL) < cl->deadline) {
		struct timeval poll = {0, CLOSE_POLL_MS * 1000};
		evtimer_add(cl->timer, &poll);
		return;
	}
	event_free(cl->timer);
	cl->free_fn(cl->arg);
	free(cl);
}

void connection_close_when_flushed(struct event_base *base, struct bufferevent *bev,
	void (*free_fn)(void *arg), void *arg)
{
	struct closer *cl = xcalloc(1, sizeof(*cl));
	struct timeval now = {0, 0};

	bufferevent_disable(bev, EV_READ);
	cl->bev = bev;
	cl->free_fn = free_fn;
	cl->arg = arg;
	cl->deadline = time(NULL) + CONNECTION_CLOSE_FLUSH_SECONDS;
	cl->timer = evtimer_new(base, closer_check, cl);
	if (!cl->timer)
		fatal("event=timer_failed");
	evtimer_add(cl->timer, &now);
}

void connection_deadline_init(struct connection_deadline *d, struct event_base *base,
	void (*expired)(evutil_socket_t fd, short what, void *arg), void *arg)
{
	d->event = evtimer_new(base, expired, arg);
	if (!d->event)
		fatal("event=timer_failed");
	d->armed = false;
}

void connection_deadline_arm(struct connection_deadline *d, unsigned seconds)
{
	struct timeval t = {(time_t)seconds, 0};

	if (d->armed)
		return;
	evtimer_add(d->event, &t);
	d->armed = true;
}

void connection_deadline_disarm(struct connection_deadline *d)
{
	if (!d->armed)
		return;
	evtimer_del(d->event);
	d->armed = false;
}

void connection_deadline_expired(struct connection_deadline *d)
{
	d->armed = false;
}

void connection_deadline_free(struct connection_deadline *d)
{
	if (d->event)
		event_free(d->event);
	d->event = NULL;
	d->armed = false;
}

/* ---- TLS handshakes on the worker pool ---- */

struct tls_accept {
	struct event_base *base;
	struct worker_pool *workers;
	evutil_socket_t fd;
	SSL *ssl;
	struct event *ready;     /* the socket is readable/writable for the next step */
	struct evbuffer *clear;  /* the last clear-text reply (STARTTLS), written first */
	tls_accept_done_fn done;
	void *arg;
	int error;               /* SSL_get_error of the last step, set on the worker */
	char failure[160];       /* why the handshake failed, for the log */
	bool running;            /* a step is on the worker pool */
	bool cancelled;          /* the owner gave up while a step was running */
};

static void tls_accept_free(struct tls_accept *t)
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

static void tls_accept_finish(struct tls_accept *t, struct bufferevent *bev)
{
	tls_accept_done_fn done = t->done;
	void *arg = t->arg;
	char failure[sizeof(t->failure)];

	memcpy(failure, t->failure, sizeof(failure));
	if (bev) { /* the bufferevent owns the socket and the SSL now */
		t->fd = -1;
		t->ssl = NULL;
	}
	tls_accept_free(t);
	done(arg, bev, bev ? NULL : failure[0] ? failure : "handshake failed");
}

static void tls_accept_wait(struct tls_accept *t, short what);

/* On a worker: one step of the handshake. The socket is non-blocking, so the step never
 * waits for the client; it ends where the client has to answer, or at the end. */
static void tls_accept_step(void *arg)
{
	struct tls_accept *t = arg;

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

static void tls_accept_stepped(void *arg)
{
	struct tls_accept *t = arg;

	t->running = false;
	if (t->cancelled) {
		tls_accept_free(t);
		return;
	}
	switch (t->error) {
	case SSL_ERROR_NONE: {
		struct bufferevent *bev = bufferevent_openssl_socket_new(t->base, t->fd, t->ssl,
			BUFFEREVENT_SSL_OPEN, BEV_OPT_CLOSE_ON_FREE);
		if (!bev) /* out of memory: libevent versions differ on who frees the SSL then */
			t->ssl = NULL;
		tls_accept_finish(t, bev);
		return;
	}
	case SSL_ERROR_WANT_READ:
		tls_accept_wait(t, EV_READ);
		return;
	case SSL_ERROR_WANT_WRITE:
		tls_accept_wait(t, EV_WRITE);
		return;
	default: /* a bad or truncated handshake: nothing to say in clear */
		tls_accept_finish(t, NULL);
		return;
	}
}

static void tls_accept_ready(evutil_socket_t fd, short what, void *arg)
{
	struct tls_accept *t = arg;

	(void)what;
	if (t->clear && evbuffer_get_length(t->clear) > 0) {
		if (evbuffer_write(t->clear, fd) < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR) {
			snprintf(t->failure, sizeof(t->failure), "writing the reply: %s",
				strerror(errno));
			tls_accept_finish(t, NULL);
			return;
		}
		if (evbuffer_get_length(t->clear) > 0) {
			tls_accept_wait(t, EV_WRITE);
			return;
		}
		/* The client answers the reply with its ClientHello. */
		tls_accept_wait(t, EV_READ);
		return;
	}
	t->running = true;
	worker_pool_submit(t->workers, tls_accept_step, tls_accept_stepped, t);
}

static void tls_accept_wait(struct tls_accept *t, short what)
{
	event_del(t->ready);
	event_assign(t->ready, t->base, t->fd, what, tls_accept_ready, t);
	event_add(t->ready, NULL);
}

/* clear: a reply to write before the handshake (owned from now on), or NULL. */
static struct tls_accept *tls_accept_new(struct event_base *base, struct worker_pool *workers,
	evutil_socket_t fd, SSL *ssl, struct evbuffer *clear, tls_accept_done_fn done, void *arg)
{
	struct tls_accept *t = xcalloc(1, sizeof(*t));

	t->base = base;
	t->workers = workers;
	t->fd = fd;
	t->ssl = ssl;
	t->clear = clear;
	t->done = done;
	t->arg = arg;
	/* First the reply, if any; then the client's ClientHello. */
	short first = clear && evbuffer_get_length(clear) > 0 ? EV_WRITE : EV_READ;
	t->ready = event_new(base, fd, first, tls_accept_ready, t);
	if (!t->ready || SSL_set_fd(ssl, (int)fd) != 1)
		fatal("event=tls_accept_setup_failed");
	SSL_set_accept_state(ssl);
	event_add(t->ready, NULL);
	return t;
}

struct tls_accept *tls_accept_start(struct event_base *base, struct worker_pool *workers,
	evutil_socket_t fd, SSL *ssl, tls_accept_done_fn done, void *arg)
{
	return tls_accept_new(base, workers, fd, ssl, NULL, done, arg);
}

struct tls_accept *connection_start_tls(struct event_base *base, struct worker_pool *workers,
	struct bufferevent *plain, SSL *ssl, tls_accept_done_fn done, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(plain);
	struct evbuffer *clear = evbuffer_new();
	evutil_socket_t fd = bufferevent_getfd(plain);

	if (!clear)
		fatal("event=out_of_memory");
	evbuffer_drain(in, evbuffer_get_length(in));
	/* Copied, not moved: a socket bufferevent's output is frozen at its front (only its own
	 * writer takes data out), and plain is freed here anyway. */
	struct evbuffer *out = bufferevent_get_output(plain);
	size_t len = evbuffer_get_length(out);
	if (len > 0) {
		unsigned char *reply = evbuffer_pullup(out, (ev_ssize_t)len);
		if (!reply || evbuffer_add(clear, reply, len) != 0)
			fatal("event=out_of_memory");
	}
	/* Take the socket away from the clear-text bufferevent, which must not close it. */
	bufferevent_disable(plain, EV_READ | EV_WRITE);
	bufferevent_setfd(plain, -1);
	bufferevent_free(plain);
	return tls_accept_new(base, workers, fd, ssl, clear, done, arg);
}

void tls_accept_cancel(struct tls_accept *t)
{
	if (t->running)
		t->cancelled = true; /* freed when the step comes back */
	else
		tls_accept_free(t);
}
