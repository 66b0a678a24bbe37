/* net/house.c: the connection slots with their total and per-IP caps and shedding, the login
 * throttle, the current generation and the queue: what every event loop shares. */
#include "net/house.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bounds.h"
#include "generation.h"
#include "log.h"
#include "net/conn.h"
#include "throttle.h"

#define IP_BUCKETS 256

struct ip_count {
	struct ip_count *next;
	unsigned count;
	char ip[INET6_ADDRSTRLEN];
};

struct net_house {
	struct generation *gen;      /* the current generation: new connections get it */
	struct queue *queue;
	struct admission admission;  /* slots per lane, and whom to shed */
	struct ip_count *ip_buckets[IP_BUCKETS];
	unsigned conn_count;
	struct throttle *throttle;   /* failed logins per client IP */
};

struct net_house *net_house_new(struct generation *gen, struct queue *queue)
{
	struct net_house *h = xcalloc(1, sizeof(*h));
	const struct config *cfg = &gen->cfg;

	h->gen = generation_ref(gen);
	h->queue = queue;
	/* The throttle's keys need a restart (daemon.c warns when a reload changes them). */
	h->throttle = throttle_new(cfg->auth_max_failures, cfg->auth_failure_window,
		cfg->auth_lockout);
	return h;
}

void net_house_free(struct net_house *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < IP_BUCKETS; i++) {
		while (h->ip_buckets[i]) {
			struct ip_count *next = h->ip_buckets[i]->next;
			free(h->ip_buckets[i]);
			h->ip_buckets[i] = next;
		}
	}
	throttle_free(h->throttle);
	generation_unref(h->gen);
	free(h);
}

struct generation *net_house_generation(struct net_house *h)
{
	return generation_ref(h->gen);
}

void net_house_set_generation(struct net_house *h, struct generation *gen)
{
	struct generation *old = h->gen;

	h->gen = generation_ref(gen);
	generation_unref(old);
}

struct queue *net_house_queue(struct net_house *h)
{
	return h->queue;
}

unsigned net_house_connections(struct net_house *h)
{
	return h->conn_count;
}

static unsigned hash_ip(const char *ip)
{
	unsigned h = 5381;

	while (*ip)
		h = h * 33 + (unsigned char)*ip++;
	return h % IP_BUCKETS;
}

static struct ip_count **find_ip(struct net_house *h, const char *ip)
{
	struct ip_count **p = &h->ip_buckets[hash_ip(ip)];

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
static bool shed_one(struct net_house *h, enum admission_verdict verdict, const char *new_ip)
{
	time_t now = monotonic_seconds();
	struct admission_walk walk;

	admission_walk_start(&walk, &h->admission, verdict, now);
	for (unsigned i = 0; i < SERVER_SHED_CANDIDATES_MAX; i++) {
		struct admission_slot *slot = admission_walk_next(&walk);
		if (!slot)
			return false;
		struct net_conn *victim = net_conn_from_slot(slot);
		char ip[INET6_ADDRSTRLEN];
		long idle = (long)(now - slot->active_at);
		const char *lane = slot->lane == ADMISSION_MX ? "mx" : "owner";
		snprintf(ip, sizeof(ip), "%s", net_conn_ip(victim)); /* freed when it is shed */
		const char *reason = net_conn_shed(victim);
		if (reason) {
			log_warn("server", "event=shed client=%s reason=%s idle_seconds=%ld lane=%s "
				"for=%s", ip, reason, idle, lane, new_ip);
			return true;
		}
	}
	return false;
}

bool net_house_admit(struct net_house *h, struct net_conn *conn, enum admission_lane lane)
{
	const struct config *cfg = &h->gen->cfg;
	const char *ip = net_conn_ip(conn);
	struct ip_count **slot = find_ip(h, ip);

	if (*slot && (*slot)->count >= cfg->max_connections_per_ip) {
		log_warn("server", "event=connection_refused client=%s reason=max_connections_per_ip",
			ip);
		return false;
	}
	/* A full house sheds a connection that holds its slot without using it, rather than
	 * turning away the owner or a mail server trickled out by such connections. */
	enum admission_verdict verdict = admission_check(&h->admission, lane,
		cfg->max_connections);
	if (verdict != ADMISSION_ADMIT && shed_one(h, verdict, ip))
		verdict = admission_check(&h->admission, lane, cfg->max_connections);
	if (verdict != ADMISSION_ADMIT) {
		log_warn("server", "event=connection_refused client=%s reason=%s", ip,
			verdict == ADMISSION_MX_FULL ? "max_connections_mx" : "max_connections");
		return false;
	}
	slot = find_ip(h, ip); /* shedding may have changed the bucket */
	if (!*slot) {
		*slot = xcalloc(1, sizeof(**slot));
		snprintf((*slot)->ip, sizeof((*slot)->ip), "%s", ip);
	}
	(*slot)->count++;
	h->conn_count++;
	admission_add(&h->admission, net_conn_slot(conn), lane, monotonic_seconds());
	return true;
}

void net_house_release(struct net_house *h, struct net_conn *conn)
{
	struct ip_count **slot = find_ip(h, net_conn_ip(conn));

	if (*slot && --(*slot)->count == 0) {
		struct ip_count *dead = *slot;
		*slot = dead->next;
		free(dead);
	}
	h->conn_count--;
	admission_remove(&h->admission, net_conn_slot(conn));
}

void net_house_touch(struct net_house *h, struct net_conn *conn)
{
	admission_touch(&h->admission, net_conn_slot(conn), monotonic_seconds());
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
	if (locked)
		log_warn(module, "event=auth_lockout client=%s seconds=%u", ip,
			h->gen->cfg.auth_lockout);
	return delay;
}

void net_house_login_succeeded(struct net_house *h, struct net_conn *conn)
{
	throttle_success(h->throttle, net_conn_ip(conn));
	admission_protect(&h->admission, net_conn_slot(conn));
}
