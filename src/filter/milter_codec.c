/* filter/milter_codec.c: milter protocol version 6 packets, encoded and parsed without I/O
 * (see milter_codec.h). */
#include "filter/milter_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"

static void put_u32(struct strbuf *out, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
		(unsigned char)(v >> 8), (unsigned char)v};
	strbuf_append(out, b, 4);
}

static uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Opens a packet: a length placeholder and the command; packet_end() fills the length. */
static size_t packet_begin(struct strbuf *out, char command)
{
	size_t start = out->len;
	put_u32(out, 0);
	strbuf_append(out, &command, 1);
	return start;
}

static void packet_end(struct strbuf *out, size_t start)
{
	size_t len = out->len - start - 4;
	if (len > MILTER_PACKET_MAX)
		fatal("milter: packet of %zu octets built", len); /* callers bound their data */
	unsigned char *p = (unsigned char *)out->data + start;
	p[0] = (unsigned char)(len >> 24);
	p[1] = (unsigned char)(len >> 16);
	p[2] = (unsigned char)(len >> 8);
	p[3] = (unsigned char)len;
}

/* A string field: its octets (a NUL in them would end it early on the filter's side: SP) and
 * the terminating NUL. */
static void put_string(struct strbuf *out, const char *s, size_t len)
{
	size_t from = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\0') {
			strbuf_append(out, s + from, i - from);
			strbuf_append(out, " ", 1);
			from = i + 1;
		}
	}
	strbuf_append(out, s + from, len - from);
	strbuf_append(out, "", 1);
}

static void put_cstring(struct strbuf *out, const char *s)
{
	put_string(out, s ? s : "", s ? strlen(s) : 0);
}

void milter_encode_optneg(struct strbuf *out, uint32_t version, uint32_t actions,
	uint32_t protocol)
{
	size_t start = packet_begin(out, SMFIC_OPTNEG);
	put_u32(out, version);
	put_u32(out, actions);
	put_u32(out, protocol);
	packet_end(out, start);
}

void milter_encode_macros(struct strbuf *out, char stage, const char *const *names,
	const char *const *values, size_t count)
{
	size_t start = packet_begin(out, SMFIC_MACRO);
	strbuf_append(out, &stage, 1);
	for (size_t i = 0; i < count; i++) {
		if (!values[i])
			continue;
		put_cstring(out, names[i]);
		put_cstring(out, values[i]);
	}
	packet_end(out, start);
}

void milter_encode_connect(struct strbuf *out, const char *hostname, char family,
	unsigned port, const char *address)
{
	size_t start = packet_begin(out, SMFIC_CONNECT);
	put_cstring(out, hostname);
	strbuf_append(out, &family, 1);
	if (family == 'U') { /* unknown: no port, no address */
		packet_end(out, start);
		return;
	}
	unsigned char p[2] = {(unsigned char)(port >> 8), (unsigned char)port};
	strbuf_append(out, p, 2);
	put_cstring(out, address);
	packet_end(out, start);
}

void milter_encode_helo(struct strbuf *out, const char *helo)
{
	size_t start = packet_begin(out, SMFIC_HELO);
	put_cstring(out, helo);
	packet_end(out, start);
}

static void encode_address(struct strbuf *out, char command, const char *address)
{
	size_t start = packet_begin(out, command);
	struct strbuf a;
	strbuf_init(&a);
	strbuf_appendf(&a, "<%s>", address ? address : "");
	put_string(out, a.data, a.len);
	strbuf_free(&a);
	packet_end(out, start);
}

void milter_encode_mail(struct strbuf *out, const char *address)
{
	encode_address(out, SMFIC_MAIL, address);
}

void milter_encode_rcpt(struct strbuf *out, const char *address)
{
	encode_address(out, SMFIC_RCPT, address);
}

void milter_encode_header(struct strbuf *out, const char *name, size_t name_len,
	const char *value, size_t value_len)
{
	size_t start = packet_begin(out, SMFIC_HEADER);
	put_string(out, name, name_len);
	put_string(out, value, value_len);
	packet_end(out, start);
}

void milter_encode_body(struct strbuf *out, const char *data, size_t len)
{
	size_t start = packet_begin(out, SMFIC_BODY);
	strbuf_append(out, data, len);
	packet_end(out, start);
}

void milter_encode_empty(struct strbuf *out, char command)
{
	size_t start = packet_begin(out, command);
	packet_end(out, start);
}

void milter_header_value(const char *raw, size_t len, struct strbuf *out)
{
	size_t i = 0;
	/* The final line end is not part of the value. */
	if (len > 0 && raw[len - 1] == '\n')
		len--;
	if (len > 0 && raw[len - 1] == '\r')
		len--;
	while (i < len && (raw[i] == ' ' || raw[i] == '\t'))
		i++;
	for (; i < len; i++) {
		if (raw[i] == '\r' && i + 1 < len && raw[i + 1] == '\n')
			continue; /* CRLF inside a folded value: LF, as in Postfix's queue files */
		strbuf_append(out, raw[i] == '\0' ? " " : &raw[i], 1);
	}
}

/* ---- replies ---- */

enum milter_frame_status milter_frame(const unsigned char *buf, size_t len, size_t *packet_len)
{
	if (len < 4)
		return MILTER_FRAME_INCOMPLETE;
	uint32_t n = get_u32(buf);
	if (n == 0 || n > MILTER_PACKET_MAX)
		return MILTER_FRAME_BAD;
	if (len - 4 < n)
		return MILTER_FRAME_INCOMPLETE;
	*packet_len = (size_t)n + 4;
	return MILTER_FRAME_OK;
}

/* The NUL-terminated string at data[*pos], or NULL when no NUL ends it within len. */
static const char *take_string(const char *data, size_t len, size_t *pos)
{
	if (*pos >= len)
		return NULL;
	const char *nul = memchr(data + *pos, '\0', len - *pos);
	if (!nul)
		return NULL;
	const char *s = data + *pos;
	*pos = (size_t)(nul - data) + 1;
	return s;
}

bool milter_reply_parse(const char *data, size_t len, struct milter_reply *out)
{
	const unsigned char *u = (const unsigned char *)data;
	size_t pos = 1;

	if (len < 1)
		return false;
	memset(out, 0, sizeof(*out));
	out->command = data[0];
	switch (data[0]) {
	case SMFIC_OPTNEG:
		/* Further octets (the macro lists a filter asks for) are not used. */
		if (len < 13)
			return false;
		out->version = get_u32(u + 1);
		out->actions = get_u32(u + 5);
		out->protocol = get_u32(u + 9);
		return true;
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		if (len < 5)
			return false;
		out->index = get_u32(u + 1);
		pos = 5;
		/* fall through */
	case SMFIR_ADDHEADER:
		out->name = take_string(data, len, &pos);
		out->value = take_string(data, len, &pos);
		return out->name && out->value;
	case SMFIR_REPLYCODE:
	case SMFIR_QUARANTINE:
		out->value = take_string(data, len, &pos);
		return out->value != NULL;
	default:
		return true;
	}
}

/* Copies s into out (size outsz), control characters as SP, cut to fit. */
static void copy_printable(char *out, size_t outsz, const char *s, size_t len)
{
	size_t n = len < outsz - 1 ? len : outsz - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		out[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	out[n] = '\0';
}

bool milter_replycode_parse(const char *text, char reply[MILTER_SMTP_REPLY_MAX],
	enum milter_verdict *verdict)
{
	char out[MILTER_SMTP_REPLY_MAX];
	size_t out_len = 0;
	const char *line = text;
	bool cut = false;

	if (!(text[0] == '4' || text[0] == '5') || text[1] < '0' || text[1] > '9' ||
	    text[2] < '0' || text[2] > '9')
		return false;
	for (;;) {
		const char *lf = strchr(line, '\n');
		size_t line_len = lf ? (size_t)(lf - line) : strlen(line);
		if (line_len > 0 && line[line_len - 1] == '\r')
			line_len--;
		bool last = !lf || lf[1] == '\0';
		/* RFC 5321 4.2.1: the same code on every line, '-' on all but the last. */
		if (line_len < 3 || memcmp(line, text, 3) != 0)
			return false;
		if (line_len > 3 && line[3] != (last ? ' ' : '-'))
			return false;
		if (line_len == 3 && !last)
			return false;
		if (!cut) {
			size_t room = MILTER_SMTP_REPLY_MAX - 1 - out_len;
			size_t need = line_len + (out_len ? 2 : 0);
			if (need <= room) {
				if (out_len) {
					memcpy(out + out_len, "\r\n", 2);
					out_len += 2;
				}
				copy_printable(out + out_len, line_len + 1, line, line_len);
				out_len += line_len;
			} else if (out_len == 0) {
				copy_printable(out, MILTER_SMTP_REPLY_MAX, line, line_len);
				out_len = strlen(out);
				cut = true;
			} else {
				cut = true;
			}
		}
		if (last)
			break;
		line = lf + 1;
	}
	out[out_len] = '\0';
	/* A reply cut after a continuation line must still end with a last line. */
	char *last_line = out;
	for (char *p = strstr(out, "\r\n"); p; p = strstr(p + 2, "\r\n"))
		last_line = p + 2;
	if (last_line[3] == '-')
		last_line[3] = ' ';
	memcpy(reply, out, out_len + 1);
	*verdict = text[0] == '4' ? MILTER_TEMPFAIL : MILTER_REJECT;
	return true;
}

void milter_result_init(struct milter_result *r)
{
	memset(r, 0, sizeof(*r));
	r->verdict = MILTER_ACCEPT;
}

const char *milter_verdict_name(enum milter_verdict v)
{
	switch (v) {
	case MILTER_ACCEPT:
		return "accept";
	case MILTER_REJECT:
		return "reject";
	case MILTER_TEMPFAIL:
		return "tempfail";
	case MILTER_DISCARD:
		return "discard";
	case MILTER_FAILED:
		return "failed";
	}
	return "unknown";
}

enum milter_eom_step milter_result_set_final(struct milter_result *r,
	const struct milter_reply *reply)
{
	switch (reply->command) {
	case SMFIR_ACCEPT:
	case SMFIR_CONTINUE:
		/* CONTINUE ends only the end-of-body stage; callers of earlier stages take it
		 * before asking here. */
		r->verdict = MILTER_ACCEPT;
		r->reply[0] = '\0';
		return MILTER_EOM_FINAL;
	case SMFIR_REJECT:
		r->verdict = MILTER_REJECT;
		snprintf(r->reply, sizeof(r->reply), "550 5.7.1 Message rejected");
		return MILTER_EOM_FINAL;
	case SMFIR_TEMPFAIL:
		r->verdict = MILTER_TEMPFAIL;
		snprintf(r->reply, sizeof(r->reply), "451 4.7.1 Try again later");
		return MILTER_EOM_FINAL;
	case SMFIR_DISCARD:
		r->verdict = MILTER_DISCARD;
		r->reply[0] = '\0';
		return MILTER_EOM_FINAL;
	case SMFIR_REPLYCODE:
		if (!milter_replycode_parse(reply->value, r->reply, &r->verdict)) {
			char q[128];
			snprintf(r->error, sizeof(r->error), "malformed SMFIR_REPLYCODE %s",
				log_quote(q, sizeof(q), reply->value, strlen(reply->value)));
			return MILTER_EOM_ERROR;
		}
		return MILTER_EOM_FINAL;
	default:
		return MILTER_EOM_MORE;
	}
}

/* RFC 5322 2.2: a field name is 1*ftext (printable US-ASCII but ':'), and a value's line
 * ends are folding only (each followed by SP or HTAB), so a change can never add a line
 * that is not part of its field, nor end the header section. */
static bool change_is_well_formed(const struct milter_reply *reply)
{
	const unsigned char *n = (const unsigned char *)reply->name;
	const char *v = reply->value;

	if (n[0] == '\0')
		return false;
	for (; *n; n++)
		if (*n < 33 || *n > 126 || *n == ':')
			return false;
	for (size_t i = 0; v[i]; i++) {
		if (v[i] == '\r' && v[i + 1] != '\n')
			return false;
		if (v[i] == '\n' && v[i + 1] != ' ' && v[i + 1] != '\t')
			return false;
	}
	return true;
}

static void add_change(struct milter_result *r, enum milter_change_kind kind,
	const struct milter_reply *reply, unsigned *dropped)
{
	if (r->change_count >= MILTER_CHANGES_MAX) {
		(*dropped)++;
		return;
	}
	if (r->change_count == 0)
		r->changes = xcalloc(MILTER_CHANGES_MAX, sizeof(*r->changes));
	struct milter_change *c = &r->changes[r->change_count++];
	c->kind = kind;
	c->index = reply->index;
	c->name = xstrdup(reply->name);
	c->value = xstrdup(reply->value);
}

enum milter_eom_step milter_result_apply_eom(struct milter_result *r,
	const struct milter_reply *reply, uint32_t actions, unsigned *dropped)
{
	enum milter_eom_step step = milter_result_set_final(r, reply);
	if (step != MILTER_EOM_MORE)
		return step;
	uint32_t needed = 0;
	switch (reply->command) {
	case SMFIR_ADDHEADER:
	case SMFIR_INSHEADER:
		needed = SMFIF_ADDHDRS;
		break;
	case SMFIR_CHGHEADER:
		needed = SMFIF_CHGHDRS;
		break;
	case SMFIR_QUARANTINE:
		needed = SMFIF_QUARANTINE;
		break;
	case SMFIR_PROGRESS:
		/* The filter is alive; the conversation's deadline stays as it was. */
		return MILTER_EOM_MORE;
	default:
		log_warn("milter", "event=milter_reply_ignored command=0x%02x stage=eom",
			(unsigned char)reply->command);
		return MILTER_EOM_MORE;
	}
	if (!(actions & needed)) {
		log_warn("milter", "event=milter_reply_ignored command=0x%02x stage=eom "
			"reason=\"action not negotiated\"", (unsigned char)reply->command);
		return MILTER_EOM_MORE;
	}
	if (reply->command != SMFIR_QUARANTINE && !change_is_well_formed(reply)) {
		log_warn("milter", "event=milter_reply_ignored command=0x%02x stage=eom "
			"reason=\"malformed header field\"", (unsigned char)reply->command);
		return MILTER_EOM_MORE;
	}
	switch (reply->command) {
	case SMFIR_ADDHEADER:
		add_change(r, MILTER_ADD_HEADER, reply, dropped);
		break;
	case SMFIR_INSHEADER:
		add_change(r, MILTER_INSERT_HEADER, reply, dropped);
		break;
	case SMFIR_CHGHEADER:
		add_change(r, MILTER_CHANGE_HEADER, reply, dropped);
		break;
	default: /* SMFIR_QUARANTINE */
		r->quarantine = true;
		copy_printable(r->quarantine_reason, sizeof(r->quarantine_reason), reply->value,
			strlen(reply->value));
		break;
	}
	return MILTER_EOM_MORE;
}
