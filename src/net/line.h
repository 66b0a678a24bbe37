/* net/line.h: line framing over a libevent buffer, for every protocol that reads lines (SMTP
 * and POP3 commands, the outbound SMTP client's replies). The line limit is applied where
 * lines are read: an over-long line is thrown away as it streams in, so memory stays bounded
 * however long the line, and is then reported once as too long. */
#ifndef MAILPOPBOX_NET_LINE_H
#define MAILPOPBOX_NET_LINE_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

struct net_line_reader {
	size_t max;      /* longest line taken, without its end of line */
	bool discarding; /* inside an over-long line whose start was thrown away */
};

enum net_line_result {
	NET_LINE_NONE,     /* no complete line yet: read more */
	NET_LINE_OK,       /* a line of at most max octets */
	NET_LINE_TOO_LONG, /* a line longer than max, taken out of the buffer */
};

void net_line_reader_init(struct net_line_reader *r, size_t max);

/* Takes the next line out of in. A line ends at LF or CRLF (neither is part of it). line
 * has room for max + 1 octets; it receives the line and a NUL after it (NET_LINE_OK), or the
 * first max octets of an over-long line whose start was still buffered (NET_LINE_TOO_LONG,
 * *len = max; *len = 0 when its start had been thrown away). With no complete line, more than
 * max + 1 buffered octets (the + 1: the CR of a line of exactly max octets may be here without
 * its LF) are thrown away and r->discarding is set. */
enum net_line_result net_line_read(struct net_line_reader *r, struct evbuffer *in, char *line,
	size_t *len);

#endif
