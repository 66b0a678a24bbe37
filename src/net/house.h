/* net/house.h: what every event loop shares: the connection slots (total and per-IP caps, the
 * owner's share and shedding, admission.h), the login throttle (throttle.h), the current
 * configuration generation (generation.h) and the outbound queue. Connections reach them
 * through these functions only, never through fields, so the house can be locked or sharded
 * when sessions run on several loops. */
#ifndef MAILPOPBOX_NET_HOUSE_H
#define MAILPOPBOX_NET_HOUSE_H

#include <stdbool.h>

#include "admission.h"

struct generation;
struct net_conn;
struct net_house;
struct net_loop;
struct queue;

/* gen: the first generation (a reference is taken); queue may be NULL (tests). */
struct net_house *net_house_new(struct generation *gen, struct queue *queue);
void net_house_free(struct net_house *h);

/* The generation new connections get, with a reference for the caller. */
struct generation *net_house_generation(struct net_house *h);
/* SIGHUP: new connections get gen (a reference is taken); running ones keep theirs. */
void net_house_set_generation(struct net_house *h, struct generation *gen);
struct queue *net_house_queue(struct net_house *h);
/* Connections admitted and not yet released, on every loop. */
unsigned net_house_connections(struct net_house *h);

/* A slot for conn (on loop, its address in conn's ip) on lane, or false (logged) when a cap
 * is reached. A full house may first shed another connection: one of loop's at once
 * (net_conn_shed), another loop's through that loop (net_loop_post_shed). */
bool net_house_admit(struct net_house *h, struct net_conn *conn, struct net_loop *loop,
	enum admission_lane lane);
/* On conn's loop: the house named conn to make room for a client at for_ip. Shed unless it
 * logged in since; when it cannot end now, the next candidate is named (docs/architecture.md, Threading). */
void net_house_shed_request(struct net_house *h, struct net_conn *conn,
	const struct admission_shed *shed, const char *for_ip);
/* The log line of a shedding. */
void net_house_log_shed(const struct admission_shed *shed, const char *ip, const char *reason,
	const char *for_ip);
void net_house_release(struct net_house *h, struct net_conn *conn);
/* conn made progress: it is the last to be shed. */
void net_house_touch(struct net_house *h, struct net_conn *conn);

/* The login gate's bookkeeping (throttle.h), per client address. net_house_login_failed()
 * logs the line fail2ban matches ("module=M event=auth_failed client=IP", then detail when
 * not empty) and returns the seconds to hold the reply back; a success also makes conn an
 * owner's session, never shed. */
bool net_house_login_blocked(struct net_house *h, const struct net_conn *conn, const char *module);
unsigned net_house_login_failed(struct net_house *h, const struct net_conn *conn,
	const char *module, const char *detail);
void net_house_login_succeeded(struct net_house *h, struct net_conn *conn);

#endif
