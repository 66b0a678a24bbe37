/* smtp/data.c: dot-unstuffing and end-of-data detection for SMTP DATA (RFC 5321 4.1.1.4,
 * 4.5.2): a state machine, byte by byte at line starts and line ends so chunk boundaries
 * never matter, and in bulk (memchr) over the inside of a line. */
#include "smtp/data.h"

#include <string.h>

#include "bounds.h"

void smtp_data_reader_init(struct smtp_data_reader *r, uint64_t max_size)
{
	r->state = SMTP_DATA_LINE_START;
	r->max_size = max_size;
	r->size = 0;
	r->oversize = false;
	r->bare_newline = false;
}

static void emit(struct smtp_data_reader *r, char c, char *out, size_t *o)
{
	r->size++;
	if (r->size > r->max_size)
		r->oversize = true;
	if (!r->oversize)
		out[(*o)++] = c;
}

/* emit() for n ordinary bytes at once: the same output and the same size accounting. */
static void emit_run(struct smtp_data_reader *r, const char *run, size_t n, char *out,
	size_t *o)
{
	size_t keep = 0;

	if (!r->oversize && r->size < r->max_size)
		keep = r->max_size - r->size < n ? (size_t)(r->max_size - r->size) : n;
	memcpy(out + *o, run, keep);
	*o += keep;
	r->size += n;
	if (r->size > r->max_size)
		r->oversize = true;
}

size_t smtp_data_reader_feed(struct smtp_data_reader *r, const char *in, size_t len, char *out,
	size_t *out_len)
{
	size_t i = 0, o = 0;

	while (i < len && r->state != SMTP_DATA_DONE) {
		if (r->state == SMTP_DATA_IN_LINE) {
			/* Inside a line only a CR can change the state: copy up to it in one go. A
			 * bare LF on the way is still noted, as it is byte by byte below. */
			const char *start = in + i;
			const char *cr = memchr(start, '\r', len - i);
			size_t n = cr ? (size_t)(cr - start) : len - i;
			if (n > 0) {
				if (memchr(start, '\n', n))
					r->bare_newline = true;
				emit_run(r, start, n, out, &o);
				i += n;
				continue;
			}
		}
		char c = in[i++];

		switch (r->state) {
		case SMTP_DATA_LINE_START:
			if (c == '.') {
				/* RFC 5321 4.5.2: a leading dot is removed; ".<CRLF>" ends the data. */
				r->state = SMTP_DATA_DOT;
				continue;
			}
			break;
		case SMTP_DATA_DOT:
			if (c == '\r') {
				r->state = SMTP_DATA_DOT_CR;
				continue;
			}
			break;
		case SMTP_DATA_DOT_CR:
			if (c == '\n') {
				r->state = SMTP_DATA_DONE;
				continue;
			}
			/* ".<CR>x": the dot was stuffing, the CR is bare. */
			emit(r, '\r', out, &o);
			r->bare_newline = true;
			r->state = SMTP_DATA_IN_LINE;
			break;
		case SMTP_DATA_CR:
			if (c == '\n') {
				emit(r, '\n', out, &o);
				r->state = SMTP_DATA_LINE_START;
				continue;
			}
			r->bare_newline = true;
			r->state = SMTP_DATA_IN_LINE;
			break;
		case SMTP_DATA_IN_LINE:
		case SMTP_DATA_DONE:
			break;
		}

		/* c is an ordinary byte of a line (state is not yet IN_LINE for the first one). */
		if (c == '\r') {
			emit(r, c, out, &o);
			r->state = SMTP_DATA_CR;
		} else {
			if (c == '\n')
				r->bare_newline = true; /* a bare LF never starts a line */
			emit(r, c, out, &o);
			r->state = SMTP_DATA_IN_LINE;
		}
	}
	*out_len = o;
	return i;
}

unsigned smtp_data_deadline_seconds(uint64_t max_size, unsigned idle_timeout)
{
	uint64_t seconds = (uint64_t)idle_timeout + (max_size + SMTP_DATA_MIN_RATE - 1) /
		SMTP_DATA_MIN_RATE;

	return seconds < SMTP_DATA_DEADLINE_MAX_SECONDS ? (unsigned)seconds :
		SMTP_DATA_DEADLINE_MAX_SECONDS;
}
