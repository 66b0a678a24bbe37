/* net/transfer.h: a raw transfer inside a connection, between command lines (SMTP DATA; an
 * IMAP literal next). It has its own time limits, an idle limit on each read and a deadline
 * for the whole that arriving data does not extend, and it counts as progress against
 * shedding only while it keeps a minimum average rate. Its input is handed to the glue in
 * chunks of at most NET_TRANSFER_CHUNK octets, so the glue's buffers stay bounded. */
#ifndef MAILPOPBOX_NET_TRANSFER_H
#define MAILPOPBOX_NET_TRANSFER_H

#include <stdbool.h>
#include <stddef.h>

struct net_conn;

#define NET_TRANSFER_CHUNK (64 * 1024)

/* Starts a transfer: a read may wait idle_seconds (then NET_EVENT_READ_IDLE), output as long
 * (then the connection ends), and the whole ends within deadline_seconds (NET_EVENT_DEADLINE).
 * It is progress (shedding) while it brings min_rate octets a second on average. */
void net_conn_transfer_begin(struct net_conn *c, unsigned idle_seconds,
	unsigned deadline_seconds, unsigned min_rate);
/* Hands the buffered input to take, a chunk at a time, until take says the transfer's end was
 * in what it used (*end) or the input runs out. take returns the octets it used; the rest of a
 * chunk is offered again. True when the end was reached. */
bool net_conn_transfer_feed(struct net_conn *c,
	size_t (*take)(void *glue, const char *data, size_t len, bool *end));
/* The transfer is over: its deadline stops, the command line's limits are back
 * (net_conn_set_lines). */
void net_conn_transfer_end(struct net_conn *c);

#endif
