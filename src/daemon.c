/* daemon.c: the process: configuration generations (SIGHUP reload), a listening socket for
 * each protocol port handed in from main.c, one event loop thread per core running the
 * connections (net/loop.h), the outbound queue on the main thread, the push threads
 * (push/push.h), SIGTERM/SIGINT graceful stop and privilege drop. */
#include "daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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
#include "inbox.h"
#include "net/house.h"
#include "net/loop.h"
#include "privileges.h"
#include "push/push.h"
#include "queue/queue.h"
#include "sandbox.h"
#include "verify/dkim_verify.h"
#include "verify/dmarc.h"
#include "store/maildrop.h"
#include "tls.h"
#include "worker.h"

/* At most this many listening ports. */
#define LISTENERS_MAX 16

struct loop_thread;

/* One listening socket of a protocol, on one loop. */
struct listener {
	struct loop_thread *lt;
	const struct net_protocol *protocol;
	struct evconnlistener *evl;
};

/* One event loop and the thread that runs it: its own base, worker pool, connections, and a
 * listener on each port's shared socket. */
struct loop_thread {
	struct daemon *srv;
	unsigned index;
	struct event_base *base;
	struct worker_pool *workers;
	struct net_loop loop;
	pthread_t thread;
	bool started;
	struct listener *listeners[LISTENERS_MAX];
	size_t listener_count;
	unsigned long accepted;        /* connections run, for the stop line */
	struct inbox *handoff;         /* connections another loop accepted for this one */
	struct event *idle_poll;       /* while stopping: polls for the end of its work */
	atomic_bool idle;              /* stopping, and no connection or job left */
};

struct daemon {
	struct event_base *base;       /* the main thread's: signals, the queue */
	const struct config *cfg;      /* the current generation's config */
	struct generation *gen;        /* the current generation */
	const char *config_path;       /* re-read on SIGHUP */
	struct worker_pool *workers;   /* the queue's */
	struct net_house *house;       /* what the loops share */
	struct loop_thread *loops;
	unsigned loop_count;
	/* The listening sockets, one per port, shared by every loop's listener: bound once,
	 * without SO_REUSEPORT, so a port another process holds fails as it always did. */
	evutil_socket_t sockets[LISTENERS_MAX];
	size_t socket_count;
	atomic_bool sockets_shut;      /* stopping: they refuse connections, accept(2) fails */
	atomic_uint next_loop;         /* round robin: the loop the next connection goes to */
	bool stopping;
	struct queue *queue;           /* the outbound queue */
	struct generation *queue_gen;  /* the generation the queue was started with */
	struct event *trim_timer;      /* gives freed memory back once connections are gone */
	struct push_engine *push;      /* a thread per Destination */
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

/* Ends every loop and the main one (from any thread). */
static void exit_all(struct daemon *srv)
{
	for (unsigned i = 0; i < srv->loop_count; i++)
		event_base_loopexit(srv->loops[i].base, NULL);
	event_base_loopexit(srv->base, NULL);
}

/* On the main thread, once stopping: the process ends when no loop has a connection or a job
 * left and the queue's runs and jobs are done. */
static void maybe_exit(struct daemon *srv)
{
	bool idle = true;

	if (!srv->stopping)
		return;
	for (unsigned i = 0; i < srv->loop_count; i++)
		idle = idle && atomic_load(&srv->loops[i].idle);
	if (idle && net_house_connections(srv->house) == 0 &&
	    worker_pool_pending(srv->workers) == 0 && (!srv->queue || queue_idle(srv->queue)) &&
	    push_engine_stopped(srv->push))
		exit_all(srv);
}

/* On a loop's thread, once stopping: whether it has anything left to finish. */
static void loop_check_idle(struct loop_thread *lt)
{
	if (!lt->loop.stopping || atomic_load(&lt->idle) || lt->loop.conns.count > 0 ||
	    worker_pool_pending(lt->workers) > 0)
		return;
	atomic_store(&lt->idle, true);
	event_del(lt->idle_poll);
}

static void idle_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	loop_check_idle(arg);
}

/* A loop's last connection has gone (on that loop's thread). */
static void loop_emptied(struct net_loop *loop, void *arg)
{
	struct loop_thread *lt = arg;
	struct daemon *srv = lt->srv;

	(void)loop;
	if (srv->trim_timer) {
		struct timeval later = {MEMORY_TRIM_IDLE_SECONDS, 0};
		evtimer_add(srv->trim_timer, &later); /* (re)started by each last connection */
	}
	loop_check_idle(lt);
}

/* A connection accepted on one loop for another. */
struct handoff {
	const struct net_protocol *protocol;
	evutil_socket_t fd;
	struct sockaddr_storage addr;
};

static void handoff_cb(void *ctx, void *item)
{
	struct loop_thread *lt = ctx;
	struct handoff *h = item;

	lt->accepted++;
	net_loop_accept(&lt->loop, h->protocol, h->fd, (struct sockaddr *)&h->addr);
	free(h);
}

static void handoff_discard(void *item)
{
	struct handoff *h = item;

	evutil_closesocket(h->fd);
	free(h);
}

/* Whichever loop the kernel woke first accepts; the connection then goes to the loops in
 * turn. Left to the kernel, an idle loop woken first would take nearly all of them (the
 * epoll sets on one socket are woken in order); SO_REUSEPORT would spread them but let
 * another process of the same user bind the port too. */
static void accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *addr,
	int addrlen, void *arg)
{
	struct listener *l = arg;
	struct daemon *srv = l->lt->srv;
	unsigned target = atomic_fetch_add(&srv->next_loop, 1) % srv->loop_count;

	(void)evl;
	if (target == l->lt->index) {
		l->lt->accepted++;
		net_loop_accept(&l->lt->loop, l->protocol, fd, addr);
		return;
	}
	struct handoff *h = xcalloc(1, sizeof(*h));
	h->protocol = l->protocol;
	h->fd = fd;
	memcpy(&h->addr, addr, (size_t)addrlen < sizeof(h->addr) ? (size_t)addrlen :
		sizeof(h->addr));
	inbox_post(srv->loops[target].handoff, h);
}

static void accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct listener *l = arg;

	(void)evl;
	if (atomic_load(&l->lt->srv->sockets_shut))
		return; /* stopping: EINVAL until this loop frees its listener, a moment later */
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

static struct listener *listener_new(struct loop_thread *lt,
	const struct net_protocol *protocol)
{
	struct listener *l = xcalloc(1, sizeof(*l));

	l->lt = lt;
	l->protocol = protocol;
	return l;
}

static void listener_add(struct loop_thread *lt, struct listener *l)
{
	evconnlistener_set_error_cb(l->evl, accept_error_cb);
	lt->listeners[lt->listener_count++] = l;
}

/* Binds the port on the first loop; optional: the port is a default the config did not ask
 * for, so failing to bind it is a warning, not a reason not to start. The socket is not
 * closed with the listener: every loop listens on it (share_socket), and the main thread
 * closes it once the loops have ended (loops_free). */
static evutil_socket_t listen_on(struct loop_thread *lt, const struct config *cfg,
	const struct net_protocol *protocol, int port, bool optional)
{
	struct sockaddr_storage ss;
	const char *address = cfg->listen_address;
	const char *name = protocol->port_key;
	/* All addresses: a dual-stack IPv6 socket also takes IPv4 clients. */
	int family = address && !strchr(address, ':') ? AF_INET : AF_INET6;
	socklen_t len = daemon_listen_address(cfg, family, port, &ss);
	const unsigned flags = LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;

	struct listener *l = listener_new(lt, protocol);
	l->evl = evconnlistener_new_bind(lt->base, accept_cb, l, flags, 511,
		(struct sockaddr *)&ss, (int)len);
	if (!l->evl && !address && errno == EAFNOSUPPORT) {
		/* No IPv6 on this host: fall back to IPv4 only. */
		len = daemon_listen_address(cfg, AF_INET, port, &ss);
		l->evl = evconnlistener_new_bind(lt->base, accept_cb, l, flags, 511,
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
		return -1;
	}
	listener_add(lt, l);
	evutil_socket_t fd = evconnlistener_get_fd(l->evl);
	/* Replies are small and end a client's wait: do not let Nagle hold the last segment
	 * back until the client's delayed ACK (about 40 ms per reply). Set on the listening
	 * socket, Linux gives it to every accepted one (a system call less per connection). */
	int one = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		log_warn("server", "event=nodelay_failed key=%s error=\"%s\"", name, strerror(errno));
	log_info("server", "event=listening key=%s address=%s port=%d", name,
		address ? address : "*", port);
	return fd;
}

/* Another loop listens on the same socket: the kernel wakes the loops waiting on it and one
 * accept(2) wins (the others get EAGAIN, which libevent ignores). No SO_REUSEPORT, so the
 * port stays this process's alone. */
static void share_socket(struct loop_thread *lt, const struct net_protocol *protocol,
	evutil_socket_t fd)
{
	struct listener *l = listener_new(lt, protocol);

	/* Backlog 0: the socket already listens. */
	l->evl = evconnlistener_new(lt->base, accept_cb, l, LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (!l->evl)
		fatal("event=listener_failed key=%s", protocol->port_key);
	listener_add(lt, l);
}

struct run_state {
	struct daemon *srv;
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
	exit_all(rs->srv);
}

/* On a loop's thread, woken by the main thread: stop listening, ask each session to finish,
 * and watch for the end of its work. */
static void loop_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loop_thread *lt = arg;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < lt->listener_count; i++) {
		evconnlistener_free(lt->listeners[i]->evl);
		free(lt->listeners[i]);
	}
	lt->listener_count = 0;
	net_loop_stop(&lt->loop);
	struct timeval poll = {0, 100000};
	event_add(lt->idle_poll, &poll);
	loop_check_idle(lt);
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
	/* Each push thread ends after its current step (bounded by the transport's deadlines). */
	push_engine_stop(srv->push);
	/* New clients are refused from now on, as when the sockets closed; the descriptors stay
	 * open until the loops have ended, so no loop's epoll set can meet their numbers reused. */
	atomic_store(&srv->sockets_shut, true);
	for (size_t i = 0; i < srv->socket_count; i++)
		shutdown(srv->sockets[i], SHUT_RDWR);
	/* Each loop stops its listeners and asks its sessions to finish, on its own thread. */
	struct timeval now = {0, 0};
	for (unsigned i = 0; i < srv->loop_count; i++)
		if (event_base_once(srv->loops[i].base, -1, EV_TIMEOUT, loop_stop_cb,
			&srv->loops[i], &now) != 0)
			fatal("event=event_once_failed");
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
	if (rs->srv->stopping)
		return;
	if (rs->srv->queue)
		queue_flush(rs->srv->queue);
	/* `mailpopbox queue --flush` means the pushes too: retry now, whatever the backoff. */
	push_engine_flush(rs->srv->push);
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

/* Whether dir is base or lies beneath it (what a Landlock path-beneath rule allows). */
static bool beneath(const char *dir, const char *base)
{
	size_t len = strlen(base);

	while (len > 1 && base[len - 1] == '/')
		len--;
	return strncmp(dir, base, len) == 0 && (dir[len] == '\0' || dir[len] == '/');
}

/* The sandbox was made at start from the directories known then (sandbox.c); a push
 * Destination's file elsewhere after a reload cannot be read until a restart: say so. */
static void warn_destination_files(const struct config *old, const char *config_path,
	const struct server_config *s, size_t index)
{
	const struct destination_config *d = s->destination;
	const char *keys[] = {"OAuthClientFile", "OAuthTokenFile", "TLSCAFile"};
	const char *paths[] = {d ? d->oauth_client_file : NULL, d ? d->oauth_token_file : NULL,
		d ? d->tls_ca_file : NULL};
	char *config_dir = fs_parent_directory(config_path);

	for (size_t f = 0; f < 3; f++) {
		if (!paths[f])
			continue;
		char *dir = fs_parent_directory(paths[f]);
		/* The token file is written: only writable directories will do. */
		bool written = f == 1;
		bool allowed = beneath(dir, old->spool_path) || (!written &&
			(beneath(dir, config_dir) || beneath(dir, "/etc") || beneath(dir, "/usr")));
		for (size_t j = 0; j < old->server_count && !allowed; j++) {
			const struct destination_config *o = old->servers[j].destination;
			const char *known[] = {o ? o->oauth_client_file : NULL,
				o ? o->oauth_token_file : NULL, o ? o->tls_ca_file : NULL};
			allowed = beneath(dir, old->servers[j].maildrop_path);
			for (size_t k = 0; k < 3 && !allowed; k++) {
				if (!known[k] || (written && k != 1))
					continue;
				char *known_dir = fs_parent_directory(known[k]);
				allowed = beneath(dir, known_dir);
				free(known_dir);
			}
		}
		if (!allowed)
			log_warn("server", "event=reload_needs_restart "
				"key=Servers[%zu].Destination.%s reason=sandbox", index, keys[f]);
		free(dir);
	}
	free(config_dir);
}

/* Keys that only take effect at start (sockets, directories, identity, the queue and the
 * throttling table) are named in the log when a reload changes them. */
static void warn_restart_keys(const struct config *old, const struct config *now,
	const char *config_path)
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
		warn_destination_files(old, config_path, &now->servers[i], i);
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
	warn_restart_keys(&srv->queue_gen->cfg, &gen->cfg, srv->config_path);
	struct generation *old = srv->gen;
	srv->gen = gen;
	srv->cfg = &gen->cfg;
	net_house_set_generation(srv->house, gen);
	/* A changed Destination is taken by its push thread between two batches. The sandbox
	 * still has the start-up files: a Destination's new OAuth or CA files elsewhere need a
	 * restart (Landlock rules cannot be widened). */
	push_engine_reload(srv->push, &gen->cfg);
	generation_unref(old);
	log_info("server", "event=reloaded domains=%zu tls=%s", gen->cfg.server_count,
		tls_available(gen->tls) ? "yes" : "no");
}

/* Opens each protocol's port once, on the first loop, and lets every other loop listen on
 * the same socket. False when a port that must open did not. */
static bool listen_all(struct daemon *srv, const struct config *cfg, const struct generation *gen,
	const struct net_protocol *const *protocols)
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
		if (srv->socket_count == LISTENERS_MAX)
			fatal("event=too_many_listeners");
		evutil_socket_t fd = listen_on(&srv->loops[0], cfg, protocol, port, optional);
		if (fd < 0 && optional)
			continue;
		if (fd < 0)
			return false;
		srv->sockets[srv->socket_count++] = fd;
		for (unsigned j = 1; j < srv->loop_count; j++)
			share_socket(&srv->loops[j], protocol, fd);
	}
	return true;
}

/* One loop per online CPU, or MAILPOPBOX_LOOPS (tests, benchmarks); within 1..EVENT_LOOPS_MAX. */
static unsigned loops_wanted(void)
{
	const char *env = getenv("MAILPOPBOX_LOOPS");
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (env && *env) {
		char *end;
		errno = 0;
		long v = strtol(env, &end, 10);
		if (errno || *end || v < 1)
			log_warn("server", "event=loops_ignored value=\"%s\" reason=not_a_count", env);
		else
			n = v;
	}
	if (n < 1)
		n = 1;
	return n > EVENT_LOOPS_MAX ? EVENT_LOOPS_MAX : (unsigned)n;
}

/* An event base with the epoll changelist: it folds the event changes of one loop iteration
 * into at most one epoll_ctl(2) per socket; a bufferevent enables and disables reading and
 * writing several times per command (18 calls per inbound message without it, bench/profile).
 * Its documented hazard is descriptors cloned with dup(2), which are never registered; the
 * listening sockets every loop shares are one descriptor, closed only when no loop's epoll set
 * holds it. */
static struct event_base *base_new(void)
{
	struct event_config *event_cfg = event_config_new();

	if (!event_cfg)
		fatal("event=event_config_failed");
	event_config_set_flag(event_cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	struct event_base *base = event_base_new_with_config(event_cfg);
	event_config_free(event_cfg);
	if (!base)
		fatal("event=event_base_failed");
	return base;
}

static void loop_thread_init(struct daemon *srv, struct loop_thread *lt, unsigned index)
{
	lt->srv = srv;
	lt->index = index;
	lt->base = base_new();
	lt->workers = worker_pool_new(lt->base, WORKER_THREADS);
	net_loop_init(&lt->loop, lt->base, lt->workers, srv->house);
	lt->loop.emptied = loop_emptied;
	lt->loop.emptied_arg = lt;
	lt->idle_poll = event_new(lt->base, -1, EV_PERSIST, idle_poll_cb, lt);
	lt->handoff = inbox_new(lt->base, handoff_cb, lt);
	atomic_init(&lt->idle, false);
}

static void *loop_thread_main(void *arg)
{
	struct loop_thread *lt = arg;
	char name[16];

	snprintf(name, sizeof(name), "loop%u", lt->index);
	pthread_setname_np(pthread_self(), name);
	/* Runs until the main thread ends it (exit_all), also while it has nothing to watch. */
	event_base_loop(lt->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/* Starts every loop's thread; signals stay with the main thread (its threads, and their
 * workers, inherit the blocked mask). */
static void loops_start(struct daemon *srv)
{
	sigset_t all, old;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < srv->loop_count; i++) {
		struct loop_thread *lt = &srv->loops[i];
		int err = pthread_create(&lt->thread, NULL, loop_thread_main, lt);
		if (err != 0)
			fatal("event=thread_failed error=\"%s\"", strerror(err));
		lt->started = true;
		log_info("server", "event=loop_started loop=%u", i);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* After the main loop ended: each loop is ended and joined; then what its thread used is
 * freed (its connections are not, as when the grace time ran out), workers before the base
 * their completions are posted to. */
static void loops_free(struct daemon *srv)
{
	for (unsigned i = 0; i < srv->loop_count; i++) {
		struct loop_thread *lt = &srv->loops[i];
		if (!lt->started)
			continue;
		event_base_loopexit(lt->base, NULL);
		pthread_join(lt->thread, NULL);
		log_info("server", "event=loop_stopped loop=%u connections=%lu", i, lt->accepted);
	}
	for (unsigned i = 0; i < srv->loop_count; i++) {
		struct loop_thread *lt = &srv->loops[i];
		for (size_t j = 0; j < lt->listener_count; j++) {
			evconnlistener_free(lt->listeners[j]->evl);
			free(lt->listeners[j]);
		}
		inbox_free(lt->handoff, handoff_discard);
		worker_pool_free(lt->workers);
		net_loop_destroy(&lt->loop);
		event_free(lt->idle_poll);
		event_base_free(lt->base);
	}
	for (size_t i = 0; i < srv->socket_count; i++)
		evutil_closesocket(srv->sockets[i]);
	srv->socket_count = 0;
	free(srv->loops);
	srv->loops = NULL;
	srv->loop_count = 0;
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
	/* The public suffix list, read before the sandbox hides /usr/share. Without it DMARC
	 * cannot find organizational domains: the server still runs, DMARC says temperror. */
	if (cfg->verify_senders && verify_dmarc_init() != 0)
		log_warn("server", "event=dmarc_unavailable reason=\"public suffix list not read\"");
	/* libopendkim's shared handle, likewise before the sandbox (failure is logged by it:
	 * every message then says dkim=temperror). */
	if (cfg->verify_senders)
		verify_dkim_init();
	/* Keys and certificates are read; no thread exists yet, so every thread to come is
	 * confined too. */
	if (sandbox_apply(cfg, config_path) != 0) {
		generation_unref(srv.gen);
		return 1;
	}
	srv.base = base_new();
	srv.workers = worker_pool_new(srv.base, WORKER_THREADS);
	/* The queue keeps the configuration it started with; its keys need a restart. */
	srv.queue_gen = generation_ref(srv.gen);
	srv.queue = queue_new(srv.base, cfg, srv.workers, err, sizeof(err));
	if (!srv.queue) {
		log_error("server", "event=queue_failed key=SpoolPath error=\"%s\"", err);
		goto out;
	}
	srv.house = net_house_new(srv.gen, srv.queue);
	srv.loop_count = loops_wanted();
	srv.loops = xcalloc(srv.loop_count, sizeof(*srv.loops));
	for (unsigned i = 0; i < srv.loop_count; i++)
		loop_thread_init(&srv, &srv.loops[i], i);
	if (!listen_all(&srv, cfg, srv.gen, protocols))
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
	/* After the sandbox and the privilege drop, which the push threads inherit; after the
	 * tmp/ recovery, so they never see a half-delivered message. */
	srv.push = push_engine_start(cfg);
	loops_start(&srv);
	log_info("server", "event=started version=%s hostname=%s domains=%zu tls=%s loops=%u",
		MAILPOPBOX_VERSION, cfg->hostname, cfg->server_count,
		tls_available(srv.gen->tls) ? "yes" : "no", srv.loop_count);
	event_base_dispatch(srv.base);
	loops_free(&srv);
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
	loops_free(&srv);
	push_engine_free(srv.push);
	srv.push = NULL;
	worker_pool_free(srv.workers);
	queue_free(srv.queue);
	generation_unref(srv.queue_gen);
	net_house_free(srv.house);
	generation_unref(srv.gen);
	event_base_free(srv.base);
	return status;
}
