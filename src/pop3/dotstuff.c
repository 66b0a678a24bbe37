/* pop3/dotstuff.c: byte-stuffing, CRLF normalisation and TOP line counting for RETR/TOP
 * responses (RFC 1939 3 and 7), one chunk at a time. */
#include "pop3/dotstuff.h"

#include <string.h>

void dotstuff_init(struct dotstuff *f, long body_lines)
{
	f->body_lines_left = body_lines < 0 ? -1 : body_lines;
	f->line_start = true;
	f->after_cr = false;
	f->line_empty = true;
	f->in_body = false;
	f->done = false;
}

/* A line end was just sent: track the header/body boundary and TOP's budget. */
static void dotstuff_end_line(struct dotstuff *f)
{
	if (!f->in_body) {
		/* RFC 5322 2.1: the first empty line separates the header section from the body;
		 * RFC 1939 7 (TOP): it is sent, and body lines are counted after it. */
		if (f->line_empty) {
			f->in_body = true;
			if (f->body_lines_left == 0)
				f->done = true;
		}
	} else if (f->body_lines_left > 0) {
		if (--f->body_lines_left == 0)
			f->done = true;
	}
	f->line_start = true;
	f->line_empty = true;
	f->after_cr = false;
}

/* Appends run (no LF in it) as line content. */
static void dotstuff_run(struct dotstuff *f, const char *run, size_t len, struct strbuf *out)
{
	if (len == 0)
		return;
	/* RFC 1939 3: a line beginning with the termination octet is byte-stuffed, so a lone "."
	 * in the message can never end the response early. */
	if (f->line_start && run[0] == '.')
		strbuf_append(out, ".", 1);
	f->line_start = false;
	/* A CR that ended the previous run and is followed by more content was a bare CR:
	 * content. A CR ending this run may still be half of a CRLF split across chunks. */
	if (f->after_cr || len > 1 || run[0] != '\r')
		f->line_empty = false;
	f->after_cr = run[len - 1] == '\r';
	strbuf_append(out, run, len);
}

bool dotstuff_feed(struct dotstuff *f, const void *data, size_t len, struct strbuf *out)
{
	const char *p = data;
	const char *end = p + len;

	while (p < end && !f->done) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *run_end = lf ? lf : end;

		dotstuff_run(f, p, (size_t)(run_end - p), out);
		if (!lf)
			break;
		/* Every line goes out with CRLF, whether the file had CRLF or a bare LF. */
		if (f->after_cr)
			strbuf_append(out, "\n", 1);
		else
			strbuf_append(out, "\r\n", 2);
		dotstuff_end_line(f);
		p = lf + 1;
	}
	return !f->done;
}

void dotstuff_finish(struct dotstuff *f, struct strbuf *out)
{
	/* RFC 1939 3: the terminator is CRLF "." CRLF, so a last line without a line end is
	 * completed first (a trailing CR only needs its LF). */
	if (!f->line_start)
		strbuf_append_str(out, f->after_cr ? "\n" : "\r\n");
	strbuf_append(out, ".\r\n", 3);
	f->done = true;
	f->line_start = true;
	f->after_cr = false;
}
