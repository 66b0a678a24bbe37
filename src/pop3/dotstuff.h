/* pop3/dotstuff.h: the RETR/TOP output filter. Turns message file bytes into the body of a
 * POP3 multi-line response (RFC 1939 3): a line starting with '.' gets an extra '.', every line
 * ends in CRLF, TOP stops after N body lines, and the response ends with ".\r\n".
 *
 * Pure and streaming: feed file chunks of any size (one byte at a time works too); the state
 * (a CR waiting for its LF, "at the start of a line", header/body position) carries across
 * chunk boundaries. Output grows at most to twice the input, plus 5 octets at the end.
 *
 * Driving it (pop3/server.c, after POP3_ACTION_RETRIEVE):
 *   dotstuff_init(&f, pop3_session_retrieve_lines(s));
 *   while (read a chunk && dotstuff_feed(&f, chunk, n, out)) flush out;
 *   dotstuff_finish(&f, out); flush out;
 *
 * Line endings: messages are stored as received, with CRLF, and pass through unchanged, so the
 * octets sent (before stuffing) equal the file size that LIST/STAT report. A bare LF (as in the
 * original Go server's "*.msg" files, written with LF endings) is sent as CRLF so the client
 * always gets CRLF lines; for such files the LIST/STAT size (the file size) is smaller than
 * what the client receives. A bare CR is content, not a line end, and is sent as is. */
#ifndef MAILPOPBOX_POP3_DOTSTUFF_H
#define MAILPOPBOX_POP3_DOTSTUFF_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

struct dotstuff {
	long body_lines_left; /* TOP: body lines still to send; -1 = the whole message (RETR) */
	bool line_start;      /* the next byte begins a line */
	bool after_cr;        /* the last byte was CR, whose LF may come in the next chunk */
	bool line_empty;      /* no content on this line yet (a pending CR is not content) */
	bool in_body;         /* the empty line ending the header section has been sent */
	bool done;            /* TOP limit reached: the rest of the file is not wanted */
};

/* body_lines: -1 for RETR (everything), or TOP's line count n >= 0: the header section, the
 * empty line that ends it, then at most n body lines (RFC 1939 7, TOP). */
void dotstuff_init(struct dotstuff *f, long body_lines);
/* Appends the stuffed form of len octets to out. Returns false once no more input is wanted
 * (TOP limit reached), so the glue can stop reading the file; true otherwise. */
bool dotstuff_feed(struct dotstuff *f, const void *data, size_t len, struct strbuf *out);
/* Ends the response: CRLF if the content did not end with a line end, then ".\r\n". */
void dotstuff_finish(struct dotstuff *f, struct strbuf *out);

#endif
