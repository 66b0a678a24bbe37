/* smtp/data.h: the DATA framing reader. Takes raw bytes after "354", undoes dot-stuffing
 * (RFC 5321 4.5.2) and finds the end of the message. Only <CRLF>.<CRLF> ends it; bare LF and
 * bare CR are never line ends here, so <LF>.<LF>, <LF>.<CR><LF> and <CR>.<CR> cannot end the
 * data (SMTP smuggling, CVE-2023-51764/51765/51766). A message containing a bare LF or bare CR
 * is marked so the server can refuse it as a whole (docs/smtp.md). Pure: no I/O. */
#ifndef MAILPOPBOX_SMTP_DATA_H
#define MAILPOPBOX_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum smtp_data_state {
	SMTP_DATA_LINE_START,   /* after CRLF (or at the very start) */
	SMTP_DATA_DOT,          /* "." at line start */
	SMTP_DATA_DOT_CR,       /* ".<CR>" at line start */
	SMTP_DATA_IN_LINE,
	SMTP_DATA_CR,           /* <CR> inside a line, waiting for <LF> */
	SMTP_DATA_DONE,
};

struct smtp_data_reader {
	enum smtp_data_state state;
	uint64_t max_size;  /* message octets allowed (after unstuffing) */
	uint64_t size;      /* message octets seen so far (counted past max_size too) */
	bool oversize;      /* size went over max_size: no more output is produced */
	bool bare_newline;  /* a bare LF or bare CR was seen */
};

void smtp_data_reader_init(struct smtp_data_reader *r, uint64_t max_size);
/* Consumes bytes from in (len) until the end of data or the end of in. Writes the unstuffed
 * message bytes to out, which must have room for len + 1 bytes, and sets *out_len.
 * Returns the number of bytes of in consumed; when r->state becomes SMTP_DATA_DONE the
 * terminating ".<CRLF>" has been consumed and the bytes after it belong to the next command. */
size_t smtp_data_reader_feed(struct smtp_data_reader *r, const char *in, size_t len, char *out,
	size_t *out_len);
static inline bool smtp_data_reader_done(const struct smtp_data_reader *r)
{
	return r->state == SMTP_DATA_DONE;
}

/* Seconds a whole DATA transfer may take (bounds.h, SMTP_DATA_MIN_RATE): idle_timeout
 * ("SMTPDataTimeoutSeconds") plus max_size octets at the minimum rate, at most
 * SMTP_DATA_DEADLINE_MAX_SECONDS. */
unsigned smtp_data_deadline_seconds(uint64_t max_size, unsigned idle_timeout);

#endif
