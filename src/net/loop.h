/* net/loop.h: one event loop's share of the server: its libevent base, its worker pool and
 * the connections it runs; what all loops share is in net/house.h. Protocols plug in through
 * a table of struct net_protocol (one entry per listening port), handed to the daemon from
 * main.c, so nothing in net/ or the daemon knows a protocol by name. */
#ifndef MAILPOPBOX_NET_LOOP_H
#define MAILPOPBOX_NET_LOOP_H

#include <event2/util.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "admission.h"
#include "tls.h"

struct admission_shed;
struct config;
struct event_base;
struct inbox;
struct net_conn;
struct net_house;
struct worker_pool;

/* How a listener's connections begin. */
enum net_tls_start {
	NET_TLS_PLAIN,            /* in clear (the protocol may offer STARTTLS/STLS) */
	NET_TLS_IMPLICIT,         /* TLS first (RFC 8314); no listener without a certificate */
	NET_TLS_IMPLICIT_IF_CERT, /* TLS first when a certificate exists, else in clear */
};

/* One listening port of a protocol. */
struct net_protocol {
	const char *name;      /* for logs: "mx", "submission", "pop3s" */
	const char *port_key;  /* the config key naming the port: "SMTPPort" */
	int default_port;      /* the port the protocol is known by (25, 110, 993) */
	/* The port to listen on (0: none); set *optional (false on entry) when the config did
	 * not ask for it, so failing to bind it is a warning, not a reason not to start. */
	int (*port)(const struct config *cfg, const struct net_protocol *protocol,
		bool *optional);
	enum admission_lane lane;
	enum net_tls_start tls_start;
	enum tls_policy tls_policy;
	/* Written in clear when the house is full (nothing on a TLS connection). */
	const char *busy_reply;
	/* A new connection, admitted, plain I/O or the implicit TLS handshake under way: the
	 * glue attaches its handler (net_conn_attach) and sets its line limits; its greeting
	 * follows when the client may be greeted (NET_EVENT_GREETING). */
	void (*accept)(struct net_conn *c, const struct net_protocol *protocol);
};

struct net_conn_list {
	struct net_conn *first;
	unsigned count;
};

struct net_loop {
	struct event_base *base;
	struct worker_pool *workers;
	struct net_house *house;
	struct net_conn_list conns;
	struct inbox *sheds;   /* other loops' requests to shed one of ours */
	bool stopping;
	/* Called when the loop's last connection has gone (memory trim, exit when stopping). */
	void (*emptied)(struct net_loop *loop, void *arg);
	void *emptied_arg;
};

/* Needs evthread_use_pthreads() before base was made (other loops post to it). */
void net_loop_init(struct net_loop *loop, struct event_base *base, struct worker_pool *workers,
	struct net_house *house);
/* After the loop has ended; its connections are not freed. */
void net_loop_destroy(struct net_loop *loop);
/* A connection accepted on a listener of protocol: admitted (or refused with its busy
 * reply), then handed to protocol->accept. fd is non-blocking. */
void net_loop_accept(struct net_loop *loop, const struct net_protocol *protocol,
	evutil_socket_t fd, const struct sockaddr *addr);
/* Graceful stop: every connection is asked to finish (NET_EVENT_SHUTDOWN). */
void net_loop_stop(struct net_loop *loop);
/* From any thread: asks loop to shed the connection named by shed, for a client at for_ip. */
void net_loop_post_shed(struct net_loop *loop, const struct admission_shed *shed,
	const char *for_ip);

#endif
