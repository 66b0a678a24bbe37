/* smtp/client.c: the SMTP client state machine of the outbound queue. It parses (multi-line)
 * replies, chooses the extensions to use from the EHLO reply and walks one mail transaction,
 * giving every recipient its final result with the reply that decided it. */
#include "smtp/client.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "log.h"
#include "mail/base64.h"
#include "mail/dsn_params.h"

enum client_state {
	STATE_GREETING,       /* connected, waiting for the 220 (RFC 5321 3.1) */
	STATE_EHLO,
	STATE_HELO,           /* EHLO got 5xx: the RFC 5321 3.2 fallback */
	STATE_STARTTLS,       /* STARTTLS sent */
	STATE_TLS_HANDSHAKE,  /* 220 to STARTTLS, the glue does the handshake: no reply expected */
	STATE_AUTH,           /* AUTH PLAIN sent */
	STATE_MAIL,           /* MAIL sent (with the RCPTs and DATA when pipelining) */
	STATE_RCPT,           /* waiting for the reply to the RCPT of rcpt_cursor */
	STATE_DATA,           /* DATA sent */
	STATE_BODY,           /* the glue streams the message: no reply expected */
	STATE_DATA_END,       /* message sent, waiting for the final reply */
	STATE_EMPTY_DATA_END, /* "." sent after a 354 with no accepted recipient (RFC 2920 3.1) */
	STATE_DONE,
};

/* The EHLO keywords we use (RFC 5321 4.1.1.1); all false after HELO. */
struct extensions {
	bool starttls;
	bool pipelining;
	bool size;
	unsigned long long size_limit; /* 0: no fixed maximum announced (RFC 1870 4) */
	bool eightbitmime;
	bool smtputf8;
	bool dsn;
	bool auth_plain;
};

/* The reply being read; complete when a line has a space (or nothing) after the code. */
struct reply {
	unsigned lines; /* 0: no reply in progress */
	int code;
	bool has_enhanced;
	char enhanced[16];
	char text[SMTP_CLIENT_TEXT_MAX];
	size_t text_len;
};

struct recipient {
	bool sent;     /* RCPT TO was sent for it: a reply is owed */
	bool accepted; /* 2xx to its RCPT */
};

struct smtp_client {
	struct smtp_client_params params;
	enum client_state state;
	bool tls_active;
	bool starttls_refused;
	bool pipelining;    /* MAIL, RCPTs and DATA went as one batch */
	bool smtputf8;      /* the transaction uses SMTPUTF8 (RFC 6531 3.4) */
	bool mail_accepted;
	size_t rcpt_cursor; /* the recipient whose RCPT reply is awaited */
	size_t accepted;
	size_t pending;     /* results still SMTP_CLIENT_PENDING */
	struct extensions ext;
	struct reply reply;
	char remote_host[SMTP_DOMAIN_MAX + 1];
	struct recipient *rcpts;
	struct smtp_client_result *results;
};

__attribute__((format(printf, 2, 3)))
static void command(struct strbuf *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	strbuf_vappendf(out, fmt, ap);
	va_end(ap);
	strbuf_append(out, "\r\n", 2);
}

/* ---- results ---- */

/* Copies len bytes of s to dst (capacity size) as printable ASCII: results end up in DSN
 * header fields (RFC 3464 2.3.6) and logs, so no control or 8-bit octet survives. */
static size_t copy_printable(char *dst, size_t size, size_t used, const char *s, size_t len)
{
	for (size_t i = 0; i < len && used + 1 < size; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '\t')
			ch = ' ';
		else if (ch < 0x20 || ch >= 0x7f)
			ch = '?';
		dst[used++] = (char)ch;
	}
	dst[used] = '\0';
	return used;
}

static void set_result(struct smtp_client *c, size_t i, enum smtp_client_status status,
	int code, const char *enhanced, const char *text, bool host_failure)
{
	struct smtp_client_result *r = &c->results[i];

	if (r->status != SMTP_CLIENT_PENDING)
		return;
	r->status = status;
	r->code = code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced);
	copy_printable(r->text, sizeof(r->text), 0, text, strlen(text));
	snprintf(r->remote_host, sizeof(r->remote_host), "%s", c->remote_host);
	r->host_failure = host_failure;
	c->pending--;
}

/* Our own decision (no reply says it): code 0. */
__attribute__((format(printf, 6, 7)))
static void fail_one_local(struct smtp_client *c, size_t i, enum smtp_client_status status,
	const char *enhanced, bool host_failure, const char *fmt, ...)
{
	char text[SMTP_CLIENT_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	set_result(c, i, status, 0, enhanced, text, host_failure);
}

__attribute__((format(printf, 5, 6)))
static void fail_pending_local(struct smtp_client *c, enum smtp_client_status status,
	const char *enhanced, bool host_failure, const char *fmt, ...)
{
	char text[SMTP_CLIENT_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < c->params.recipient_count; i++)
		set_result(c, i, status, 0, enhanced, text, host_failure);
}

/* A failure reply for recipient i: 5xx is permanent, 4xx temporary (RFC 5321 4.2.1); any
 * other code here is a protocol violation, temporary. */
static void fail_one_reply(struct smtp_client *c, size_t i, const struct reply *r,
	bool host_failure)
{
	if (r->code >= 500)
		set_result(c, i, SMTP_CLIENT_PERMFAIL, r->code, r->enhanced, r->text, host_failure);
	else if (r->code >= 400)
		set_result(c, i, SMTP_CLIENT_TEMPFAIL, r->code, r->enhanced, r->text, host_failure);
	else
		fail_one_local(c, i, SMTP_CLIENT_TEMPFAIL, "4.5.0", true, "unexpected reply: %s",
			r->text);
}

static void fail_pending_reply(struct smtp_client *c, const struct reply *r, bool host_failure)
{
	for (size_t i = 0; i < c->params.recipient_count; i++)
		fail_one_reply(c, i, r, host_failure);
}

/* Ends the session; QUIT (RFC 5321 4.1.1.10) unless the connection is not in a command
 * state (message or TLS handshake under way) or the server is already closing it. */
static enum smtp_client_action finish(struct smtp_client *c, struct strbuf *out, bool quit)
{
	if (c->pending)
		fatal("event=smtp_client_bug pending=%zu state=%d", c->pending, (int)c->state);
	if (quit)
		command(out, "QUIT");
	c->state = STATE_DONE;
	return SMTP_CLIENT_ACTION_DONE;
}

static bool in_command_state(const struct smtp_client *c)
{
	return c->state != STATE_BODY && c->state != STATE_TLS_HANDSHAKE;
}

/* Garbage from the remote: the connection is no good, try again later (maybe elsewhere). */
static enum smtp_client_action protocol_error(struct smtp_client *c, struct strbuf *out,
	const char *what, const char *line, size_t len)
{
	char shown[80];

	copy_printable(shown, sizeof(shown), 0, line, len);
	fail_pending_local(c, SMTP_CLIENT_TEMPFAIL, "4.5.0", true,
		"protocol error: %s: \"%s\"", what, shown);
	c->reply.lines = 0;
	return finish(c, out, in_command_state(c));
}

/* ---- checks on what we send ---- */

static bool is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* An address we can put between <> without changing the command (RFC 5321 4.1.2): no
 * control octets, and no space or angle bracket outside a quoted local part. */
static bool address_usable(const char *a, bool null_ok)
{
	size_t len = strlen(a);
	bool quoted = false;

	if (len == 0)
		return null_ok;
	if (len > SMTP_PATH_MAX - 2)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)a[i];
		if (ch < 0x20 || ch == 0x7f)
			return false;
		if (quoted && ch == '\\') {
			if (++i == len || (unsigned char)a[i] < 0x20)
				return false;
		} else if (ch == '"') {
			quoted = !quoted;
		} else if (!quoted && (ch == ' ' || ch == '<' || ch == '>')) {
			return false;
		}
	}
	return !quoted;
}

/* A DSN parameter value we were given, or NULL when absent or malformed (logged: it is our
 * spool's bug, and sending it would get the whole command refused). */
static const char *dsn_value(const char *value, bool valid, const char *name)
{
	if (!value)
		return NULL;
	if (!valid) {
		log_warn("smtp_client", "event=dsn_parameter_dropped name=%s", name);
		return NULL;
	}
	return value;
}

/* ---- building commands ---- */

static void send_ehlo(struct smtp_client *c, struct strbuf *out)
{
	memset(&c->ext, 0, sizeof(c->ext));
	command(out, "EHLO %s", c->params.helo_name);
	c->state = STATE_EHLO;
}

/* RFC 4954 4 with the RFC 4616 2 message: AUTH PLAIN base64(NUL user NUL password) as an
 * initial response. Returns false (nothing appended) when it would not fit on one line. */
static bool send_auth_plain(struct smtp_client *c, struct strbuf *out)
{
	size_t ulen = strlen(c->params.auth_user), plen = strlen(c->params.auth_password);
	size_t len = ulen + plen + 2;
	unsigned char *msg;

	if (ulen == 0 || plen == 0 || base64_encoded_length(len) + sizeof("AUTH PLAIN \r\n") > SASL_LINE_MAX)
		return false;
	msg = xmalloc(len);
	msg[0] = '\0';
	memcpy(msg + 1, c->params.auth_user, ulen);
	msg[ulen + 1] = '\0';
	memcpy(msg + ulen + 2, c->params.auth_password, plen);
	strbuf_append_str(out, "AUTH PLAIN ");
	base64_encode(out, msg, len);
	strbuf_append(out, "\r\n", 2);
	explicit_bzero(msg, len);
	free(msg);
	return true;
}

static void send_mail(struct smtp_client *c, struct strbuf *out)
{
	const struct smtp_client_params *p = &c->params;

	strbuf_appendf(out, "MAIL FROM:<%s>", p->sender);
	/* RFC 1870 6: declare the size when the remote takes SIZE. */
	if (c->ext.size)
		strbuf_appendf(out, " SIZE=%llu", p->message_size);
	/* RFC 6152 2. When the remote lacks 8BITMIME we still send the 8-bit body as it is (RFC
	 * 6152 3 allows this or a bounce; converting would break the DKIM signature made
	 * before queueing, and nearly every server takes 8-bit octets anyway). */
	if (p->message_8bit && c->ext.eightbitmime)
		strbuf_append_str(out, " BODY=8BITMIME");
	if (c->smtputf8)
		strbuf_append_str(out, " SMTPUTF8");
	if (c->ext.dsn) {
		enum dsn_ret r;
		const char *ret = dsn_value(p->ret, p->ret && dsn_ret_parse(p->ret, strlen(p->ret),
			&r), "RET");
		const char *envid = dsn_value(p->envid, p->envid && dsn_xtext_valid(p->envid,
			SMTP_ENVID_MAX), "ENVID");
		if (ret)
			strbuf_appendf(out, " RET=%s", ret);
		if (envid)
			strbuf_appendf(out, " ENVID=%s", envid);
	}
	strbuf_append(out, "\r\n", 2);
}

static void send_rcpt(struct smtp_client *c, size_t i, struct strbuf *out)
{
	const struct smtp_client_params *p = &c->params;

	strbuf_appendf(out, "RCPT TO:<%s>", p->recipients[i]);
	/* RFC 3461 4.1, 4.2: only to a remote that announced DSN. */
	if (c->ext.dsn) {
		const char *notify = p->notify ? p->notify[i] : NULL;
		const char *orcpt = p->orcpt ? p->orcpt[i] : NULL;
		unsigned bits;

		notify = dsn_value(notify, notify && dsn_notify_parse(notify, strlen(notify), &bits),
			"NOTIFY");
		orcpt = dsn_value(orcpt, orcpt && dsn_orcpt_valid(orcpt), "ORCPT");
		if (notify)
			strbuf_appendf(out, " NOTIFY=%s", notify);
		if (orcpt)
			strbuf_appendf(out, " ORCPT=%s", orcpt);
	}
	strbuf_append(out, "\r\n", 2);
	c->rcpts[i].sent = true;
}

/* The next recipient after from (or the first when from is SIZE_MAX) that still needs a
 * RCPT; recipient_count when none. */
static size_t next_unsent(const struct smtp_client *c, size_t from)
{
	size_t i = from == SIZE_MAX ? 0 : from + 1;

	while (i < c->params.recipient_count &&
	       (c->rcpts[i].sent || c->results[i].status != SMTP_CLIENT_PENDING))
		i++;
	return i;
}

/* The next recipient after from whose RCPT was sent: its reply comes next. */
static size_t next_sent(const struct smtp_client *c, size_t from)
{
	size_t i = from + 1;

	while (i < c->params.recipient_count && !c->rcpts[i].sent)
		i++;
	return i;
}

static size_t first_sent(const struct smtp_client *c)
{
	return c->rcpts[0].sent ? 0 : next_sent(c, 0);
}

/* EHLO/HELO (and TLS, AUTH) are done: check what the message needs against what the remote
 * offers, then MAIL FROM. */
static enum smtp_client_action start_transaction(struct smtp_client *c, struct strbuf *out)
{
	const struct smtp_client_params *p = &c->params;

	/* RFC 6531 3.2: without SMTPUTF8 at the remote, a message that needs it cannot go. */
	if (p->needs_smtputf8 || !is_ascii(p->sender)) {
		if (!c->ext.smtputf8) {
			fail_pending_local(c, SMTP_CLIENT_PERMFAIL, "5.6.7", false,
				"the remote does not offer SMTPUTF8, which this message needs "
				"(RFC 6531)");
			return finish(c, out, true);
		}
		c->smtputf8 = true;
	}
	for (size_t i = 0; i < p->recipient_count; i++) {
		if (is_ascii(p->recipients[i]))
			continue;
		if (c->ext.smtputf8)
			c->smtputf8 = true;
		else
			fail_one_local(c, i, SMTP_CLIENT_PERMFAIL, "5.6.7", false,
				"the remote does not offer SMTPUTF8, which this non-ASCII address "
				"needs (RFC 6531)");
	}
	/* RFC 1870 6: do not send what the remote's fixed maximum refuses anyway. */
	if (c->ext.size && c->ext.size_limit && p->message_size > c->ext.size_limit) {
		fail_pending_local(c, SMTP_CLIENT_PERMFAIL, "5.3.4", false,
			"message size %llu exceeds the remote's fixed maximum of %llu (RFC 1870)",
			p->message_size, c->ext.size_limit);
		return finish(c, out, true);
	}
	size_t first = next_unsent(c, SIZE_MAX);
	if (first == p->recipient_count)
		return finish(c, out, true);

	send_mail(c, out);
	c->pipelining = c->ext.pipelining;
	if (c->pipelining) {
		/* RFC 2920 3.1: MAIL and RCPT anywhere in a group, DATA only last. */
		for (size_t i = first; i < p->recipient_count; i = next_unsent(c, i))
			send_rcpt(c, i, out);
		command(out, "DATA");
	}
	c->state = STATE_MAIL;
	return SMTP_CLIENT_ACTION_NONE;
}

/* After EHLO/HELO: STARTTLS, then AUTH, then the transaction. */
static enum smtp_client_action after_hello(struct smtp_client *c, struct strbuf *out)
{
	const struct smtp_client_params *p = &c->params;

	if (!c->tls_active && p->tls != SMTP_CLIENT_TLS_NEVER && !c->starttls_refused) {
		if (c->ext.starttls) {
			command(out, "STARTTLS");
			c->state = STATE_STARTTLS;
			return SMTP_CLIENT_ACTION_NONE;
		}
		if (p->tls == SMTP_CLIENT_TLS_REQUIRED) {
			fail_pending_local(c, SMTP_CLIENT_TEMPFAIL, "4.7.4", true,
				"TLS is required but the remote does not offer STARTTLS");
			return finish(c, out, true);
		}
	}
	if (p->auth_user) {
		/* RFC 4954 4, RFC 4616 6: a password only ever goes over TLS. */
		if (!c->tls_active) {
			fail_pending_local(c, SMTP_CLIENT_TEMPFAIL, "4.7.11", true,
				"credentials are configured but TLS is not active: "
				"not sending them in clear");
			return finish(c, out, true);
		}
		if (!c->ext.auth_plain) {
			fail_pending_local(c, SMTP_CLIENT_TEMPFAIL, "4.7.0", true,
				"credentials are configured but the remote does not offer "
				"AUTH PLAIN");
			return finish(c, out, true);
		}
		if (!send_auth_plain(c, out)) {
			fail_pending_local(c, SMTP_CLIENT_TEMPFAIL, "4.3.5", false,
				"the configured credentials are empty or too long for AUTH PLAIN");
			return finish(c, out, true);
		}
		c->state = STATE_AUTH;
		return SMTP_CLIENT_ACTION_NONE;
	}
	return start_transaction(c, out);
}

/* ---- EHLO reply ---- */

static bool word_is(const char *s, size_t len, const char *word)
{
	return len == strlen(word) && strncasecmp(s, word, len) == 0;
}

/* RFC 1870 4: "SIZE" [SP number]; absent, 0 or not representable means no fixed limit. */
static unsigned long long parse_size_limit(const char *s, size_t len)
{
	unsigned long long v = 0;

	if (len == 0 || len > 20)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (~0ULL - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	return v;
}

/* RFC 4954 3: AUTH mechanism list separated by spaces. */
static bool mechanisms_have_plain(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		while (i < len && s[i] == ' ')
			i++;
		size_t start = i;
		while (i < len && s[i] != ' ')
			i++;
		if (word_is(s + start, i - start, "PLAIN"))
			return true;
	}
	return false;
}

/* One EHLO keyword line (RFC 5321 4.1.1.1: ehlo-line = ehlo-keyword *( SP ehlo-param )). */
static void parse_extension(struct extensions *ext, const char *s, size_t len)
{
	size_t k = 0;

	while (k < len && s[k] != ' ' && s[k] != '=')
		k++;
	const char *arg = k < len ? s + k + 1 : s + len;
	size_t arg_len = k < len ? len - k - 1 : 0;

	if (word_is(s, k, "STARTTLS"))
		ext->starttls = true;
	else if (word_is(s, k, "PIPELINING"))
		ext->pipelining = true;
	else if (word_is(s, k, "8BITMIME"))
		ext->eightbitmime = true;
	else if (word_is(s, k, "SMTPUTF8"))
		ext->smtputf8 = true;
	else if (word_is(s, k, "DSN"))
		ext->dsn = true;
	else if (word_is(s, k, "SIZE") && (k == len || s[k] == ' ')) {
		ext->size = true;
		ext->size_limit = parse_size_limit(arg, arg_len);
	} else if (word_is(s, k, "AUTH")) {
		/* "AUTH=PLAIN LOGIN" is the pre-RFC 4954 form some servers still send. */
		if (mechanisms_have_plain(arg, arg_len))
			ext->auth_plain = true;
	}
}

/* ---- replies, by state ---- */

static enum smtp_client_action on_greeting(struct smtp_client *c, const struct reply *r,
	struct strbuf *out)
{
	/* RFC 5321 3.1: 220 opens the session; 554 (or anything else) refuses it, and the
	 * client still says QUIT. */
	if (r->code != 220) {
		fail_pending_reply(c, r, true);
		return finish(c, out, true);
	}
	send_ehlo(c, out);
	return SMTP_CLIENT_ACTION_NONE;
}

static enum smtp_client_action on_ehlo(struct smtp_client *c, const struct reply *r,
	struct strbuf *out)
{
	if (r->code / 100 == 2)
		return after_hello(c, out);
	if (r->code / 100 == 5) {
		/* RFC 5321 3.2: a server that does not know EHLO gets HELO. */
		memset(&c->ext, 0, sizeof(c->ext));
		command(out, "HELO %s", c->params.helo_name);
		c->state = STATE_HELO;
		return SMTP_CLIENT_ACTION_NONE;
	}
	fail_pending_reply(c, r, true);
	return finish(c, out, true);
}

static enum smtp_client_action on_helo(struct smtp_client *c, const struct reply *r,
	struct strbuf *out)
{
	if (r->code / 100 == 2)
		return after_hello(c, out);
	fail_pending_reply(c, r, true);
	return finish(c, out, true);
}

static enum smtp_client_action on_starttls(struct smtp_client *c, const struct reply *r,
	struct strbuf *out)
{
	if (r->code == 220) {
		c->state = STATE_TLS_HANDSHAKE;
		return SMTP_CLIENT_ACTION_STARTTLS;
	}
	if (c->params.tls == SMTP_CLIENT_TLS_REQUIRED) {
		fail_pending_local(c, SMTP_CLIENT_TEMPFAIL, "4.7.4", true,
			"TLS is required but STARTTLS was refused: %s", r->text);
		return finish(c, out, true);
	}
	/* RFC 3207 4: after a refused STARTTLS the session goes on as before, in clear. */
	char host[SMTP_DOMAIN_MAX + 8];
	log_info("smtp_client", "event=starttls_refused host=%s code=%d",
		log_quote(host, sizeof(host), c->remote_host, strlen(c->remote_host)), r->code);
	c->starttls_refused = true;
	return after_hello(c, out);
}

static enum smtp_client_action on_auth(struct smtp_client *c, const struct reply *r,
	struct strbuf *out)
{
	if (r->code == 235)
		return start_transaction(c, out);
	if (r->code == 334) {
		/* A challenge after a complete initial response: cancel (RFC 4954 4). */
		command(out, "*");
		fail_pending_local(c, SMTP_CLIENT_TEMPFAIL, "4.7.0", true,
			"unexpected AUTH PLAIN challenge: %s", r->text);
		return finish(c, out, true);
	}
	/* RFC 4954 6: 535 5.7.8 bad credentials, 454 4.7.0 temporary failure, 534 mechanism too
	 * weak, ... Whatever the smarthost says about our login is the operator's to mend (a
	 * wrong password, an expired account), not a fault of the recipients or the message:
	 * defer, as Postfix does with smtp_sasl_auth_soft_bounce, so the queue keeps the mail
	 * until the login works or the message expires. Deferring a 5xx is our decision, not
	 * the reply's, so the result has no reply code (a DSN's Diagnostic-Code would contradict
	 * its Status) and the reply goes into the text; the enhanced status says "temporary"
	 * (RFC 3463 3.1). */
	char host[SMTP_DOMAIN_MAX + 8], text[SMTP_CLIENT_TEXT_MAX + 8];
	log_error("smtp_client", "event=relay_auth_failed host=%s code=%d reply=%s",
		log_quote(host, sizeof(host), c->remote_host, strlen(c->remote_host)), r->code,
		log_quote(text, sizeof(text), r->text, strlen(r->text)));
	if (r->code / 100 == 5) {
		char enhanced[sizeof(r->enhanced)] = "4.7.0";
		if (r->enhanced[0] == '5')
			snprintf(enhanced, sizeof(enhanced), "4%s", r->enhanced + 1);
		fail_pending_local(c, SMTP_CLIENT_TEMPFAIL, enhanced, true,
			"the smarthost refused the login: %s", r->text);
	} else {
		/* 4xx: the smarthost's own "try again later"; anything else breaks the protocol. */
		fail_pending_reply(c, r, true);
	}
	return finish(c, out, true);
}

static enum smtp_client_action on_mail(struct smtp_client *c, const struct reply *r,
	struct strbuf *out)
{
	if (r->code / 100 == 2) {
		c->mail_accepted = true;
		if (!c->pipelining)
			send_rcpt(c, next_unsent(c, SIZE_MAX), out);
	} else {
		/* The sender was refused: it is the answer for every recipient. */
		fail_pending_reply(c, r, false);
		if (!c->pipelining)
			return finish(c, out, true);
		/* RFC 2920 3.1: the batched RCPTs and DATA still get replies; read them all. */
	}
	c->rcpt_cursor = first_sent(c);
	c->state = STATE_RCPT;
	return SMTP_CLIENT_ACTION_NONE;
}

static enum smtp_client_action on_rcpt(struct smtp_client *c, const struct reply *r,
	struct strbuf *out)
{
	size_t i = c->rcpt_cursor;

	if (c->mail_accepted) {
		if (r->code / 100 == 2) {
			c->rcpts[i].accepted = true;
			c->accepted++;
		} else {
			fail_one_reply(c, i, r, false);
		}
	}
	if (c->pipelining) {
		c->rcpt_cursor = next_sent(c, i);
		if (c->rcpt_cursor == c->params.recipient_count)
			c->state = STATE_DATA;
		return SMTP_CLIENT_ACTION_NONE;
	}
	c->rcpt_cursor = next_unsent(c, i);
	if (c->rcpt_cursor < c->params.recipient_count) {
		send_rcpt(c, c->rcpt_cursor, out);
		return SMTP_CLIENT_ACTION_NONE;
	}
	if (c->accepted == 0)
		return finish(c, out, true);
	command(out, "DATA");
	c->state = STATE_DATA;
	return SMTP_CLIENT_ACTION_NONE;
}

static enum smtp_client_action on_data(struct smtp_client *c, const struct reply *r,
	struct strbuf *out)
{
	if (r->code == 354) {
		if (c->accepted) {
			c->state = STATE_BODY;
			return SMTP_CLIENT_ACTION_SEND_BODY;
		}
		/* RFC 2920 3.1: a pipelined DATA may get 354 although no RCPT was accepted;
		 * the client then sends a single dot, which ends an empty message. */
		command(out, ".");
		c->state = STATE_EMPTY_DATA_END;
		return SMTP_CLIENT_ACTION_NONE;
	}
	/* With no accepted recipient, a refused DATA is expected (RFC 2920 3.1). */
	if (c->accepted)
		fail_pending_reply(c, r, false);
	return finish(c, out, true);
}

static enum smtp_client_action on_data_end(struct smtp_client *c, const struct reply *r,
	struct strbuf *out)
{
	/* RFC 5321 4.1.1.4: the reply to the end of data is the one for every recipient
	 * accepted by RCPT (no LMTP-style per-recipient replies in SMTP). */
	if (r->code / 100 == 2) {
		for (size_t i = 0; i < c->params.recipient_count; i++)
			set_result(c, i, SMTP_CLIENT_DELIVERED, r->code, r->enhanced, r->text,
				false);
	} else {
		fail_pending_reply(c, r, false);
	}
	return finish(c, out, true);
}

static enum smtp_client_action on_reply(struct smtp_client *c, const struct reply *r,
	struct strbuf *out)
{
	/* RFC 5321 3.8: 421 may come at any time; the server closes the channel after it. */
	if (r->code == 421) {
		fail_pending_reply(c, r, true);
		return finish(c, out, false);
	}
	switch (c->state) {
	case STATE_GREETING:
		return on_greeting(c, r, out);
	case STATE_EHLO:
		return on_ehlo(c, r, out);
	case STATE_HELO:
		return on_helo(c, r, out);
	case STATE_STARTTLS:
		return on_starttls(c, r, out);
	case STATE_AUTH:
		return on_auth(c, r, out);
	case STATE_MAIL:
		return on_mail(c, r, out);
	case STATE_RCPT:
		return on_rcpt(c, r, out);
	case STATE_DATA:
		return on_data(c, r, out);
	case STATE_DATA_END:
		return on_data_end(c, r, out);
	case STATE_EMPTY_DATA_END:
		/* Whatever the remote thinks of the empty message, nobody gets it. */
		return finish(c, out, true);
	case STATE_TLS_HANDSHAKE:
	case STATE_BODY:
	case STATE_DONE:
		break;
	}
	return protocol_error(c, out, "reply while none was expected", r->text, r->text_len);
}

/* ---- reply lines ---- */

/* RFC 3463 2 / RFC 2034 4: "class.subject.detail" after the code, class matching the code's
 * first digit, subject and detail 1-3 digits. */
static bool parse_enhanced(const char *s, size_t len, int code, char *enhanced, size_t size,
	size_t *used)
{
	size_t i = 0;

	if (len < 5 || s[0] != (char)('0' + code / 100) || s[1] != '.')
		return false;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (i < len && i - start < 4 && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start || i - start > 3)
			return false;
		if (part == 0) {
			if (i == len || s[i] != '.')
				return false;
			i++;
		}
	}
	if (i < len && s[i] != ' ')
		return false;
	snprintf(enhanced, size, "%.*s", (int)i, s);
	*used = i;
	return true;
}

static void reply_append_text(struct reply *r, const char *s, size_t len)
{
	r->text_len = copy_printable(r->text, sizeof(r->text), r->text_len, s, len);
}

enum smtp_client_action smtp_client_feed_line(struct smtp_client *c, const char *line,
	size_t len, struct strbuf *out)
{
	struct reply *r = &c->reply;
	int code;
	bool last;

	if (c->state == STATE_DONE)
		return SMTP_CLIENT_ACTION_DONE;
	if (len && line[len - 1] == '\r')
		len--;
	if (len > SMTP_REPLY_LINE_MAX)
		return protocol_error(c, out, "reply line too long", line, len);
	/* RFC 5321 4.2: Reply-code [ SP / "-" textstring ]; the first digit 2-5, the second
	 * 0-5 (4.2.1). */
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
	    line[2] < '0' || line[2] > '9' || (len > 3 && line[3] != ' ' && line[3] != '-') ||
	    memchr(line, '\0', len))
		return protocol_error(c, out, "malformed reply line", line, len);
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	last = len == 3 || line[3] == ' ';
	const char *text = len > 4 ? line + 4 : line + len;
	size_t text_len = len > 4 ? len - 4 : 0;

	if (r->lines == 0) {
		size_t used = 0;
		memset(r, 0, sizeof(*r));
		r->code = code;
		r->has_enhanced = parse_enhanced(text, text_len, code, r->enhanced,
			sizeof(r->enhanced), &used);
		if (!r->has_enhanced)
			snprintf(r->enhanced, sizeof(r->enhanced), "%d.0.0", code / 100);
		r->text_len = (size_t)snprintf(r->text, sizeof(r->text), "%d", code);
		if (text_len) {
			reply_append_text(r, " ", 1);
			reply_append_text(r, text, text_len);
		}
	} else {
		/* RFC 5321 4.2.1: every line of a multi-line reply has the same code. */
		if (code != r->code)
			return protocol_error(c, out, "reply code changes within a reply", line,
				len);
		size_t skip = strlen(r->enhanced);
		if (r->has_enhanced && text_len >= skip && memcmp(text, r->enhanced, skip) == 0 &&
		    (text_len == skip || text[skip] == ' ')) {
			text += skip;
			text_len -= skip;
			while (text_len && *text == ' ') {
				text++;
				text_len--;
			}
		}
		if (text_len) {
			reply_append_text(r, " ", 1);
			reply_append_text(r, text, text_len);
		}
	}
	if (++r->lines > SMTP_REPLY_LINES_MAX)
		return protocol_error(c, out, "too many lines in one reply", line, len);
	/* EHLO keywords are on the lines after the first (RFC 5321 4.1.1.1). */
	if (c->state == STATE_EHLO && code == 250 && r->lines > 1)
		parse_extension(&c->ext, text, text_len);
	if (!last)
		return SMTP_CLIENT_ACTION_NONE;

	struct reply done = *r;
	r->lines = 0;
	return on_reply(c, &done, out);
}

/* ---- glue events ---- */

void smtp_client_tls_started(struct smtp_client *c, struct strbuf *out)
{
	if (c->state != STATE_TLS_HANDSHAKE)
		return;
	/* RFC 3207 4.2: forget what was learnt in clear; EHLO again. */
	c->tls_active = true;
	send_ehlo(c, out);
}

void smtp_client_body_sent(struct smtp_client *c)
{
	if (c->state == STATE_BODY)
		c->state = STATE_DATA_END;
}

void smtp_client_connection_failed(struct smtp_client *c, const char *why)
{
	if (c->state == STATE_DONE)
		return;
	/* RFC 3463 3.5: X.4.1 no answer from host, X.4.2 bad connection. A failure after the
	 * end of data may mean a duplicate later (RFC 1047); a retry is still the safe side. */
	fail_pending_local(c, SMTP_CLIENT_TEMPFAIL, c->state == STATE_GREETING ? "4.4.1" : "4.4.2",
		true, "%s", why && *why ? why : "connection failed");
	c->reply.lines = 0;
	c->state = STATE_DONE;
}

/* ---- life cycle and accessors ---- */

/* RFC 5321 4.1.1.1: the EHLO argument is a domain or address literal; at least it must be
 * one token. */
static bool helo_name_usable(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] <= ' ' || (unsigned char)name[i] >= 0x7f)
			return false;
	return true;
}

struct smtp_client *smtp_client_new(const struct smtp_client_params *params)
{
	struct smtp_client *c;

	if (!params->helo_name || !params->sender || !params->recipients ||
	    params->recipient_count == 0 || (params->auth_user && !params->auth_password))
		fatal("event=smtp_client_bad_params");
	for (size_t i = 0; i < params->recipient_count; i++)
		if (!params->recipients[i])
			fatal("event=smtp_client_bad_params");
	c = xcalloc(1, sizeof(*c));
	c->params = *params;
	c->tls_active = params->tls_active;
	c->state = STATE_GREETING;
	c->rcpts = xcalloc(params->recipient_count, sizeof(*c->rcpts));
	c->results = xcalloc(params->recipient_count, sizeof(*c->results));
	c->pending = params->recipient_count;
	for (size_t i = 0; i < params->recipient_count; i++)
		c->results[i].status = SMTP_CLIENT_PENDING;

	if (!helo_name_usable(params->helo_name))
		fail_pending_local(c, SMTP_CLIENT_TEMPFAIL, "4.3.5", false,
			"the configured host name is not usable in EHLO");
	else if (!address_usable(params->sender, true))
		fail_pending_local(c, SMTP_CLIENT_PERMFAIL, "5.1.7", false,
			"bad sender address syntax");
	for (size_t i = 0; i < params->recipient_count; i++)
		if (!address_usable(params->recipients[i], false))
			fail_one_local(c, i, SMTP_CLIENT_PERMFAIL, "5.1.3", false,
				"bad destination mailbox address syntax");
	if (c->pending == 0)
		c->state = STATE_DONE;
	return c;
}

void smtp_client_free(struct smtp_client *c)
{
	if (!c)
		return;
	free(c->rcpts);
	free(c->results);
	free(c);
}

void smtp_client_set_remote_host(struct smtp_client *c, const char *host)
{
	copy_printable(c->remote_host, sizeof(c->remote_host), 0, host ? host : "",
		host ? strlen(host) : 0);
}

bool smtp_client_finished(const struct smtp_client *c)
{
	return c->state == STATE_DONE;
}

size_t smtp_client_recipient_count(const struct smtp_client *c)
{
	return c->params.recipient_count;
}

const struct smtp_client_result *smtp_client_result(const struct smtp_client *c, size_t i)
{
	return i < c->params.recipient_count ? &c->results[i] : NULL;
}

bool smtp_client_remote_supports_dsn(const struct smtp_client *c)
{
	return c->ext.dsn;
}

bool smtp_client_tls_active(const struct smtp_client *c)
{
	return c->tls_active;
}
