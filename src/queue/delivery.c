/* queue/delivery.c: connecting to mail exchangers and running one SMTP transaction per
 * connection. Recipients whose failure was the host's (connection refused, 421, TLS or
 * protocol trouble) are carried to the next address and the next host. */
#include "queue/delivery.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "bounds.h"
#include "log.h"
#include "mail/dsn_params.h"
#include "mail/dotstuff.h"
#include "net/line.h"
#include "queue/dns.h"
#include "tls.h"

#define DELIVERY_OUTPUT_HIGH (64 * 1024)
#define DELIVERY_READ_CHUNK (16 * 1024)

struct delivery {
	struct delivery_request req;
	delivery_done_cb cb;
	void *arg;
	struct dns_route route;
	size_t host_index, addr_index;
	bool tls_disabled;     /* this connection does not try STARTTLS */
	bool tls_required;     /* this connection delivers nothing without TLS */
	bool retry_clear;      /* STARTTLS just failed: try the same address once in clear */
	struct smtp_client_result *results;
	bool *remote_dsn;
	bool *done;            /* recipient has a result that another host cannot change */
	/* The current connection. */
	struct bufferevent *bev;
	struct smtp_client *client;
	size_t *client_map;    /* client recipient index -> request recipient index */
	const char **client_rcpts, **client_notify, **client_orcpt;
	char **encoded_orcpt;
	char *encoded_envid;
	struct strbuf out;
	struct net_line_reader lines; /* the server's replies */
	int body_fd;
	struct dotstuff stuff;
	bool tls_started;
	char host_name[256];
};

SSL_CTX *delivery_tls_context_new(void)
{
	/* Opportunistic TLS (RFC 7435): encrypt when we can; an unverifiable certificate is
	 * still better than plain text, and MX certificates are often self-signed. */
	return tls_client_context_new(false, NULL, NULL, NULL, 0);
}

bool delivery_relay_verified(const struct config *cfg)
{
	return cfg->outbound_relay_host &&
		(cfg->outbound_relay_user || cfg->outbound_relay_ca_file);
}

SSL_CTX *delivery_relay_tls_context_new(const struct config *cfg, char *err, size_t errsz)
{
	/* The smarthost gets our password: an active attacker in the path must not be able to
	 * pose as it, so its certificate must chain to a trusted CA (the failure aborts the
	 * handshake before anything is sent) and name it (tls_client_name in start_tls). */
	if (cfg->outbound_relay_ca_file)
		return tls_client_context_new(true, cfg->outbound_relay_ca_file,
			"OutboundRelayCAFile", err, errsz);
	return tls_client_context_new(true, NULL, "OutboundRelayHost", err, errsz);
}

static void delivery_finish(struct delivery *d)
{
	d->cb(d->arg, d->results, d->remote_dsn);
	free(d->results);
	free(d->remote_dsn);
	free(d->done);
	free(d);
}

static void connection_close(struct delivery *d)
{
	if (d->bev)
		bufferevent_free(d->bev);
	d->bev = NULL;
	if (d->body_fd >= 0)
		close(d->body_fd);
	d->body_fd = -1;
	smtp_client_free(d->client);
	d->client = NULL;
	strbuf_free(&d->out);
	for (size_t i = 0; d->encoded_orcpt && i < d->req.recipient_count; i++)
		free(d->encoded_orcpt[i]);
	free(d->encoded_orcpt);
	d->encoded_orcpt = NULL;
	free(d->encoded_envid);
	d->encoded_envid = NULL;
	free(d->client_map);
	free(d->client_rcpts);
	free(d->client_notify);
	free(d->client_orcpt);
	d->client_map = NULL;
	d->client_rcpts = d->client_notify = d->client_orcpt = NULL;
}

static void try_next(struct delivery *d);

/* Takes the client's results: final ones stay; host failures may be retried elsewhere. */
static void collect_results(struct delivery *d)
{
	size_t n = smtp_client_recipient_count(d->client);

	for (size_t i = 0; i < n; i++) {
		size_t r = d->client_map[i];
		const struct smtp_client_result *res = smtp_client_result(d->client, i);
		d->results[r] = *res;
		if (!res->host_failure)
			d->done[r] = true;
		if (res->status == SMTP_CLIENT_DELIVERED)
			d->remote_dsn[r] = smtp_client_remote_supports_dsn(d->client);
	}
}

static void end_connection(struct delivery *d, const char *why)
{
	if (why && !smtp_client_finished(d->client))
		smtp_client_connection_failed(d->client, why);
	collect_results(d);
	connection_close(d);
	try_next(d);
}

static void flush_out(struct delivery *d)
{
	if (d->out.len)
		evbuffer_add(bufferevent_get_output(d->bev), d->out.data, d->out.len);
	strbuf_reset(&d->out);
}

static void set_timeout(struct delivery *d, int seconds)
{
	struct timeval t = {seconds, 0};

	bufferevent_set_timeouts(d->bev, &t, &t);
}

static void body_pump(struct delivery *d)
{
	static char chunk[DELIVERY_READ_CHUNK];
	struct evbuffer *output = bufferevent_get_output(d->bev);

	while (d->body_fd >= 0 && evbuffer_get_length(output) < DELIVERY_OUTPUT_HIGH) {
		ssize_t n = read(d->body_fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			end_connection(d, "local error reading the queued message");
			return;
		}
		if (n > 0) {
			dotstuff_feed(&d->stuff, chunk, (size_t)n, &d->out);
			flush_out(d);
			continue;
		}
		/* RFC 5321 4.1.1.4: the data ends with <CRLF>.<CRLF>. */
		dotstuff_finish(&d->stuff, &d->out);
		flush_out(d);
		close(d->body_fd);
		d->body_fd = -1;
		smtp_client_body_sent(d->client);
		set_timeout(d, DELIVERY_FINAL_REPLY_TIMEOUT_SECONDS);
	}
}

static void start_tls(struct delivery *d);

static void handle_action(struct delivery *d, enum smtp_client_action action)
{
	flush_out(d);
	switch (action) {
	case SMTP_CLIENT_ACTION_NONE:
		break;
	case SMTP_CLIENT_ACTION_STARTTLS:
		start_tls(d);
		break;
	case SMTP_CLIENT_ACTION_SEND_BODY:
		d->body_fd = open(d->req.message_path, O_RDONLY | O_CLOEXEC);
		if (d->body_fd < 0) {
			log_error("queue", "event=message_missing path=%s error=\"%s\"",
				d->req.message_path, strerror(errno));
			end_connection(d, "local error: the queued message cannot be read");
			return;
		}
		dotstuff_init(&d->stuff, -1);
		body_pump(d);
		break;
	case SMTP_CLIENT_ACTION_DONE:
		end_connection(d, NULL);
		break;
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct delivery *d = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	/* One octet more than a reply line may have: a longer one reaches the client as too
	 * long, with its start to show in the error. */
	char line[SMTP_REPLY_LINE_MAX + 2];
	size_t len;

	while (d->client && !smtp_client_finished(d->client)) {
		if (net_line_read(&d->lines, in, line, &len) == NET_LINE_NONE) {
			if (d->lines.discarding)
				end_connection(d, "protocol error: reply line too long");
			return;
		}
		enum smtp_client_action action = smtp_client_feed_line(d->client, line, len, &d->out);
		if (action == SMTP_CLIENT_ACTION_STARTTLS) {
			/* RFC 3207 5: nothing read before the handshake counts afterwards. */
			evbuffer_drain(in, evbuffer_get_length(in));
		}
		handle_action(d, action);
		if (action == SMTP_CLIENT_ACTION_STARTTLS || action == SMTP_CLIENT_ACTION_DONE)
			return;
	}
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct delivery *d = arg;

	(void)bev;
	if (d->body_fd >= 0)
		body_pump(d);
}

/* Why the handshake on d->bev failed: the certificate check, or OpenSSL's reason. */
static void handshake_failure_reason(struct delivery *d, char *buf, size_t size)
{
	SSL *ssl = bufferevent_openssl_get_ssl(d->bev);
	unsigned long e, first = 0;
	char reason[160];

	/* Take every queued error, so none is left for another connection. */
	while ((e = bufferevent_get_openssl_error(d->bev)) != 0)
		if (!first)
			first = e;
	long verify = ssl && SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE ?
		SSL_get_verify_result(ssl) : X509_V_OK;
	if (verify != X509_V_OK)
		snprintf(buf, size, "certificate verification failed: %s",
			X509_verify_cert_error_string(verify));
	else if (first)
		snprintf(buf, size, "%s", tls_error_reason(first, reason, sizeof(reason)));
	else
		snprintf(buf, size, "the connection ended during the handshake");
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct delivery *d = arg;
	char why[SMTP_CLIENT_TEXT_MAX];

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (!d->tls_started) {
			/* Commands are small and each waits for its reply: no Nagle delay. */
			int one = 1;
			setsockopt(bufferevent_getfd(d->bev), IPPROTO_TCP, TCP_NODELAY, &one,
				sizeof(one));
		}
		if (d->tls_started) {
			smtp_client_tls_started(d->client, &d->out);
			flush_out(d);
		}
		return;
	}
	if (d->tls_started && (what & BEV_EVENT_ERROR) &&
	    !smtp_client_tls_active(d->client)) {
		char reason[200], quoted[240];
		handshake_failure_reason(d, reason, sizeof(reason));
		snprintf(why, sizeof(why), "TLS handshake with %s failed: %s", d->host_name, reason);
		log_quote(quoted, sizeof(quoted), reason, strlen(reason));
		if (d->tls_required) {
			/* A smarthost that cannot prove who it is gets neither the password nor
			 * the mail; the mail waits in the queue for the operator to mend it. */
			log_error("queue", "event=tls_failed host=%s reason=%s", d->host_name, quoted);
			end_connection(d, why);
			return;
		}
		/* RFC 7435 opportunistic security falls back to clear text rather than not
		 * delivering; try this address again without STARTTLS. */
		log_warn("queue", "event=tls_failed host=%s reason=%s", d->host_name, quoted);
		smtp_client_connection_failed(d->client, why);
		connection_close(d);
		d->retry_clear = true;
		try_next(d);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(why, sizeof(why), "timeout talking to %s", d->host_name);
	else if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "%s closed the connection", d->host_name);
	else
		snprintf(why, sizeof(why), "connection to %s failed: %s", d->host_name,
			evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	end_connection(d, why);
}

static void start_tls(struct delivery *d)
{
	/* The smarthost is checked when it gets credentials (or a CA file was given for it). */
	bool verify = d->req.cfg->outbound_relay_host && d->req.relay_tls_ctx;
	SSL *ssl = SSL_new(verify ? d->req.relay_tls_ctx : d->req.tls_ctx);

	if (!ssl)
		fatal("event=ssl_new_failed");
	/* SNI names the host we meant to reach; the smarthost's certificate must name it too. */
	tls_client_name(ssl, d->host_name, verify);
	struct bufferevent *tls = bufferevent_openssl_filter_new(d->req.base, d->bev, ssl,
		BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (!tls) {
		SSL_free(ssl);
		end_connection(d, "TLS setup failed");
		return;
	}
	d->bev = tls;
	d->tls_started = true;
	bufferevent_setcb(d->bev, read_cb, write_cb, event_cb, d);
	set_timeout(d, DELIVERY_REPLY_TIMEOUT_SECONDS);
	bufferevent_enable(d->bev, EV_READ | EV_WRITE);
}

/* Connects to the current address with the recipients that still need a try. */
static bool connect_current(struct delivery *d)
{
	const struct dns_host *host = &d->route.hosts[d->host_index];
	const struct sockaddr_storage *ss = &host->addrs[d->addr_index];
	const struct config *cfg = d->req.cfg;
	size_t n = 0;

	d->client_map = xcalloc(d->req.recipient_count, sizeof(*d->client_map));
	d->client_rcpts = xcalloc(d->req.recipient_count, sizeof(char *));
	d->client_notify = xcalloc(d->req.recipient_count, sizeof(char *));
	d->client_orcpt = xcalloc(d->req.recipient_count, sizeof(char *));
	d->encoded_orcpt = xcalloc(d->req.recipient_count, sizeof(char *));
	for (size_t i = 0; i < d->req.recipient_count; i++) {
		if (d->done[i])
			continue;
		const struct delivery_recipient *r = &d->req.recipients[i];
		d->client_map[n] = i;
		d->client_rcpts[n] = r->address;
		d->client_notify[n] = r->notify;
		if (r->orcpt) {
			d->encoded_orcpt[i] = dsn_orcpt_encode(r->orcpt);
			d->client_orcpt[n] = d->encoded_orcpt[i];
		}
		n++;
	}
	if (n == 0)
		return false;
	d->encoded_envid = d->req.envid ? dsn_xtext_encode(d->req.envid) : NULL;
	bool relay = cfg->outbound_relay_host != NULL;
	/* Credentials only ever go over TLS, and a certificate we were told to check is
	 * checked: then TLS is required. */
	d->tls_required = !d->tls_disabled && relay &&
		(cfg->outbound_relay_user || d->req.relay_tls_ctx);
	struct smtp_client_params params = {
		.helo_name = cfg->hostname,
		.sender = d->req.sender,
		.recipients = d->client_rcpts,
		.recipient_count = n,
		.notify = d->client_notify,
		.orcpt = d->client_orcpt,
		.ret = d->req.ret,
		.envid = d->encoded_envid,
		.message_size = d->req.size,
		.message_8bit = d->req.body_8bit,
		.needs_smtputf8 = d->req.smtputf8,
		.tls = d->tls_disabled ? SMTP_CLIENT_TLS_NEVER :
			d->tls_required ? SMTP_CLIENT_TLS_REQUIRED : SMTP_CLIENT_TLS_OPPORTUNISTIC,
		.auth_user = relay ? cfg->outbound_relay_user : NULL,
		.auth_password = relay ? cfg->outbound_relay_password : NULL,
	};
	d->client = smtp_client_new(&params);
	snprintf(d->host_name, sizeof(d->host_name), "%s", host->name);
	smtp_client_set_remote_host(d->client, host->name);
	strbuf_init(&d->out);
	net_line_reader_init(&d->lines, SMTP_REPLY_LINE_MAX + 1);
	d->tls_started = false;
	d->bev = bufferevent_socket_new(d->req.base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!d->bev)
		fatal("event=bufferevent_failed");
	bufferevent_setcb(d->bev, read_cb, write_cb, event_cb, d);
	set_timeout(d, DELIVERY_CONNECT_TIMEOUT_SECONDS);
	bufferevent_enable(d->bev, EV_READ | EV_WRITE);
	socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
		sizeof(struct sockaddr_in);
	if (bufferevent_socket_connect(d->bev, (const struct sockaddr *)ss, (int)len) != 0) {
		char why[300];
		snprintf(why, sizeof(why), "connection to %s failed: %s", host->name,
			strerror(errno));
		end_connection(d, why);
		return true;
	}
	set_timeout(d, DELIVERY_REPLY_TIMEOUT_SECONDS);
	return true;
}

static void try_next(struct delivery *d)
{
	bool pending = false;

	for (size_t i = 0; i < d->req.recipient_count; i++)
		if (!d->done[i])
			pending = true;
	while (pending && d->host_index < d->route.host_count) {
		const struct dns_host *host = &d->route.hosts[d->host_index];
		if (d->retry_clear) {
			d->retry_clear = false;
			d->tls_disabled = true;
			if (connect_current(d))
				return;
		}
		if (d->addr_index + 1 < host->addr_count) {
			d->addr_index++;
		} else {
			d->host_index++;
			d->addr_index = 0;
		}
		d->tls_disabled = false;
		if (d->host_index < d->route.host_count && connect_current(d))
			return;
	}
	delivery_finish(d);
}

static void route_done(void *arg, const struct dns_route *route)
{
	struct delivery *d = arg;

	d->route = *route;
	if (route->status != DNS_OK) {
		for (size_t i = 0; i < d->req.recipient_count; i++) {
			struct smtp_client_result *r = &d->results[i];
			r->status = route->status == DNS_PERMFAIL ? SMTP_CLIENT_PERMFAIL :
				SMTP_CLIENT_TEMPFAIL;
			r->code = 0;
			snprintf(r->enhanced, sizeof(r->enhanced), "%s", route->status_code);
			snprintf(r->text, sizeof(r->text), "%s", route->error);
		}
		delivery_finish(d);
		return;
	}
	d->host_index = 0;
	d->addr_index = 0;
	if (!connect_current(d))
		delivery_finish(d);
}

void delivery_start(const struct delivery_request *req, delivery_done_cb cb, void *arg)
{
	struct delivery *d = xcalloc(1, sizeof(*d));
	const struct config *cfg = req->cfg;

	d->req = *req;
	d->cb = cb;
	d->arg = arg;
	d->body_fd = -1;
	d->results = xcalloc(req->recipient_count, sizeof(*d->results));
	d->remote_dsn = xcalloc(req->recipient_count, sizeof(*d->remote_dsn));
	d->done = xcalloc(req->recipient_count, sizeof(*d->done));
	for (size_t i = 0; i < req->recipient_count; i++) {
		/* Until a host answers, the outcome is "no host could be reached". */
		d->results[i].status = SMTP_CLIENT_TEMPFAIL;
		snprintf(d->results[i].enhanced, sizeof(d->results[i].enhanced), "4.4.1");
		snprintf(d->results[i].text, sizeof(d->results[i].text),
			"no mail exchanger could be reached");
	}
	if (cfg->outbound_relay_host) {
		char host[256];
		const char *colon = strrchr(cfg->outbound_relay_host, ':');
		size_t len = (size_t)(colon - cfg->outbound_relay_host);
		if (len >= sizeof(host))
			len = sizeof(host) - 1;
		memcpy(host, cfg->outbound_relay_host, len);
		host[len] = '\0';
		/* "[::1]:25": the brackets are not part of the address. */
		if (host[0] == '[' && len > 2 && host[len - 1] == ']') {
			memmove(host, host + 1, len - 2);
			host[len - 2] = '\0';
		}
		dns_resolve_host(req->dns, host, atoi(colon + 1), route_done, d);
	} else {
		dns_resolve_mx(req->dns, req->domain, cfg->outbound_port, route_done, d);
	}
}
