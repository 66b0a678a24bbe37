/* mail/dotstuff.c: byte-stuffing, CRLF normalisation and TOP line counting for RETR/TOP
 * responses (RFC 1939 3 and 7) and outbound DATA (RFC 5321 4.5.2), one chunk at a time, and
 * the matching size count for LIST/STAT (RFC 1939 5). */
#include "mail/dotstuff.h"

#include <string.h>

/* ---- line-end normalisation: the one place deciding what goes out for a line end ---- */

static void line_reset(struct dotstuff_line *l)
{
	l->line_start = true;
	l->after_cr = false;
}

/* len octets of line content (no LF in them); none is a no-op. */
static void line_content(struct dotstuff_line *l, const char *run, size_t len)
{
	if (len == 0)
		return;
	l->line_start = false;
	/* A CR ending this run may still be half of a CRLF split across chunks. */
	l->after_cr = run[len - 1] == '\r';
}

/* An LF in the file: returns the line end to send for it. RFC 1939 3: lines end in CRLF, so a
 * bare LF becomes CRLF; after a CR (already sent as content) only the LF is missing. */
static const char *line_end(struct dotstuff_line *l)
{
	const char *end = l->after_cr ? "\n" : "\r\n";

	line_reset(l);
	return end;
}

/* End of the file: returns what completes a last line that has no line end ("" when the file
 * ended with one), since RFC 1939 3's terminator must follow a CRLF. */
static const char *line_final(struct dotstuff_line *l)
{
	const char *end = l->line_start ? "" : l->after_cr ? "\n" : "\r\n";

	line_reset(l);
	return end;
}

/* ---- the RETR/TOP filter ---- */

void dotstuff_init(struct dotstuff *f, long body_lines)
{
	f->body_lines_left = body_lines < 0 ? -1 : body_lines;
	line_reset(&f->line);
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
	f->line_empty = true;
}

/* Appends run (no LF in it) as line content. */
static void dotstuff_run(struct dotstuff *f, const char *run, size_t len, struct strbuf *out)
{
	if (len == 0)
		return;
	/* RFC 1939 3: a line beginning with the termination octet is byte-stuffed, so a lone "."
	 * in the message can never end the response early. */
	if (f->line.line_start && run[0] == '.')
		strbuf_append(out, ".", 1);
	/* A CR that ended the previous run and is followed by more content was a bare CR:
	 * content. A CR ending this run may still be half of a CRLF split across chunks. */
	if (f->line.after_cr || len > 1 || run[0] != '\r')
		f->line_empty = false;
	line_content(&f->line, run, len);
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
		strbuf_append_str(out, line_end(&f->line));
		dotstuff_end_line(f);
		p = lf + 1;
	}
	return !f->done;
}

void dotstuff_finish(struct dotstuff *f, struct strbuf *out)
{
	/* RFC 1939 3: the terminator is CRLF "." CRLF. */
	strbuf_append_str(out, line_final(&f->line));
	strbuf_append(out, ".\r\n", 3);
	f->done = true;
}

/* ---- the size RETR sends, for LIST and STAT ---- */

void dotstuff_size_init(struct dotstuff_size *z)
{
	line_reset(&z->line);
	z->octets = 0;
}

void dotstuff_size_feed(struct dotstuff_size *z, const void *data, size_t len)
{
	const char *p = data;
	const char *end = p + len;

	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *run_end = lf ? lf : end;

		line_content(&z->line, p, (size_t)(run_end - p));
		z->octets += (uint64_t)(run_end - p);
		if (!lf)
			break;
		z->octets += strlen(line_end(&z->line));
		p = lf + 1;
	}
}

uint64_t dotstuff_size_finish(struct dotstuff_size *z)
{
	z->octets += strlen(line_final(&z->line));
	return z->octets;
}
