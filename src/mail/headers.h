/* mail/headers.h: the header section of an RFC 5322 message as a list of fields that can be
 * found, read, replaced, removed and appended, then written back byte-exact for every field
 * nobody touched. Pure: bytes in, bytes out.
 *
 * Typical use by the glue (msg, msg_len: the whole message as received):
 *
 *	struct mail_headers h;
 *	size_t header_len;
 *	if (mail_headers_parse(msg, msg_len, &h, &header_len) != MAIL_HEADERS_OK)
 *		-> refuse: 552 5.3.4 (header section too big)
 *	... edit h (sendas_apply(), mail_headers_ensure_date_and_message_id()) ...
 *	struct strbuf out;
 *	strbuf_init(&out);
 *	mail_headers_serialize(&h, &out);
 *	strbuf_append(&out, msg + header_len, msg_len - header_len);   (the body, untouched)
 *	mail_headers_free(&h);
 */
#ifndef MAILPOPBOX_MAIL_HEADERS_H
#define MAILPOPBOX_MAIL_HEADERS_H

#include "bounds.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "strbuf.h"

/* Returned by mail_headers_index() when no field has the name. */
#define MAIL_HEADERS_NOT_FOUND SIZE_MAX

enum mail_headers_status {
	MAIL_HEADERS_OK,
	MAIL_HEADERS_TOO_BIG, /* over MAIL_HEADER_SECTION_MAX or MAIL_HEADER_FIELDS_MAX */
};

/* One field exactly as it appears in the message: the name, the colon, the value with its
 * folding (RFC 5322 2.2.3) and its final line end (CRLF, or a bare LF, which we tolerate).
 * A line that is not a field (no colon, a bad name, or a continuation line with no field
 * before it) is kept as a field with name_len 0: no lookup ever matches it, and it is written
 * back untouched. */
struct mail_field {
	char *raw;           /* owned; raw_len octets, not NUL-terminated */
	size_t raw_len;
	size_t name_len;     /* octets of the name at raw[0]; 0 for a line that is not a field */
	size_t value_offset; /* raw[value_offset] is the octet after the colon */
};

struct mail_headers {
	struct mail_field *fields;
	size_t count;
	size_t cap;
	/* The blank line that ended the section: "\r\n", "\n", or "" when the message ended
	 * without one (a message of headers only). */
	const char *separator;
	/* Line end for fields we write: "\n" when the message's first line ended with a bare LF,
	 * else "\r\n" (RFC 5322 2.1), so an edit never mixes line ends into a message. */
	const char *newline;
};

/* Splits the header section at the start of data (len octets) into fields. The section ends
 * at the first empty line (included in it) or at the end of data. On MAIL_HEADERS_OK, *h holds
 * the fields (free with mail_headers_free()) and *header_len the octets of the section, so
 * data + *header_len is the body. On MAIL_HEADERS_TOO_BIG, *h and *header_len are untouched.
 * Never fails otherwise: any bytes parse (NUL, 8-bit, bare CR are kept as they are). */
enum mail_headers_status mail_headers_parse(const char *data, size_t len, struct mail_headers *h,
	size_t *header_len);
void mail_headers_free(struct mail_headers *h);

/* Appends the header section to out: every field's raw octets, then the separator. For an
 * unedited h this is exactly the data[0..header_len) that was parsed. */
void mail_headers_serialize(const struct mail_headers *h, struct strbuf *out);

/* Index of the first field at index >= from whose name equals name ignoring ASCII case
 * (RFC 5322 1.2.2), or MAIL_HEADERS_NOT_FOUND. */
size_t mail_headers_index(const struct mail_headers *h, const char *name, size_t from);
/* The first field with that name, or NULL. */
const struct mail_field *mail_headers_find(const struct mail_headers *h, const char *name);

/* Appends the field's value to out unfolded (RFC 5322 2.2.3: each line end followed by
 * whitespace is removed), without the final line end and without leading and trailing
 * whitespace. */
void mail_field_unfold_value(const struct mail_field *f, struct strbuf *out);
/* Lexical tokens of a field's value (RFC 5322 3.2), for readers of addresses (sendas, DMARC):
 * s[i] is '"' (a quoted-string, with quoted-pairs) or '(' (a comment; comments nest). Each
 * returns the index after the token, or SIZE_MAX when it never ends before len. */
size_t mail_skip_quoted_string(const char *s, size_t len, size_t i);
size_t mail_skip_comment(const char *s, size_t len, size_t i);
/* RFC 5322 3.2.3 dot-atom-text: atext runs joined by single dots (len octets). */
bool mail_dot_atom_text(const char *s, size_t len);

/* Replaces field index with raw (raw_len octets): one whole field, name, colon and line end
 * included, folded only with line ends followed by SP or HTAB. Fatal if raw is not exactly one
 * field (a broken invariant: callers build raw themselves). A raw without a final line end is
 * given one (h->newline) unless the field is the last of a section that has no blank line. */
void mail_headers_replace(struct mail_headers *h, size_t index, const char *raw, size_t raw_len);
void mail_headers_remove(struct mail_headers *h, size_t index);
/* Appends "name: value" and h->newline at the end of the section (before the blank line).
 * value is one line: fatal if it holds CR or LF. The field before it gets a line end if the
 * message ended in the middle of it. */
void mail_headers_append(struct mail_headers *h, const char *name, const char *value);

#define MAIL_ADDED_DATE 1u
#define MAIL_ADDED_MESSAGE_ID 2u
/* RFC 5322 3.6: a message has one Date (required) and should have one Message-ID; DKIM signs
 * both. Appends "Date: <now>" and "Message-ID: <token@domain>" when the field is missing.
 * token must be 1*(atext / ".") (RFC 5322 3.6.4 id-left; the caller makes it unique, e.g.
 * the queue id) and domain a domain name; fatal otherwise. Returns the MAIL_ADDED_ bits. */
unsigned mail_headers_ensure_date_and_message_id(struct mail_headers *h, time_t now,
	const char *token, const char *domain);

/* ---- Message-ID at receipt ---- */

/* A message written to disk as it arrives (received mail) is scanned octet by octet for a
 * Message-ID field in its header section, so one can be added where the section ends, as
 * Postfix's cleanup does, without holding the message in memory. A field counts only at the
 * start of a line that is not a continuation (RFC 5322 2.2.3): "Message-ID" in a folded value
 * or in the body never does. The scan ends at the blank line; past MAIL_HEADER_SECTION_MAX
 * octets it ends at the next line start, and gives up (adding nothing) at twice that, inside
 * one line that long. */
enum mail_message_id_step {
	MAIL_MESSAGE_ID_WRITE,   /* write the octet */
	MAIL_MESSAGE_ID_HOLD,    /* a CR at a line start, perhaps the blank line's: hold it back */
	MAIL_MESSAGE_ID_RELEASE, /* write the held CR, then the octet */
	MAIL_MESSAGE_ID_INSERT,  /* the section ends here with no Message-ID: write the field, the
	                          * held CR if any, then the octet; the scan is over */
	MAIL_MESSAGE_ID_OVER,    /* the scan is over, nothing to add: write the held CR if any,
	                          * then the octet */
};

struct mail_message_id_scan {
	uint64_t octets;     /* fed so far */
	unsigned char state; /* private to headers.c */
	unsigned char matched; /* octets of "Message-ID" matched at the start of this line */
	bool found;
};

void mail_message_id_scan_init(struct mail_message_id_scan *s);
/* True until the scan answered MAIL_MESSAGE_ID_INSERT or _OVER: only then must octets be fed. */
bool mail_message_id_scan_active(const struct mail_message_id_scan *s);
enum mail_message_id_step mail_message_id_scan_feed(struct mail_message_id_scan *s, char c);
/* At the end of the message: true when the field must still be appended (before a CR still
 * held), *line_end_first when the message ended inside a line. */
bool mail_message_id_scan_missing_at_end(const struct mail_message_id_scan *s,
	bool *line_end_first);
/* Appends "Message-ID: <token@domain>" CRLF. token as for
 * mail_headers_ensure_date_and_message_id(); a domain that is not a dot-atom (an address
 * literal as Hostname) is replaced by "mailpopbox.invalid", so the id stays well-formed. */
void mail_message_id_field(struct strbuf *out, const char *token, const char *domain);

#endif
