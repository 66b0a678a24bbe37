/* throttle.c: per-IP failed-login records in an open hash table with a fixed capacity, behind
 * one measured lock shared by the event loops. */
#include "throttle.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "measured_lock.h"

struct record {
	char ip[INET6_ADDRSTRLEN];
	unsigned failures;
	time_t first_failure;
	time_t last_seen;
	time_t locked_until;
};

struct throttle {
	struct measured_lock lock; /* guards records */
	struct record *records; /* THROTTLE_MAX_ENTRIES slots, ip[0] == '\0' when free */
	unsigned max_failures, window, lockout;
};

struct throttle *throttle_new(unsigned max_failures, unsigned window_seconds,
	unsigned lockout_seconds)
{
	struct throttle *t = xcalloc(1, sizeof(*t));

	t->records = xcalloc(THROTTLE_MAX_ENTRIES, sizeof(*t->records));
	t->max_failures = max_failures;
	t->window = window_seconds;
	t->lockout = lockout_seconds;
	measured_lock_init(&t->lock, "throttle");
	return t;
}

void throttle_free(struct throttle *t)
{
	if (!t)
		return;
	measured_lock_destroy(&t->lock);
	free(t->records);
	free(t);
}

static unsigned slot_of(const char *ip)
{
	unsigned h = 2166136261u;

	for (; *ip; ip++)
		h = (h ^ (unsigned char)*ip) * 16777619u;
	return h % THROTTLE_MAX_ENTRIES;
}

/* A record is stale once neither its window nor its lockout matters any more. */
static bool stale(const struct throttle *t, const struct record *r, time_t now)
{
	return r->ip[0] == '\0' ||
		(now >= r->locked_until && now - r->first_failure >= (time_t)t->window);
}

/* The record for ip, or NULL. Linear probing over a bounded run keeps lookups cheap. */
#define PROBE_LIMIT 32

static struct record *find(struct throttle *t, const char *ip)
{
	unsigned s = slot_of(ip);

	for (unsigned i = 0; i < PROBE_LIMIT; i++) {
		struct record *r = &t->records[(s + i) % THROTTLE_MAX_ENTRIES];
		if (r->ip[0] != '\0' && strcmp(r->ip, ip) == 0)
			return r;
	}
	return NULL;
}

/* A slot for a new record: a free or stale one in the probe run, else the stalest there. */
static struct record *claim(struct throttle *t, const char *ip, time_t now)
{
	unsigned s = slot_of(ip);
	struct record *oldest = NULL;

	for (unsigned i = 0; i < PROBE_LIMIT; i++) {
		struct record *r = &t->records[(s + i) % THROTTLE_MAX_ENTRIES];
		if (stale(t, r, now)) {
			oldest = r;
			break;
		}
		if (!oldest || r->last_seen < oldest->last_seen)
			oldest = r;
	}
	memset(oldest, 0, sizeof(*oldest));
	snprintf(oldest->ip, sizeof(oldest->ip), "%s", ip);
	return oldest;
}

bool throttle_blocked(struct throttle *t, const char *ip, time_t now)
{
	measured_lock_acquire(&t->lock);
	struct record *r = find(t, ip);
	bool blocked = r && now < r->locked_until;
	measured_lock_release(&t->lock);
	return blocked;
}

static unsigned record_failure(struct throttle *t, const char *ip, time_t now, bool *locked)
{
	struct record *r = find(t, ip);

	*locked = false;
	if (r && stale(t, r, now))
		memset(r, 0, sizeof(*r));
	if (!r || r->ip[0] == '\0') {
		r = claim(t, ip, now);
		r->first_failure = now;
	}
	r->failures++;
	r->last_seen = now;
	if (r->failures >= t->max_failures && now >= r->locked_until) {
		r->locked_until = now + (time_t)t->lockout;
		/* The lockout starts a fresh window: after it, the count begins again. */
		r->first_failure = r->locked_until;
		r->failures = 0;
		*locked = true;
	}
	unsigned delay = r->failures;
	return delay > THROTTLE_MAX_DELAY_SECONDS ? THROTTLE_MAX_DELAY_SECONDS : delay;
}

unsigned throttle_failure(struct throttle *t, const char *ip, time_t now, bool *locked)
{
	measured_lock_acquire(&t->lock);
	unsigned delay = record_failure(t, ip, now, locked);
	measured_lock_release(&t->lock);
	return delay;
}

void throttle_success(struct throttle *t, const char *ip)
{
	measured_lock_acquire(&t->lock);
	struct record *r = find(t, ip);
	if (r && r->locked_until == 0)
		memset(r, 0, sizeof(*r));
	else if (r)
		r->failures = 0;
	measured_lock_release(&t->lock);
}

struct measured_lock *throttle_lock(struct throttle *t)
{
	return &t->lock;
}

size_t throttle_entries(struct throttle *t)
{
	size_t n = 0;

	measured_lock_acquire(&t->lock);
	for (size_t i = 0; i < THROTTLE_MAX_ENTRIES; i++)
		n += t->records[i].ip[0] != '\0';
	measured_lock_release(&t->lock);
	return n;
}
