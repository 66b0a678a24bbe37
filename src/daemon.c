/* daemon.c: listeners for each protocol port, the connection registry with total and per-IP
 * caps (and the owner's share and shedding of admission.h), SIGTERM/SIGINT graceful stop, and
 * the event loop. */
#include "daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "bounds.h"
#include "log.h"
#include "fsutil.h"
#include "generation.h"
#include "pop3/server.h"
#include "privileges.h"
#include "queue/queue.h"
#include "sandbox.h"
#include "throttle.h"
#include "smtp/server.h"
#include "store/maildrop.h"
#include "tls.h"
#include "worker.h"

#define IP_BUCKETS 256

struct ip_count {
	struct ip_count *next;
	unsigned count;
	char ip[INET6_ADDRSTRLEN];
};

enum listener_kind {
	LISTEN_SMTP,
	LISTEN_SUBMISSION,
	LISTEN_SUBMISSION_TLS,
	LISTEN_POP3,
	LISTEN_POP3_STLS,
};

struct listener {
	struct daemon *srv;
	enum listener_kind kind;
	struct evconnlistener *evl;
};

static unsigned hash_ip(const char *ip)
{
	unsigned h = 5381;

	while (*ip)
		h = h * 33 + (unsigned char)*ip++;
	return h % IP_BUCKETS;
}

static struct ip_count **find_ip(struct daemon *srv, const char *ip)
{
	struct ip_count **p = &srv->ip_buckets[hash_ip(ip)];

	while (*p && strcmp((*p)->ip, ip) != 0)
		p = &(*p)->next;
	return p;
}

/* Seconds on a clock that never goes back: the order of progress (admission.h). */
static time_t monotonic_seconds(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec;
}

/* The house (or the MX share, per verdict) is full: close the connection that has gone
 * longest without progress, to make room for one from new_ip. True when one was shed. */
static bool shed_one(struct daemon *srv, enum admission_verdict verdict, const char *new_ip)
{
	time_t now = monotonic_seconds();
	struct admission_walk walk;

	admission_walk_start(&walk, &srv->admission, verdict, now);
	for (unsigned i = 0; i < SERVER_SHED_CANDIDATES_MAX; i++) {
		struct admission_slot *slot = admission_walk_next(&walk);
		if (!slot)
			return false;
		struct daemon_conn *victim =
			(struct daemon_conn *)((char *)slot - offsetof(struct daemon_conn, slot));
		char ip[INET6_ADDRSTRLEN];
		long idle = (long)(now - slot->active_at);
		const char *lane = slot->lane == ADMISSION_MX ? "mx" : "owner";
		memcpy(ip, victim->ip, sizeof(ip)); /* the victim is freed when it is shed */
		const char *reason = victim->shed(victim);
		if (reason) {
			log_warn("server", "event=shed client=%s reason=%s idle_seconds=%ld lane=%s "
				"for=%s", ip, reason, idle, lane, new_ip);
			return true;
		}
	}
	return false;
}

bool daemon_conn_admit(struct daemon *srv, struct daemon_conn *conn, const struct sockaddr *addr,
	enum admission_lane lane)
{
	const struct config *cfg = srv->cfg;

	if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)addr;
		inet_ntop(AF_INET6, &sin6->sin6_addr, conn->ip, sizeof(conn->ip));
		/* ::ffff:a.b.c.d is the IPv4 client a.b.c.d on a dual-stack socket. */
		if (strncmp(conn->ip, "::ffff:", 7) == 0 && strchr(conn->ip + 7, '.'))
			memmove(conn->ip, conn->ip + 7, strlen(conn->ip + 7) + 1);
	} else if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
		inet_ntop(AF_INET, &sin->sin_addr, conn->ip, sizeof(conn->ip));
	} else {
		snprintf(conn->ip, sizeof(conn->ip), "unknown");
	}
	if (srv->stopping)
		return false;
	struct ip_count **slot = find_ip(srv, conn->ip);
	if (*slot && (*slot)->count >= cfg->max_connections_per_ip) {
		log_warn("server", "event=connection_refused client=%s reason=max_connections_per_ip",
			conn->ip);
		return false;
	}
	/* A full house sheds a connection that holds its slot without using it, rather than
	 * turning away the owner or a mail server trickled out by such connections. */
	enum admission_verdict verdict = admission_check(&srv->admission, lane,
		cfg->max_connections);
	if (verdict != ADMISSION_ADMIT && shed_one(srv, verdict, conn->ip))
		verdict = admission_check(&srv->admission, lane, cfg->max_connections);
	if (verdict != ADMISSION_ADMIT) {
		log_warn("server", "event=connection_refused client=%s reason=%s", conn->ip,
			verdict == ADMISSION_MX_FULL ? "max_connections_mx" : "max_connections");
		return false;
	}
	slot = find_ip(srv, conn->ip); /* shedding may have changed the bucket */
	if (!*slot) {
		*slot = xcalloc(1, sizeof(**slot));
		snprintf((*slot)->ip, sizeof((*slot)->ip), "%s", conn->ip);
	}
	(*slot)->count++;
	srv->conn_count++;
	admission_add(&srv->admission, &conn->slot, lane, monotonic_seconds());
	conn->gen = generation_ref(srv->gen);
	conn->prev = NULL;
	conn->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = conn;
	srv->conns = conn;
	return true;
}

void daemon_conn_touch(struct daemon *srv, struct daemon_conn *conn)
{
	admission_touch(&srv->admission, &conn->slot, monotonic_seconds());
}

void daemon_conn_release(struct daemon *srv, struct daemon_conn *conn)
{
	struct ip_count **slot = find_ip(srv, conn->ip);

	if (*slot && --(*slot)->count == 0) {
		struct ip_count *dead = *slot;
		*slot = dead->next;
		free(dead);
	}
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		srv->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	srv->conn_count--;
	admission_remove(&srv->admission, &conn->slot);
	generation_unref(conn->gen);
	conn->gen = NULL;
	if (srv->conn_count == 0 && srv->trim_timer) {
		struct timeval later = {MEMORY_TRIM_IDLE_SECONDS, 0};
		evtimer_add(srv->trim_timer, &later); /* (re)started by each last connection */
	}
	daemon_conn_maybe_exit(srv);
}

static long resident_kib(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* After a burst (a thousand connections, a large maildrop listed) the allocator keeps the
 * freed memory for reuse, in every thread's arena, so the process stays at its peak.
 * Once no connection has been left for a while, hand it back to the system. */
static void trim_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *srv = arg;

	(void)fd;
	(void)what;
	if (srv->conn_count > 0)
		return; /* the next last connection starts the timer again */
	long before = resident_kib();
	malloc_trim(0);
	log_info("server", "event=memory_released rss_kb_before=%ld rss_kb_after=%ld", before,
		resident_kib());
}

void daemon_conn_maybe_exit(struct daemon *srv)
{
	if (srv->stopping && srv->conn_count == 0 && worker_pool_pending(srv->workers) == 0 &&
	    (!srv->queue || queue_idle(srv->queue)))
		event_base_loopexit(srv->base, NULL);
}


unsigned daemon_login_failed(struct daemon *srv, const struct daemon_conn *conn,
	const char *module, const char *detail)
{
	bool locked = false;
	unsigned delay = throttle_failure(srv->throttle, conn->ip, time(NULL), &locked);

	log_warn(module, "event=auth_failed client=%s%s%s", conn->ip, detail ? " " : "",
		detail ? detail : "");
	if (locked)
		log_warn(module, "event=auth_lockout client=%s seconds=%u", conn->ip,
			srv->cfg->auth_lockout);
	return delay;
}

void daemon_login_succeeded(struct daemon *srv, struct daemon_conn *conn)
{
	throttle_success(srv->throttle, conn->ip);
	admission_protect(&srv->admission, &conn->slot);
}

bool daemon_login_blocked(struct daemon *srv, const struct daemon_conn *conn, const char *module)
{
	if (!throttle_blocked(srv->throttle, conn->ip, time(NULL)))
		return false;
	log_warn(module, "event=auth_blocked client=%s", conn->ip);
	return true;
}

void daemon_new_id(char *buf, size_t size)
{
	static atomic_uint counter;
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	unsigned long long usec = (unsigned long long)now.tv_sec * 1000000ULL +
		(unsigned long long)now.tv_nsec / 1000;
	/* 40 bits of microseconds (~12 days of wrap) and 20 bits of a process counter: unique
	 * within a process, and the time part keeps restarts apart. */
	snprintf(buf, size, "%010llX%05X", usec & 0xFFFFFFFFFFULL,
		(atomic_fetch_add(&counter, 1) + (unsigned)fs_process_id()) & 0xFFFFF);
}

static void accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *addr,
	int addrlen, void *arg)
{
	struct listener *l = arg;

	(void)evl;
	(void)addrlen;
	switch (l->kind) {
	case LISTEN_SMTP:
		smtp_server_accept(l->srv, fd, addr, SMTP_LISTENER_MX);
		break;
	case LISTEN_SUBMISSION:
		smtp_server_accept(l->srv, fd, addr, SMTP_LISTENER_SUBMISSION);
		break;
	case LISTEN_SUBMISSION_TLS:
		smtp_server_accept(l->srv, fd, addr, SMTP_LISTENER_SUBMISSION_TLS);
		break;
	case LISTEN_POP3:
		pop3_server_accept(l->srv, fd, addr, tls_available(l->srv->gen->tls));
		break;
	case LISTEN_POP3_STLS:
		pop3_server_accept_stls(l->srv, fd, addr);
		break;
	}
}

static void accept_error_cb(struct evconnlistener *evl, void *arg)
{
	(void)evl;
	(void)arg;
	/* EMFILE and friends: log and keep listening; libevent retries on the next readiness. */
	log_error("server", "event=accept_failed errno=%d error=\"%s\"", errno, strerror(errno));
}

socklen_t daemon_listen_address(const struct config *cfg, int family, int port,
	struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sin6->sin6_addr = in6addr_any;
		if (cfg->listen_address)
			inet_pton(AF_INET6, cfg->listen_address, &sin6->sin6_addr);
		return sizeof(*sin6);
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	sin->sin_addr.s_addr = htonl(INADDR_ANY);
	if (cfg->listen_address)
		inet_pton(AF_INET, cfg->listen_address, &sin->sin_addr);
	return sizeof(*sin);
}

/* optional: the port is a default the config did not ask for; failing to bind it is a
 * warning, not a reason not to start. */
static struct listener *listen_on(struct daemon *srv, enum listener_kind kind, int port,
	const char *name, bool optional)
{
	struct sockaddr_storage ss;
	const char *address = srv->cfg->listen_address;
	/* All addresses: a dual-stack IPv6 socket also takes IPv4 clients. */
	int family = address && !strchr(address, ':') ? AF_INET : AF_INET6;
	socklen_t len = daemon_listen_address(srv->cfg, family, port, &ss);

	struct listener *l = xcalloc(1, sizeof(*l));
	l->srv = srv;
	l->kind = kind;
	l->evl = evconnlistener_new_bind(srv->base, accept_cb, l,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 511,
		(struct sockaddr *)&ss, (int)len);
	if (!l->evl && !address && errno == EAFNOSUPPORT) {
		/* No IPv6 on this host: fall back to IPv4 only. */
		len = daemon_listen_address(srv->cfg, AF_INET, port, &ss);
		l->evl = evconnlistener_new_bind(srv->base, accept_cb, l,
			LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 511,
			(struct sockaddr *)&ss, (int)len);
	}
	if (!l->evl) {
		if (optional)
			log_warn("server", "event=listener_skipped key=%s port=%d error=\"%s\" "
				"hint=\"set %s (0 turns it off)\"", name, port, strerror(errno), name);
		else
			log_error("server", "event=listen_failed key=%s port=%d error=\"%s\"", name,
				port, strerror(errno));
		free(l);
		return NULL;
	}
	evconnlistener_set_error_cb(l->evl, accept_error_cb);
	/* Replies are small and end a client's wait: do not let Nagle hold the last segment
	 * back until the client's delayed ACK (about 40 ms per reply). Set on the listening
	 * socket, Linux gives it to every accepted one (a system call less per connection). */
	int one = 1;
	if (setsockopt(evconnlistener_get_fd(l->evl), IPPROTO_TCP, TCP_NODELAY, &one,
		sizeof(one)) != 0)
		log_warn("server", "event=nodelay_failed key=%s error=\"%s\"", name, strerror(errno));
	log_info("server", "event=listening key=%s address=%s port=%d", name,
		address ? address : "*", port);
	return l;
}

struct run_state {
	struct daemon *srv;
	struct listener *listeners[5];
	size_t listener_count;
	struct event *grace_timer;
	struct event *wait_timer;
};

/* Polls whether the queue's runs have ended (they hold no connection slot). */
static void wait_queue_cb(evutil_socket_t fd, short what, void *arg)
{
	struct run_state *rs = arg;

	(void)fd;
	(void)what;
	daemon_conn_maybe_exit(rs->srv);
}

static void grace_expired_cb(evutil_socket_t fd, short what, void *arg)
{
	struct run_state *rs = arg;

	(void)fd;
	(void)what;
	log_warn("server", "event=shutdown_grace_expired connections=%u", rs->srv->conn_count);
	event_base_loopexit(rs->srv->base, NULL);
}

static void stop_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct run_state *rs = arg;
	struct daemon *srv = rs->srv;

	(void)what;
	if (srv->stopping)
		return;
	log_info("server", "event=stopping signal=%d connections=%u", (int)sig, srv->conn_count);
	srv->stopping = true;
	if (srv->queue)
		queue_stop(srv->queue);
	for (size_t i = 0; i < rs->listener_count; i++) {
		evconnlistener_free(rs->listeners[i]->evl);
		free(rs->listeners[i]);
	}
	rs->listener_count = 0;
	/* Ask each session to finish; sessions remove themselves from the list as they go. */
	struct daemon_conn *conn = srv->conns;
	while (conn) {
		struct daemon_conn *next = conn->next;
		conn->shutdown(conn);
		conn = next;
	}
	struct timeval grace = {SHUTDOWN_GRACE_SECONDS, 0};
	rs->grace_timer = evtimer_new(srv->base, grace_expired_cb, rs);
	evtimer_add(rs->grace_timer, &grace);
	struct timeval poll = {0, 100000};
	rs->wait_timer = event_new(srv->base, -1, EV_PERSIST, wait_queue_cb, rs);
	event_add(rs->wait_timer, &poll);
	daemon_conn_maybe_exit(srv);
}

static void flush_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct run_state *rs = arg;

	(void)sig;
	(void)what;
	if (rs->srv->queue && !rs->srv->stopping)
		queue_flush(rs->srv->queue);
}

/* Each connection is a socket plus, while it delivers or serves a message, a file or two;
 * the usual soft limit of 1024 descriptors would cap MaxConnections well below its default.
 * Raise the soft limit to the hard one (the administrator's ceiling). */
static void raise_file_limit(const struct config *cfg)
{
	struct rlimit limit;
	rlim_t wanted = (rlim_t)cfg->max_connections * 3 + 64;

	if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= wanted)
		return;
	limit.rlim_cur = limit.rlim_max == RLIM_INFINITY || limit.rlim_max > wanted ?
		wanted : limit.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur < wanted)
		log_warn("server", "event=file_limit_low limit=%llu wanted=%llu key=MaxConnections",
			(unsigned long long)limit.rlim_cur, (unsigned long long)wanted);
}

char *daemon_fallback_spool_path(const struct config *cfg)
{
	return fs_path_printf("%s/.mailpopbox-spool", cfg->servers[0].maildrop_path);
}

/* A config that does not name SpoolPath (every config written for the original) must start
 * where the default directory cannot be made, e.g. run by an unprivileged user: the queue
 * then lives inside the first maildrop, which that user owns, and the log says how to move
 * it. */
static void resolve_default_spool(struct config *cfg)
{
	if (cfg->spool_path_given)
		return;
	if (fs_make_directories(cfg->spool_path) == 0 &&
	    access(cfg->spool_path, W_OK | X_OK) == 0)
		return;
	char *fallback = daemon_fallback_spool_path(cfg);
	log_warn("server", "event=spool_default_unusable path=%s error=\"%s\" using=%s "
		"hint=\"set SpoolPath\"", cfg->spool_path, strerror(errno), fallback);
	free(cfg->spool_path);
	cfg->spool_path = fallback;
}

static bool strings_differ(const char *a, const char *b)
{
	return !a != !b || (a && strcmp(a, b) != 0);
}

/* Keys that only take effect at start (sockets, directories, identity, the queue and the
 * throttling table) are named in the log when a reload changes them. */
static void warn_restart_keys(const struct config *old, const struct config *now)
{
	struct {
		const char *name;
		bool changed;
	} keys[] = {
		{"SMTPPort", old->smtp_port != now->smtp_port},
		{"POP3Port", old->pop3_port != now->pop3_port},
		{"POP3STLSPort", old->pop3_stls_port != now->pop3_stls_port},
		{"SubmissionPort", old->submission_port != now->submission_port},
		{"SubmissionTLSPort", old->submission_tls_port != now->submission_tls_port},
		{"ListenAddress", strings_differ(old->listen_address, now->listen_address)},
		{"SpoolPath", strings_differ(old->spool_path, now->spool_path)},
		{"User", strings_differ(old->user, now->user)},
		{"Group", strings_differ(old->group, now->group)},
		{"DNSResolver", strings_differ(old->dns_resolver, now->dns_resolver)},
		{"OutboundPort", old->outbound_port != now->outbound_port},
		{"OutboundRelayHost", strings_differ(old->outbound_relay_host,
			now->outbound_relay_host)},
		{"OutboundRelayUser", strings_differ(old->outbound_relay_user,
			now->outbound_relay_user)},
		{"OutboundRelayPassword", strings_differ(old->outbound_relay_password,
			now->outbound_relay_password)},
		{"QueueRetryBaseSeconds", old->queue_retry_base != now->queue_retry_base},
		{"QueueLifetimeSeconds", old->queue_lifetime != now->queue_lifetime},
		{"AuthMaxFailures", old->auth_max_failures != now->auth_max_failures},
		{"AuthFailureWindowSeconds", old->auth_failure_window != now->auth_failure_window},
		{"AuthLockoutSeconds", old->auth_lockout != now->auth_lockout},
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (keys[i].changed)
			log_warn("server", "event=reload_needs_restart key=%s", keys[i].name);
	/* The sandbox was built from the maildrops known at start. */
	for (size_t i = 0; i < now->server_count; i++) {
		bool known = false;
		for (size_t j = 0; j < old->server_count && !known; j++)
			known = strcmp(old->servers[j].maildrop_path, now->servers[i].maildrop_path) == 0;
		if (!known)
			log_warn("server", "event=reload_needs_restart key=Servers[%zu].MaildropPath", i);
	}
}

static void reload_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct run_state *rs = arg;
	struct daemon *srv = rs->srv;
	struct config cfg;
	char err[512], quoted[600];

	(void)sig;
	(void)what;
	if (srv->stopping)
		return;
	/* A bad new config or an unreadable new certificate keeps the old generation. */
	if (config_load(srv->config_path, &cfg, err, sizeof(err)) != 0) {
		log_error("server", "event=reload_failed error=%s",
			log_quote(quoted, sizeof(quoted), err, strlen(err)));
		return;
	}
	resolve_default_spool(&cfg);
	struct generation *gen = generation_new(&cfg, err, sizeof(err));
	if (!gen) {
		config_free(&cfg);
		log_error("server", "event=reload_failed error=%s",
			log_quote(quoted, sizeof(quoted), err, strlen(err)));
		return;
	}
	/* Against the start-up configuration: listeners, queue and sandbox still use it. */
	warn_restart_keys(&srv->queue_gen->cfg, &gen->cfg);
	struct generation *old = srv->gen;
	srv->gen = gen;
	srv->cfg = &gen->cfg;
	generation_unref(old);
	log_info("server", "event=reloaded domains=%zu tls=%s", gen->cfg.server_count,
		tls_available(gen->tls) ? "yes" : "no");
}

int daemon_run(struct config *loaded, const char *config_path)
{
	struct daemon srv;
	struct run_state rs;
	char err[512];
	int status = 1;

	memset(&srv, 0, sizeof(srv));
	memset(&rs, 0, sizeof(rs));
	rs.srv = &srv;
	signal(SIGPIPE, SIG_IGN);
	raise_file_limit(loaded);
	if (evthread_use_pthreads() != 0)
		fatal("event=evthread_failed");
	resolve_default_spool(loaded);
	srv.gen = generation_new(loaded, err, sizeof(err));
	if (!srv.gen) {
		char quoted[600];
		log_error("server", "event=start_failed error=%s",
			log_quote(quoted, sizeof(quoted), err, strlen(err)));
		config_free(loaded);
		return 1;
	}
	srv.cfg = &srv.gen->cfg;
	srv.config_path = config_path;
	const struct config *cfg = srv.cfg;
	/* Keys and certificates are read; no thread exists yet, so every thread to come is
	 * confined too. */
	if (sandbox_apply(cfg, config_path) != 0) {
		generation_unref(srv.gen);
		return 1;
	}
	/* The epoll changelist folds the event changes of one loop iteration into at most one
	 * epoll_ctl(2) per socket: a bufferevent enables and disables reading and writing
	 * several times per command (18 calls per inbound message without it, bench/profile).
	 * Its documented hazard is descriptors cloned with dup(2), which are never registered. */
	struct event_config *event_cfg = event_config_new();
	if (!event_cfg)
		fatal("event=event_config_failed");
	event_config_set_flag(event_cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	srv.base = event_base_new_with_config(event_cfg);
	event_config_free(event_cfg);
	if (!srv.base)
		fatal("event=event_base_failed");
	srv.ip_buckets = xcalloc(IP_BUCKETS, sizeof(*srv.ip_buckets));
	srv.workers = worker_pool_new(srv.base, WORKER_THREADS);
	srv.throttle = throttle_new(cfg->auth_max_failures, cfg->auth_failure_window,
		cfg->auth_lockout);
	/* The queue keeps the configuration it started with; its keys need a restart. */
	srv.queue_gen = generation_ref(srv.gen);
	srv.queue = queue_new(srv.base, cfg, srv.workers, err, sizeof(err));
	if (!srv.queue) {
		log_error("server", "event=queue_failed key=SpoolPath error=\"%s\"", err);
		goto out;
	}

	struct {
		enum listener_kind kind;
		int port;
		const char *name;
		bool optional;
	} ports[] = {
		{LISTEN_SMTP, cfg->smtp_port, "SMTPPort", false},
		{LISTEN_SUBMISSION, cfg->submission_port, "SubmissionPort",
			!cfg->submission_port_given},
		{LISTEN_SUBMISSION_TLS, cfg->submission_tls_port, "SubmissionTLSPort",
			!cfg->submission_tls_port_given},
		{LISTEN_POP3, cfg->pop3_port, "POP3Port", false},
		{LISTEN_POP3_STLS, cfg->pop3_stls_port, "POP3STLSPort", false},
	};
	for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
		if (ports[i].port == 0)
			continue;
		if (ports[i].kind == LISTEN_SUBMISSION_TLS && !tls_available(srv.gen->tls)) {
			/* Implicit TLS needs a certificate; say so instead of failing every client. */
			log_warn("server", "event=listener_skipped key=SubmissionTLSPort reason=no_certificate");
			continue;
		}
		struct listener *l = listen_on(&srv, ports[i].kind, ports[i].port, ports[i].name,
			ports[i].optional);
		if (!l && ports[i].optional)
			continue;
		if (!l)
			goto out;
		rs.listeners[rs.listener_count++] = l;
	}
	/* Ports are bound and keys read: nothing below needs root. */
	if (privileges_drop(cfg, err, sizeof(err)) != 0) {
		char quoted[600];
		log_error("server", "event=privileges_failed error=%s",
			log_quote(quoted, sizeof(quoted), err, strlen(err)));
		goto out;
	}
	/* Before the first connection: a delivery killed in an earlier run left its tmp/ file. */
	for (size_t i = 0; i < cfg->server_count; i++)
		maildrop_recover_tmp(cfg->servers[i].maildrop_path);
	struct event *sigterm = evsignal_new(srv.base, SIGTERM, stop_signal_cb, &rs);
	struct event *sigint = evsignal_new(srv.base, SIGINT, stop_signal_cb, &rs);
	struct event *sigusr1 = evsignal_new(srv.base, SIGUSR1, flush_signal_cb, &rs);
	struct event *sighup = evsignal_new(srv.base, SIGHUP, reload_signal_cb, &rs);
	evsignal_add(sighup, NULL);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	evsignal_add(sigusr1, NULL);
	srv.trim_timer = evtimer_new(srv.base, trim_cb, &srv);
	log_info("server", "event=started version=%s hostname=%s domains=%zu tls=%s",
		MAILPOPBOX_VERSION, cfg->hostname, cfg->server_count,
		tls_available(srv.gen->tls) ? "yes" : "no");
	event_base_dispatch(srv.base);
	log_info("server", "event=stopped");
	event_free(sigterm);
	event_free(sigint);
	event_free(sigusr1);
	event_free(sighup);
	if (rs.grace_timer)
		event_free(rs.grace_timer);
	if (rs.wait_timer)
		event_free(rs.wait_timer);
	if (srv.trim_timer)
		event_free(srv.trim_timer);
	srv.trim_timer = NULL;
	status = 0;
out:
	for (size_t i = 0; i < rs.listener_count; i++) {
		evconnlistener_free(rs.listeners[i]->evl);
		free(rs.listeners[i]);
	}
	worker_pool_free(srv.workers);
	queue_free(srv.queue);
	generation_unref(srv.queue_gen);
	throttle_free(srv.throttle);
	for (size_t i = 0; i < IP_BUCKETS; i++) {
		while (srv.ip_buckets[i]) {
			struct ip_count *next = srv.ip_buckets[i]->next;
			free(srv.ip_buckets[i]);
			srv.ip_buckets[i] = next;
		}
	}
	free(srv.ip_buckets);
	generation_unref(srv.gen);
	event_base_free(srv.base);
	return status;
}
