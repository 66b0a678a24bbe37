/* net/transfer.c: raw transfers inside a connection (net/transfer.h): their time limits,
 * their rate as progress, and their input handed over in bounded chunks. */
#include "net/transfer.h"

#include <event2/buffer.h>
#include <time.h>

#include "net/conn_private.h"

void net_conn_transfer_begin(struct net_conn *c, unsigned idle_seconds,
	unsigned deadline_seconds, unsigned min_rate)
{
	c->transfer.active = true;
	c->transfer.started = time(NULL);
	c->transfer.octets = 0;
	c->transfer.min_rate = min_rate;
	net_conn_set_timeouts(c, idle_seconds, idle_seconds);
	net_conn_deadline_stop(c); /* the whole transfer's deadline replaces the command's */
	net_conn_deadline(c, deadline_seconds);
}

/* octets more arrived: progress while the average since the start keeps the minimum rate. */
static void transfer_progress(struct net_conn *c, size_t octets)
{
	struct net_transfer *t = &c->transfer;

	t->octets += octets;
	if (t->octets >= (uint64_t)(time(NULL) - t->started) * t->min_rate)
		net_conn_touch(c);
}

bool net_conn_transfer_feed(struct net_conn *c,
	size_t (*take)(void *glue, const char *data, size_t len, bool *end))
{
	struct evbuffer *in = net_conn_input(c);
	size_t before = evbuffer_get_length(in);
	bool end = false;

	while (!end && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec vec;
		if (evbuffer_peek(in, NET_TRANSFER_CHUNK, NULL, &vec, 1) < 1)
			break;
		size_t len = vec.iov_len < NET_TRANSFER_CHUNK ? vec.iov_len : NET_TRANSFER_CHUNK;
		evbuffer_drain(in, take(c->glue, vec.iov_base, len, &end));
	}
	transfer_progress(c, before - evbuffer_get_length(in));
	return end;
}

void net_conn_transfer_end(struct net_conn *c)
{
	c->transfer.active = false;
	net_conn_deadline_stop(c);
	net_conn_set_timeouts(c, 0, c->command_seconds);
}
