/* push/imap_client.c: the IMAP destination of push delivery. A blocking client on a
 * non-blocking socket: every read and write waits in poll() against a deadline, so a server
 * that stalls costs at most the connect, command or message deadline (src/bounds.h). TLS is
 * OpenSSL with the certificate and the host name (or IP address) verified; the password or
 * token is only ever sent after that. Responses are parsed by push/imap_reply.c. */
#include "push/imap_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "deadline.h"
#include "log.h"
#include "mail/base64.h"
#include "push/imap_reply.h"
#include "strbuf.h"
#include "tls.h"

/* Room for a whole line with its CRLF, and more, so one read usually brings several. */
#define READ_BUFFER_SIZE (2 * PUSH_IMAP_LINE_MAX + 2)
/* Output is gathered and written in pieces of about this size: many small APPENDs then share
 * one TLS record and one system call. */
#define WRITE_CHUNK (64 * 1024)
/* Addresses of the host tried in turn, within the one connect deadline. */
#define ADDRESSES_MAX 8

/* What wait_for() returns on, besides the tagged answer to its command. */
enum wait_flags {
	WAIT_CONTINUATION = 1, /* a "+" (for a synchronising literal or a SASL step) */
	WAIT_BYE_EXPECTED = 2, /* LOGOUT: an untagged BYE is the normal answer */
};

/* An APPEND sent and not answered yet: count messages from order[first] (more than one in
 * a MULTIAPPEND). */
struct pending_append {
	unsigned long tag;
	size_t first;
	size_t count;
};

struct imap_client {
	char *host;
	int port;
	enum destination_tls tls;
	char *ca_file;
	char *username;
	char *password; /* wiped when freed */
	char *mailbox;
	char *junk_mailbox;

	SSL_CTX *ctx; /* made at the first login, kept */
	SSL *ssl;
	int fd;
	bool connected; /* logged in, and no error since */
	bool caps_known;
	struct imap_capabilities caps;
	unsigned long next_tag;
	struct strbuf out; /* gathered output, written by flush() */
	char rbuf[READ_BUFFER_SIZE];
	size_t rpos, rlen;
	char line[PUSH_IMAP_LINE_MAX + 1];
	size_t line_len;
};

static uint64_t deadline_in(uint64_t seconds)
{
	return deadline_after_ms(seconds * 1000);
}

/* A message's upload: the command deadline plus its size at a slow but acceptable rate. */
static uint64_t message_deadline(uint64_t size)
{
	return deadline_in(PUSH_IMAP_COMMAND_TIMEOUT_SECONDS +
		size / PUSH_IMAP_MESSAGE_MIN_OCTETS_PER_SECOND);
}

static void wipe_string(char *s)
{
	if (s)
		OPENSSL_cleanse(s, strlen(s));
}

/* Grows sb (keeping what it holds) so that n more octets fit without a reallocation: done
 * before a password or token goes in, so no copy of it is left behind in freed memory. */
static void presize(struct strbuf *sb, size_t n)
{
	size_t len = sb->len;

	if (sb->cap > len + n)
		return;
	char *zeros = xcalloc(1, n);
	strbuf_append(sb, zeros, n);
	free(zeros);
	sb->len = len;
	sb->data[len] = '\0';
}

/* Closes the connection, whatever state it is in. */
static void drop(struct imap_client *c)
{
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	c->connected = false;
	c->caps_known = false;
	c->rpos = c->rlen = 0;
	if (c->out.data)
		OPENSSL_cleanse(c->out.data, c->out.cap);
	strbuf_reset(&c->out);
}

/* Drops the connection and says why in err: every connection-level failure ends here. */
__attribute__((format(printf, 4, 5)))
static bool fail(struct imap_client *c, char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	drop(c);
	return false;
}

static bool wait_io(struct imap_client *c, short events, uint64_t deadline, char *err,
	size_t errsz)
{
	int ready = deadline_poll(c->fd, events, deadline);

	if (ready == 0)
		return fail(c, err, errsz, "timed out waiting for %s:%d", c->host, c->port);
	if (ready < 0)
		return fail(c, err, errsz, "poll: %s", strerror(errno));
	return true;
}

/* Why a TLS operation failed, from OpenSSL's error queue (which it empties). */
static void tls_failure(char *buf, size_t size)
{
	unsigned long e, first = 0;
	char reason[160];

	while ((e = ERR_get_error()) != 0)
		if (!first)
			first = e;
	if (first)
		snprintf(buf, size, "%s", tls_error_reason(first, reason, sizeof(reason)));
	else
		snprintf(buf, size, "%s", strerror(errno ? errno : ECONNRESET));
}

/* Whether an SSL call's error means waiting: sets *events to what to wait for. */
static bool ssl_wants(SSL *ssl, int ret, short *events)
{
	switch (SSL_get_error(ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		*events = POLLIN;
		return true;
	case SSL_ERROR_WANT_WRITE:
		*events = POLLOUT;
		return true;
	default:
		return false;
	}
}

/* Reads what is available (at least one octet) into rbuf. */
static bool read_some(struct imap_client *c, uint64_t deadline, char *err, size_t errsz)
{
	if (c->rpos > 0) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	size_t space = sizeof(c->rbuf) - c->rlen;
	for (;;) {
		short events = POLLIN;
		if (c->ssl) {
			ERR_clear_error();
			errno = 0;
			int n = SSL_read(c->ssl, c->rbuf + c->rlen, space > INT_MAX ? INT_MAX : (int)space);
			if (n > 0) {
				c->rlen += (size_t)n;
				return true;
			}
			if (!ssl_wants(c->ssl, n, &events)) {
				char why[200];
				if (SSL_get_error(c->ssl, n) == SSL_ERROR_ZERO_RETURN ||
				    (ERR_peek_error() == 0 && errno == 0))
					return fail(c, err, errsz, "%s:%d closed the connection", c->host,
						c->port);
				tls_failure(why, sizeof(why));
				return fail(c, err, errsz, "reading from %s:%d: %s", c->host, c->port, why);
			}
		} else {
			ssize_t n = read(c->fd, c->rbuf + c->rlen, space);
			if (n > 0) {
				c->rlen += (size_t)n;
				return true;
			}
			if (n == 0)
				return fail(c, err, errsz, "%s:%d closed the connection", c->host, c->port);
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return fail(c, err, errsz, "reading from %s:%d: %s", c->host, c->port,
					strerror(errno));
		}
		if (!wait_io(c, events, deadline, err, errsz))
			return false;
	}
}

static bool write_all(struct imap_client *c, const char *data, size_t len, uint64_t deadline,
	char *err, size_t errsz)
{
	while (len > 0) {
		short events = POLLOUT;
		size_t piece = len > INT_MAX ? INT_MAX : len;
		if (c->ssl) {
			ERR_clear_error();
			errno = 0;
			int n = SSL_write(c->ssl, data, (int)piece);
			if (n > 0) {
				data += n;
				len -= (size_t)n;
				continue;
			}
			if (!ssl_wants(c->ssl, n, &events)) {
				char why[200];
				tls_failure(why, sizeof(why));
				return fail(c, err, errsz, "writing to %s:%d: %s", c->host, c->port, why);
			}
		} else {
			ssize_t n = send(c->fd, data, piece, MSG_NOSIGNAL);
			if (n > 0) {
				data += n;
				len -= (size_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
				return fail(c, err, errsz, "writing to %s:%d: %s", c->host, c->port,
					strerror(errno));
		}
		/* A large message's deadline is long; a server that takes nothing at all for a
		 * command's time has stalled, whatever is left of it. */
		uint64_t idle = deadline_in(PUSH_IMAP_COMMAND_TIMEOUT_SECONDS);
		if (!wait_io(c, events, idle < deadline ? idle : deadline, err, errsz))
			return false;
	}
	return true;
}

/* Writes the gathered output. secret: it held a password or token, so it is wiped. */
static bool flush(struct imap_client *c, bool secret, uint64_t deadline, char *err, size_t errsz)
{
	bool ok = c->out.len == 0 || write_all(c, c->out.data, c->out.len, deadline, err, errsz);

	if (secret && c->out.data)
		OPENSSL_cleanse(c->out.data, c->out.cap);
	strbuf_reset(&c->out);
	return ok;
}

/* Reads one line (CRLF, or a bare LF, removed) into c->line. */
static bool read_line(struct imap_client *c, uint64_t deadline, char *err, size_t errsz)
{
	for (;;) {
		char *start = c->rbuf + c->rpos;
		size_t avail = c->rlen - c->rpos;
		char *nl = memchr(start, '\n', avail);
		if (nl) {
			size_t len = (size_t)(nl - start);
			size_t used = len + 1;
			if (len > 0 && start[len - 1] == '\r')
				len--;
			if (len > PUSH_IMAP_LINE_MAX)
				break;
			memcpy(c->line, start, len);
			c->line[len] = '\0';
			c->line_len = len;
			c->rpos += used;
			return true;
		}
		if (avail > PUSH_IMAP_LINE_MAX + 1)
			break;
		if (!read_some(c, deadline, err, errsz))
			return false;
	}
	return fail(c, err, errsz, "%s:%d sent a line longer than %d octets", c->host, c->port,
		PUSH_IMAP_LINE_MAX);
}

/* Discards n octets of a literal. */
static bool skip_octets(struct imap_client *c, uint64_t n, uint64_t deadline, char *err,
	size_t errsz)
{
	while (n > 0) {
		if (c->rpos == c->rlen && !read_some(c, deadline, err, errsz))
			return false;
		size_t avail = c->rlen - c->rpos;
		size_t take = n < avail ? (size_t)n : avail;
		c->rpos += take;
		n -= take;
	}
	return true;
}

/* Reads one whole response, skipping its literals within bounds, and keeps any capability
 * list it carries. */
static bool read_response(struct imap_client *c, struct imap_reply *reply, uint64_t deadline,
	char *err, size_t errsz)
{
	if (!read_line(c, deadline, err, errsz))
		return false;
	if (!imap_reply_parse(c->line, c->line_len, reply)) {
		char quoted[80];
		for (size_t i = 0; i < c->line_len && i < sizeof(quoted) - 1; i++)
			quoted[i] = c->line[i] >= 0x20 && c->line[i] < 0x7f ? c->line[i] : '?';
		quoted[c->line_len < sizeof(quoted) - 1 ? c->line_len : sizeof(quoted) - 1] = '\0';
		return fail(c, err, errsz, "%s:%d does not speak IMAP: \"%s\"", c->host, c->port,
			quoted);
	}
	bool literal = reply->literal;
	uint64_t size = reply->literal_size, skipped = 0;
	for (unsigned pieces = 0; literal; pieces++) {
		if (pieces >= PUSH_IMAP_RESPONSE_PIECES_MAX ||
		    size > PUSH_IMAP_RESPONSE_LITERAL_MAX - skipped)
			return fail(c, err, errsz, "%s:%d sent a response with literals over %d octets "
				"or %d pieces", c->host, c->port, PUSH_IMAP_RESPONSE_LITERAL_MAX,
				PUSH_IMAP_RESPONSE_PIECES_MAX);
		skipped += size;
		if (!skip_octets(c, size, deadline, err, errsz) || !read_line(c, deadline, err, errsz))
			return false;
		literal = imap_reply_trailing_literal(c->line, c->line_len, &size);
	}
	if ((reply->code == IMAP_CODE_CAPABILITY && reply->status != IMAP_STATUS_NO &&
	     reply->status != IMAP_STATUS_BAD) || reply->data == IMAP_DATA_CAPABILITY) {
		c->caps = reply->capabilities;
		c->caps_known = true;
	}
	return true;
}

static void format_tag(char *buf, size_t size, unsigned long tag)
{
	snprintf(buf, size, "A%lu", tag);
}

/* Reads responses until the tagged answer to tag (or a continuation, with
 * WAIT_CONTINUATION). Counts SEARCH results, or LIST responses, into *search when given. */
static bool wait_for(struct imap_client *c, unsigned long tag, unsigned flags,
	struct imap_reply *reply, size_t *search, uint64_t deadline, char *err, size_t errsz)
{
	char want[PUSH_IMAP_TAG_MAX + 1];

	format_tag(want, sizeof(want), tag);
	for (unsigned long n = 0; n <= PUSH_IMAP_UNTAGGED_MAX; n++) {
		if (!read_response(c, reply, deadline, err, errsz))
			return false;
		switch (reply->kind) {
		case IMAP_REPLY_TAGGED:
			if (strcmp(reply->tag, want) != 0)
				return fail(c, err, errsz, "%s:%d answered a command we did not send (%s)",
					c->host, c->port, reply->tag);
			return true;
		case IMAP_REPLY_CONTINUATION:
			if (flags & WAIT_CONTINUATION)
				return true;
			return fail(c, err, errsz, "%s:%d sent an unexpected continuation", c->host,
				c->port);
		case IMAP_REPLY_UNTAGGED:
			if (reply->status == IMAP_STATUS_BYE && !(flags & WAIT_BYE_EXPECTED))
				return fail(c, err, errsz, "%s:%d closed the connection: %s", c->host,
					c->port, reply->text);
			if (reply->data == IMAP_DATA_SEARCH && search)
				*search += reply->search_count;
			if (reply->data == IMAP_DATA_LIST && search)
				(*search)++;
			break;
		}
	}
	return fail(c, err, errsz, "%s:%d sent more than %d untagged responses to one command",
		c->host, c->port, PUSH_IMAP_UNTAGGED_MAX);
}

/* RFC 9051 4.3: a quoted string holds any 7-bit character but NUL, CR and LF. */
static bool quotable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == 0 || ch == '\r' || ch == '\n' || ch >= 0x80)
			return false;
	}
	return true;
}

static void append_quoted(struct strbuf *out, const char *s, size_t len)
{
	strbuf_append(out, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			strbuf_append(out, "\\", 1);
		strbuf_append(out, &s[i], 1);
	}
	strbuf_append(out, "\"", 1);
}

/* RFC 7888: whether a literal of len octets may be sent without waiting for "+". */
static bool literal_nonsync(const struct imap_client *c, uint64_t len)
{
	return c->caps.literal_plus ||
		(c->caps.literal_minus && len <= PUSH_IMAP_LITERAL_MINUS_MAX);
}

/* Sends "TAG verb arg..." with each argument as a quoted string, or as a literal when it
 * cannot be quoted, and reads up to the tagged answer in *reply. secret: the arguments hold a
 * password. False: the connection failed (err says why, the connection is closed). */
static bool command(struct imap_client *c, const char *verb, const char *const *args,
	size_t nargs, bool secret, struct imap_reply *reply, size_t *search, char *err,
	size_t errsz)
{
	unsigned long tag = c->next_tag++;
	uint64_t deadline = deadline_in(PUSH_IMAP_COMMAND_TIMEOUT_SECONDS);

	if (secret) {
		size_t need = strlen(verb) + 64;
		for (size_t i = 0; i < nargs; i++)
			need += 2 * strlen(args[i]) + 32;
		presize(&c->out, need);
	}
	strbuf_appendf(&c->out, "A%lu %s", tag, verb);
	for (size_t i = 0; i < nargs; i++) {
		size_t len = strlen(args[i]);
		strbuf_append(&c->out, " ", 1);
		if (quotable(args[i], len)) {
			append_quoted(&c->out, args[i], len);
			continue;
		}
		bool nonsync = literal_nonsync(c, len);
		strbuf_appendf(&c->out, "{%zu%s}\r\n", len, nonsync ? "+" : "");
		if (!nonsync) {
			if (!flush(c, secret, deadline, err, errsz) ||
			    !wait_for(c, tag, WAIT_CONTINUATION, reply, search, deadline, err, errsz))
				return false;
			if (reply->kind == IMAP_REPLY_TAGGED)
				return true; /* refused before the literal */
		}
		strbuf_append(&c->out, args[i], len);
	}
	strbuf_append(&c->out, "\r\n", 2);
	return flush(c, secret, deadline, err, errsz) &&
		wait_for(c, tag, 0, reply, search, deadline, err, errsz);
}

static bool capability(struct imap_client *c, char *err, size_t errsz)
{
	struct imap_reply reply;

	if (!command(c, "CAPABILITY", NULL, 0, false, &reply, NULL, err, errsz))
		return false;
	if (reply.status != IMAP_STATUS_OK || !c->caps_known)
		return fail(c, err, errsz, "%s:%d did not tell its capabilities: %s", c->host,
			c->port, reply.text);
	return true;
}

static bool tls_context(struct imap_client *c, char *err, size_t errsz)
{
	if (c->ctx)
		return true;
	/* The destination gets the owner's password or token and every message: a server that
	 * cannot prove it is Host must not have them (the handshake fails before we send). */
	c->ctx = tls_client_context_new(true, c->ca_file, "TLSCAFile", err, errsz);
	return c->ctx != NULL;
}

static bool tls_handshake(struct imap_client *c, uint64_t deadline, char *err, size_t errsz)
{
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
		fatal("event=ssl_new_failed");
	tls_client_name(c->ssl, c->host, true);
	for (;;) {
		ERR_clear_error();
		errno = 0;
		int ret = SSL_connect(c->ssl);
		if (ret == 1)
			return true;
		short events;
		if (!ssl_wants(c->ssl, ret, &events)) {
			char why[200];
			long verify = SSL_get_verify_result(c->ssl);
			if (verify != X509_V_OK)
				snprintf(why, sizeof(why), "certificate verification failed: %s",
					X509_verify_cert_error_string(verify));
			else
				tls_failure(why, sizeof(why));
			return fail(c, err, errsz, "TLS with %s:%d failed: %s", c->host, c->port, why);
		}
		if (!wait_io(c, events, deadline, err, errsz))
			return false;
	}
}

/* One address: a non-blocking connect that waits until the deadline. */
static int connect_address(const struct addrinfo *ai, uint64_t deadline, int *error)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		ai->ai_protocol);

	if (fd < 0) {
		*error = errno;
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		*error = errno;
		close(fd);
		return -1;
	}
	int ready = deadline_poll(fd, POLLOUT, deadline);
	if (ready <= 0) {
		*error = ready == 0 ? ETIMEDOUT : errno;
		close(fd);
		return -1;
	}
	int so_error = 0;
	socklen_t len = sizeof(so_error);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0) {
		*error = so_error ? so_error : errno;
		close(fd);
		return -1;
	}
	return fd;
}

/* One name lookup handed to glibc's resolver threads (getaddrinfo_a), in one block that
 * outlives us when we stop waiting for it. */
struct resolve_request {
	struct gaicb cb;
	struct addrinfo hints;
	char port[16];
	char host[];
};

/* getaddrinfo within the connect deadline. getaddrinfo itself has no deadline: the resolver's
 * timeouts multiply by its attempts, name servers and search domains, and an NSS module may
 * hang for good, which would hold the push thread (and a stop or reload) as long. On a
 * timeout the lookup is cancelled, or, if already running, left to end on its own: its
 * request block is then not ours to free (a few hundred octets per timed-out lookup, at most
 * one per backoff step). Returns 0 with *res, or an EAI_ code. */
static int resolve(const char *host, int port, uint64_t deadline, struct addrinfo **res)
{
	size_t host_len = strlen(host);
	struct resolve_request *r = xcalloc(1, sizeof(*r) + host_len + 1);
	struct gaicb *list[1] = {&r->cb};
	int rc;

	memcpy(r->host, host, host_len + 1);
	snprintf(r->port, sizeof(r->port), "%d", port);
	r->hints.ai_family = AF_UNSPEC;
	r->hints.ai_socktype = SOCK_STREAM;
	r->cb.ar_name = r->host;
	r->cb.ar_service = r->port;
	r->cb.ar_request = &r->hints;
	rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
	if (rc != 0) {
		free(r);
		return rc;
	}
	for (;;) {
		uint64_t left = (uint64_t)deadline_left_ms(deadline);
		struct timespec wait = {.tv_sec = (time_t)(left / 1000),
			.tv_nsec = (long)(left % 1000) * 1000000};
		rc = gai_suspend((const struct gaicb *const *)list, 1, &wait);
		/* 0: answered; EAI_AGAIN: the wait ran out; EAI_INTR: a signal, wait on. */
		if (rc != EAI_INTR && (rc != EAI_AGAIN || left == 0))
			break;
	}
	rc = gai_error(&r->cb);
	if (rc == EAI_INPROGRESS) {
		if (gai_cancel(&r->cb) != EAI_CANCELED && gai_error(&r->cb) == EAI_INPROGRESS)
			return EAI_AGAIN; /* still running: r is left to it */
		rc = gai_error(&r->cb);
		if (rc == 0 || rc == EAI_CANCELED) {
			if (rc == 0)
				freeaddrinfo(r->cb.ar_result);
			free(r);
			return EAI_AGAIN;
		}
	}
	if (rc == 0)
		*res = r->cb.ar_result;
	free(r);
	return rc;
}

static bool connect_tcp(struct imap_client *c, uint64_t deadline, char *err, size_t errsz)
{
	struct addrinfo *res;
	int error = 0;

	int rc = resolve(c->host, c->port, deadline, &res);
	if (rc != 0) {
		snprintf(err, errsz, "cannot resolve %s: %s", c->host, rc == EAI_AGAIN &&
			deadline_left_ms(deadline) == 0 ? "no answer in time" : gai_strerror(rc));
		return false;
	}
	unsigned tried = 0;
	for (const struct addrinfo *ai = res; ai && tried < ADDRESSES_MAX; ai = ai->ai_next, tried++) {
		c->fd = connect_address(ai, deadline, &error);
		if (c->fd >= 0)
			break;
	}
	freeaddrinfo(res);
	if (c->fd < 0) {
		snprintf(err, errsz, "cannot connect to %s:%d: %s", c->host, c->port,
			strerror(error ? error : ECONNREFUSED));
		return false;
	}
	/* Output is gathered into whole commands already; Nagle would only add a delay. */
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return true;
}

/* RFC 9051 7.1: the greeting is OK (log in next), PREAUTH (already in) or BYE. */
static bool read_greeting(struct imap_client *c, bool *preauth, uint64_t deadline, char *err,
	size_t errsz)
{
	struct imap_reply reply;

	if (!read_response(c, &reply, deadline, err, errsz))
		return false;
	if (reply.kind == IMAP_REPLY_UNTAGGED && reply.status == IMAP_STATUS_OK) {
		*preauth = false;
		return true;
	}
	if (reply.kind == IMAP_REPLY_UNTAGGED && reply.status == IMAP_STATUS_PREAUTH) {
		*preauth = true;
		return true;
	}
	if (reply.kind == IMAP_REPLY_UNTAGGED && reply.status == IMAP_STATUS_BYE)
		return fail(c, err, errsz, "%s:%d refused the connection: %s", c->host, c->port,
			reply.text);
	return fail(c, err, errsz, "%s:%d sent no IMAP greeting", c->host, c->port);
}

/* RFC 9051 6.2.1 (RFC 3501 6.2.1): STARTTLS, then forget everything learnt in plain text. */
static bool starttls(struct imap_client *c, uint64_t deadline, char *err, size_t errsz)
{
	struct imap_reply reply;

	if (!c->caps_known && !capability(c, err, errsz))
		return false;
	if (!c->caps.starttls)
		return fail(c, err, errsz, "%s:%d does not offer STARTTLS (TLS \"starttls\")",
			c->host, c->port);
	if (!command(c, "STARTTLS", NULL, 0, false, &reply, NULL, err, errsz))
		return false;
	if (reply.status != IMAP_STATUS_OK)
		return fail(c, err, errsz, "%s:%d refused STARTTLS: %s", c->host, c->port,
			reply.text);
	/* Anything already received after the OK came in plain text and would be taken for a
	 * TLS-protected answer (the STARTTLS command injection of CVE-2011-0411): refuse. */
	if (c->rpos != c->rlen)
		return fail(c, err, errsz, "%s:%d sent data after its STARTTLS answer", c->host,
			c->port);
	c->caps_known = false;
	return tls_handshake(c, deadline, err, errsz);
}

/* The verdict on a login's tagged answer. */
static enum push_status login_verdict(const struct imap_reply *reply, const char *how,
	char *err, size_t errsz)
{
	if (reply->status == IMAP_STATUS_OK)
		return PUSH_OK;
	snprintf(err, errsz, "%s refused: %s", how, reply->text);
	/* RFC 5530 3: UNAVAILABLE is the server's own trouble, not the credentials'. */
	if (reply->status == IMAP_STATUS_NO && reply->code != IMAP_CODE_UNAVAILABLE)
		return PUSH_AUTH;
	return PUSH_TEMPORARY;
}

/* RFC 9051 6.2.2 AUTHENTICATE with one initial response (RFC 4959 SASL-IR when offered, else
 * sent at the first "+"). A further "+" is a SASL error challenge (RFC 7628 3.2.2, Google's
 * XOAUTH2): answered with error_answer so the server ends with a tagged NO. */
static enum push_status authenticate(struct imap_client *c, const char *mechanism,
	const char *response, size_t response_len, const char *error_answer, char *err,
	size_t errsz)
{
	unsigned long tag = c->next_tag++;
	uint64_t deadline = deadline_in(PUSH_IMAP_COMMAND_TIMEOUT_SECONDS);
	struct strbuf encoded;
	struct imap_reply reply;
	enum push_status status = PUSH_TEMPORARY;

	strbuf_init(&encoded);
	presize(&encoded, base64_encoded_length(response_len) + 1);
	presize(&c->out, base64_encoded_length(response_len) + strlen(mechanism) + 64);
	base64_encode(&encoded, response, response_len);
	bool sent = c->caps.sasl_ir;
	if (sent)
		strbuf_appendf(&c->out, "A%lu AUTHENTICATE %s %s\r\n", tag, mechanism,
			encoded.len ? encoded.data : "=");
	else
		strbuf_appendf(&c->out, "A%lu AUTHENTICATE %s\r\n", tag, mechanism);
	if (!flush(c, true, deadline, err, errsz))
		goto out;
	for (unsigned steps = 0;; steps++) {
		if (!wait_for(c, tag, WAIT_CONTINUATION, &reply, NULL, deadline, err, errsz))
			goto out;
		if (reply.kind == IMAP_REPLY_TAGGED)
			break;
		if (!sent) {
			strbuf_append(&c->out, encoded.data ? encoded.data : "", encoded.len);
			sent = true;
		} else if (steps < 2) {
			strbuf_append_str(&c->out, error_answer);
		} else {
			strbuf_append_str(&c->out, "*"); /* RFC 9051 6.2.2: cancel */
		}
		strbuf_append(&c->out, "\r\n", 2);
		if (!flush(c, true, deadline, err, errsz))
			goto out;
	}
	char how[64];
	snprintf(how, sizeof(how), "AUTHENTICATE %s", mechanism);
	status = login_verdict(&reply, how, err, errsz);
out:
	if (encoded.data)
		OPENSSL_cleanse(encoded.data, encoded.cap);
	strbuf_free(&encoded);
	return status;
}

static enum push_status login_password(struct imap_client *c, char *err, size_t errsz)
{
	if (c->caps.auth_plain) {
		/* RFC 4616 2: authzid (empty) NUL authcid NUL passwd */
		struct strbuf msg;
		strbuf_init(&msg);
		presize(&msg, strlen(c->username) + strlen(c->password) + 2);
		strbuf_append(&msg, "", 1);
		strbuf_append_str(&msg, c->username);
		strbuf_append(&msg, "", 1);
		strbuf_append_str(&msg, c->password);
		enum push_status status = authenticate(c, "PLAIN", msg.data, msg.len, "*", err,
			errsz);
		OPENSSL_cleanse(msg.data, msg.cap);
		strbuf_free(&msg);
		return status;
	}
	if (c->caps.logindisabled) {
		snprintf(err, errsz, "%s:%d allows neither LOGIN nor AUTHENTICATE PLAIN", c->host,
			c->port);
		return PUSH_AUTH;
	}
	const char *args[] = {c->username, c->password};
	struct imap_reply reply;
	if (!command(c, "LOGIN", args, 2, true, &reply, NULL, err, errsz))
		return PUSH_TEMPORARY;
	return login_verdict(&reply, "LOGIN", err, errsz);
}

/* RFC 7628 3.1: the GS2 header's authzid escapes "," and "=". */
static void append_saslname(struct strbuf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == ',')
			strbuf_append_str(out, "=2C");
		else if (*s == '=')
			strbuf_append_str(out, "=3D");
		else
			strbuf_append(out, s, 1);
	}
}

static enum push_status login_token(struct imap_client *c, const char *token, char *err,
	size_t errsz)
{
	struct strbuf msg;
	enum push_status status;

	strbuf_init(&msg);
	presize(&msg, 3 * strlen(c->username) + strlen(token) + strlen(c->host) + 64);
	if (c->caps.auth_xoauth2) {
		/* Google's and Microsoft's XOAUTH2: "user=" u ^A "auth=Bearer " t ^A ^A; after a
		 * failure's JSON challenge the client sends an empty response. */
		strbuf_appendf(&msg, "user=%s\001auth=Bearer %s\001\001", c->username, token);
		status = authenticate(c, "XOAUTH2", msg.data, msg.len, "", err, errsz);
	} else if (c->caps.auth_oauthbearer) {
		/* RFC 7628 3.1; after an error challenge the client sends %x01 (3.2.3). */
		strbuf_append_str(&msg, "n,a=");
		append_saslname(&msg, c->username);
		strbuf_appendf(&msg, ",\001host=%s\001port=%d\001auth=Bearer %s\001\001", c->host,
			c->port, token);
		status = authenticate(c, "OAUTHBEARER", msg.data, msg.len, "AQ==", err, errsz);
	} else {
		snprintf(err, errsz, "%s:%d offers neither AUTH=XOAUTH2 nor AUTH=OAUTHBEARER for an "
			"OAuth token", c->host, c->port);
		status = PUSH_AUTH;
	}
	if (msg.data)
		OPENSSL_cleanse(msg.data, msg.cap);
	strbuf_free(&msg);
	return status;
}

struct imap_client *imap_client_new(const struct imap_client_options *options)
{
	struct imap_client *c = xcalloc(1, sizeof(*c));

	c->host = xstrdup(options->host);
	c->port = options->port;
	c->tls = options->tls;
	c->ca_file = options->ca_file ? xstrdup(options->ca_file) : NULL;
	c->username = xstrdup(options->username ? options->username : "");
	c->password = options->password ? xstrdup(options->password) : NULL;
	c->mailbox = xstrdup(options->mailbox ? options->mailbox : "INBOX");
	c->junk_mailbox = options->junk_mailbox ? xstrdup(options->junk_mailbox) : NULL;
	c->fd = -1;
	c->next_tag = 1;
	strbuf_init(&c->out);
	return c;
}

static void logout(struct imap_client *c)
{
	struct imap_reply reply;
	char err[PUSH_DETAIL_MAX];
	unsigned long tag = c->next_tag++;
	uint64_t deadline = deadline_in(PUSH_IMAP_LOGOUT_TIMEOUT_SECONDS);

	strbuf_appendf(&c->out, "A%lu LOGOUT\r\n", tag);
	if (flush(c, false, deadline, err, sizeof(err)) &&
	    wait_for(c, tag, WAIT_BYE_EXPECTED, &reply, NULL, deadline, err, sizeof(err)) &&
	    c->ssl)
		SSL_shutdown(c->ssl); /* close_notify, without waiting for the server's */
}

void imap_client_free(struct imap_client *c)
{
	if (!c)
		return;
	if (c->connected)
		logout(c);
	drop(c);
	SSL_CTX_free(c->ctx);
	wipe_string(c->password);
	free(c->host);
	free(c->ca_file);
	free(c->username);
	free(c->password);
	free(c->mailbox);
	free(c->junk_mailbox);
	strbuf_free(&c->out);
	free(c);
}

bool imap_client_connected(const struct imap_client *c)
{
	return c->connected;
}

enum push_status imap_client_login(struct imap_client *c, const char *access_token, char *err,
	size_t errsz)
{
	bool preauth = false;
	enum push_status status;

	if (c->connected)
		logout(c);
	drop(c);
	if (!c->password && !access_token) {
		snprintf(err, errsz, "neither a password nor an access token to log in with");
		return PUSH_AUTH;
	}
	if (!tls_context(c, err, errsz))
		return PUSH_TEMPORARY;
	uint64_t deadline = deadline_in(PUSH_IMAP_CONNECT_TIMEOUT_SECONDS);
	if (!connect_tcp(c, deadline, err, errsz))
		return PUSH_TEMPORARY;
	if (c->tls == DESTINATION_TLS_IMPLICIT) {
		if (!tls_handshake(c, deadline, err, errsz) ||
		    !read_greeting(c, &preauth, deadline, err, errsz))
			return PUSH_TEMPORARY;
	} else {
		if (!read_greeting(c, &preauth, deadline, err, errsz))
			return PUSH_TEMPORARY;
		/* RFC 9051 7.1.4: a PREAUTH greeting allows no STARTTLS; we never talk in clear. */
		if (preauth) {
			fail(c, err, errsz, "%s:%d greeted with PREAUTH, so STARTTLS is impossible",
				c->host, c->port);
			return PUSH_TEMPORARY;
		}
		if (!starttls(c, deadline, err, errsz))
			return PUSH_TEMPORARY;
	}
	if (!c->caps_known && !capability(c, err, errsz))
		return PUSH_TEMPORARY;
	if (!preauth) {
		c->caps_known = false;
		status = c->password ? login_password(c, err, errsz) :
			login_token(c, access_token, err, errsz);
		if (status != PUSH_OK) {
			drop(c);
			return status;
		}
		/* RFC 9051 6.2.2: capabilities may change after login (Dovecot then offers
		 * LITERAL+ and APPENDLIMIT); the OK usually carries them, else we ask. */
		if (!c->caps_known && !capability(c, err, errsz))
			return PUSH_TEMPORARY;
	}
	c->connected = true;
	return PUSH_OK;
}

/* RFC 9051 9 date-time, in UTC: "02-Dec-2026 14:03:53 +0000". */
static void format_internal_date(char *buf, size_t size, time_t t)
{
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
		"Sep", "Oct", "Nov", "Dec"};
	struct tm tm;

	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 1) {
		buf[0] = '\0';
		return;
	}
	snprintf(buf, size, "%02d-%s-%04d %02d:%02d:%02d +0000", tm.tm_mday, months[tm.tm_mon],
		tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The verdict on an APPEND's tagged answer, into its item; remote_id from APPENDUID's nth
 * UID (n > 0 within a MULTIAPPEND). */
static void append_verdict(struct push_item *item, const struct imap_reply *reply, size_t n)
{
	snprintf(item->detail, sizeof(item->detail), "%s", reply->text);
	if (reply->status == IMAP_STATUS_OK) {
		item->status = PUSH_OK;
		uint32_t uid = reply->uid;
		if (reply->code == IMAP_CODE_APPENDUID &&
		    (n == 0 || imap_uid_set_nth(reply->uid_set, n, &uid)))
			snprintf(item->remote_id, sizeof(item->remote_id), "%u %u", reply->uidvalidity,
				uid);
		return;
	}
	/* RFC 5530 3 and RFC 7889: these say this message can never be appended. */
	if (reply->status == IMAP_STATUS_NO &&
	    (reply->code == IMAP_CODE_TOOBIG || reply->code == IMAP_CODE_PARSE ||
	     reply->code == IMAP_CODE_CANNOT))
		item->status = PUSH_REFUSED;
	else
		item->status = PUSH_TEMPORARY;
}

/* One run of APPENDs over items[order[0..n)]. */
struct append_run {
	struct push_item *items;
	const size_t *order;
	size_t n;
	bool multiappend;   /* group messages into MULTIAPPEND commands */
	bool *send_alone;   /* set for the messages of a refused group (RFC 3502: none stored) */
	bool may_create_junk; /* a [TRYCREATE] for the Junk mailbox: CREATE it, send again */
	bool junk_missing;    /* one came */
	struct pending_append pending[PUSH_IMAP_PIPELINE_MAX];
	size_t npending;
};

/* A command's tagged answer, for each of its messages. */
static void append_answered(struct append_run *run, const struct pending_append *p,
	const struct imap_reply *reply)
{
	for (size_t k = 0; k < p->count; k++) {
		size_t index = run->order[p->first + k];
		if (reply->status == IMAP_STATUS_NO && reply->code == IMAP_CODE_TRYCREATE &&
		    run->may_create_junk && run->items[index].junk) {
			/* RFC 9051 6.3.12: the mailbox does not exist; made, then sent again. */
			snprintf(run->items[index].detail, sizeof(run->items[index].detail), "%s",
				reply->text);
			run->items[index].status = PUSH_TEMPORARY;
			run->send_alone[index] = true;
			run->junk_missing = true;
			continue;
		}
		if (p->count > 1 && reply->status != IMAP_STATUS_OK) {
			/* Which message the server objected to is not said: each goes again alone. */
			snprintf(run->items[index].detail, sizeof(run->items[index].detail), "%s",
				reply->text);
			run->send_alone[index] = true;
			continue;
		}
		append_verdict(&run->items[index], reply, k);
	}
}

/* Reads one response while APPENDs are in flight: a tagged one is matched to its APPEND
 * and removed from pending. *continuation is set instead when one came and continuation is
 * given. False: the connection failed. */
static bool append_take_response(struct imap_client *c, struct append_run *run,
	bool *continuation, uint64_t deadline, char *err, size_t errsz)
{
	struct imap_reply reply;

	for (unsigned long n = 0; n <= PUSH_IMAP_UNTAGGED_MAX; n++) {
		if (!read_response(c, &reply, deadline, err, errsz))
			return false;
		if (reply.kind == IMAP_REPLY_UNTAGGED) {
			if (reply.status == IMAP_STATUS_BYE)
				return fail(c, err, errsz, "%s:%d closed the connection: %s", c->host,
					c->port, reply.text);
			continue;
		}
		if (reply.kind == IMAP_REPLY_CONTINUATION) {
			if (!continuation)
				return fail(c, err, errsz, "%s:%d sent an unexpected continuation",
					c->host, c->port);
			*continuation = true;
			return true;
		}
		for (size_t i = 0; i < run->npending; i++) {
			char tag[PUSH_IMAP_TAG_MAX + 1];
			format_tag(tag, sizeof(tag), run->pending[i].tag);
			if (strcmp(tag, reply.tag) == 0) {
				append_answered(run, &run->pending[i], &reply);
				memmove(&run->pending[i], &run->pending[i + 1],
					(run->npending - i - 1) * sizeof(run->pending[0]));
				run->npending--;
				return true;
			}
		}
		return fail(c, err, errsz, "%s:%d answered a command we did not send (%s)", c->host,
			c->port, reply.tag);
	}
	return fail(c, err, errsz, "%s:%d sent more than %d untagged responses to one command",
		c->host, c->port, PUSH_IMAP_UNTAGGED_MAX);
}

static bool append_is_pending(const struct append_run *run, unsigned long tag)
{
	for (size_t i = 0; i < run->npending; i++)
		if (run->pending[i].tag == tag)
			return true;
	return false;
}

/* Copies the message's size octets from its file into the output, written as it grows. */
static bool append_message_body(struct imap_client *c, const struct push_item *item, char *err,
	size_t errsz)
{
	uint64_t deadline = message_deadline(item->size);
	char chunk[16384];
	uint64_t offset = 0;

	while (offset < item->size) {
		uint64_t want = item->size - offset;
		ssize_t n = pread(item->fd, chunk, want < sizeof(chunk) ? (size_t)want : sizeof(chunk),
			(off_t)offset);
		if (n < 0 && errno == EINTR)
			continue;
		/* The literal's size is announced: a file that cannot give it leaves the
		 * connection mid-literal, so it is closed. */
		if (n <= 0)
			return fail(c, err, errsz, "reading the message file: %s",
				n < 0 ? strerror(errno) : "shorter than its size");
		strbuf_append(&c->out, chunk, (size_t)n);
		offset += (uint64_t)n;
		if (c->out.len >= WRITE_CHUNK && !flush(c, false, deadline, err, errsz))
			return false;
	}
	return true;
}

static const char *append_mailbox(const struct imap_client *c, const struct push_item *item)
{
	return item->junk && c->junk_mailbox ? c->junk_mailbox : c->mailbox;
}

/* RFC 7889 2: over the server's limit, the APPEND could only fail. */
static bool append_over_limit(const struct imap_client *c, const struct push_item *item)
{
	return c->caps.appendlimit_global && item->size > c->caps.appendlimit;
}

/* How many messages from order[i] go in one command: with MULTIAPPEND, following messages
 * for the same mailbox whose literals need no "+", within the group bounds. */
static size_t append_group_size(const struct imap_client *c, const struct append_run *run,
	size_t i)
{
	const struct push_item *first = &run->items[run->order[i]];
	uint64_t octets = first->size;
	size_t group = 1;

	if (!run->multiappend || !literal_nonsync(c, first->size))
		return 1;
	while (i + group < run->n && group < PUSH_IMAP_MULTIAPPEND_MAX) {
		const struct push_item *next = &run->items[run->order[i + group]];
		if (next->junk != first->junk || append_over_limit(c, next) ||
		    !literal_nonsync(c, next->size) ||
		    next->size > PUSH_IMAP_MULTIAPPEND_OCTETS_MAX - octets)
			break;
		octets += next->size;
		group++;
	}
	return group;
}

static enum push_status append_pass(struct imap_client *c, struct append_run *run, char *err,
	size_t errsz)
{
	size_t i = 0;

	while (i < run->n) {
		struct push_item *item = &run->items[run->order[i]];
		if (append_over_limit(c, item)) {
			item->status = PUSH_REFUSED;
			snprintf(item->detail, sizeof(item->detail), "larger than the server's "
				"APPENDLIMIT of %llu octets", (unsigned long long)c->caps.appendlimit);
			i++;
			continue;
		}
		uint64_t deadline = deadline_in(PUSH_IMAP_COMMAND_TIMEOUT_SECONDS);
		if (run->npending == PUSH_IMAP_PIPELINE_MAX &&
		    (!flush(c, false, deadline, err, errsz) ||
		     !append_take_response(c, run, NULL, deadline, err, errsz)))
			return PUSH_TEMPORARY;
		size_t group = append_group_size(c, run, i);
		unsigned long tag = c->next_tag++;
		const char *mailbox = append_mailbox(c, item);
		strbuf_appendf(&c->out, "A%lu APPEND ", tag);
		append_quoted(&c->out, mailbox, strlen(mailbox));
		run->pending[run->npending].tag = tag;
		run->pending[run->npending].first = i;
		run->pending[run->npending].count = group;
		run->npending++;
		for (size_t k = 0; k < group; k++) {
			const struct push_item *message = &run->items[run->order[i + k]];
			char date[40];
			/* RFC 9051 6.3.12: no flags, so the message arrives unread. */
			format_internal_date(date, sizeof(date), message->internal_date);
			if (date[0])
				strbuf_appendf(&c->out, " \"%s\"", date);
			bool nonsync = literal_nonsync(c, message->size);
			strbuf_appendf(&c->out, " {%llu%s}\r\n", (unsigned long long)message->size,
				nonsync ? "+" : "");
			if (!nonsync) {
				/* A synchronising literal (never in a group): earlier APPENDs' answers
				 * may come before the "+"; a tagged answer to this one instead means
				 * it was refused as announced. */
				bool go = false;
				if (!flush(c, false, deadline, err, errsz))
					return PUSH_TEMPORARY;
				while (!go && append_is_pending(run, tag))
					if (!append_take_response(c, run, &go, deadline, err, errsz))
						return PUSH_TEMPORARY;
				if (!go)
					break;
			}
			if (!append_message_body(c, message, err, errsz))
				return PUSH_TEMPORARY;
			if (k + 1 == group)
				strbuf_append(&c->out, "\r\n", 2);
		}
		i += group;
	}
	uint64_t deadline = deadline_in(PUSH_IMAP_COMMAND_TIMEOUT_SECONDS);
	if (!flush(c, false, deadline, err, errsz))
		return PUSH_TEMPORARY;
	while (run->npending > 0) {
		/* Each answer restarts the wait: a long run only needs steady progress. */
		deadline = deadline_in(PUSH_IMAP_COMMAND_TIMEOUT_SECONDS);
		if (!append_take_response(c, run, NULL, deadline, err, errsz))
			return PUSH_TEMPORARY;
	}
	return PUSH_OK;
}

/* CREATE of the Junk mailbox after an APPEND's [TRYCREATE] (RFC 9051 6.3.12: the client may
 * create it and try again). False: the connection failed. A refusal is only logged: the
 * APPEND tried again fails as before, kept for the next try. */
static bool create_junk_mailbox(struct imap_client *c, char *err, size_t errsz)
{
	struct imap_reply reply;
	const char *mailbox = c->junk_mailbox;
	char quoted[PUSH_DETAIL_MAX + 16];

	if (!command(c, "CREATE", &mailbox, 1, false, &reply, NULL, err, errsz))
		return false;
	log_quote(quoted, sizeof(quoted), mailbox, strlen(mailbox));
	if (reply.status == IMAP_STATUS_OK) {
		log_info("push", "event=mailbox_created destination=imap:%s:%d mailbox=%s "
			"reason=trycreate", c->host, c->port, quoted);
		return true;
	}
	if (reply.status == IMAP_STATUS_NO && reply.code == IMAP_CODE_ALREADYEXISTS)
		return true; /* made meanwhile by someone else */
	char text[PUSH_DETAIL_MAX + 16];
	log_quote(text, sizeof(text), reply.text, strlen(reply.text));
	log_warn("push", "event=mailbox_create_failed destination=imap:%s:%d mailbox=%s error=%s",
		c->host, c->port, quoted, text);
	return true;
}

enum push_status imap_client_append(struct imap_client *c, struct push_item *items, size_t count,
	char *err, size_t errsz)
{
	for (size_t i = 0; i < count; i++) {
		items[i].status = PUSH_TEMPORARY;
		items[i].detail[0] = '\0';
		items[i].remote_id[0] = '\0';
	}
	if (!c->connected) {
		snprintf(err, errsz, "not connected to %s:%d", c->host, c->port);
		return PUSH_TEMPORARY;
	}
	const char *junk = c->junk_mailbox ? c->junk_mailbox : c->mailbox;
	if (!quotable(c->mailbox, strlen(c->mailbox)) || !quotable(junk, strlen(junk))) {
		snprintf(err, errsz, "the mailbox name must be 7-bit ASCII (modified UTF-7, RFC 3501 "
			"5.1.3)");
		return PUSH_TEMPORARY;
	}
	if (count == 0)
		return PUSH_OK;
	size_t *order = xcalloc(count, sizeof(*order));
	bool *send_alone = xcalloc(count, sizeof(*send_alone));
	for (size_t i = 0; i < count; i++)
		order[i] = i;
	/* RFC 3502: MULTIAPPEND stores a group in one transaction, far faster than one APPEND
	 * per message (Dovecot); pipelining with LITERAL+ hides the round trips either way. */
	/* Only the Junk mailbox is made on demand: the default "Junk" may not exist at a provider
	 * yet, while a missing Mailbox is a configuration error the owner should see. */
	bool may_create = c->junk_mailbox && strcmp(c->junk_mailbox, c->mailbox) != 0;
	struct append_run run = {.items = items, .order = order, .n = count,
		.multiappend = c->caps.multiappend && count > 1, .send_alone = send_alone,
		.may_create_junk = may_create};
	enum push_status status = append_pass(c, &run, err, errsz);
	if (status == PUSH_OK && run.junk_missing && !create_junk_mailbox(c, err, errsz))
		status = PUSH_TEMPORARY;
	if (status == PUSH_OK) {
		size_t again = 0;
		for (size_t i = 0; i < count; i++)
			if (send_alone[i])
				order[again++] = i;
		struct append_run alone = {.items = items, .order = order, .n = again,
			.multiappend = false, .send_alone = send_alone};
		if (again > 0)
			status = append_pass(c, &alone, err, errsz);
	}
	free(order);
	free(send_alone);
	return status;
}

/* LIST "" MAILBOX (RFC 9051 6.3.9): *exists false only when the server answered OK and
 * listed nothing; a refused LIST leaves it true (the caller cannot tell: it retries later).
 * False: the connection failed. */
static bool mailbox_listed(struct imap_client *c, const char *mailbox, bool *exists, char *err,
	size_t errsz)
{
	struct imap_reply reply;
	const char *args[2] = {"", mailbox};
	size_t listed = 0;

	if (!command(c, "LIST", args, 2, false, &reply, &listed, err, errsz))
		return false;
	*exists = reply.status != IMAP_STATUS_OK || listed > 0;
	return true;
}

enum push_status imap_client_find(struct imap_client *c, const char *message_id, bool junk,
	bool *found, char *err, size_t errsz)
{
	struct imap_reply reply;
	size_t results = 0;

	if (!c->connected) {
		snprintf(err, errsz, "not connected to %s:%d", c->host, c->port);
		return PUSH_TEMPORARY;
	}
	if (!message_id || !*message_id) {
		*found = false;
		return PUSH_OK;
	}
	const char *mailbox = junk && c->junk_mailbox ? c->junk_mailbox : c->mailbox;
	/* EXAMINE, not SELECT: read-only, so looking never changes \Recent or flags. */
	if (!command(c, "EXAMINE", &mailbox, 1, false, &reply, NULL, err, errsz))
		return PUSH_TEMPORARY;
	/* A mailbox that does not exist (the Junk mailbox before its first message) surely
	 * does not hold the message. Dovecot says so without a response code: LIST tells. */
	if (reply.status == IMAP_STATUS_NO) {
		bool exists = reply.code != IMAP_CODE_NONEXISTENT &&
			reply.code != IMAP_CODE_TRYCREATE;
		if (exists && !mailbox_listed(c, mailbox, &exists, err, errsz))
			return PUSH_TEMPORARY;
		if (!exists) {
			*found = false;
			return PUSH_OK;
		}
	}
	if (reply.status != IMAP_STATUS_OK) {
		snprintf(err, errsz, "EXAMINE %s refused: %s", mailbox, reply.text);
		return PUSH_TEMPORARY;
	}
	if (!command(c, "UID SEARCH HEADER Message-ID", &message_id, 1, false, &reply, &results,
		    err, errsz))
		return PUSH_TEMPORARY;
	if (reply.status != IMAP_STATUS_OK) {
		snprintf(err, errsz, "SEARCH refused: %s", reply.text);
		return PUSH_TEMPORARY;
	}
	*found = results > 0;
	return PUSH_OK;
}
