/* pop3/session.c: the POP3 protocol core. A command table over the RFC 1939 states
 * (AUTHORIZATION, TRANSACTION, UPDATE), CAPA and response codes (RFC 2449, RFC 3206), AUTH PLAIN
 * (RFC 5034, RFC 4616) and STLS (RFC 2595). Replies go into a strbuf; everything touching the
 * network, the disk or slow password hashing is handed to the glue as an action. */
#include "pop3/session.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "auth.h"
#include "bounds.h"
#include "log.h"

/* What the glue is doing for us; no line may be fed until it reports back. */
enum pop3_pending {
	POP3_PENDING_NONE,
	POP3_PENDING_STARTTLS,
	POP3_PENDING_PASSWORD,
	POP3_PENDING_MAILDROP,
	POP3_PENDING_RETRIEVE,
	POP3_PENDING_LISTING,
	POP3_PENDING_COMMIT,
};

/* "mailbox@" and the longest domain (RFC 5321 4.5.3.1.2). RFC 2449 4 bounds arguments to 40
 * octets, but a long domain must still be able to log in. */
#define POP3_USER_ARGUMENT_MAX (sizeof("mailbox@") - 1 + SMTP_DOMAIN_MAX)
/* No command takes more than two arguments (TOP msg n). */
#define POP3_ARGS_MAX 2

struct pop3_session {
	const struct config *cfg;
	char *implementation;
	bool tls_active;
	bool stls_offered;
	enum pop3_state state;
	enum pop3_pending pending;
	unsigned errors; /* -ERR replies in a row */

	/* AUTHORIZATION */
	bool have_user;         /* USER accepted: PASS may follow (RFC 1939 7) */
	bool sasl_continuation; /* "+ " sent: the next line answers AUTH PLAIN (RFC 5034 4) */
	char user[POP3_COMMAND_LINE_MAX + 1];
	size_t user_len;
	char password[POP3_COMMAND_LINE_MAX];
	size_t password_len;
	const struct server_config *auth_server; /* the Server the login names, or NULL */
	unsigned auth_failures;

	/* TRANSACTION */
	const struct server_config *server; /* authenticated */
	struct maildrop *md;                /* borrowed from the glue */
	/* RFC 1939 5: DELE only marks; the marks are ours, one bit per listed message, and the
	 * store sees them only as the list handed over at UPDATE. */
	uint64_t *deleted;
	size_t *deletions;                  /* that list, made at QUIT */
	size_t deletion_count;
	size_t live_count;                  /* messages not marked deleted, and their octets */
	uint64_t live_octets;
	size_t retrieve_index;
	long retrieve_lines;
	bool retrieve_opened;               /* the "+OK" of the RETR/TOP being sent is out */
	size_t listing_next;                /* LIST/UIDL being written: the next index */
	bool listing_uidl;
};

struct pop3_args {
	size_t count;
	const char *value[POP3_ARGS_MAX];
	size_t len[POP3_ARGS_MAX];
};

#define POP3_IN(state) (1u << (state))
#define POP3_IN_AUTHORIZATION POP3_IN(POP3_STATE_AUTHORIZATION)
#define POP3_IN_TRANSACTION POP3_IN(POP3_STATE_TRANSACTION)

/* The argument is the rest of the line after the first space, spaces included: RFC 1939 7
 * (PASS) lets a password contain spaces. */
#define POP3_CMD_RAW_ARGUMENT 0x1u
/* Carries credentials: refused on a connection that must run STLS first. */
#define POP3_CMD_LOGIN 0x2u

/* One verb: where it is valid and what arguments it takes (checked generically), and the
 * function doing the rest, OpenSMTPD-style. */
struct pop3_command {
	const char *keyword;
	unsigned states;
	unsigned flags;
	size_t min_args;
	size_t max_args;
	size_t arg_max; /* longest argument, octets */
	enum pop3_action (*proceed)(struct pop3_session *s, const struct pop3_args *args,
		struct strbuf *out);
};

/* ---- replies ---- */

static void pop3_reply_ok(struct pop3_session *s, struct strbuf *out, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static enum pop3_action pop3_reply_err(struct pop3_session *s, struct strbuf *out,
	const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void pop3_reply_ok(struct pop3_session *s, struct strbuf *out, const char *fmt, ...)
{
	va_list ap;

	s->errors = 0;
	strbuf_append(out, "+OK ", 4);
	va_start(ap, fmt);
	strbuf_vappendf(out, fmt, ap);
	va_end(ap);
	strbuf_append(out, "\r\n", 2);
}

/* Every -ERR goes through here, so the run of errors is counted in one place. */
static enum pop3_action pop3_reply_err(struct pop3_session *s, struct strbuf *out,
	const char *fmt, ...)
{
	va_list ap;

	strbuf_append(out, "-ERR ", 5);
	va_start(ap, fmt);
	strbuf_vappendf(out, fmt, ap);
	va_end(ap);
	strbuf_append(out, "\r\n", 2);
	if (++s->errors >= POP3_MAX_ERRORS) {
		log_info("pop3", "event=too_many_errors errors=%u", s->errors);
		s->state = POP3_STATE_CLOSED;
		return POP3_ACTION_CLOSE;
	}
	return POP3_ACTION_NONE;
}

static void pop3_wipe_password(struct pop3_session *s)
{
	explicit_bzero(s->password, sizeof(s->password));
	s->password_len = 0;
}

static void pop3_set_user(struct pop3_session *s, const char *user, size_t len)
{
	if (len > sizeof(s->user) - 1)
		len = sizeof(s->user) - 1;
	memcpy(s->user, user, len);
	s->user[len] = '\0';
	s->user_len = len;
}

static bool pop3_login_allowed(const struct pop3_session *s)
{
	return s->tls_active || !s->stls_offered;
}

static bool pop3_is_deleted(const struct pop3_session *s, size_t index)
{
	return (s->deleted[index / 64] >> (index % 64)) & 1;
}

static void pop3_mark_deleted(struct pop3_session *s, size_t index)
{
	s->deleted[index / 64] |= UINT64_C(1) << (index % 64);
}

static size_t pop3_deleted_words(const struct pop3_session *s)
{
	return (s->md->count + 63) / 64;
}

static void pop3_count_live(struct pop3_session *s)
{
	s->live_count = 0;
	s->live_octets = 0;
	for (size_t i = 0; i < s->md->count; i++) {
		if (pop3_is_deleted(s, i))
			continue;
		s->live_count++;
		s->live_octets += s->md->messages[i].size;
	}
}

/* RFC 1939 3: numeric arguments are decimal digits; no sign, no space. Rejects anything else
 * and values above max, checked before each step so nothing overflows. */
static bool pop3_parse_number(const char *arg, size_t len, uint64_t max, uint64_t *value)
{
	uint64_t v = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned digit;

		if (arg[i] < '0' || arg[i] > '9')
			return false;
		digit = (unsigned)(arg[i] - '0');
		if (v > (max - digit) / 10)
			return false;
		v = v * 10 + digit;
	}
	*value = v;
	return true;
}

/* A message-number argument (RFC 1939 5: numbers are fixed for the session, a deleted
 * message may not be referred to). On success *msg is set and NONE returned; otherwise *msg
 * is NULL and the -ERR is already in out. */
static enum pop3_action pop3_find_message(struct pop3_session *s, const char *arg, size_t len,
	struct strbuf *out, struct maildrop_message **msg)
{
	uint64_t number;

	*msg = NULL;
	if (!pop3_parse_number(arg, len, UINT64_MAX, &number))
		return pop3_reply_err(s, out, "invalid message number");
	if (number == 0 || number > s->md->count)
		return pop3_reply_err(s, out, "no such message, only %zu messages in maildrop",
			s->md->count);
	if (pop3_is_deleted(s, number - 1))
		return pop3_reply_err(s, out, "message %" PRIu64 " already deleted", number);
	*msg = &s->md->messages[number - 1];
	return POP3_ACTION_NONE;
}

static size_t pop3_message_number(const struct pop3_session *s,
	const struct maildrop_message *msg)
{
	return (size_t)(msg - s->md->messages) + 1;
}

/* ---- AUTHORIZATION ---- */

static enum pop3_action pop3_cmd_capa(struct pop3_session *s, const struct pop3_args *args,
	struct strbuf *out)
{
	(void)args;
	/* RFC 2449 5: what is available in AUTHORIZATION is announced in both states, so the
	 * list depends only on the connection, not on the state. */
	pop3_reply_ok(s, out, "Capability list follows");
	strbuf_append_str(out,
		"TOP\r\n"
		"UIDL\r\n"
		"RESP-CODES\r\n"
		"AUTH-RESP-CODE\r\n"
		"PIPELINING\r\n"
		"EXPIRE NEVER\r\n");
	/* RFC 2595 4: STLS before TLS; logins only once the password cannot be sniffed. */
	if (pop3_login_allowed(s))
		strbuf_append_str(out, "USER\r\nSASL PLAIN\r\n");
	if (s->stls_offered && !s->tls_active)
		strbuf_append_str(out, "STLS\r\n");
	strbuf_appendf(out, "IMPLEMENTATION %s\r\n.\r\n", s->implementation);
	return POP3_ACTION_NONE;
}

static enum pop3_action pop3_cmd_stls(struct pop3_session *s, const struct pop3_args *args,
	struct strbuf *out)
{
	(void)args;
	if (s->tls_active)
		return pop3_reply_err(s, out, "already using TLS");
	if (!s->stls_offered)
		return pop3_reply_err(s, out, "STLS not available");
	pop3_reply_ok(s, out, "Begin TLS negotiation");
	s->pending = POP3_PENDING_STARTTLS;
	return POP3_ACTION_STARTTLS;
}

static enum pop3_action pop3_cmd_user(struct pop3_session *s, const struct pop3_args *args,
	struct strbuf *out)
{
	/* Whether the name exists is not told here (nor later): same reply for every name. */
	pop3_set_user(s, args->value[0], args->len[0]);
	s->have_user = true;
	pop3_reply_ok(s, out, "send PASS");
	return POP3_ACTION_NONE;
}

/* Credentials are complete: look up the Server and let the glue check the password. */
static enum pop3_action pop3_check_credentials(struct pop3_session *s, bool identity_ok)
{
	s->auth_server = identity_ok ? auth_find_mailbox(s->cfg, s->user, s->user_len) : NULL;
	s->have_user = false;
	s->pending = POP3_PENDING_PASSWORD;
	return POP3_ACTION_CHECK_PASSWORD;
}

static enum pop3_action pop3_cmd_pass(struct pop3_session *s, const struct pop3_args *args,
	struct strbuf *out)
{
	if (!s->have_user)
		return pop3_reply_err(s, out, "send USER first");
	memcpy(s->password, args->value[0], args->len[0]);
	s->password_len = args->len[0];
	return pop3_check_credentials(s, true);
}

/* An AUTH PLAIN response: base64 of "authzid NUL authcid NUL passwd" (RFC 4616 2). */
static enum pop3_action pop3_sasl_plain(struct pop3_session *s, const char *response,
	size_t len, struct strbuf *out)
{
	unsigned char decoded[POP3_COMMAND_LINE_MAX];
	const char *authzid, *authcid, *password;
	size_t authzid_len, authcid_len, password_len;
	bool identity_ok;
	long n;

	n = auth_base64_decode(response, len, decoded, sizeof(decoded));
	if (n < 0)
		return pop3_reply_err(s, out, "malformed AUTH response: base64 expected");
	if (auth_parse_plain((const char *)decoded, (size_t)n, &authzid, &authzid_len, &authcid,
		    &authcid_len, &password, &password_len) != 0) {
		explicit_bzero(decoded, sizeof(decoded));
		return pop3_reply_err(s, out, "malformed AUTH PLAIN message");
	}
	/* RFC 4616 2: an authzid other than the login itself would be acting as another user,
	 * which we never allow; it fails like a wrong password. */
	identity_ok = authzid_len == 0 || (authzid_len == authcid_len &&
		strncasecmp(authzid, authcid, authcid_len) == 0);
	pop3_set_user(s, authcid, authcid_len);
	memcpy(s->password, password, password_len);
	s->password_len = password_len;
	explicit_bzero(decoded, sizeof(decoded));
	return pop3_check_credentials(s, identity_ok);
}

static enum pop3_action pop3_sasl_continuation(struct pop3_session *s, const char *line,
	size_t len, struct strbuf *out)
{
	s->sasl_continuation = false;
	/* RFC 5034 4: "*" cancels the exchange, and the server must answer -ERR. */
	if (len == 1 && line[0] == '*')
		return pop3_reply_err(s, out, "AUTH cancelled");
	return pop3_sasl_plain(s, line, len, out);
}

static enum pop3_action pop3_cmd_auth(struct pop3_session *s, const struct pop3_args *args,
	struct strbuf *out)
{
	/* Bare AUTH lists the mechanisms (the RFC 1734 draft's form, still sent by some clients;
	 * RFC 5034 clients use CAPA). */
	if (args->count == 0) {
		pop3_reply_ok(s, out, "SASL mechanisms follow");
		strbuf_append_str(out, "PLAIN\r\n.\r\n");
		return POP3_ACTION_NONE;
	}
	if (args->len[0] != 5 || strncasecmp(args->value[0], "PLAIN", 5) != 0)
		return pop3_reply_err(s, out, "unsupported SASL mechanism");
	/* RFC 5034 4: with an initial response it is used at once ("=" stands for an empty
	 * one); without, the server sends an empty challenge "+ " and reads one more line. */
	if (args->count == 2)
		return pop3_sasl_plain(s, args->value[1], args->len[1], out);
	strbuf_append(out, "+ \r\n", 4);
	s->sasl_continuation = true;
	return POP3_ACTION_NONE;
}

/* ---- TRANSACTION ---- */

static enum pop3_action pop3_cmd_stat(struct pop3_session *s, const struct pop3_args *args,
	struct strbuf *out)
{
	(void)args;
	/* RFC 1939 5: "+OK nn mm", deleted messages not counted. */
	pop3_reply_ok(s, out, "%zu %" PRIu64, s->live_count, s->live_octets);
	return POP3_ACTION_NONE;
}

/* LIST and UIDL: one message with an argument, else a multi-line listing of the messages not
 * deleted (RFC 1939 5). The listing is not built here: its "+OK" goes out at once and its
 * lines are written by pop3_session_listing_more() as the glue's output drains (Dovecot's
 * way), so a maildrop of POP3_MAX_MESSAGES never sits in memory as one reply. */
static enum pop3_action pop3_listing(struct pop3_session *s, const struct pop3_args *args,
	struct strbuf *out, bool uidl)
{
	struct maildrop_message *msg;
	enum pop3_action action;

	if (args->count == 1) {
		action = pop3_find_message(s, args->value[0], args->len[0], out, &msg);
		if (!msg)
			return action;
		if (uidl)
			pop3_reply_ok(s, out, "%zu %s", pop3_message_number(s, msg), msg->uidl);
		else
			pop3_reply_ok(s, out, "%zu %" PRIu64, pop3_message_number(s, msg),
				msg->size);
		return POP3_ACTION_NONE;
	}
	if (uidl)
		pop3_reply_ok(s, out, "unique-id listing follows");
	else
		pop3_reply_ok(s, out, "%zu messages (%" PRIu64 " octets)", s->live_count,
			s->live_octets);
	s->listing_next = 0;
	s->listing_uidl = uidl;
	s->pending = POP3_PENDING_LISTING;
	return POP3_ACTION_LISTING;
}

static enum pop3_action pop3_cmd_list(struct pop3_session *s, const struct pop3_args *args,
	struct strbuf *out)
{
	return pop3_listing(s, args, out, false);
}

static enum pop3_action pop3_cmd_uidl(struct pop3_session *s, const struct pop3_args *args,
	struct strbuf *out)
{
	return pop3_listing(s, args, out, true);
}

static enum pop3_action pop3_start_retrieve(struct pop3_session *s,
	const struct maildrop_message *msg, long lines)
{
	s->retrieve_index = pop3_message_number(s, msg) - 1;
	s->retrieve_lines = lines;
	s->retrieve_opened = false;
	s->pending = POP3_PENDING_RETRIEVE;
	return POP3_ACTION_RETRIEVE;
}

static enum pop3_action pop3_cmd_retr(struct pop3_session *s, const struct pop3_args *args,
	struct strbuf *out)
{
	struct maildrop_message *msg;
	enum pop3_action action;

	action = pop3_find_message(s, args->value[0], args->len[0], out, &msg);
	if (!msg)
		return action;
	/* No "+OK" yet: it is written once the glue has the file open (retrieve_opened). */
	return pop3_start_retrieve(s, msg, -1);
}

static enum pop3_action pop3_cmd_top(struct pop3_session *s, const struct pop3_args *args,
	struct strbuf *out)
{
	struct maildrop_message *msg;
	enum pop3_action action;
	uint64_t lines;

	action = pop3_find_message(s, args->value[0], args->len[0], out, &msg);
	if (!msg)
		return action;
	/* RFC 1939 7: n is a non-negative number; more lines than the body has is no error.
	 * Any count above INT32_MAX would mean "all" anyway, and fits a long everywhere. */
	if (!pop3_parse_number(args->value[1], args->len[1], INT32_MAX, &lines))
		return pop3_reply_err(s, out, "invalid number of lines");
	return pop3_start_retrieve(s, msg, (long)lines);
}

static enum pop3_action pop3_cmd_dele(struct pop3_session *s, const struct pop3_args *args,
	struct strbuf *out)
{
	struct maildrop_message *msg;
	enum pop3_action action;

	action = pop3_find_message(s, args->value[0], args->len[0], out, &msg);
	if (!msg)
		return action;
	/* RFC 1939 5: only marked now; removed in UPDATE, after QUIT. */
	pop3_mark_deleted(s, pop3_message_number(s, msg) - 1);
	s->live_count--;
	s->live_octets -= msg->size;
	pop3_reply_ok(s, out, "message %zu deleted", pop3_message_number(s, msg));
	return POP3_ACTION_NONE;
}

static enum pop3_action pop3_cmd_noop(struct pop3_session *s, const struct pop3_args *args,
	struct strbuf *out)
{
	(void)args;
	s->errors = 0;
	strbuf_append(out, "+OK\r\n", 5);
	return POP3_ACTION_NONE;
}

static enum pop3_action pop3_cmd_rset(struct pop3_session *s, const struct pop3_args *args,
	struct strbuf *out)
{
	(void)args;
	memset(s->deleted, 0, pop3_deleted_words(s) * sizeof(*s->deleted));
	pop3_count_live(s);
	pop3_reply_ok(s, out, "maildrop has %zu messages (%" PRIu64 " octets)", s->live_count,
		s->live_octets);
	return POP3_ACTION_NONE;
}

static enum pop3_action pop3_cmd_quit(struct pop3_session *s, const struct pop3_args *args,
	struct strbuf *out)
{
	(void)args;
	if (s->state == POP3_STATE_TRANSACTION) {
		/* RFC 1939 6: QUIT in TRANSACTION enters UPDATE; the reply waits for removal. */
		s->deletions = xcalloc(s->md->count - s->live_count + 1, sizeof(*s->deletions));
		for (size_t i = 0; i < s->md->count; i++)
			if (pop3_is_deleted(s, i))
				s->deletions[s->deletion_count++] = i;
		s->state = POP3_STATE_UPDATE;
		s->pending = POP3_PENDING_COMMIT;
		return POP3_ACTION_COMMIT;
	}
	/* RFC 1939 4: QUIT in AUTHORIZATION ends the session without UPDATE. */
	pop3_reply_ok(s, out, "mailpopbox signing off");
	s->state = POP3_STATE_CLOSED;
	return POP3_ACTION_CLOSE;
}

/* APOP (RFC 1939 7) is absent on purpose: it needs the password in clear on the server and
 * MD5; clients fall back to USER/PASS or SASL PLAIN over TLS. */
static const struct pop3_command pop3_commands[] = {
	{"AUTH", POP3_IN_AUTHORIZATION, POP3_CMD_LOGIN, 0, 2, POP3_COMMAND_LINE_MAX,
		pop3_cmd_auth},
	{"CAPA", POP3_IN_AUTHORIZATION | POP3_IN_TRANSACTION, 0, 0, 0, 0, pop3_cmd_capa},
	{"DELE", POP3_IN_TRANSACTION, 0, 1, 1, POP3_ARGUMENT_MAX, pop3_cmd_dele},
	{"LIST", POP3_IN_TRANSACTION, 0, 0, 1, POP3_ARGUMENT_MAX, pop3_cmd_list},
	{"NOOP", POP3_IN_TRANSACTION, 0, 0, 0, 0, pop3_cmd_noop},
	{"PASS", POP3_IN_AUTHORIZATION, POP3_CMD_LOGIN | POP3_CMD_RAW_ARGUMENT, 1, 1,
		POP3_COMMAND_LINE_MAX, pop3_cmd_pass},
	{"QUIT", POP3_IN_AUTHORIZATION | POP3_IN_TRANSACTION, 0, 0, 0, 0, pop3_cmd_quit},
	{"RETR", POP3_IN_TRANSACTION, 0, 1, 1, POP3_ARGUMENT_MAX, pop3_cmd_retr},
	{"RSET", POP3_IN_TRANSACTION, 0, 0, 0, 0, pop3_cmd_rset},
	{"STAT", POP3_IN_TRANSACTION, 0, 0, 0, 0, pop3_cmd_stat},
	{"STLS", POP3_IN_AUTHORIZATION, 0, 0, 0, 0, pop3_cmd_stls},
	{"TOP", POP3_IN_TRANSACTION, 0, 2, 2, POP3_ARGUMENT_MAX, pop3_cmd_top},
	{"UIDL", POP3_IN_TRANSACTION, 0, 0, 1, POP3_ARGUMENT_MAX, pop3_cmd_uidl},
	{"USER", POP3_IN_AUTHORIZATION, POP3_CMD_LOGIN, 1, 1, POP3_USER_ARGUMENT_MAX,
		pop3_cmd_user},
};

/* RFC 1939 3: keywords are case-insensitive. */
static const struct pop3_command *pop3_command_find(const char *keyword, size_t len)
{
	for (size_t i = 0; i < sizeof(pop3_commands) / sizeof(pop3_commands[0]); i++) {
		const struct pop3_command *cmd = &pop3_commands[i];

		if (strlen(cmd->keyword) == len && strncasecmp(cmd->keyword, keyword, len) == 0)
			return cmd;
	}
	return NULL;
}

/* RFC 1939 3: arguments are separated by a space. Runs of spaces and trailing spaces are
 * tolerated (some clients send them). Returns -1 when there are too many. */
static int pop3_split_arguments(const struct pop3_command *cmd, const char *rest, size_t len,
	struct pop3_args *args)
{
	size_t i = 0;

	args->count = 0;
	if (cmd->flags & POP3_CMD_RAW_ARGUMENT) {
		if (len > 1) {
			args->value[0] = rest + 1;
			args->len[0] = len - 1;
			args->count = 1;
		}
		return 0;
	}
	for (;;) {
		size_t start;

		while (i < len && rest[i] == ' ')
			i++;
		if (i == len)
			return 0;
		if (args->count == POP3_ARGS_MAX)
			return -1;
		start = i;
		while (i < len && rest[i] != ' ')
			i++;
		args->value[args->count] = rest + start;
		args->len[args->count] = i - start;
		args->count++;
	}
}

static const char *pop3_state_name(enum pop3_state state)
{
	switch (state) {
	case POP3_STATE_AUTHORIZATION:
		return "AUTHORIZATION";
	case POP3_STATE_TRANSACTION:
		return "TRANSACTION";
	case POP3_STATE_UPDATE:
		return "UPDATE";
	case POP3_STATE_CLOSED:
		break;
	}
	return "CLOSED";
}

static enum pop3_action pop3_dispatch(struct pop3_session *s, const char *line, size_t len,
	struct strbuf *out)
{
	const struct pop3_command *cmd;
	struct pop3_args args;
	size_t keyword_len = 0;

	while (keyword_len < len && line[keyword_len] != ' ')
		keyword_len++;
	cmd = pop3_command_find(line, keyword_len);
	if (!cmd)
		return pop3_reply_err(s, out, "unknown command");
	if (!(cmd->states & POP3_IN(s->state)))
		return pop3_reply_err(s, out, "%s is not valid in the %s state", cmd->keyword,
			pop3_state_name(s->state));
	if ((cmd->flags & POP3_CMD_LOGIN) && !pop3_login_allowed(s))
		return pop3_reply_err(s, out, "STLS first: no login before TLS (RFC 2595)");
	if (pop3_split_arguments(cmd, line + keyword_len, len - keyword_len, &args) != 0 ||
		args.count > cmd->max_args)
		return pop3_reply_err(s, out, "too many arguments");
	if (args.count < cmd->min_args)
		return pop3_reply_err(s, out, "missing argument");
	for (size_t i = 0; i < args.count; i++) {
		if (args.len[i] > cmd->arg_max)
			return pop3_reply_err(s, out, "argument too long");
	}
	return cmd->proceed(s, &args, out);
}

/* ---- public ---- */

struct pop3_session *pop3_session_new(const struct pop3_session_params *params)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));

	s->cfg = params->cfg;
	s->implementation = xstrdup(params->implementation ? params->implementation
		: "mailpopbox");
	s->tls_active = params->tls_active;
	s->stls_offered = params->stls_offered;
	s->state = POP3_STATE_AUTHORIZATION;
	s->pending = POP3_PENDING_NONE;
	s->retrieve_lines = -1;
	return s;
}

void pop3_session_free(struct pop3_session *s)
{
	if (!s)
		return;
	pop3_wipe_password(s);
	free(s->implementation);
	free(s->deleted);
	free(s->deletions);
	free(s);
}

void pop3_session_greeting(struct pop3_session *s, struct strbuf *out)
{
	pop3_reply_ok(s, out, "mailpopbox ready");
}

static void pop3_expect_idle(const struct pop3_session *s, const char *call)
{
	if (s->pending != POP3_PENDING_NONE)
		fatal("event=pop3_glue_bug call=%s pending=%d", call, (int)s->pending);
}

static void pop3_expect_pending(struct pop3_session *s, enum pop3_pending pending,
	const char *call)
{
	if (s->pending != pending)
		fatal("event=pop3_glue_bug call=%s pending=%d expected=%d", call, (int)s->pending,
			(int)pending);
	s->pending = POP3_PENDING_NONE;
}

enum pop3_action pop3_session_line_too_long(struct pop3_session *s, struct strbuf *out)
{
	pop3_expect_idle(s, "line_too_long");
	if (s->state == POP3_STATE_CLOSED)
		return POP3_ACTION_CLOSE;
	s->sasl_continuation = false; /* an over-long AUTH response ends the exchange */
	return pop3_reply_err(s, out, "line too long");
}

enum pop3_action pop3_session_feed_line(struct pop3_session *s, const char *line, size_t len,
	struct strbuf *out)
{
	pop3_expect_idle(s, "feed_line");
	if (s->state == POP3_STATE_CLOSED)
		return POP3_ACTION_CLOSE;
	if (len > POP3_COMMAND_LINE_MAX)
		return pop3_session_line_too_long(s, out);
	if (s->sasl_continuation)
		return pop3_sasl_continuation(s, line, len, out);
	/* RFC 1939 3: commands are printable ASCII; a NUL would cut C strings downstream. */
	if (memchr(line, '\0', len))
		return pop3_reply_err(s, out, "NUL in command line");
	return pop3_dispatch(s, line, len, out);
}

void pop3_session_tls_started(struct pop3_session *s)
{
	pop3_expect_pending(s, POP3_PENDING_STARTTLS, "tls_started");
	s->tls_active = true;
	/* RFC 2595 4: forget what the client said before TLS. */
	s->have_user = false;
	s->user_len = 0;
	s->user[0] = '\0';
}

const struct server_config *pop3_session_auth_server(const struct pop3_session *s)
{
	return s->auth_server;
}

const char *pop3_session_auth_password(const struct pop3_session *s, size_t *len)
{
	*len = s->password_len;
	return s->password;
}

bool pop3_session_verify_password(const struct pop3_session *s)
{
	return s->auth_server && auth_check_password(s->auth_server, s->password, s->password_len);
}

enum pop3_action pop3_session_auth_result(struct pop3_session *s, bool ok, struct strbuf *out)
{
	pop3_expect_pending(s, POP3_PENDING_PASSWORD, "auth_result");
	pop3_wipe_password(s);
	if (ok && s->auth_server) {
		s->server = s->auth_server;
		s->pending = POP3_PENDING_MAILDROP;
		return POP3_ACTION_OPEN_MAILDROP;
	}
	/* RFC 3206 5: [AUTH] tells the client the credentials are wrong, so it asks the user
	 * instead of retrying. The same text for an unknown name and a wrong password. */
	s->auth_failures++;
	if (pop3_reply_err(s, out, "[AUTH] invalid credentials") == POP3_ACTION_CLOSE ||
		s->auth_failures >= POP3_MAX_AUTH_FAILURES) {
		s->state = POP3_STATE_CLOSED;
		return POP3_ACTION_CLOSE;
	}
	return POP3_ACTION_NONE;
}

enum pop3_action pop3_session_auth_blocked(struct pop3_session *s, struct strbuf *out)
{
	pop3_expect_pending(s, POP3_PENDING_PASSWORD, "auth_blocked");
	pop3_wipe_password(s);
	/* RFC 3206 4: [SYS/TEMP]: not the credentials' fault; trying later may work. The
	 * connection ends, as after too many failures. */
	pop3_reply_err(s, out, "[SYS/TEMP] too many failed logins from your address, try again later");
	s->state = POP3_STATE_CLOSED;
	return POP3_ACTION_CLOSE;
}

const char *pop3_session_maildrop_path(const struct pop3_session *s)
{
	return s->server ? s->server->maildrop_path : NULL;
}

enum pop3_action pop3_session_maildrop_opened(struct pop3_session *s,
	enum maildrop_open_status status, struct maildrop *md, struct strbuf *out)
{
	pop3_expect_pending(s, POP3_PENDING_MAILDROP, "maildrop_opened");
	switch (status) {
	case MAILDROP_OPEN_OK:
		if (!md)
			fatal("event=pop3_glue_bug call=maildrop_opened md=NULL");
		s->md = md;
		s->deleted = xcalloc(pop3_deleted_words(s) + 1, sizeof(*s->deleted));
		pop3_count_live(s);
		s->state = POP3_STATE_TRANSACTION;
		pop3_reply_ok(s, out, "maildrop has %zu messages (%" PRIu64 " octets)",
			s->live_count, s->live_octets);
		return POP3_ACTION_NONE;
	case MAILDROP_OPEN_LOCKED:
		/* RFC 1939 7 (PASS): the lock failed, stay in AUTHORIZATION; RFC 2449 8.1.2. */
		s->server = NULL;
		return pop3_reply_err(s, out, "[IN-USE] maildrop locked");
	case MAILDROP_OPEN_ERROR:
		break;
	}
	s->server = NULL;
	return pop3_reply_err(s, out, "[SYS/TEMP] cannot open maildrop");
}

const struct maildrop_message *pop3_session_retrieve_message(const struct pop3_session *s)
{
	return s->md ? &s->md->messages[s->retrieve_index] : NULL;
}

size_t pop3_session_retrieve_index(const struct pop3_session *s)
{
	return s->retrieve_index;
}

long pop3_session_retrieve_lines(const struct pop3_session *s)
{
	return s->retrieve_lines;
}

static void pop3_expect_retrieve(const struct pop3_session *s, bool opened, const char *call)
{
	if (s->pending != POP3_PENDING_RETRIEVE || s->retrieve_opened != opened)
		fatal("event=pop3_glue_bug call=%s pending=%d opened=%d", call, (int)s->pending,
			(int)s->retrieve_opened);
}

void pop3_session_retrieve_opened(struct pop3_session *s, struct strbuf *out)
{
	const struct maildrop_message *msg = &s->md->messages[s->retrieve_index];

	pop3_expect_retrieve(s, false, "retrieve_opened");
	s->retrieve_opened = true;
	if (s->retrieve_lines < 0)
		pop3_reply_ok(s, out, "%" PRIu64 " octets", msg->size);
	else
		pop3_reply_ok(s, out, "top of message follows");
}

enum pop3_action pop3_session_retrieve_failed(struct pop3_session *s, int error,
	struct strbuf *out)
{
	(void)error; /* ENOENT (another reader removed it) or any other: the same to the client */
	pop3_expect_retrieve(s, false, "retrieve_failed");
	s->pending = POP3_PENDING_NONE;
	/* RFC 1939 5 (RETR, TOP): -ERR when the message cannot be sent. Nothing of it went out,
	 * so the session, and the DELEs already given in it, go on; another reader removed the
	 * file, which RFC 3206 4 calls a temporary condition of the server's. */
	return pop3_reply_err(s, out, "[SYS/TEMP] message unavailable");
}

enum pop3_action pop3_session_retrieve_done(struct pop3_session *s, bool ok)
{
	pop3_expect_retrieve(s, true, "retrieve_done");
	s->pending = POP3_PENDING_NONE;
	s->retrieve_opened = false;
	if (ok)
		return POP3_ACTION_NONE;
	/* The "+OK" is out and the message is not whole: only closing tells the client. */
	s->state = POP3_STATE_CLOSED;
	return POP3_ACTION_CLOSE;
}

enum pop3_action pop3_session_listing_more(struct pop3_session *s, struct strbuf *out,
	size_t budget)
{
	size_t start = out->len;

	if (s->pending != POP3_PENDING_LISTING)
		fatal("event=pop3_glue_bug call=listing_more pending=%d", (int)s->pending);
	/* Whole lines while under budget, and at least one, so every call makes progress. */
	while (s->listing_next < s->md->count &&
		(out->len == start || out->len - start < budget)) {
		size_t i = s->listing_next++;
		const struct maildrop_message *msg = &s->md->messages[i];

		if (pop3_is_deleted(s, i))
			continue;
		if (s->listing_uidl)
			strbuf_appendf(out, "%zu %s\r\n", i + 1, msg->uidl);
		else
			strbuf_appendf(out, "%zu %" PRIu64 "\r\n", i + 1, msg->size);
	}
	if (s->listing_next < s->md->count)
		return POP3_ACTION_LISTING;
	strbuf_append(out, ".\r\n", 3);
	s->pending = POP3_PENDING_NONE;
	return POP3_ACTION_NONE;
}

enum pop3_action pop3_session_commit_done(struct pop3_session *s, bool ok, struct strbuf *out)
{
	pop3_expect_pending(s, POP3_PENDING_COMMIT, "commit_done");
	if (!ok) {
		/* RFC 1939 6: "-ERR some deleted messages not removed"; RFC 3206 4: temporary. */
		pop3_reply_err(s, out, "[SYS/TEMP] some deleted messages not removed");
	} else if (s->live_count == 0) {
		pop3_reply_ok(s, out, "mailpopbox signing off (maildrop empty)");
	} else {
		pop3_reply_ok(s, out, "mailpopbox signing off (%zu messages left)", s->live_count);
	}
	s->state = POP3_STATE_CLOSED;
	return POP3_ACTION_CLOSE;
}

const size_t *pop3_session_deletions(const struct pop3_session *s, size_t *count)
{
	*count = s->deletion_count;
	return s->deletions;
}

enum pop3_state pop3_session_state(const struct pop3_session *s)
{
	return s->state;
}

const char *pop3_session_user(const struct pop3_session *s)
{
	return s->user;
}
