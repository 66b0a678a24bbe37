/* daemon.c: the process: configuration generations (SIGHUP reload), a listener for each
 * protocol port handed in from main.c, the event loop and its connections (net/loop.h), the
 * outbound queue, SIGTERM/SIGINT graceful stop and privilege drop. */
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
#include "net/house.h"
#include "net/loop.h"
#include "privileges.h"
#include "queue/queue.h"
#include "sandbox.h"
#include "store/maildrop.h"
#include "tls.h"
#include "worker.h"

/* At most this many listening ports. */
#define LISTENERS_MAX 16

struct daemon {
	struct event_base *base;
	const struct config *cfg;      /* the current generation's config */
	struct generation *gen;        /* the current generation */
	const char *config_path;       /* re-read on SIGHUP */
	struct worker_pool *workers;
	struct net_house *house;       /* what the loops share */
	struct net_loop loop;          /* the one event loop and its connections */
	bool stopping;
	struct queue *queue;           /* the outbound queue */
	struct generation *queue_gen;  /* the generation the queue was started with */
	struct event *trim_timer;      /* gives freed memory back once connections are gone */
};

struct listener {
	struct net_loop *loop;
	const struct net_protocol *protocol;
	struct evconnlistener *evl;
};

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
	if (net_house_connections(srv->house) > 0)
		return; /* the next last connection starts the timer again */
	long before = resident_kib();
	malloc_trim(0);
	log_info("server", "event=memory_released rss_kb_before=%ld rss_kb_after=%ld", before,
		resident_kib());
}

/* Once stopping, the loop ends when no connection, job or delivery is left. */
static void maybe_exit(struct daemon *srv)
{
	if (srv->stopping && net_house_connections(srv->house) == 0 &&
	    worker_pool_pending(srv->workers) == 0 && (!srv->queue || queue_idle(srv->queue)))
		event_base_loopexit(srv->base, NULL);
}

/* The loop's last connection has gone. */
static void loop_emptied(struct net_loop *loop, void *arg)
{
	struct daemon *srv = arg;

	(void)loop;
	if (srv->trim_timer) {
		struct timeval later = {MEMORY_TRIM_IDLE_SECONDS, 0};
		evtimer_add(srv->trim_timer, &later); /* (re)started by each last connection */
	}
	maybe_exit(srv);
}

static void accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *addr,
	int addrlen, void *arg)
{
	struct listener *l = arg;

	(void)evl;
	(void)addrlen;
	net_loop_accept(l->loop, l->protocol, fd, addr);
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
static struct listener *listen_on(struct net_loop *loop, const struct config *cfg,
	const struct net_protocol *protocol, int port, bool optional)
{
	struct sockaddr_storage ss;
	const char *address = cfg->listen_address;
	const char *name = protocol->port_key;
	/* All addresses: a dual-stack IPv6 socket also takes IPv4 clients. */
	int family = address && !strchr(address, ':') ? AF_INET : AF_INET6;
	socklen_t len = daemon_listen_address(cfg, family, port, &ss);

	struct listener *l = xcalloc(1, sizeof(*l));
	l->loop = loop;
	l->protocol = protocol;
	l->evl = evconnlistener_new_bind(loop->base, accept_cb, l,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 511,
		(struct sockaddr *)&ss, (int)len);
	if (!l->evl && !address && errno == EAFNOSUPPORT) {
		/* No IPv6 on this host: fall back to IPv4 only. */
		len = daemon_listen_address(cfg, AF_INET, port, &ss);
		l->evl = evconnlistener_new_bind(loop->base, accept_cb, l,
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
	struct listener *listeners[LISTENERS_MAX];
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
	maybe_exit(rs->srv);
}

static void grace_expired_cb(evutil_socket_t fd, short what, void *arg)
{
	struct run_state *rs = arg;

	(void)fd;
	(void)what;
	log_warn("server", "event=shutdown_grace_expired connections=%u",
		net_house_connections(rs->srv->house));
	event_base_loopexit(rs->srv->base, NULL);
}

static void stop_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct run_state *rs = arg;
	struct daemon *srv = rs->srv;

	(void)what;
	if (srv->stopping)
		return;
	log_info("server", "event=stopping signal=%d connections=%u", (int)sig,
		net_house_connections(srv->house));
	srv->stopping = true;
	if (srv->queue)
		queue_stop(srv->queue);
	for (size_t i = 0; i < rs->listener_count; i++) {
		evconnlistener_free(rs->listeners[i]->evl);
		free(rs->listeners[i]);
	}
	rs->listener_count = 0;
	/* Ask each session to finish. */
	net_loop_stop(&srv->loop);
	struct timeval grace = {SHUTDOWN_GRACE_SECONDS, 0};
	rs->grace_timer = evtimer_new(srv->base, grace_expired_cb, rs);
	evtimer_add(rs->grace_timer, &grace);
	struct timeval poll = {0, 100000};
	rs->wait_timer = event_new(srv->base, -1, EV_PERSIST, wait_queue_cb, rs);
	event_add(rs->wait_timer, &poll);
	maybe_exit(srv);
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
	net_house_set_generation(srv->house, gen);
	generation_unref(old);
	log_info("server", "event=reloaded domains=%zu tls=%s", gen->cfg.server_count,
		tls_available(gen->tls) ? "yes" : "no");
}

/* Opens each protocol's port on loop (each loop will have its own, SO_REUSEPORT, when there
 * are several). False when a port that must open did not. */
static bool listen_all(struct run_state *rs, struct net_loop *loop, const struct config *cfg,
	const struct generation *gen, const struct net_protocol *const *protocols)
{
	for (size_t i = 0; protocols[i]; i++) {
		const struct net_protocol *protocol = protocols[i];
		bool optional = false;
		int port = protocol->port(cfg, protocol, &optional);
		if (port == 0)
			continue;
		if (protocol->tls_start == NET_TLS_IMPLICIT && !tls_available(gen->tls)) {
			/* Implicit TLS needs a certificate; say so instead of failing every client. */
			log_warn("server", "event=listener_skipped key=%s reason=no_certificate",
				protocol->port_key);
			continue;
		}
		if (rs->listener_count == LISTENERS_MAX)
			fatal("event=too_many_listeners");
		struct listener *l = listen_on(loop, cfg, protocol, port, optional);
		if (!l && optional)
			continue;
		if (!l)
			return false;
		rs->listeners[rs->listener_count++] = l;
	}
	return true;
}

int daemon_run(struct config *loaded, const char *config_path,
	const struct net_protocol *const *protocols)
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
	srv.workers = worker_pool_new(srv.base, WORKER_THREADS);
	/* The queue keeps the configuration it started with; its keys need a restart. */
	srv.queue_gen = generation_ref(srv.gen);
	srv.queue = queue_new(srv.base, cfg, srv.workers, err, sizeof(err));
	if (!srv.queue) {
		log_error("server", "event=queue_failed key=SpoolPath error=\"%s\"", err);
		goto out;
	}
	srv.house = net_house_new(srv.gen, srv.queue);
	net_loop_init(&srv.loop, srv.base, srv.workers, srv.house);
	srv.loop.emptied = loop_emptied;
	srv.loop.emptied_arg = &srv;
	if (!listen_all(&rs, &srv.loop, cfg, srv.gen, protocols))
		goto out;

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
	if (srv.loop.sheds)
		net_loop_destroy(&srv.loop);
	worker_pool_free(srv.workers);
	queue_free(srv.queue);
	generation_unref(srv.queue_gen);
	net_house_free(srv.house);
	generation_unref(srv.gen);
	event_base_free(srv.base);
	return status;
}
