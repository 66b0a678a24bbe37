/* net/line.c: CRLF (or bare LF) line framing with the limit applied at the read. */
#include "net/line.h"

#include <event2/buffer.h>

void net_line_reader_init(struct net_line_reader *r, size_t max)
{
	r->max = max;
	r->discarding = false;
}

enum net_line_result net_line_read(struct net_line_reader *r, struct evbuffer *in, char *line,
	size_t *len)
{
	size_t eol_len = 0;
	struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);

	*len = 0;
	line[0] = '\0';
	if (eol.pos < 0) {
		/* No complete line: an over-long one is dropped as it streams in. */
		size_t buffered = evbuffer_get_length(in);
		if (buffered > r->max + 1) {
			evbuffer_drain(in, buffered);
			r->discarding = true;
		}
		return NET_LINE_NONE;
	}
	size_t found = (size_t)eol.pos;
	if (r->discarding || found > r->max) {
		if (!r->discarding) {
			evbuffer_remove(in, line, r->max);
			line[r->max] = '\0';
			*len = r->max;
			found -= r->max;
		}
		evbuffer_drain(in, found + eol_len);
		r->discarding = false;
		return NET_LINE_TOO_LONG;
	}
	evbuffer_remove(in, line, found);
	evbuffer_drain(in, eol_len);
	line[found] = '\0';
	*len = found;
	return NET_LINE_OK;
}
