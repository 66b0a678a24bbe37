/* push/imap_reply.c: parses one IMAP server response line (RFC 9051 7) into what push
 * delivery acts on. Pure and bounded: reads only the len octets given, writes only the
 * struct, keeps no literal (it only says where one is, for the client to skip). */
#include "push/imap_reply.h"

#include <string.h>
#include <strings.h>

/* A cursor over the line. */
struct cursor {
	const char *p;
	const char *end;
};

static bool at_end(const struct cursor *c)
{
	return c->p >= c->end;
}

/* Takes the word ending at a space, a bracket or the end, if it equals word (any case). */
static bool take_word(struct cursor *c, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(c->end - c->p) < n || strncasecmp(c->p, word, n) != 0)
		return false;
	if (c->p + n < c->end && c->p[n] != ' ' && c->p[n] != ']')
		return false;
	c->p += n;
	return true;
}

static void skip_spaces(struct cursor *c)
{
	while (!at_end(c) && *c->p == ' ')
		c->p++;
}

/* RFC 9051 9: number = 1*DIGIT, a 32-bit unsigned value (nz-number for UIDs). */
static bool take_number32(struct cursor *c, uint32_t *out)
{
	uint64_t v = 0;
	const char *start = c->p;

	while (!at_end(c) && *c->p >= '0' && *c->p <= '9') {
		v = v * 10 + (uint64_t)(*c->p - '0');
		if (v > UINT32_MAX)
			return false;
		c->p++;
	}
	if (c->p == start)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* Parses the decimal digits s[0..len) into a 64-bit value; false when empty, not all digits
 * or too large. */
static bool parse_number64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned digit = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - digit) / 10)
			return false;
		v = v * 10 + digit;
	}
	*out = v;
	return true;
}

/* Copies text for logs: printable ASCII only (the detail ends up in logs and in the push
 * status JSON, which must stay valid UTF-8), truncated to the buffer. */
static void copy_text(char *out, size_t outsz, const char *s, size_t len)
{
	size_t n = len < outsz - 1 ? len : outsz - 1;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		out[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	out[n] = '\0';
}

static bool atom_is(const char *atom, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(atom, word, len) == 0;
}

void imap_capabilities_parse(const char *list, size_t len, struct imap_capabilities *caps)
{
	struct cursor c = {list, list + len};
	size_t count = 0;

	memset(caps, 0, sizeof(*caps));
	while (count < PUSH_IMAP_CAPABILITIES_MAX) {
		skip_spaces(&c);
		if (at_end(&c))
			break;
		const char *atom = c.p;
		while (!at_end(&c) && *c.p != ' ')
			c.p++;
		size_t n = (size_t)(c.p - atom);
		count++;
		if (atom_is(atom, n, "IMAP4rev1"))
			caps->imap4rev1 = true;
		else if (atom_is(atom, n, "IMAP4rev2"))
			caps->imap4rev2 = true;
		else if (atom_is(atom, n, "STARTTLS"))
			caps->starttls = true;
		else if (atom_is(atom, n, "LOGINDISABLED"))
			caps->logindisabled = true;
		else if (atom_is(atom, n, "SASL-IR"))
			caps->sasl_ir = true;
		else if (atom_is(atom, n, "AUTH=PLAIN"))
			caps->auth_plain = true;
		else if (atom_is(atom, n, "AUTH=XOAUTH2"))
			caps->auth_xoauth2 = true;
		else if (atom_is(atom, n, "AUTH=OAUTHBEARER"))
			caps->auth_oauthbearer = true;
		else if (atom_is(atom, n, "LITERAL+"))
			caps->literal_plus = true;
		else if (atom_is(atom, n, "LITERAL-"))
			caps->literal_minus = true;
		else if (atom_is(atom, n, "UIDPLUS"))
			caps->uidplus = true;
		else if (atom_is(atom, n, "MULTIAPPEND"))
			caps->multiappend = true;
		else if (n > 12 && strncasecmp(atom, "APPENDLIMIT=", 12) == 0) {
			/* RFC 7889 2: a limit for every mailbox. A value we cannot read is ignored:
			 * the server's own answer to APPEND still decides. */
			uint64_t limit;
			if (parse_number64(atom + 12, n - 12, &limit)) {
				caps->appendlimit_global = true;
				caps->appendlimit = limit;
			}
		}
	}
}

bool imap_reply_trailing_literal(const char *line, size_t len, uint64_t *size)
{
	/* RFC 9051 4.3: literal = "{" number64 ["+"] "}" CRLF; literal8 has a "~" before it. */
	if (len < 3 || line[len - 1] != '}')
		return false;
	size_t end = len - 1;
	if (line[end - 1] == '+')
		end--;
	size_t start = end;
	while (start > 0 && line[start - 1] >= '0' && line[start - 1] <= '9')
		start--;
	if (start == end || start == 0 || line[start - 1] != '{')
		return false;
	/* A size too large to read is still a literal: the client then refuses it by size. */
	if (!parse_number64(line + start, end - start, size))
		*size = UINT64_MAX;
	return true;
}

/* uid-set (RFC 4315 4): nz-number or a range, comma-separated, and nothing else. */
static bool uid_set_valid(const char *s, size_t len)
{
	struct cursor c = {s, s + len};

	for (;;) {
		uint32_t n;
		if (!take_number32(&c, &n) || n == 0)
			return false;
		if (!at_end(&c) && *c.p == ':') {
			c.p++;
			if (!take_number32(&c, &n) || n == 0)
				return false;
		}
		if (at_end(&c))
			return true;
		if (*c.p++ != ',')
			return false;
	}
}

/* resp-text-code (RFC 9051 7.1), between the brackets. */
static void parse_code(const char *s, size_t len, struct imap_reply *reply)
{
	struct cursor c = {s, s + len};
	static const struct {
		const char *name;
		enum imap_reply_code code;
	} simple[] = {
		{"TOOBIG", IMAP_CODE_TOOBIG},
		{"PARSE", IMAP_CODE_PARSE},
		{"CANNOT", IMAP_CODE_CANNOT},
		{"LIMIT", IMAP_CODE_LIMIT},
		{"OVERQUOTA", IMAP_CODE_OVERQUOTA},
		{"TRYCREATE", IMAP_CODE_TRYCREATE},
		{"NONEXISTENT", IMAP_CODE_NONEXISTENT},
		{"ALREADYEXISTS", IMAP_CODE_ALREADYEXISTS},
		{"AUTHENTICATIONFAILED", IMAP_CODE_AUTHENTICATIONFAILED},
		{"AUTHORIZATIONFAILED", IMAP_CODE_AUTHORIZATIONFAILED},
		{"EXPIRED", IMAP_CODE_EXPIRED},
		{"UNAVAILABLE", IMAP_CODE_UNAVAILABLE},
		{"ALERT", IMAP_CODE_ALERT},
	};

	reply->code = IMAP_CODE_OTHER;
	if (take_word(&c, "CAPABILITY")) {
		imap_capabilities_parse(c.p, (size_t)(c.end - c.p), &reply->capabilities);
		reply->code = IMAP_CODE_CAPABILITY;
		return;
	}
	if (take_word(&c, "APPENDUID")) {
		/* RFC 4315 3: "APPENDUID" SP nz-number SP append-uid; with MULTIAPPEND the uid is a
		 * set, whose first number is the first message's. */
		uint32_t validity, uid;
		if (at_end(&c) || *c.p++ != ' ' || !take_number32(&c, &validity) || validity == 0 ||
		    at_end(&c) || *c.p++ != ' ')
			return;
		const char *set = c.p;
		if (!take_number32(&c, &uid) || uid == 0)
			return;
		while (!at_end(&c) && *c.p != ' ')
			c.p++;
		size_t setlen = (size_t)(c.p - set);
		if (setlen <= PUSH_IMAP_UID_SET_MAX && uid_set_valid(set, setlen)) {
			memcpy(reply->uid_set, set, setlen);
			reply->uid_set[setlen] = '\0';
		}
		reply->uidvalidity = validity;
		reply->uid = uid;
		reply->code = IMAP_CODE_APPENDUID;
		return;
	}
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		if (take_word(&c, simple[i].name)) {
			reply->code = simple[i].code;
			return;
		}
	}
}

bool imap_uid_set_nth(const char *set, size_t n, uint32_t *uid)
{
	/* uid-set = (uniqueid / uid-range) *("," uid-set); uid-range = uniqueid ":" uniqueid,
	 * either way round (RFC 4315 4). */
	struct cursor c = {set, set + strlen(set)};

	for (;;) {
		uint32_t first, last;
		if (!take_number32(&c, &first) || first == 0)
			return false;
		last = first;
		if (!at_end(&c) && *c.p == ':') {
			c.p++;
			if (!take_number32(&c, &last) || last == 0)
				return false;
		}
		uint32_t low = first < last ? first : last, high = first < last ? last : first;
		uint64_t span = (uint64_t)high - low + 1;
		if (n < span) {
			*uid = low + (uint32_t)n;
			return true;
		}
		n -= (size_t)span;
		if (at_end(&c) || *c.p != ',')
			return false;
		c.p++;
	}
}

/* resp-text = ["[" resp-text-code "]" SP] [text] */
static void parse_resp_text(struct cursor *c, struct imap_reply *reply)
{
	skip_spaces(c);
	if (!at_end(c) && *c->p == '[') {
		const char *close = memchr(c->p, ']', (size_t)(c->end - c->p));
		if (close) {
			parse_code(c->p + 1, (size_t)(close - c->p - 1), reply);
			c->p = close + 1;
			skip_spaces(c);
		}
	}
	copy_text(reply->text, sizeof(reply->text), c->p, (size_t)(c->end - c->p));
}

/* Status words: OK, NO, BAD (tagged or untagged), BYE and PREAUTH (untagged only). */
static enum imap_reply_status take_status(struct cursor *c, bool tagged)
{
	if (take_word(c, "OK"))
		return IMAP_STATUS_OK;
	if (take_word(c, "NO"))
		return IMAP_STATUS_NO;
	if (take_word(c, "BAD"))
		return IMAP_STATUS_BAD;
	if (!tagged && take_word(c, "BYE"))
		return IMAP_STATUS_BYE;
	if (!tagged && take_word(c, "PREAUTH"))
		return IMAP_STATUS_PREAUTH;
	return IMAP_STATUS_NONE;
}

/* "SEARCH" *(SP nz-number) [SP "(" "MODSEQ" ...")"]: counts the numbers. */
static void parse_search(struct cursor *c, struct imap_reply *reply)
{
	reply->data = IMAP_DATA_SEARCH;
	for (;;) {
		skip_spaces(c);
		uint32_t n;
		if (at_end(c) || !take_number32(c, &n))
			return;
		if (reply->search_count == 0)
			reply->search_first = n;
		reply->search_count++;
	}
}

static bool parse_untagged(struct cursor *c, struct imap_reply *reply)
{
	reply->kind = IMAP_REPLY_UNTAGGED;
	reply->status = take_status(c, false);
	if (reply->status != IMAP_STATUS_NONE) {
		parse_resp_text(c, reply);
		return true;
	}
	if (at_end(c))
		return false;
	if (take_word(c, "CAPABILITY")) {
		imap_capabilities_parse(c->p, (size_t)(c->end - c->p), &reply->capabilities);
		reply->data = IMAP_DATA_CAPABILITY;
	} else if (take_word(c, "SEARCH")) {
		parse_search(c, reply);
	} else if (take_word(c, "LIST")) {
		reply->data = IMAP_DATA_LIST;
	}
	/* Data such as FETCH, LIST or STATUS may carry literals; status texts never do. */
	reply->literal = imap_reply_trailing_literal(c->p, (size_t)(c->end - c->p),
		&reply->literal_size);
	return true;
}

bool imap_reply_parse(const char *line, size_t len, struct imap_reply *reply)
{
	struct cursor c = {line, line + len};

	memset(reply, 0, sizeof(*reply));
	if (len == 0)
		return false;
	if (*c.p == '+') {
		/* RFC 9051 7.5: "+" SP (resp-text / base64); some servers send a bare "+". */
		c.p++;
		reply->kind = IMAP_REPLY_CONTINUATION;
		parse_resp_text(&c, reply);
		return true;
	}
	if (*c.p == '*') {
		c.p++;
		if (at_end(&c) || *c.p++ != ' ')
			return false;
		return parse_untagged(&c, reply);
	}
	/* tag = 1*<any ASTRING-CHAR except "+">: we only need to match it against ours. */
	const char *tag = c.p;
	while (!at_end(&c) && *c.p != ' ') {
		unsigned char ch = (unsigned char)*c.p;
		if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\+", ch))
			return false;
		c.p++;
	}
	size_t taglen = (size_t)(c.p - tag);
	if (taglen == 0 || taglen > PUSH_IMAP_TAG_MAX || at_end(&c))
		return false;
	c.p++;
	memcpy(reply->tag, tag, taglen);
	reply->tag[taglen] = '\0';
	reply->kind = IMAP_REPLY_TAGGED;
	reply->status = take_status(&c, true);
	if (reply->status == IMAP_STATUS_NONE)
		return false;
	parse_resp_text(&c, reply);
	return true;
}
