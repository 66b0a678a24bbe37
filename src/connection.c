/* connection.c: flush-then-free for client connections, polled on a short timer so it works
 * the same for plain sockets and TLS filters. */
#include "connection.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"

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

struct bufferevent *connection_start_tls(struct event_base *base, struct bufferevent *plain,
	SSL *ssl)
{
	struct evbuffer *in = bufferevent_get_input(plain);

	evbuffer_drain(in, evbuffer_get_length(in));
	struct bufferevent *tls = bufferevent_openssl_filter_new(base, plain, ssl,
		BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!tls)
		SSL_free(ssl);
	return tls;
}
