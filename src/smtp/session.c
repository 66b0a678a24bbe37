/* smtp/session.c: the SMTP server state machine. A command table gives each verb the states
 * it is valid in (with the 503 for the others) and a function that checks its arguments and
 * then acts; replies carry RFC 3463 enhanced status codes. */
#include "smtp/session.h"

#include <openssl/crypto.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "auth.h"
#include "bounds.h"
#include "log.h"
#include "mail/dsn_params.h"

struct smtp_session {
	enum smtp_state state;
	struct smtp_session_params params;
	char helo[SMTP_DOMAIN_MAX + 1];
	bool esmtp;
	bool tls_active;
	char tls_description[128];
	struct smtp_tx tx;
	size_t rcpt_capacity;
	unsigned errors;
	struct smtp_data_reader data;
	const struct server_config *authenticated; /* set by a successful AUTH */
	/* Credentials of an AUTH being checked; wiped once the verdict is in. */
	const struct server_config *auth_server;
	char auth_password[SASL_LINE_MAX];
	size_t auth_password_len;
	/* A DNSBL lists the client (smtp_session_set_dnsbl): RCPT refused but for postmaster. */
	bool dnsbl_listed;
	char dnsbl_zone[256];
	char dnsbl_reason[DNSBL_REASON_MAX];
};

/* The states a command line may be read in, as bits for the command table's masks. */
#define SMTP_IN(state) (1u << (state))
#define SMTP_IN_CONNECTED SMTP_IN(SMTP_STATE_CONNECTED)
#define SMTP_IN_READY SMTP_IN(SMTP_STATE_READY)
#define SMTP_IN_MAIL SMTP_IN(SMTP_STATE_MAIL)
#define SMTP_IN_RCPT SMTP_IN(SMTP_STATE_RCPT)
#define SMTP_IN_TRANSACTION (SMTP_IN_MAIL | SMTP_IN_RCPT)
#define SMTP_IN_ANY (SMTP_IN_CONNECTED | SMTP_IN_READY | SMTP_IN_TRANSACTION)

/* The command takes no argument: "501 5.5.4 Syntax: VERB" otherwise, before anything else. */
#define SMTP_CMD_NO_ARGUMENT 0x1u

/* The reply to a command given in a state its table entry does not allow. */
struct smtp_out_of_sequence {
	unsigned states;
	const char *reply;
};

/* One verb, OpenSMTPD-style: the states it is valid in, with the 503 for each other state,
 * checked generically; a precondition of the connection that outranks the sequence (a reply,
 * or NULL); and the function doing the rest. */
struct smtp_command {
	const char *verb;
	unsigned flags;
	unsigned states;
	const struct smtp_out_of_sequence *out_of_sequence; /* ends with states == 0 */
	const char *(*precondition)(const struct smtp_session *s);
	enum smtp_action (*proceed)(struct smtp_session *s, const char *arg, size_t len,
		struct strbuf *out);
};

static void reply(struct strbuf *out, const char *text)
{
	strbuf_append_str(out, text);
	strbuf_append(out, "\r\n", 2);
}

/* Counts a client error; past SMTP_MAX_ERRORS the session is closed (Postfix's
 * smtpd_hard_error_limit): a client that only sends garbage does not hold a slot forever. */
static enum smtp_action error_reply(struct smtp_session *s, struct strbuf *out, const char *text)
{
	reply(out, text);
	if (++s->errors >= SMTP_MAX_ERRORS) {
		reply(out, "421 4.7.0 Too many errors, closing connection");
		s->state = SMTP_STATE_CLOSED;
		return SMTP_ACTION_CLOSE;
	}
	return SMTP_ACTION_NONE;
}

static void tx_reset(struct smtp_session *s)
{
	struct smtp_rcpt *rcpts = s->tx.rcpts;

	memset(&s->tx, 0, sizeof(s->tx));
	s->tx.rcpts = rcpts;
}

struct smtp_session *smtp_session_new(const struct smtp_session_params *params)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));

	s->params = *params;
	s->tls_active = params->tls_active;
	s->state = SMTP_STATE_CONNECTED;
	return s;
}

void smtp_session_free(struct smtp_session *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s->auth_password, sizeof(s->auth_password));
	free(s->tx.rcpts);
	free(s);
}

void smtp_session_greeting(struct smtp_session *s, struct strbuf *out)
{
	strbuf_appendf(out, "220 %s ESMTP mailpopbox\r\n", s->params.cfg->hostname);
}

/* ---- commands ---- */

/* RFC 5321 4.1.1.1: the argument of EHLO/HELO; we keep a printable copy for Received. */
static bool take_helo_name(struct smtp_session *s, const char *arg, size_t len)
{
	while (len && arg[len - 1] == ' ')
		len--;
	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)arg[i];
		/* Real clients send odd names (Windows hosts, underscores): accept any visible
		 * ASCII, refuse spaces and control octets so the trace header stays one token. */
		if (c <= ' ' || c >= 0x7f)
			return false;
	}
	memcpy(s->helo, arg, len);
	s->helo[len] = '\0';
	return true;
}

static enum smtp_action cmd_ehlo(struct smtp_session *s, const char *arg, size_t len,
	struct strbuf *out)
{
	const struct config *cfg = s->params.cfg;

	if (!take_helo_name(s, arg, len))
		return error_reply(s, out, "501 5.5.4 Syntax: EHLO hostname");
	/* RFC 5321 4.1.4: EHLO resets the transaction like RSET. */
	tx_reset(s);
	s->esmtp = true;
	s->state = SMTP_STATE_READY;
	strbuf_appendf(out, "250-%s Hello %s [%s]\r\n", cfg->hostname, s->helo,
		s->params.client_ip);
	reply(out, "250-PIPELINING");
	strbuf_appendf(out, "250-SIZE %llu\r\n", (unsigned long long)cfg->max_message_size);
	reply(out, "250-8BITMIME");
	reply(out, "250-ENHANCEDSTATUSCODES");
	reply(out, "250-DSN");
	if (s->params.tls_available && !s->tls_active)
		reply(out, "250-STARTTLS");
	/* RFC 4954 4 / RFC 8314: passwords only inside TLS, so AUTH is offered only there. */
	if (s->tls_active && !s->authenticated)
		reply(out, "250-AUTH PLAIN");
	reply(out, "250 SMTPUTF8");
	return SMTP_ACTION_NONE;
}

static enum smtp_action cmd_helo(struct smtp_session *s, const char *arg, size_t len,
	struct strbuf *out)
{
	if (!take_helo_name(s, arg, len))
		return error_reply(s, out, "501 5.5.4 Syntax: HELO hostname");
	tx_reset(s);
	s->esmtp = false;
	s->state = SMTP_STATE_READY;
	strbuf_appendf(out, "250 %s\r\n", s->params.cfg->hostname);
	return SMTP_ACTION_NONE;
}

static bool keyword_is(const struct smtp_param *p, const char *word)
{
	return p->key_len == strlen(word) && strncasecmp(p->key, word, p->key_len) == 0;
}

static bool value_is(const struct smtp_param *p, const char *word)
{
	return p->value && p->value_len == strlen(word) &&
		strncasecmp(p->value, word, p->value_len) == 0;
}

/* Parses a decimal SIZE value (RFC 1870 3: 1*20DIGIT); false on junk or overflow. */
static bool parse_size(const struct smtp_param *p, uint64_t *size)
{
	uint64_t v = 0;

	if (!p->value || p->value_len == 0 || p->value_len > 20)
		return false;
	for (size_t i = 0; i < p->value_len; i++) {
		char c = p->value[i];
		if (c < '0' || c > '9')
			return false;
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(c - '0');
	}
	*size = v;
	return true;
}

/* Matches "FROM:" / "TO:" at the start of arg, case-insensitively. */
static bool strip_keyword(const char **arg, size_t *len, const char *keyword)
{
	size_t k = strlen(keyword);

	if (*len < k || strncasecmp(*arg, keyword, k) != 0)
		return false;
	*arg += k;
	*len -= k;
	return true;
}

static enum smtp_action path_error(struct smtp_session *s, enum smtp_path_status st,
	struct strbuf *out, const char *syntax_reply)
{
	switch (st) {
	case SMTP_PATH_TOO_LONG:
		return error_reply(s, out, "501 5.1.3 Address too long");
	case SMTP_PATH_PARAMS:
		return error_reply(s, out, "555 5.5.4 Malformed or too many parameters");
	default:
		return error_reply(s, out, syntax_reply);
	}
}

static enum smtp_action cmd_mail(struct smtp_session *s, const char *arg, size_t len,
	struct strbuf *out)
{
	struct smtp_param params[SMTP_MAX_PARAMS];
	size_t param_count = 0;
	struct smtp_path path;
	uint64_t size = 0;
	bool body_8bit = false, smtputf8 = false;
	enum smtp_dsn_ret ret = SMTP_DSN_RET_DEFAULT;
	char envid[SMTP_ENVID_MAX + 1] = "";
	enum smtp_path_status st;

	/* RFC 6409 4.3: the submission port takes mail from authenticated users only. */
	if (s->params.submission && !s->authenticated)
		return error_reply(s, out, "530 5.7.0 Authentication required");
	if (!strip_keyword(&arg, &len, "FROM:"))
		return error_reply(s, out, "501 5.5.4 Syntax: MAIL FROM:<address>");
	st = smtp_path_parse(arg, len, true, &path, params, &param_count);
	if (st != SMTP_PATH_OK)
		return path_error(s, st, out, "501 5.1.7 Bad sender address syntax");
	if (param_count && !s->esmtp)
		return error_reply(s, out, "555 5.5.4 Parameters need EHLO");
	for (size_t i = 0; i < param_count; i++) {
		const struct smtp_param *p = &params[i];
		if (keyword_is(p, "SIZE")) {
			if (!parse_size(p, &size))
				return error_reply(s, out, "501 5.5.4 Bad SIZE parameter");
		} else if (keyword_is(p, "BODY")) {
			/* RFC 6152: 8BITMIME; 7BIT is the default. BINARYMIME needs CHUNKING. */
			if (value_is(p, "8BITMIME"))
				body_8bit = true;
			else if (!value_is(p, "7BIT"))
				return error_reply(s, out, "555 5.5.4 Unsupported BODY parameter");
		} else if (keyword_is(p, "SMTPUTF8")) {
			if (p->value)
				return error_reply(s, out, "555 5.5.4 SMTPUTF8 takes no value");
			smtputf8 = true;
		} else if (keyword_is(p, "RET")) {
			/* RFC 3461 4.3 */
			enum dsn_ret r;

			if (!p->value || !dsn_ret_parse(p->value, p->value_len, &r))
				return error_reply(s, out, "501 5.5.4 Bad RET parameter");
			ret = (enum smtp_dsn_ret)r;
		} else if (keyword_is(p, "ENVID")) {
			/* RFC 3461 4.4 */
			if (!p->value || !dsn_xtext_decode(p->value, p->value_len, envid, sizeof(envid)))
				return error_reply(s, out, "501 5.5.4 Bad ENVID parameter");
		} else {
			return error_reply(s, out, "555 5.5.4 Unsupported parameter");
		}
	}
	if (path.utf8 && !smtputf8)
		return error_reply(s, out, "553 5.6.7 UTF-8 address needs the SMTPUTF8 parameter");
	/* RFC 1870 6.1: refuse at once when the declared size is already too big. */
	if (size > s->params.cfg->max_message_size)
		return error_reply(s, out, "552 5.3.4 Message size exceeds the fixed maximum");
	if (s->authenticated) {
		/* The owner sends as any address of the domain it logged in to, and nothing else. */
		if (path.null_path || path.domain_len != strlen(s->authenticated->domain) ||
		    strncasecmp(path.domain, s->authenticated->domain, path.domain_len) != 0)
			return error_reply(s, out, "550 5.7.1 Sender address not owned by the authenticated user");
	} else if (!path.null_path &&
		   config_find_domain(s->params.cfg, path.domain, path.domain_len) != NULL) {
		/* Nobody unauthenticated may claim to be one of our own domains (as the
		 * original): that mail only comes from the owner over authenticated submission. */
		return error_reply(s, out, "550 5.7.1 Sender address of a local domain needs authentication");
	}
	tx_reset(s);
	s->tx.submitter = s->authenticated;
	s->tx.ret = ret;
	snprintf(s->tx.envid, sizeof(s->tx.envid), "%s", envid);
	s->tx.sender = path;
	/* path.domain pointed into the local copy. */
	s->tx.sender.domain = s->tx.sender.address + s->tx.sender.local_len + 1;
	s->tx.declared_size = size;
	s->tx.body_8bit = body_8bit;
	s->tx.smtputf8 = smtputf8;
	s->state = SMTP_STATE_MAIL;
	reply(out, "250 2.1.0 Ok");
	return SMTP_ACTION_NONE;
}

static enum smtp_action accept_rcpt(struct smtp_session *s, const char *address,
	const struct server_config *server, unsigned notify, const char *orcpt, struct strbuf *out)
{
	if (s->tx.rcpt_count == s->rcpt_capacity) {
		s->rcpt_capacity = s->rcpt_capacity ? s->rcpt_capacity * 2 : 4;
		s->tx.rcpts = xrealloc(s->tx.rcpts, s->rcpt_capacity * sizeof(*s->tx.rcpts));
	}
	struct smtp_rcpt *r = &s->tx.rcpts[s->tx.rcpt_count++];
	snprintf(r->address, sizeof(r->address), "%s", address);
	r->server = server;
	r->notify = notify;
	snprintf(r->orcpt, sizeof(r->orcpt), "%s", orcpt);
	if (!server)
		s->tx.relay_count++;
	s->state = SMTP_STATE_RCPT;
	reply(out, "250 2.1.5 Ok");
	return SMTP_ACTION_NONE;
}

/* Counted as a client error like any refused recipient, so a listed client cannot keep
 * the connection busy with RCPTs. */
static enum smtp_action dnsbl_refusal(struct smtp_session *s, struct strbuf *out)
{
	char text[128 + sizeof(s->dnsbl_zone) + sizeof(s->dnsbl_reason)];

	snprintf(text, sizeof(text), "554 5.7.1 Service unavailable; client [%s] listed by %s%s%s",
		s->params.client_ip, s->dnsbl_zone, s->dnsbl_reason[0] ? ": " : "",
		s->dnsbl_reason);
	return error_reply(s, out, text);
}

static enum smtp_action cmd_rcpt(struct smtp_session *s, const char *arg, size_t len,
	struct strbuf *out)
{
	const struct config *cfg = s->params.cfg;
	struct smtp_param params[SMTP_MAX_PARAMS];
	size_t param_count = 0;
	struct smtp_path path;
	enum smtp_path_status st;

	if (!strip_keyword(&arg, &len, "TO:"))
		return error_reply(s, out, "501 5.5.4 Syntax: RCPT TO:<address>");
	while (len && arg[0] == ' ') {
		arg++;
		len--;
	}
	if (s->tx.rcpt_count >= cfg->max_recipients) {
		/* Not a client error (RFC 5321 4.5.3.1.10: the client sends the rest later), so it
		 * does not count towards SMTP_MAX_ERRORS. */
		reply(out, "452 4.5.3 Too many recipients");
		return SMTP_ACTION_NONE;
	}
	/* RFC 5321 4.5.1: "postmaster" without a domain must be accepted. */
	if (len >= 12 && strncasecmp(arg, "<postmaster>", 12) == 0 &&
	    (len == 12 || arg[12] == ' ')) {
		char address[SMTP_PATH_MAX + 1];
		snprintf(address, sizeof(address), "postmaster@%s", cfg->servers[0].domain);
		return accept_rcpt(s, address, &cfg->servers[0], 0, "", out);
	}
	st = smtp_path_parse(arg, len, false, &path, params, &param_count);
	if (st != SMTP_PATH_OK)
		return path_error(s, st, out, "501 5.1.3 Bad recipient address syntax");
	unsigned notify = 0;
	char orcpt[SMTP_ORCPT_MAX + 1] = "";
	for (size_t i = 0; i < param_count; i++) {
		const struct smtp_param *p = &params[i];
		if (keyword_is(p, "NOTIFY")) {
			if (!p->value || !dsn_notify_parse(p->value, p->value_len, &notify))
				return error_reply(s, out, "501 5.5.4 Bad NOTIFY parameter");
		} else if (keyword_is(p, "ORCPT")) {
			/* RFC 3461 4.2: addr-type ";" xtext */
			if (!p->value || !dsn_orcpt_decode(p->value, p->value_len, orcpt, sizeof(orcpt)))
				return error_reply(s, out, "501 5.5.4 Bad ORCPT parameter");
		} else {
			return error_reply(s, out, "555 5.5.4 Unsupported parameter");
		}
	}
	if (path.utf8 && !s->tx.smtputf8)
		return error_reply(s, out, "553 5.6.7 UTF-8 address needs the SMTPUTF8 parameter");
	const struct server_config *server = config_find_domain(cfg, path.domain, path.domain_len);
	if (!server) {
		/* Only the owner's authenticated mail leaves for other domains: no open relay. */
		if (!s->tx.submitter)
			return error_reply(s, out, "550 5.7.1 Relay access denied");
		for (size_t i = 0; i < s->tx.rcpt_count; i++)
			if (strcasecmp(s->tx.rcpts[i].address, path.address) == 0) {
				reply(out, "250 2.1.5 Ok (duplicate recipient)");
				return SMTP_ACTION_NONE;
			}
		return accept_rcpt(s, path.address, NULL, notify, orcpt, out);
	}
	/* Compare the canonical form: <"blocked"@d> and <bl\ocked@d> name blocked@d. */
	char canonical[SMTP_PATH_MAX + 1];
	smtp_path_canonical(&path, canonical, sizeof(canonical));
	/* RFC 5321 4.5.1: postmaster@ each of our domains stays reachable, so a wrongly listed
	 * sender can still reach a person. */
	if (s->dnsbl_listed && !s->tx.submitter && strncasecmp(canonical, "postmaster@", 11) != 0) {
		return dnsbl_refusal(s, out);
	}
	if (config_address_blocked(server, canonical, strlen(canonical)))
		return error_reply(s, out, "553 5.7.1 Recipient address blocked");
	for (size_t i = 0; i < s->tx.rcpt_count; i++) {
		/* RFC 5321 3.3: a duplicate recipient is accepted once; the message is stored once
		 * per maildrop anyway, and one Delivered-To per recipient stays accurate. */
		if (strcasecmp(s->tx.rcpts[i].address, path.address) == 0) {
			reply(out, "250 2.1.5 Ok (duplicate recipient)");
			return SMTP_ACTION_NONE;
		}
	}
	return accept_rcpt(s, path.address, server, notify, orcpt, out);
}

static enum smtp_action cmd_data(struct smtp_session *s, const char *arg, size_t len,
	struct strbuf *out)
{
	(void)arg;
	(void)len;
	(void)out;
	/* No 354 yet: the glue opens the storage first, so a full disk answers DATA itself
	 * instead of a whole message later (smtp_session_data_ready / _storage_failed). */
	s->state = SMTP_STATE_DATA_OPENING;
	return SMTP_ACTION_BEGIN_DATA;
}

static enum smtp_action cmd_rset(struct smtp_session *s, const char *arg, size_t len,
	struct strbuf *out)
{
	(void)arg;
	(void)len;
	tx_reset(s);
	if (s->state != SMTP_STATE_CONNECTED)
		s->state = SMTP_STATE_READY;
	reply(out, "250 2.0.0 Ok");
	return SMTP_ACTION_NONE;
}

static enum smtp_action cmd_noop(struct smtp_session *s, const char *arg, size_t len,
	struct strbuf *out)
{
	(void)s;
	(void)arg;
	(void)len; /* RFC 5321 4.1.1.9: a parameter may be given and is ignored */
	reply(out, "250 2.0.0 Ok");
	return SMTP_ACTION_NONE;
}

static enum smtp_action cmd_quit(struct smtp_session *s, const char *arg, size_t len,
	struct strbuf *out)
{
	(void)arg;
	(void)len;
	strbuf_appendf(out, "221 2.0.0 %s closing connection\r\n", s->params.cfg->hostname);
	s->state = SMTP_STATE_CLOSED;
	return SMTP_ACTION_CLOSE;
}

static enum smtp_action cmd_vrfy(struct smtp_session *s, const char *arg, size_t len,
	struct strbuf *out)
{
	(void)arg;
	if (!len)
		return error_reply(s, out, "501 5.5.4 Syntax: VRFY address");
	/* RFC 5321 3.5.3: 252 when we will accept mail but do not verify. */
	reply(out, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
	return SMTP_ACTION_NONE;
}

static enum smtp_action cmd_expn(struct smtp_session *s, const char *arg, size_t len,
	struct strbuf *out)
{
	(void)arg;
	(void)len;
	return error_reply(s, out, "502 5.5.1 EXPN not available");
}

static enum smtp_action cmd_help(struct smtp_session *s, const char *arg, size_t len,
	struct strbuf *out)
{
	(void)s;
	(void)arg;
	(void)len;
	reply(out, "214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
	reply(out, "214 2.0.0 See RFC 5321");
	return SMTP_ACTION_NONE;
}

/* Before the sequence: whether TLS can start at all on this connection. */
static const char *starttls_precondition(const struct smtp_session *s)
{
	if (s->tls_active)
		return "503 5.5.1 TLS already active";
	if (!s->params.tls_available)
		return "454 4.7.0 TLS not available";
	return NULL;
}

static enum smtp_action cmd_starttls(struct smtp_session *s, const char *arg, size_t len,
	struct strbuf *out)
{
	(void)arg;
	(void)len;
	reply(out, "220 2.0.0 Ready to start TLS");
	s->state = SMTP_STATE_STARTTLS;
	return SMTP_ACTION_STARTTLS;
}

/* Takes a decoded RFC 4616 PLAIN message: keeps the password for the check and the Server
 * the login names (RFC 4954 4: authzid, when given, must be of the same domain). */
static enum smtp_action take_plain_credentials(struct smtp_session *s, const unsigned char *msg,
	size_t len, struct strbuf *out)
{
	const char *authzid, *authcid, *password;
	size_t authzid_len, authcid_len, password_len;

	if (auth_parse_plain((const char *)msg, len, &authzid, &authzid_len, &authcid,
		    &authcid_len, &password, &password_len) != 0) {
		s->state = SMTP_STATE_READY;
		return error_reply(s, out, "501 5.5.2 Malformed PLAIN response");
	}
	s->auth_server = auth_find_mailbox(s->params.cfg, authcid, authcid_len);
	if (s->auth_server && authzid_len > 0) {
		const char *at = memchr(authzid, '@', authzid_len);
		size_t domain_len = at ? authzid_len - (size_t)(at + 1 - authzid) : 0;
		if (!at || domain_len != strlen(s->auth_server->domain) ||
		    strncasecmp(at + 1, s->auth_server->domain, domain_len) != 0)
			s->auth_server = NULL; /* fails like a bad password: no hint */
	}
	memcpy(s->auth_password, password, password_len);
	s->auth_password_len = password_len;
	s->state = SMTP_STATE_AUTH_CHECK;
	return SMTP_ACTION_CHECK_AUTH;
}

/* Decodes a base64 SASL response line and checks it. */
static enum smtp_action auth_plain_response(struct smtp_session *s, const char *line,
	size_t len, struct strbuf *out)
{
	unsigned char decoded[SASL_LINE_MAX];
	long n;

	if (len == 1 && line[0] == '*') {
		/* RFC 4954 4: the client cancelled the exchange. */
		s->state = SMTP_STATE_READY;
		return error_reply(s, out, "501 5.7.0 Authentication cancelled");
	}
	n = auth_base64_decode(line, len, decoded, sizeof(decoded));
	if (n < 0) {
		s->state = SMTP_STATE_READY;
		return error_reply(s, out, "501 5.5.2 Cannot decode response");
	}
	enum smtp_action action = take_plain_credentials(s, decoded, (size_t)n, out);
	OPENSSL_cleanse(decoded, sizeof(decoded));
	return action;
}

/* RFC 4954 4: one AUTH per session. (A login needs TLS, after which the session never
 * returns to CONNECTED, so this cannot hide the "Send EHLO first" of the sequence.) */
static const char *auth_precondition(const struct smtp_session *s)
{
	return s->authenticated ? "503 5.5.1 Already authenticated" : NULL;
}

static enum smtp_action cmd_auth(struct smtp_session *s, const char *arg, size_t len,
	struct strbuf *out)
{
	size_t mech_len = 0;

	if (!s->tls_active)
		/* RFC 4954 6 / RFC 5248: 538 5.7.11 encryption required. */
		return error_reply(s, out, "538 5.7.11 Encryption required for requested authentication mechanism");
	while (mech_len < len && arg[mech_len] != ' ')
		mech_len++;
	if (mech_len != 5 || strncasecmp(arg, "PLAIN", 5) != 0)
		return error_reply(s, out, "504 5.5.4 Unrecognized authentication type");
	if (mech_len == len) {
		/* RFC 4954 4: no initial response; an empty challenge asks for it. */
		s->state = SMTP_STATE_AUTH_RESPONSE;
		reply(out, "334 ");
		return SMTP_ACTION_NONE;
	}
	return auth_plain_response(s, arg + mech_len + 1, len - mech_len - 1, out);
}

const struct server_config *smtp_session_auth_server(const struct smtp_session *s)
{
	return s->auth_server;
}

bool smtp_session_verify_password(const struct smtp_session *s)
{
	return s->auth_server &&
		auth_check_password(s->auth_server, s->auth_password, s->auth_password_len);
}

enum smtp_action smtp_session_auth_result(struct smtp_session *s, bool ok, struct strbuf *out)
{
	const struct server_config *server = s->auth_server;

	OPENSSL_cleanse(s->auth_password, sizeof(s->auth_password));
	s->auth_password_len = 0;
	s->auth_server = NULL;
	s->state = SMTP_STATE_READY;
	if (!ok || !server)
		return error_reply(s, out, "535 5.7.8 Authentication credentials invalid");
	s->authenticated = server;
	reply(out, "235 2.7.0 Authentication successful");
	return SMTP_ACTION_NONE;
}

enum smtp_action smtp_session_auth_blocked(struct smtp_session *s, struct strbuf *out)
{
	OPENSSL_cleanse(s->auth_password, sizeof(s->auth_password));
	s->auth_password_len = 0;
	s->auth_server = NULL;
	s->state = SMTP_STATE_READY;
	/* RFC 4954 6: 454 is a temporary authentication failure. */
	return error_reply(s, out, "454 4.7.0 Too many failed logins from your address, try again later");
}

const struct server_config *smtp_session_authenticated(const struct smtp_session *s)
{
	return s->authenticated;
}

/* RFC 5321 4.1.4 and 4.3.2: the order of commands; the replies to a command out of it. */
static const struct smtp_out_of_sequence mail_out_of_sequence[] = {
	{SMTP_IN_CONNECTED, "503 5.5.1 Send EHLO or HELO first"},
	{SMTP_IN_TRANSACTION, "503 5.5.1 Nested MAIL command"},
	{0, NULL},
};
static const struct smtp_out_of_sequence rcpt_out_of_sequence[] = {
	{SMTP_IN_CONNECTED | SMTP_IN_READY, "503 5.5.1 Need MAIL before RCPT"},
	{0, NULL},
};
static const struct smtp_out_of_sequence data_out_of_sequence[] = {
	{SMTP_IN_MAIL, "503 5.5.1 No valid recipients"},
	{SMTP_IN_CONNECTED | SMTP_IN_READY, "503 5.5.1 Need RCPT before DATA"},
	{0, NULL},
};
static const struct smtp_out_of_sequence starttls_out_of_sequence[] = {
	{SMTP_IN_TRANSACTION, "503 5.5.1 STARTTLS not allowed during a transaction"},
	{0, NULL},
};
static const struct smtp_out_of_sequence auth_out_of_sequence[] = {
	{SMTP_IN_CONNECTED, "503 5.5.1 Send EHLO first"},
	{SMTP_IN_TRANSACTION, "503 5.5.1 AUTH not allowed during a transaction"},
	{0, NULL},
};

static const struct smtp_command commands[] = {
	{"AUTH", 0, SMTP_IN_READY, auth_out_of_sequence, auth_precondition, cmd_auth},
	{"EHLO", 0, SMTP_IN_ANY, NULL, NULL, cmd_ehlo},
	{"HELO", 0, SMTP_IN_ANY, NULL, NULL, cmd_helo},
	{"MAIL", 0, SMTP_IN_READY, mail_out_of_sequence, NULL, cmd_mail},
	{"RCPT", 0, SMTP_IN_TRANSACTION, rcpt_out_of_sequence, NULL, cmd_rcpt},
	{"DATA", SMTP_CMD_NO_ARGUMENT, SMTP_IN_RCPT, data_out_of_sequence, NULL, cmd_data},
	{"RSET", SMTP_CMD_NO_ARGUMENT, SMTP_IN_ANY, NULL, NULL, cmd_rset},
	{"NOOP", 0, SMTP_IN_ANY, NULL, NULL, cmd_noop},
	{"QUIT", 0, SMTP_IN_ANY, NULL, NULL, cmd_quit},
	{"VRFY", 0, SMTP_IN_ANY, NULL, NULL, cmd_vrfy},
	{"EXPN", 0, SMTP_IN_ANY, NULL, NULL, cmd_expn},
	{"HELP", 0, SMTP_IN_ANY, NULL, NULL, cmd_help},
	{"STARTTLS", SMTP_CMD_NO_ARGUMENT, SMTP_IN_CONNECTED | SMTP_IN_READY,
		starttls_out_of_sequence, starttls_precondition, cmd_starttls},
};

/* The generic checks of a table entry, in their order, then the command itself. */
static enum smtp_action dispatch(struct smtp_session *s, const struct smtp_command *c,
	const char *arg, size_t len, struct strbuf *out)
{
	const char *refusal;

	if ((c->flags & SMTP_CMD_NO_ARGUMENT) && len) {
		char syntax[64];
		snprintf(syntax, sizeof(syntax), "501 5.5.4 Syntax: %s", c->verb);
		return error_reply(s, out, syntax);
	}
	if (c->precondition && (refusal = c->precondition(s)) != NULL)
		return error_reply(s, out, refusal);
	if (!(c->states & SMTP_IN(s->state))) {
		for (const struct smtp_out_of_sequence *o = c->out_of_sequence; o && o->states; o++)
			if (o->states & SMTP_IN(s->state))
				return error_reply(s, out, o->reply);
		fatal("event=smtp_command_table_bug verb=%s state=%d", c->verb, (int)s->state);
	}
	return c->proceed(s, arg, len, out);
}

enum smtp_action smtp_session_feed_line(struct smtp_session *s, const char *line, size_t len,
	struct strbuf *out)
{
	size_t verb_len = 0;

	if (s->state == SMTP_STATE_AUTH_RESPONSE)
		return auth_plain_response(s, line, len, out);
	if (!(SMTP_IN(s->state) & SMTP_IN_ANY))
		return SMTP_ACTION_NONE; /* no command is read now: the glue feeds no lines */
	if (memchr(line, '\0', len))
		return error_reply(s, out, "500 5.5.2 NUL octet in command");
	while (verb_len < len && line[verb_len] != ' ')
		verb_len++;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct smtp_command *c = &commands[i];
		if (strlen(c->verb) == verb_len && strncasecmp(line, c->verb, verb_len) == 0) {
			size_t skip = verb_len < len ? verb_len + 1 : verb_len;
			return dispatch(s, c, line + skip, len - skip, out);
		}
	}
	return error_reply(s, out, "500 5.5.2 Command not recognized");
}

enum smtp_action smtp_session_line_too_long(struct smtp_session *s, struct strbuf *out)
{
	return error_reply(s, out, "500 5.5.2 Line too long");
}

void smtp_session_timeout(struct smtp_session *s, struct strbuf *out)
{
	strbuf_appendf(out, "421 4.4.2 %s Timeout, closing connection\r\n",
		s->params.cfg->hostname);
	s->state = SMTP_STATE_CLOSED;
}

void smtp_session_shutdown(struct smtp_session *s, struct strbuf *out)
{
	strbuf_appendf(out, "421 4.3.2 %s Service shutting down\r\n", s->params.cfg->hostname);
	s->state = SMTP_STATE_CLOSED;
}

void smtp_session_tls_started(struct smtp_session *s, const char *tls_description)
{
	/* RFC 3207 4.2: discard all knowledge from the client; it must EHLO again. */
	tx_reset(s);
	s->helo[0] = '\0';
	s->esmtp = false;
	s->tls_active = true;
	snprintf(s->tls_description, sizeof(s->tls_description), "%s",
		tls_description ? tls_description : "");
	s->state = SMTP_STATE_CONNECTED;
}

/* ---- DATA ---- */

void smtp_session_set_queue_id(struct smtp_session *s, const char *queue_id)
{
	snprintf(s->tx.queue_id, sizeof(s->tx.queue_id), "%s", queue_id);
}

/* RFC 5321 4.2.3 / RFC 3463 3.4: "452 insufficient system storage" is the mail system
 * full; every other local trouble is the generic 451 4.3.0. */
static const char *storage_failure_reply(int error)
{
	if (error == ENOSPC || error == EDQUOT)
		return "452 4.3.1 Insufficient system storage, try again later";
	return "451 4.3.0 Local error in processing, try again later";
}

static void expect_data_opening(const struct smtp_session *s, const char *call)
{
	if (s->state != SMTP_STATE_DATA_OPENING)
		fatal("event=smtp_glue_bug call=%s state=%d", call, (int)s->state);
}

void smtp_session_data_ready(struct smtp_session *s, struct strbuf *out)
{
	expect_data_opening(s, "data_ready");
	smtp_data_reader_init(&s->data, s->params.cfg->max_message_size);
	s->state = SMTP_STATE_DATA;
	reply(out, "354 End data with <CR><LF>.<CR><LF>");
}

void smtp_session_storage_failed(struct smtp_session *s, int error, struct strbuf *out)
{
	expect_data_opening(s, "storage_failed");
	reply(out, storage_failure_reply(error));
	/* The same end as a storage failure after the final dot: the transaction is over. A
	 * client follows any 4xx to its transaction with MAIL (or RSET, or QUIT); keeping the
	 * envelope, as Postfix does after a DATA its policy refused, would answer that MAIL with
	 * "503 Nested MAIL command", a 5xx that could bounce the next message. */
	tx_reset(s);
	s->state = SMTP_STATE_READY;
}

size_t smtp_session_feed_data(struct smtp_session *s, const char *in, size_t len,
	char *out_data, size_t *out_len)
{
	if (s->state != SMTP_STATE_DATA) {
		*out_len = 0;
		return 0;
	}
	return smtp_data_reader_feed(&s->data, in, len, out_data, out_len);
}

bool smtp_session_data_done(const struct smtp_session *s)
{
	return s->state == SMTP_STATE_DATA && smtp_data_reader_done(&s->data);
}

enum smtp_data_verdict smtp_session_data_end(struct smtp_session *s, struct strbuf *out)
{
	const char *refusal = NULL;

	if (s->data.oversize)
		refusal = "552 5.3.4 Message size exceeds the fixed maximum";
	else if (s->data.bare_newline)
		/* RFC 5321 2.3.8: CR and LF only as CRLF. Refusing (not repairing) keeps us out
		 * of every SMTP smuggling ambiguity. */
		refusal = "554 5.6.0 Message contains bare CR or LF, not accepted (RFC 5321 2.3.8)";
	if (refusal) {
		reply(out, refusal);
		tx_reset(s);
		s->state = SMTP_STATE_READY;
		return SMTP_DATA_DISCARD;
	}
	s->state = SMTP_STATE_COMMITTING;
	return SMTP_DATA_COMMIT;
}

void smtp_session_data_committed(struct smtp_session *s, bool ok, struct strbuf *out)
{
	if (!ok) {
		smtp_session_data_failed(s, 0, out);
		return;
	}
	strbuf_appendf(out, "250 2.0.0 Ok: queued as %s\r\n", s->tx.queue_id);
	tx_reset(s);
	s->state = SMTP_STATE_READY;
}

void smtp_session_data_failed(struct smtp_session *s, int error, struct strbuf *out)
{
	reply(out, storage_failure_reply(error));
	tx_reset(s);
	s->state = SMTP_STATE_READY;
}

void smtp_session_data_rejected(struct smtp_session *s, const char *reply_line,
	struct strbuf *out)
{
	reply(out, reply_line);
	tx_reset(s);
	s->state = SMTP_STATE_READY;
}

void smtp_session_set_dnsbl(struct smtp_session *s, const char *zone, const char *reason)
{
	size_t n = 0;

	s->dnsbl_listed = true;
	snprintf(s->dnsbl_zone, sizeof(s->dnsbl_zone), "%s", zone);
	/* The reason goes into a reply line: printable ASCII only (verify/dnsbl.h promises it;
	 * checked again, a control character would split the reply). */
	for (const char *p = reason ? reason : ""; *p && n + 1 < sizeof(s->dnsbl_reason); p++)
		if (*p >= 0x20 && *p < 0x7f)
			s->dnsbl_reason[n++] = *p;
	s->dnsbl_reason[n] = '\0';
}

/* ---- accessors ---- */

enum smtp_state smtp_session_state(const struct smtp_session *s)
{
	return s->state;
}

const struct smtp_tx *smtp_session_tx(const struct smtp_session *s)
{
	return &s->tx;
}

const char *smtp_session_helo(const struct smtp_session *s)
{
	return s->helo;
}

bool smtp_session_esmtp(const struct smtp_session *s)
{
	return s->esmtp;
}

bool smtp_session_tls_active(const struct smtp_session *s)
{
	return s->tls_active;
}

const char *smtp_session_tls_description(const struct smtp_session *s)
{
	return s->tls_description[0] ? s->tls_description : NULL;
}

const char *smtp_session_client_ip(const struct smtp_session *s)
{
	return s->params.client_ip;
}

size_t smtp_tx_servers(const struct smtp_tx *tx, const struct server_config **servers,
	size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < tx->rcpt_count; i++) {
		size_t j;
		for (j = 0; j < n; j++)
			if (servers[j] == tx->rcpts[i].server)
				break;
		if (j == n && n < max)
			servers[n++] = tx->rcpts[i].server;
	}
	return n;
}
