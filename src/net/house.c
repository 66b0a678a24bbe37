/* net/house.c: the connection slots with their total and per-IP caps and shedding
 * (admission.h's house), the login throttle, the current generation and the queue: what
 * every event loop shares, each behind its own measured lock. */
#include "net/house.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "bounds.h"
#include "generation.h"
#include "log.h"
#include "net/conn.h"
#include "net/loop.h"
#include "throttle.h"

struct net_house {
	struct generation_current current; /* the generation new connections get */
	struct queue *queue;
	struct admission_house admission;  /* slots, per-IP counts, whom to shed */
	struct throttle *throttle;         /* failed logins per client IP */
};

struct net_house *net_house_new(struct generation *gen, struct queue *queue)
{
	struct net_house *h = xcalloc(1, sizeof(*h));
	const struct config *cfg = &gen->cfg;

	generation_current_init(&h->current, generation_ref(gen));
	h->queue = queue;
	admission_house_init(&h->admission);
	/* The throttle's keys need a restart (daemon.c warns when a reload changes them). */
	h->throttle = throttle_new(cfg->auth_max_failures, cfg->auth_failure_window,
		cfg->auth_lockout);
	return h;
}

void net_house_free(struct net_house *h)
{
	if (!h)
		return;
	/* How small the shared locks stayed (docs/architecture.md, Threading). */
	measured_lock_log(&h->admission.lock);
	measured_lock_log(throttle_lock(h->throttle));
	measured_lock_log(&h->current.lock);
	throttle_free(h->throttle);
	admission_house_destroy(&h->admission);
	generation_current_destroy(&h->current);
	free(h);
}

struct generation *net_house_generation(struct net_house *h)
{
	return generation_current_get(&h->current);
}

void net_house_set_generation(struct net_house *h, struct generation *gen)
{
	generation_current_set(&h->current, generation_ref(gen));
}

struct queue *net_house_queue(struct net_house *h)
{
	return h->queue;
}

unsigned net_house_connections(struct net_house *h)
{
	return admission_house_total(&h->admission);
}

/* Seconds on a clock that never goes back: the order of progress (admission.h). */
static time_t monotonic_seconds(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec;
}

void net_house_log_shed(const struct admission_shed *shed, const char *ip, const char *reason,
	const char *for_ip)
{
	log_warn("server", "event=shed client=%s reason=%s idle_seconds=%ld lane=%s for=%s", ip,
		reason, shed->idle_seconds, shed->lane == ADMISSION_MX ? "mx" : "owner", for_ip);
}

struct shed_context {
	const char *for_ip;
};

/* The house names a connection of this loop to make room: close it now, if it can end. */
static bool shed_here(void *arg, const struct admission_shed *shed)
{
	struct shed_context *ctx = arg;
	struct net_conn *victim = net_conn_from_slot(shed->here);
	char ip[INET6_ADDRSTRLEN];

	snprintf(ip, sizeof(ip), "%s", net_conn_ip(victim)); /* freed when it is shed */
	const char *reason = net_conn_shed(victim);
	if (reason)
		net_house_log_shed(shed, ip, reason, ctx->for_ip);
	return reason != NULL;
}

bool net_house_admit(struct net_house *h, struct net_conn *conn, struct net_loop *loop,
	enum admission_lane lane)
{
	struct generation *gen = generation_current_get(&h->current);
	struct admission_limits limits = {gen->cfg.max_connections,
		gen->cfg.max_connections_per_ip};
	const char *ip = net_conn_ip(conn);
	struct admission_slot *slot = net_conn_slot(conn);
	struct shed_context ctx = {ip};
	struct admission_shed shed;

	generation_unref(gen);
	slot->owner = loop;
	/* A full house sheds a connection that holds its slot without using it, rather than
	 * turning away the owner or a mail server trickled out by such connections. */
	enum admission_outcome outcome = admission_house_admit(&h->admission, slot, ip, lane,
		&limits, monotonic_seconds(), shed_here, &ctx, &shed);
	switch (outcome) {
	case ADMISSION_ADMITTED:
		return true;
	case ADMISSION_ADMITTED_SHED_THERE: /* only the victim's own loop may close it */
		net_loop_post_shed((struct net_loop *)shed.owner, &shed, ip);
		return true;
	case ADMISSION_REFUSED_PER_IP:
		log_warn("server", "event=connection_refused client=%s "
			"reason=max_connections_per_ip", ip);
		return false;
	default:
		log_warn("server", "event=connection_refused client=%s reason=%s", ip,
			outcome == ADMISSION_REFUSED_MX_FULL ? "max_connections_mx" :
			"max_connections");
		return false;
	}
}

void net_house_shed_request(struct net_house *h, struct net_conn *conn,
	const struct admission_shed *shed, const char *for_ip)
{
	struct admission_slot *slot = net_conn_slot(conn);
	char ip[INET6_ADDRSTRLEN];

	if (!admission_house_shed_stands(&h->admission, slot))
		return; /* it logged in since */
	snprintf(ip, sizeof(ip), "%s", net_conn_ip(conn));
	const char *reason = net_conn_shed(conn);
	if (reason) {
		net_house_log_shed(shed, ip, reason, for_ip);
		return;
	}
	struct generation *gen = generation_current_get(&h->current);
	struct admission_shed next;
	bool named = admission_house_shed_declined(&h->admission, slot, shed,
		gen->cfg.max_connections, monotonic_seconds(), &next);
	generation_unref(gen);
	if (named)
		net_loop_post_shed((struct net_loop *)next.owner, &next, for_ip);
}

void net_house_release(struct net_house *h, struct net_conn *conn)
{
	admission_house_leave(&h->admission, net_conn_slot(conn));
}

void net_house_touch(struct net_house *h, struct net_conn *conn)
{
	admission_house_touch(&h->admission, net_conn_slot(conn), monotonic_seconds());
}

bool net_house_login_blocked(struct net_house *h, const struct net_conn *conn, const char *module)
{
	if (!throttle_blocked(h->throttle, net_conn_ip(conn), time(NULL)))
		return false;
	log_warn(module, "event=auth_blocked client=%s", net_conn_ip(conn));
	return true;
}

unsigned net_house_login_failed(struct net_house *h, const struct net_conn *conn,
	const char *module, const char *detail)
{
	bool locked = false;
	const char *ip = net_conn_ip(conn);
	unsigned delay = throttle_failure(h->throttle, ip, time(NULL), &locked);

	log_warn(module, "event=auth_failed client=%s%s%s", ip, detail[0] ? " " : "", detail);
	if (locked) {
		struct generation *gen = generation_current_get(&h->current);
		log_warn(module, "event=auth_lockout client=%s seconds=%u", ip,
			gen->cfg.auth_lockout);
		generation_unref(gen);
	}
	return delay;
}

void net_house_login_succeeded(struct net_house *h, struct net_conn *conn)
{
	throttle_success(h->throttle, net_conn_ip(conn));
	admission_house_protect(&h->admission, net_conn_slot(conn));
}
