/* filter/milter.c: the milter client's conversation (see milter.h): connect, negotiate,
 * send the envelope, the header fields and the body of one message, and take the filter's
 * verdict and header changes. Blocking, on a worker; every read and write polls with what
 * is left of the one deadline. Encoding and parsing live in milter_codec.c. */
#include "filter/milter.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "alloc.h"
#include "deadline.h"
#include "filter/milter_codec.h"
#include "log.h"
#include "mail/headers.h"
#include "strbuf.h"

/* Longest field name sent (RFC 5322 2.1.1's line limit), so name and value fit a packet. */
#define MILTER_HEADER_NAME_MAX 998

struct milter_session {
	int fd;
	uint64_t deadline; /* deadline.h */
	struct strbuf out;        /* commands not yet written */
	char *packet;             /* the last reply read, MILTER_PACKET_MAX octets */
	uint32_t actions;         /* negotiated */
	uint32_t protocol;
	struct milter_result *result;
	/* The message: lead, then fd from offset. */
	const char *lead;
	size_t lead_len;
	int msg_fd;
	off_t msg_offset;
};

enum step {
	STEP_NEXT,  /* go on with the next command */
	STEP_SKIP,  /* SMFIR_SKIP: no more body chunks */
	STEP_FINAL, /* result->verdict is the verdict: stop */
	STEP_ERROR, /* result->error says why: MILTER_FAILED */
};

static enum step fail(struct milter_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static enum step fail(struct milter_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->result->error, sizeof(s->result->error), fmt, ap);
	va_end(ap);
	s->result->verdict = MILTER_FAILED;
	s->result->reply[0] = '\0';
	return STEP_ERROR;
}

/* Waits for events on fd until the deadline: false when it passed (or poll failed). */
static bool wait_for(struct milter_session *s, int fd, short events)
{
	return deadline_poll(fd, events, s->deadline) > 0;
}

static enum step flush(struct milter_session *s)
{
	size_t done = 0;
	while (done < s->out.len) {
		if (!wait_for(s, s->fd, POLLOUT))
			return fail(s, "timed out writing to the milter");
		ssize_t n = send(s->fd, s->out.data + done, s->out.len - done, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return fail(s, "writing to the milter: %s", strerror(errno));
		}
		done += (size_t)n;
	}
	strbuf_reset(&s->out);
	return STEP_NEXT;
}

static enum step read_exact(struct milter_session *s, char *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		if (!wait_for(s, s->fd, POLLIN))
			return fail(s, "timed out waiting for the milter's reply");
		ssize_t n = recv(s->fd, buf + done, len - done, 0);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return fail(s, "reading from the milter: %s", strerror(errno));
		}
		if (n == 0)
			return fail(s, "the milter closed the connection");
		done += (size_t)n;
	}
	return STEP_NEXT;
}

/* Reads one reply packet (bounded by MILTER_PACKET_MAX) and parses it into *reply. */
static enum step read_reply(struct milter_session *s, struct milter_reply *reply)
{
	unsigned char head[4];

	if (read_exact(s, (char *)head, 4) != STEP_NEXT)
		return STEP_ERROR;
	uint32_t n = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 |
		head[3];
	if (n == 0 || n > MILTER_PACKET_MAX)
		return fail(s, "milter packet of %" PRIu32 " octets (at most %d)", n,
			MILTER_PACKET_MAX);
	if (read_exact(s, s->packet, n) != STEP_NEXT)
		return STEP_ERROR;
	if (!milter_reply_parse(s->packet, n, reply))
		return fail(s, "malformed milter reply 0x%02x", (unsigned char)s->packet[0]);
	return STEP_NEXT;
}

/* Sends what is buffered and, when the filter replies to this stage, takes its reply:
 * SMFIR_CONTINUE goes on, SMFIR_PROGRESS waits on (the deadline stays), SMFIR_SKIP only
 * during the body, a verdict ends the conversation, anything else is a protocol error. */
static enum step exchange(struct milter_session *s, bool replies, const char *stage)
{
	if (flush(s) != STEP_NEXT)
		return STEP_ERROR;
	if (!replies)
		return STEP_NEXT;
	for (;;) {
		struct milter_reply reply;
		if (read_reply(s, &reply) != STEP_NEXT)
			return STEP_ERROR;
		switch (reply.command) {
		case SMFIR_PROGRESS:
			continue;
		case SMFIR_CONTINUE:
			return STEP_NEXT;
		case SMFIR_SKIP:
			if (strcmp(stage, "body") == 0 && (s->protocol & SMFIP_SKIP))
				return STEP_SKIP;
			return fail(s, "unexpected SMFIR_SKIP at stage %s", stage);
		default:
			break;
		}
		switch (milter_result_set_final(s->result, &reply)) {
		case MILTER_EOM_FINAL:
			return STEP_FINAL;
		case MILTER_EOM_ERROR:
			s->result->verdict = MILTER_FAILED;
			s->result->reply[0] = '\0';
			return STEP_ERROR;
		case MILTER_EOM_MORE:
			break;
		}
		return fail(s, "unexpected milter reply 0x%02x at stage %s",
			(unsigned char)reply.command, stage);
	}
}

/* ---- connecting ---- */

/* Splits "inet:HOST:PORT" (HOST "[v6]" for IPv6) or "unix:PATH". */
static bool parse_spec(const char *spec, char *host, size_t hostsz, char *port, size_t portsz,
	const char **path, char *err, size_t errsz)
{
	*path = NULL;
	if (strncmp(spec, "unix:", 5) == 0) {
		const char *p = spec + 5;
		if (p[0] != '/') {
			snprintf(err, errsz, "unix: needs an absolute path");
			return false;
		}
		if (strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			snprintf(err, errsz, "unix: path too long");
			return false;
		}
		*path = p;
		return true;
	}
	if (strncmp(spec, "inet:", 5) != 0) {
		snprintf(err, errsz, "not inet:HOST:PORT or unix:PATH");
		return false;
	}
	const char *h = spec + 5;
	const char *colon = strrchr(h, ':');
	if (!colon) {
		snprintf(err, errsz, "inet: needs HOST:PORT");
		return false;
	}
	const char *hs = h, *he = colon;
	if (h[0] == '[') {
		if (colon == h || colon[-1] != ']') {
			snprintf(err, errsz, "inet: unclosed [ in HOST");
			return false;
		}
		hs = h + 1;
		he = colon - 1;
	} else if (memchr(h, ':', (size_t)(colon - h))) {
		snprintf(err, errsz, "inet: an IPv6 HOST goes in brackets: inet:[::1]:PORT");
		return false;
	}
	if (he == hs || (size_t)(he - hs) >= hostsz) {
		snprintf(err, errsz, "inet: empty or too long HOST");
		return false;
	}
	const char *ps = colon + 1;
	size_t plen = strlen(ps);
	if (plen == 0 || plen > 5 || plen >= portsz || strspn(ps, "0123456789") != plen ||
	    atoi(ps) < 1 || atoi(ps) > 65535) {
		snprintf(err, errsz, "inet: PORT must be 1..65535");
		return false;
	}
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	memcpy(port, ps, plen + 1);
	return true;
}

bool milter_spec_valid(const char *spec, char *err, size_t errsz)
{
	char host[256], port[8];
	const char *path;
	return parse_spec(spec, host, sizeof(host), port, sizeof(port), &path, err, errsz);
}

/* A non-blocking connect that waits at most until the deadline: the fd or -1 (errno set). */
static int connect_until(struct milter_session *s, int family, const struct sockaddr *addr,
	socklen_t addrlen)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, addr, addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS && errno != EAGAIN) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	if (!wait_for(s, fd, POLLOUT)) {
		close(fd);
		errno = ETIMEDOUT;
		return -1;
	}
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
		close(fd);
		errno = soerr ? soerr : EIO;
		return -1;
	}
	return fd;
}

static enum step connect_milter(struct milter_session *s, const char *spec)
{
	char host[256], port[8], err[128];
	const char *path;

	if (!parse_spec(spec, host, sizeof(host), port, sizeof(port), &path, err, sizeof(err)))
		return fail(s, "bad milter address: %s", err);
	if (path) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		memcpy(sun.sun_path, path, strlen(path) + 1);
		s->fd = connect_until(s, AF_UNIX, (struct sockaddr *)&sun, sizeof(sun));
		if (s->fd < 0)
			return fail(s, "cannot connect to %s: %s", spec, strerror(errno));
		return STEP_NEXT;
	}
	/* getaddrinfo() has no deadline of its own; a numeric HOST never waits. */
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *list;
	int rc = getaddrinfo(host, port, &hints, &list);
	if (rc != 0)
		return fail(s, "cannot resolve %s: %s", host, gai_strerror(rc));
	int last_errno = ECONNREFUSED;
	for (struct addrinfo *ai = list; ai && s->fd < 0; ai = ai->ai_next) {
		s->fd = connect_until(s, ai->ai_family, ai->ai_addr, ai->ai_addrlen);
		if (s->fd < 0)
			last_errno = errno;
	}
	freeaddrinfo(list);
	if (s->fd < 0)
		return fail(s, "cannot connect to %s: %s", spec, strerror(last_errno));
	return STEP_NEXT;
}

/* ---- the message ---- */

/* Reads up to len octets of the message (lead, then the file) at position pos; the octets
 * read, 0 at the end, -1 on a read error. */
static ssize_t message_read(const struct milter_session *s, uint64_t pos, char *buf, size_t len)
{
	size_t done = 0;
	if (pos < s->lead_len) {
		size_t n = s->lead_len - (size_t)pos < len ? s->lead_len - (size_t)pos : len;
		memcpy(buf, s->lead + pos, n);
		done = n;
	}
	while (done < len) {
		uint64_t file_pos = pos + done - s->lead_len;
		ssize_t n = pread(s->msg_fd, buf + done, len - done,
			s->msg_offset + (off_t)file_pos);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static const char *const connect_macro_names[] = {"j", "{daemon_name}", "{client_addr}",
	"{client_name}", "{client_port}", "_"};
static const char *const helo_macro_names[] = {"{tls_version}"};
static const char *const mail_macro_names[] = {"i", "{mail_addr}"};
static const char *const rcpt_macro_names[] = {"i", "{rcpt_addr}"};
static const char *const queue_macro_names[] = {"i"};

static enum step send_connect(struct milter_session *s, const struct milter_envelope *env)
{
	char port[16], underscore[512], name[300];
	const char *ip = env->client_ip;

	snprintf(port, sizeof(port), "%u", env->client_port);
	if (env->client_name && env->client_name[0])
		snprintf(name, sizeof(name), "%s", env->client_name);
	else
		snprintf(name, sizeof(name), "[%s]", ip ? ip : "unknown");
	snprintf(underscore, sizeof(underscore), "%s [%s]", name, ip ? ip : "unknown");
	const char *values[] = {env->hostname, "mailpopbox", ip, name, ip ? port : NULL, underscore};
	milter_encode_macros(&s->out, SMFIC_CONNECT, connect_macro_names, values, 6);
	if (!ip || !ip[0])
		milter_encode_connect(&s->out, name, 'U', 0, NULL);
	else
		milter_encode_connect(&s->out, name, strchr(ip, ':') ? '6' : '4', env->client_port,
			ip);
	return exchange(s, !(s->protocol & SMFIP_NR_CONN), "connect");
}

/* SMFIC_RCPT per recipient. A filter's reject or tempfail refuses that recipient only
 * (libmilter's xxfi_envrcpt); by the end of DATA every recipient is accepted and they all
 * go to the one maildrop, so the message is refused when all of them were, and otherwise
 * goes on (logged). */
static enum step send_recipients(struct milter_session *s, const struct milter_envelope *env)
{
	struct milter_result *r = s->result;
	size_t refused = 0;
	char last_reply[MILTER_SMTP_REPLY_MAX] = "";
	enum milter_verdict last_verdict = MILTER_REJECT;

	for (size_t i = 0; i < env->rcpt_count; i++) {
		const char *values[] = {env->queue_id, env->rcpts[i]};
		milter_encode_macros(&s->out, SMFIC_RCPT, rcpt_macro_names, values, 2);
		milter_encode_rcpt(&s->out, env->rcpts[i]);
		enum step st = exchange(s, !(s->protocol & SMFIP_NR_RCPT), "rcpt");
		if (st != STEP_NEXT && st != STEP_FINAL)
			return st;
		if (st == STEP_FINAL) {
			if (r->verdict != MILTER_REJECT && r->verdict != MILTER_TEMPFAIL)
				return STEP_FINAL; /* accept or discard: the whole message */
			refused++;
			last_verdict = r->verdict;
			memcpy(last_reply, r->reply, sizeof(last_reply));
			r->verdict = MILTER_ACCEPT;
			r->reply[0] = '\0';
		}
	}
	if (refused == 0)
		return STEP_NEXT;
	if (refused == env->rcpt_count) {
		r->verdict = last_verdict;
		memcpy(r->reply, last_reply, sizeof(r->reply));
		return STEP_FINAL;
	}
	char q[256];
	log_warn("milter", "event=milter_rcpt_refused id=%s refused=%zu of=%zu reply=%s "
		"action=deliver", env->queue_id ? env->queue_id : "-", refused, env->rcpt_count,
		log_quote(q, sizeof(q), last_reply, strlen(last_reply)));
	return STEP_NEXT;
}

/* The header fields (lead and the file's header section), SMFIC_EOH, the body in chunks,
 * SMFIC_BODYEOB; *body_start is where the body begins in the message. */
static enum step send_header(struct milter_session *s, uint64_t *body_start)
{
	/* One octet more than the bound, so a section that does not end within it is seen. */
	size_t want = (size_t)MAIL_HEADER_SECTION_MAX + 1;
	char *buf = xmalloc(want);
	ssize_t got = message_read(s, 0, buf, want);
	if (got < 0) {
		free(buf);
		return fail(s, "reading the message: %s", strerror(errno));
	}
	struct mail_headers h;
	size_t header_len;
	if (mail_headers_parse(buf, (size_t)got, &h, &header_len) != MAIL_HEADERS_OK) {
		free(buf);
		return fail(s, "header section over %d octets", MAIL_HEADER_SECTION_MAX);
	}
	free(buf);
	*body_start = header_len;

	enum step st = STEP_NEXT;
	if (!(s->protocol & SMFIP_NOHDRS)) {
		struct strbuf value;
		strbuf_init(&value);
		for (size_t i = 0; i < h.count && st == STEP_NEXT; i++) {
			const struct mail_field *f = &h.fields[i];
			/* Not a field (nothing a filter could name), or a name no packet could hold
			 * (RFC 5322 2.1.1: a line is at most 998 octets anyway). */
			if (f->name_len == 0 || f->name_len > MILTER_HEADER_NAME_MAX)
				continue;
			strbuf_reset(&value);
			milter_header_value(f->raw + f->value_offset, f->raw_len - f->value_offset,
				&value);
			/* A packet holds at most MILTER_PACKET_MAX octets: a longer field is cut. */
			size_t room = MILTER_PACKET_MAX - 3 - f->name_len;
			size_t vlen = value.len < room ? value.len : room;
			milter_encode_header(&s->out, f->raw, f->name_len, value.data ? value.data : "",
				vlen);
			st = exchange(s, !(s->protocol & SMFIP_NR_HDR), "header");
		}
		strbuf_free(&value);
	}
	mail_headers_free(&h);
	if (st != STEP_NEXT)
		return st;
	if (!(s->protocol & SMFIP_NOEOH)) {
		milter_encode_empty(&s->out, SMFIC_EOH);
		return exchange(s, !(s->protocol & SMFIP_NR_EOH), "eoh");
	}
	return STEP_NEXT;
}

static enum step send_body(struct milter_session *s, uint64_t pos)
{
	if (s->protocol & SMFIP_NOBODY)
		return STEP_NEXT;
	char *chunk = xmalloc(MILTER_BODY_CHUNK_MAX);
	enum step st = STEP_NEXT;
	for (;;) {
		ssize_t n = message_read(s, pos, chunk, MILTER_BODY_CHUNK_MAX);
		if (n < 0) {
			st = fail(s, "reading the message: %s", strerror(errno));
			break;
		}
		if (n == 0)
			break;
		pos += (uint64_t)n;
		milter_encode_body(&s->out, chunk, (size_t)n);
		st = exchange(s, !(s->protocol & SMFIP_NR_BODY), "body");
		if (st != STEP_NEXT)
			break;
	}
	free(chunk);
	return st == STEP_SKIP ? STEP_NEXT : st;
}

/* SMFIC_BODYEOB, then the modifications until a verdict. */
static enum step end_of_message(struct milter_session *s, const char *queue_id)
{
	const char *values[] = {queue_id};
	unsigned dropped = 0;

	milter_encode_macros(&s->out, SMFIC_BODYEOB, queue_macro_names, values, 1);
	milter_encode_empty(&s->out, SMFIC_BODYEOB);
	if (flush(s) != STEP_NEXT)
		return STEP_ERROR;
	for (;;) {
		struct milter_reply reply;
		if (read_reply(s, &reply) != STEP_NEXT)
			return STEP_ERROR;
		enum milter_eom_step step = milter_result_apply_eom(s->result, &reply, s->actions,
			&dropped);
		if (step == MILTER_EOM_MORE)
			continue;
		if (dropped)
			log_warn("milter", "event=milter_changes_dropped id=%s dropped=%u max=%d",
				queue_id ? queue_id : "-", dropped, MILTER_CHANGES_MAX);
		if (step == MILTER_EOM_ERROR) {
			s->result->verdict = MILTER_FAILED;
			s->result->reply[0] = '\0';
			return STEP_ERROR;
		}
		return STEP_FINAL;
	}
}

static enum step negotiate(struct milter_session *s)
{
	struct milter_reply reply;

	milter_encode_optneg(&s->out, MILTER_PROTOCOL_VERSION, MILTER_ACTIONS_OFFERED,
		MILTER_PROTOCOL_OFFERED);
	if (flush(s) != STEP_NEXT || read_reply(s, &reply) != STEP_NEXT)
		return STEP_ERROR;
	if (reply.command != SMFIC_OPTNEG)
		return fail(s, "milter answered 0x%02x to SMFIC_OPTNEG",
			(unsigned char)reply.command);
	/* Version 2 is the oldest libmilter still in use; 6 is ours. */
	if (reply.version < 2 || reply.version > MILTER_PROTOCOL_VERSION)
		return fail(s, "milter protocol version %" PRIu32 " not supported", reply.version);
	if (reply.actions & ~MILTER_ACTIONS_OFFERED)
		log_info("milter", "event=milter_actions_refused actions=0x%" PRIx32,
			reply.actions & ~MILTER_ACTIONS_OFFERED);
	if (reply.protocol & ~MILTER_PROTOCOL_OFFERED)
		return fail(s, "milter asks for protocol steps we do not offer (0x%" PRIx32 ")",
			reply.protocol & ~MILTER_PROTOCOL_OFFERED);
	s->actions = reply.actions & MILTER_ACTIONS_OFFERED;
	s->protocol = reply.protocol;
	return STEP_NEXT;
}

static enum step converse(struct milter_session *s, const char *spec,
	const struct milter_envelope *env)
{
	enum step st;
	uint64_t body_start = 0;

	if ((st = connect_milter(s, spec)) != STEP_NEXT || (st = negotiate(s)) != STEP_NEXT)
		return st;
	if (!(s->protocol & SMFIP_NOCONNECT) && (st = send_connect(s, env)) != STEP_NEXT)
		return st;
	if (!(s->protocol & SMFIP_NOHELO)) {
		const char *values[] = {env->tls_version};
		milter_encode_macros(&s->out, SMFIC_HELO, helo_macro_names, values, 1);
		milter_encode_helo(&s->out, env->helo ? env->helo : "");
		if ((st = exchange(s, !(s->protocol & SMFIP_NR_HELO), "helo")) != STEP_NEXT)
			return st;
	}
	if (!(s->protocol & SMFIP_NOMAIL)) {
		const char *values[] = {env->queue_id, env->mail_from ? env->mail_from : ""};
		milter_encode_macros(&s->out, SMFIC_MAIL, mail_macro_names, values, 2);
		milter_encode_mail(&s->out, env->mail_from);
		if ((st = exchange(s, !(s->protocol & SMFIP_NR_MAIL), "mail")) != STEP_NEXT)
			return st;
	}
	if (!(s->protocol & SMFIP_NORCPT) && (st = send_recipients(s, env)) != STEP_NEXT)
		return st;
	if (!(s->protocol & SMFIP_NODATA)) {
		const char *values[] = {env->queue_id};
		milter_encode_macros(&s->out, SMFIC_DATA, queue_macro_names, values, 1);
		milter_encode_empty(&s->out, SMFIC_DATA);
		if ((st = exchange(s, !(s->protocol & SMFIP_NR_DATA), "data")) != STEP_NEXT)
			return st;
	}
	if ((st = send_header(s, &body_start)) != STEP_NEXT ||
	    (st = send_body(s, body_start)) != STEP_NEXT)
		return st;
	return end_of_message(s, env->queue_id);
}

void milter_check(const char *spec, unsigned timeout_seconds, const struct milter_envelope *env,
	const char *lead, size_t lead_len, int fd, off_t offset, struct milter_result *out)
{
	struct milter_session s = {.fd = -1, .result = out, .lead = lead ? lead : "",
		.lead_len = lead ? lead_len : 0, .msg_fd = fd, .msg_offset = offset};

	milter_result_init(out);
	if (timeout_seconds < 1)
		timeout_seconds = 1;
	if (timeout_seconds > MILTER_TIMEOUT_MAX)
		timeout_seconds = MILTER_TIMEOUT_MAX;
	s.deadline = deadline_after_ms((uint64_t)timeout_seconds * 1000);
	strbuf_init(&s.out);
	s.packet = xmalloc(MILTER_PACKET_MAX);

	enum step st = converse(&s, spec, env);
	if (st == STEP_ERROR) {
		/* A failed conversation's changes are not applied: the caller fails open or
		 * tempfails, never half-filters. */
		milter_result_free(out);
		out->quarantine = false;
		out->quarantine_reason[0] = '\0';
	} else if (s.fd >= 0) {
		/* Polite, not awaited: the filter needs no answer to SMFIC_QUIT. */
		strbuf_reset(&s.out);
		milter_encode_empty(&s.out, SMFIC_QUIT);
		(void)send(s.fd, s.out.data, s.out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	if (s.fd >= 0)
		close(s.fd);
	strbuf_free(&s.out);
	free(s.packet);
}

void milter_result_free(struct milter_result *r)
{
	for (size_t i = 0; i < r->change_count; i++) {
		free(r->changes[i].name);
		free(r->changes[i].value);
	}
	free(r->changes);
	r->changes = NULL;
	r->change_count = 0;
}
