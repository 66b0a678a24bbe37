/* mail/dotstuff.h: dot-stuffing, the output filter for a message sent as dot-terminated
 * lines: POP3 RETR/TOP responses (RFC 1939 3) and outbound SMTP DATA (RFC 5321 4.5.2, queue/
 * delivery.c). Turns message file bytes into that form: a line starting with '.' gets an
 * extra '.', every line ends in CRLF, TOP stops after N body lines, and the text ends with
 * ".\r\n".
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
 * Line endings: messages are stored as received, with CRLF, and pass through unchanged. A bare
 * LF (as in the original Go server's "*.msg" files, written with LF endings) is sent as CRLF so
 * the client always gets CRLF lines, and a last line without a line end gets one. A bare CR is
 * content, not a line end, and is sent as is.
 *
 * RFC 1939 5 (LIST) and 11: a message's size is the octets RETR sends before byte-stuffing.
 * dotstuff_size_* counts exactly that, with the same line-end rules as the filter (one set of
 * functions decides both), so the store's LIST/STAT sizes for legacy files always match RETR. */
#ifndef MAILPOPBOX_MAIL_DOTSTUFF_H
#define MAILPOPBOX_MAIL_DOTSTUFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

/* Where the input stands between line ends: all that line-end normalisation depends on. */
struct dotstuff_line {
	bool line_start; /* the next byte begins a line */
	bool after_cr;   /* the last byte was CR, whose LF may come in the next chunk */
};

struct dotstuff {
	long body_lines_left; /* TOP: body lines still to send; -1 = the whole message (RETR) */
	struct dotstuff_line line;
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

/* The RETR size of a message (RFC 1939 5, LIST): octets after line-end normalisation, without
 * byte-stuffing and without the final ".\r\n". Fed like the filter, chunks of any size. */
struct dotstuff_size {
	struct dotstuff_line line;
	uint64_t octets;
};

void dotstuff_size_init(struct dotstuff_size *z);
void dotstuff_size_feed(struct dotstuff_size *z, const void *data, size_t len);
/* The total, including the line end a last line without one is sent with. */
uint64_t dotstuff_size_finish(struct dotstuff_size *z);

#endif
