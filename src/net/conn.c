/* net/conn.c: the life of one client connection, from accept (net/loop.c) to free. Each
 * libevent callback ends in at most one call into the glue (dispatch), after which the
 * connection is freed if the glue asked for it meanwhile: a glue may close from inside any
 * event without the layer touching freed memory. */
#include "net/conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "generation.h"
#include "log.h"
#include "net/conn_private.h"
#include "net/handshake.h"
#include "net/house.h"
#include "net/loop.h"
#include "strbuf.h"
#include "worker.h"

/* Octets asked of one recv(2): what libevent reads at most in one go. */
#define NET_READ_CHUNK (16 * 1024)
#define CLOSE_POLL_MS 10

static void update_reading(struct net_conn *c);
static void deadline_cb(evutil_socket_t fd, short what, void *arg);
static void login_checked(struct net_conn *c);

/* ---- freeing, safely from inside the glue ---- */

/* The glue's state goes, and the session's end is logged with what the glue counted. */
static void conn_end_glue(struct net_conn *c)
{
	char summary[256];

	summary[0] = '\0';
	c->handler->free(c, c->glue, summary, sizeof(summary));
	log_info(c->handler->module, "event=disconnect client=%s%s%s seconds=%ld", c->ip,
		summary[0] ? " " : "", summary, (long)(time(NULL) - c->connected_at));
}

static void conn_destroy(struct net_conn *c)
{
	if (c->handler)
		conn_end_glue(c);
	net_file_free(c);
	strbuf_free(&c->out);
	if (c->handshake)
		net_handshake_cancel(c->handshake);
	if (c->deadline)
		event_free(c->deadline);
	if (c->timer)
		event_free(c->timer);
	if (c->read_event)
		event_free(c->read_event);
	if (c->bev)
		bufferevent_free(c->bev);
	evbuffer_free(c->in);
	net_loop_forget(c->loop, c);
	net_house_release(c->loop->house, c);
	generation_unref(c->gen);
	struct net_loop *loop = c->loop;
	free(c);
	net_loop_emptied(loop);
}

/* Frees c now, or when the glue callbacks on the stack have returned. */
static void conn_end(struct net_conn *c)
{
	if (c->depth > 0) {
		c->free_pending = true;
		return;
	}
	conn_destroy(c);
}

static void enter(struct net_conn *c)
{
	c->depth++;
}

/* Leaves a glue callback: false when c was freed (or is to be), so must not be used. */
static bool leave(struct net_conn *c)
{
	if (--c->depth == 0 && c->free_pending) {
		conn_destroy(c);
		return false;
	}
	if (c->free_pending)
		return false;
	update_reading(c);
	return true;
}

/* Tells the glue; false when c is gone afterwards. */
static bool dispatch(struct net_conn *c, enum net_event event)
{
	enter(c);
	c->handler->event(c, c->glue, event);
	return leave(c);
}

/* Drops the socket of a client that left while a job runs: the job's end frees c. */
static void drop_io(struct net_conn *c)
{
	if (c->read_event)
		event_free(c->read_event);
	c->read_event = NULL;
	if (c->bev)
		bufferevent_free(c->bev);
	c->bev = NULL;
	c->fd = -1;
	c->reading = false;
}

/* EOF, an error, or a client that does not read: the connection is over. */
static void client_left(struct net_conn *c)
{
	if (c->closing)
		return; /* the closer frees c once the last reply is out, or gives up */
	if (c->job_pending) {
		c->gone = true;
		drop_io(c);
		return;
	}
	conn_end(c);
}

/* ---- reading ---- */

static void arm_read_event(struct net_conn *c)
{
	struct timeval idle = {(time_t)c->read_idle_seconds, 0};

	event_add(c->read_event, c->read_idle_seconds ? &idle : NULL);
}

/* Reading runs while the glue can take input and the input buffer has room: a client that
 * pipelines faster than we answer fills its socket, not our memory. */
static void update_reading(struct net_conn *c)
{
	bool want = !c->closing && !c->job_pending && !c->gone && !c->free_pending &&
		c->bev && evbuffer_get_length(c->in) < SESSION_INPUT_BUFFER_MAX;

	if (want == c->reading)
		return;
	c->reading = want;
	if (c->read_event) {
		/* A plain socket's read event stays in the epoll set while reading pauses (a
		 * commit, a full buffer): plain_read_cb takes it out only if the socket turns
		 * readable meanwhile. Most clients wait for the reply, so the pause costs no
		 * epoll_ctl(2) pair; re-arming restarts the idle timer and nothing else. */
		if (want)
			arm_read_event(c);
	} else if (want) {
		bufferevent_enable(c->bev, EV_READ);
	} else {
		bufferevent_disable(c->bev, EV_READ);
	}
}

/* A plain socket is readable: one recv(2) straight into the input buffer (libevent's own
 * read asks FIONREAD first, a second system call per command). */
static void plain_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct net_conn *c = arg;

	if (!c->reading) { /* paused (update_reading): now it must leave the epoll set */
		event_del(c->read_event);
		return;
	}
	if (what & EV_TIMEOUT) {
		dispatch(c, NET_EVENT_READ_IDLE);
		return;
	}
	size_t room = SESSION_INPUT_BUFFER_MAX - evbuffer_get_length(c->in);
	size_t want = room < NET_READ_CHUNK ? room : NET_READ_CHUNK;
	struct evbuffer_iovec vec;
	if (evbuffer_reserve_space(c->in, (ev_ssize_t)want, &vec, 1) < 1)
		fatal("event=out_of_memory");
	ssize_t n = recv(fd, vec.iov_base, want, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		client_left(c);
		return;
	}
	vec.iov_len = (size_t)n;
	evbuffer_commit_space(c->in, &vec, 1);
	dispatch(c, NET_EVENT_INPUT);
}

static void tls_read_cb(struct bufferevent *bev, void *arg)
{
	struct net_conn *c = arg;

	/* The decrypted octets move over (chains, not copies) so framing sees one buffer. */
	evbuffer_add_buffer(c->in, bufferevent_get_input(bev));
	dispatch(c, NET_EVENT_INPUT);
}

/* Sends more of a long reply while the output is short. */
static void produce_run(struct net_conn *c)
{
	while (c->produce && c->bev && !c->closing && !c->free_pending &&
	       net_conn_output_pending(c) < NET_PRODUCE_HIGH) {
		bool (*produce)(struct net_conn *c, void *glue) = c->produce;
		bool more = produce(c, c->glue);
		net_conn_flush(c);
		if (!more && c->produce == produce)
			c->produce = NULL;
	}
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct net_conn *c = arg;

	(void)bev;
	if (c->closing)
		return;
	if (c->produce) {
		enter(c);
		produce_run(c);
		if (leave(c) && !c->produce)
			dispatch(c, NET_EVENT_INPUT); /* what came while it was being sent */
	} else if (c->output_paused) {
		/* A client that pipelined without reading our replies has read them. */
		c->output_paused = false;
		dispatch(c, NET_EVENT_INPUT);
	}
}

static void bev_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct net_conn *c = arg;

	(void)bev;
	if (c->closing)
		return;
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
		c->reading = false; /* libevent stopped reading */
		dispatch(c, NET_EVENT_READ_IDLE);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) /* the connection ends unfinished: say why */
		log_info(c->handler->module, "event=timeout client=%s reason=not_reading", c->ip);
	client_left(c);
}

static void apply_timeouts(struct net_conn *c)
{
	struct timeval read = {(time_t)c->read_idle_seconds, 0};
	struct timeval write = {(time_t)c->write_seconds, 0};

	if (!c->bev)
		return;
	bufferevent_set_timeouts(c->bev, c->read_event || !c->read_idle_seconds ? NULL : &read,
		c->write_seconds ? &write : NULL);
	if (c->read_event && c->reading)
		arm_read_event(c);
}

static void setup_bufferevent(struct net_conn *c)
{
	bufferevent_setcb(c->bev, c->read_event ? NULL : tls_read_cb, write_cb, bev_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, NET_OUTPUT_LOW, 0);
	/* A plain socket's writes start once output is queued (net_conn_send): enabled now,
	 * libevent would watch the empty output's socket for writability, and then stop,
	 * two epoll_ctl(2) changes for nothing. */
	if (!c->read_event)
		bufferevent_enable(c->bev, EV_WRITE);
	c->reading = false;
	apply_timeouts(c);
	update_reading(c);
}

/* ---- the TLS handshake ---- */

static void handshake_done(void *arg, struct bufferevent *bev, const char *failure)
{
	struct net_conn *c = arg;

	c->handshake = NULL;
	if (!bev) {
		tls_log_handshake_failure(c->handler->module, c->ip, failure);
		conn_end(c);
		return;
	}
	c->bev = bev;
	setup_bufferevent(c);
	tls_describe(bufferevent_openssl_get_ssl(bev), c->tls, sizeof(c->tls));
	log_info(c->handler->module, "event=tls client=%s tls=\"%s\"", c->ip, c->tls);
	if (!dispatch(c, NET_EVENT_TLS_READY))
		return;
	if (c->implicit_tls && !dispatch(c, NET_EVENT_GREETING))
		return;
	c->implicit_tls = false;
	dispatch(c, NET_EVENT_INPUT); /* starts the deadline for the first command */
}

void net_conn_start_tls(struct net_conn *c)
{
	SSL *ssl = tls_new_session(c->gen->tls, c->protocol->tls_policy);

	if (!ssl || !c->bev || !c->read_event) {
		if (ssl)
			SSL_free(ssl);
		log_error(c->handler->module, "event=starttls_failed client=%s", c->ip);
		net_conn_close(c);
		return;
	}
	/* RFC 3207 4 / RFC 2595 4: nothing the client sent in clear counts inside TLS. */
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	/* The reply to STARTTLS goes out in clear first. Copied, not moved: a socket
	 * bufferevent's output is frozen at its front, and it is freed here anyway. */
	struct evbuffer *clear = evbuffer_new();
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t len = evbuffer_get_length(out);
	if (!clear)
		fatal("event=out_of_memory");
	if (len > 0) {
		unsigned char *reply = evbuffer_pullup(out, (ev_ssize_t)len);
		if (!reply || evbuffer_add(clear, reply, len) != 0)
			fatal("event=out_of_memory");
	}
	evutil_socket_t fd = c->fd;
	event_free(c->read_event);
	c->read_event = NULL;
	/* Take the socket away from the clear-text bufferevent, which must not close it. */
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_setfd(c->bev, -1);
	bufferevent_free(c->bev);
	c->bev = NULL;
	c->fd = -1;
	c->reading = false;
	c->handshake = net_handshake_start(c->loop->base, c->loop->workers, fd, ssl, clear,
		handshake_done, c);
	net_conn_deadline(c, c->command_seconds); /* the handshake and the next command */
}

/* ---- accept (called by net/loop.c) ---- */

void net_conn_begin(struct net_conn *c, evutil_socket_t fd, SSL *ssl)
{
	strbuf_init(&c->out);
	c->in = evbuffer_new();
	c->deadline = evtimer_new(c->loop->base, deadline_cb, c);
	if (!c->in || !c->deadline)
		fatal("event=out_of_memory");
	if (fd < 0)
		return; /* nothing to run: the caller closes */
	if (ssl) {
		c->implicit_tls = true;
		c->handshake = net_handshake_start(c->loop->base, c->loop->workers, fd, ssl, NULL,
			handshake_done, c);
		return;
	}
	c->fd = fd;
	c->bev = bufferevent_socket_new(c->loop->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->read_event = event_new(c->loop->base, fd, EV_READ | EV_PERSIST, plain_read_cb, c);
	if (!c->bev || !c->read_event)
		fatal("event=bufferevent_failed");
	setup_bufferevent(c);
}

void net_conn_attach(struct net_conn *c, const struct net_handler *handler, void *glue)
{
	c->handler = handler;
	c->glue = glue;
}

/* ---- what the glue reads ---- */

const char *net_conn_ip(const struct net_conn *c)
{
	return c->ip;
}

struct generation *net_conn_generation(const struct net_conn *c)
{
	return c->gen;
}

struct queue *net_conn_queue(const struct net_conn *c)
{
	return net_house_queue(c->loop->house);
}

bool net_conn_implicit_tls(const struct net_conn *c)
{
	return c->implicit_tls;
}

const char *net_conn_tls(const struct net_conn *c)
{
	return c->tls;
}

bool net_conn_stopping(const struct net_conn *c)
{
	return c->loop->stopping;
}

/* ---- input ---- */

void net_conn_set_lines(struct net_conn *c, size_t line_max, unsigned command_seconds)
{
	net_line_reader_init(&c->lines, line_max);
	c->command_seconds = command_seconds;
	net_conn_set_timeouts(c, 0, command_seconds);
}

bool net_conn_ready(struct net_conn *c)
{
	if (c->closing || c->job_pending || c->handshake || c->gone || c->free_pending ||
	    !c->bev || c->produce)
		return false;
	if (net_conn_output_pending(c) > NET_OUTPUT_HIGH) {
		c->output_paused = true; /* resumed by write_cb */
		return false;
	}
	return true;
}

enum net_line_result net_conn_read_line(struct net_conn *c, char *line, size_t *len)
{
	if (!net_conn_ready(c))
		return NET_LINE_NONE;
	enum net_line_result result = net_line_read(&c->lines, c->in, line, len);

	if (result == NET_LINE_NONE) {
		net_conn_deadline(c, c->command_seconds);
		return result;
	}
	net_conn_deadline_stop(c);
	net_conn_touch(c);
	return result;
}

struct evbuffer *net_conn_input(struct net_conn *c)
{
	return c->in;
}

void net_conn_touch(struct net_conn *c)
{
	net_house_touch(c->loop->house, c);
}

/* ---- output ---- */

size_t net_conn_output_pending(const struct net_conn *c)
{
	return c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}

void net_conn_send(struct net_conn *c, const void *data, size_t len)
{
	if (!c->bev || c->free_pending || len == 0)
		return; /* nothing, or the client left: a job's reply goes nowhere */
	struct evbuffer *out = bufferevent_get_output(c->bev);
	/* A plain socket with nothing queued: write now. Waiting for libevent to see the
	 * socket writable costs two epoll_ctl(2) and a loop iteration per reply, for a
	 * socket that nearly always has room. Whatever does not fit is queued as before. */
	if (c->fd >= 0 && evbuffer_get_length(out) == 0) {
		ssize_t n = send(c->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		/* An error is left for the queued write to find and report as usual. */
		if (n > 0) {
			data = (const char *)data + n;
			len -= (size_t)n;
		}
	}
	if (len == 0)
		return;
	if (evbuffer_add(out, data, len) != 0)
		fatal("event=out_of_memory");
	if (!(bufferevent_get_enabled(c->bev) & EV_WRITE))
		bufferevent_enable(c->bev, EV_WRITE); /* see setup_bufferevent */
}

struct strbuf *net_conn_out(struct net_conn *c)
{
	return &c->out;
}

void net_conn_flush(struct net_conn *c)
{
	net_conn_send(c, c->out.data, c->out.len);
	strbuf_reset(&c->out);
}

void net_conn_produce(struct net_conn *c, bool (*produce)(struct net_conn *c, void *glue))
{
	c->produce = produce;
	produce_run(c);
}

/* A last reply before c is freed at once (shedding): written straight to the socket,
 * through TLS if c has it, as far as the socket takes it without waiting; nothing when
 * earlier output is still queued (it would come out of order). */
static void send_last(struct net_conn *c, const void *data, size_t len)
{
	SSL *ssl = c->bev ? bufferevent_openssl_get_ssl(c->bev) : NULL;

	if (!c->bev || net_conn_output_pending(c) > 0)
		return;
	if (!ssl) {
		net_conn_send(c, data, len);
		return;
	}
	/* Nothing is queued, so no TLS record is half written: the SSL may write directly. */
	ERR_clear_error();
	if (SSL_write(ssl, data, (int)len) > 0)
		SSL_shutdown(ssl);
	ERR_clear_error();
}

/* ---- time ---- */

void net_conn_set_timeouts(struct net_conn *c, unsigned read_idle_seconds,
	unsigned write_seconds)
{
	c->read_idle_seconds = read_idle_seconds;
	c->write_seconds = write_seconds;
	apply_timeouts(c);
}

void net_conn_deadline(struct net_conn *c, unsigned seconds)
{
	struct timeval t = {(time_t)seconds, 0};

	if (c->deadline_armed)
		return;
	evtimer_add(c->deadline, &t);
	c->deadline_armed = true;
}

void net_conn_deadline_stop(struct net_conn *c)
{
	if (!c->deadline_armed)
		return;
	evtimer_del(c->deadline);
	c->deadline_armed = false;
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct net_conn *c = arg;

	(void)fd;
	(void)what;
	c->deadline_armed = false;
	/* A long reply is bounded by the write timeout instead. */
	if (c->job_pending || c->closing || c->produce)
		return;
	dispatch(c, NET_EVENT_DEADLINE);
}

/* ---- jobs ---- */

static void job_work(void *arg)
{
	struct net_conn *c = arg;

	if (c->login)
		c->login_ok = c->handler->login_verify(c->glue);
	else
		c->job_result = c->work(c->glue);
}

/* After a job: the server stops, or the connection goes on reading. */
static void job_resume(struct net_conn *c)
{
	if (c->job_pending || c->closing)
		return;
	if (c->gone) {
		conn_end(c);
		return;
	}
	if (c->loop->stopping && !dispatch(c, NET_EVENT_SHUTDOWN))
		return;
	if (!c->closing && !c->job_pending)
		dispatch(c, NET_EVENT_INPUT); /* pipelined commands may already be buffered */
}

/* The job's reply is progress: shedding c before the client could read a 250 would make
 * it send the stored message again. */
static void job_finish(struct net_conn *c)
{
	/* Cleared before the glue runs: its done function may start the next job, whose
	 * worker then reads c->login. */
	bool login = c->login;

	c->job_pending = false;
	c->login = false;
	if (!c->gone)
		net_conn_touch(c);
	enter(c);
	if (login)
		c->handler->event(c, c->glue, c->login_ok ? NET_EVENT_LOGIN_OK :
			NET_EVENT_LOGIN_FAILED);
	else
		c->done(c, c->glue, c->job_result);
	if (leave(c))
		job_resume(c);
}

static void job_done(void *arg)
{
	struct net_conn *c = arg;

	if (c->login) {
		login_checked(c);
		return;
	}
	job_finish(c);
}

static void job_start(struct net_conn *c)
{
	c->job_pending = true;
	update_reading(c);
	worker_pool_submit(c->loop->workers, job_work, job_done, c);
}

void net_conn_job(struct net_conn *c, int (*work)(void *glue),
	void (*done)(struct net_conn *c, void *glue, int result))
{
	c->work = work;
	c->done = done;
	c->login = false;
	job_start(c);
}

/* ---- the login gate ---- */

static void login_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct net_conn *c = arg;

	(void)fd;
	(void)what;
	event_free(c->timer);
	c->timer = NULL;
	job_finish(c);
}

static void login_checked(struct net_conn *c)
{
	const char *module = c->handler->module;
	char detail[256];

	detail[0] = '\0';
	c->handler->login_describe(c->glue, c->login_ok, detail, sizeof(detail));
	/* Never the password: a failed login may be a password typed as a user name. */
	if (c->login_ok) {
		net_house_login_succeeded(c->loop->house, c);
		log_info(module, "event=login client=%s%s%s", c->ip, detail[0] ? " " : "", detail);
		job_finish(c);
		return;
	}
	unsigned delay = net_house_login_failed(c->loop->house, c, module, detail);
	if (delay == 0 || c->gone) {
		job_finish(c);
		return;
	}
	/* Slow the guesser down; the job stays pending, so nothing else is read meanwhile. */
	struct timeval wait = {(time_t)delay, 0};
	c->timer = evtimer_new(c->loop->base, login_delay_done, c);
	if (!c->timer)
		fatal("event=timer_failed");
	evtimer_add(c->timer, &wait);
}

void net_conn_login(struct net_conn *c)
{
	if (net_house_login_blocked(c->loop->house, c, c->handler->module)) {
		c->handler->event(c, c->glue, NET_EVENT_LOGIN_BLOCKED);
		return;
	}
	c->login = true;
	job_start(c);
}

/* ---- the end ---- */

static void close_poll(evutil_socket_t fd, short what, void *arg)
{
	struct net_conn *c = arg;

	(void)fd;
	(void)what;
	bool flushed = net_conn_output_pending(c) == 0;
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);

	if (flushed && ssl && !c->tls_shutdown_sent && time(NULL) < c->close_deadline) {
		/* RFC 8446 6.1: end with close_notify so the client sees a clean end of the
		 * session, not a truncation; it lands in the output polled above. */
		c->tls_shutdown_sent = true;
		SSL_shutdown(ssl);
		flushed = net_conn_output_pending(c) == 0;
	}
	if (!flushed && time(NULL) < c->close_deadline) {
		struct timeval poll = {0, CLOSE_POLL_MS * 1000};
		evtimer_add(c->timer, &poll);
		return;
	}
	conn_end(c);
}

void net_conn_close(struct net_conn *c)
{
	if (c->closing || c->free_pending)
		return;
	c->closing = true;
	net_conn_deadline_stop(c);
	if (!c->bev) { /* in a TLS handshake, or the client left: nothing to flush */
		conn_end(c);
		return;
	}
	update_reading(c);
	/* Polled on a short timer, so it works the same for plain sockets and TLS. */
	struct timeval now = {0, 0};
	c->close_deadline = time(NULL) + CONNECTION_CLOSE_FLUSH_SECONDS;
	c->timer = evtimer_new(c->loop->base, close_poll, c);
	if (!c->timer)
		fatal("event=timer_failed");
	evtimer_add(c->timer, &now);
}

/* ---- used by net/ ---- */

struct admission_slot *net_conn_slot(struct net_conn *c)
{
	return &c->slot;
}

struct net_conn *net_conn_from_slot(struct admission_slot *slot)
{
	return (struct net_conn *)((char *)slot - offsetof(struct net_conn, slot));
}

const char *net_conn_shed(struct net_conn *c)
{
	struct strbuf last;

	if (c->job_pending || c->closing || c->free_pending)
		return NULL; /* a commit or login must end with its reply; a closing one is nearly gone */
	strbuf_init(&last);
	enter(c);
	c->handler->shed(c, c->glue, &last);
	c->depth--;
	if (last.len > 0)
		send_last(c, last.data, last.len);
	strbuf_free(&last);
	const char *reason = c->transfer.active ? "slow_data" : "idle";
	conn_end(c);
	return reason;
}

void net_conn_shutdown(struct net_conn *c)
{
	if (c->job_pending || c->closing || c->free_pending)
		return;
	dispatch(c, NET_EVENT_SHUTDOWN);
}

void net_conn_greet(struct net_conn *c)
{
	if (!c->implicit_tls && !c->closing && !c->free_pending)
		dispatch(c, NET_EVENT_GREETING);
}
