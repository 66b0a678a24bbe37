/* daemon.h: the process around the protocol sessions: listening sockets, the connection
 * registry (total and per-IP caps, graceful shutdown), signals and the worker pool. */
#ifndef MAILPOPBOX_DAEMON_H
#define MAILPOPBOX_DAEMON_H

#include <netinet/in.h>
#include <stdbool.h>

#include "admission.h"
#include "config.h"

struct event_base;
struct generation;
struct queue;
struct tls_contexts;
struct worker_pool;

/* Every live client connection embeds one of these, so the server can count connections and
 * ask each to stop on SIGTERM. */
struct daemon_conn {
	struct daemon_conn *prev, *next;
	char ip[INET6_ADDRSTRLEN];
	/* The configuration (and keys) the connection started under; see generation.h. */
	struct generation *gen;
	/* Its place among the connection slots (admission.h). */
	struct admission_slot slot;
	/* Called once on shutdown: finish what must be finished (a DATA transfer), then close. */
	void (*shutdown)(struct daemon_conn *conn);
	/* Called when a full house sheds this connection (admission.h): says why it ends (SMTP
	 * 421 4.7.0) where the reply can be written at once, frees the connection, and returns
	 * the reason to log ("idle", "slow_data"); or returns NULL, leaving it untouched, when it
	 * cannot end now (a commit or password check is running, or it is closing already). */
	const char *(*shed)(struct daemon_conn *conn);
};

struct daemon {
	struct event_base *base;
	const struct config *cfg;      /* the current generation's config */
	struct generation *gen;        /* the current generation: new connections get it */
	const char *config_path;       /* re-read on SIGHUP */
	struct worker_pool *workers;
	struct daemon_conn *conns; /* doubly linked list of live connections */
	unsigned conn_count;
	struct admission admission; /* slots per listener kind, and whom to shed */
	struct ip_count **ip_buckets;
	bool stopping;
	struct queue *queue;           /* the outbound queue */
	struct generation *queue_gen;  /* the generation the queue was started with */
	struct throttle *throttle;     /* failed logins per client IP */
	struct event *trim_timer;      /* gives freed memory back once connections are gone */
};

/* Runs the server until SIGTERM/SIGINT, taking over cfg (loaded from config_path, which
 * SIGHUP re-reads). Returns the process exit status. */
int daemon_run(struct config *cfg, const char *config_path);

/* Connection accounting for the session glue. daemon_conn_admit() fills conn->ip and returns
 * false (after logging) when a cap is reached; otherwise the connection is registered until
 * daemon_conn_release(). lane: ADMISSION_MX for the MX listener, ADMISSION_OWNER for POP3 and
 * submission. When the house (or the MX share) is full, admitting may first shed another
 * connection through its shed callback, which conn must have set. */
bool daemon_conn_admit(struct daemon *srv, struct daemon_conn *conn, const struct sockaddr *addr,
	enum admission_lane lane);
void daemon_conn_release(struct daemon *srv, struct daemon_conn *conn);
/* The connection made progress (a complete command line; DATA at SMTP_DATA_MIN_RATE): it is
 * the last to be shed. */
void daemon_conn_touch(struct daemon *srv, struct daemon_conn *conn);
/* Called by the glue when a connection finishes while the server is stopping. */
void daemon_conn_maybe_exit(struct daemon *srv);

/* Login bookkeeping shared by SMTP AUTH and POP3 (brute-force throttling, throttle.h).
 * daemon_login_failed() logs the line fail2ban matches ("module=M event=auth_failed
 * client=IP", then detail if not NULL) and returns the seconds to hold the reply back.
 * daemon_login_succeeded() also makes conn an owner's session, which is never shed. */
unsigned daemon_login_failed(struct daemon *srv, const struct daemon_conn *conn,
	const char *module, const char *detail);
void daemon_login_succeeded(struct daemon *srv, struct daemon_conn *conn);
/* True while conn's address is locked out (logs event=auth_blocked). */
bool daemon_login_blocked(struct daemon *srv, const struct daemon_conn *conn, const char *module);

/* The address a listener binds for port: ListenAddress, or all addresses of family
 * (AF_INET6 means dual-stack). Shared with `mailpopbox check`. */
socklen_t daemon_listen_address(const struct config *cfg, int family, int port,
	struct sockaddr_storage *ss);

/* Where the queue lives when SpoolPath is not set and its default cannot be made or written
 * (an original config run without root): inside the first maildrop. Newly allocated. Shared
 * with `mailpopbox check`. */
char *daemon_fallback_spool_path(const struct config *cfg);

/* A short random-looking id for logs and Received headers, unique within the process. */
void daemon_new_id(char *buf, size_t size);

#endif
