/* admission.c: the connection slots, their reserved share and the choice of whom to shed
 * when they are all taken; then the house: those, the per-IP counts and the hand-over of a
 * connection to shed to the loop it lives on, behind one lock (admission.h). */
#include "admission.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"

unsigned admission_reserved(unsigned max_connections)
{
	uint64_t share = ((uint64_t)max_connections * SERVER_RESERVED_CONNECTIONS_PERCENT + 99) / 100;

	if (max_connections == 0)
		return 0;
	return share < max_connections ? (unsigned)share : max_connections - 1;
}

unsigned admission_total(const struct admission *a)
{
	return a->count[ADMISSION_MX] + a->count[ADMISSION_OWNER];
}

enum admission_verdict admission_check(const struct admission *a, enum admission_lane lane,
	unsigned max_connections)
{
	unsigned mx = a->count[ADMISSION_MX] - a->doomed[ADMISSION_MX];
	unsigned total = admission_total(a) - a->doomed[ADMISSION_MX] - a->doomed[ADMISSION_OWNER];

	if (lane == ADMISSION_MX && mx >= max_connections - admission_reserved(max_connections))
		return ADMISSION_MX_FULL;
	if (total >= max_connections)
		return ADMISSION_FULL;
	return ADMISSION_ADMIT;
}

static void unlink_slot(struct admission *a, struct admission_slot *s)
{
	if (s->older)
		s->older->newer = s->newer;
	else
		a->oldest[s->lane] = s->newer;
	if (s->newer)
		s->newer->older = s->older;
	else
		a->newest[s->lane] = s->older;
	s->older = s->newer = NULL;
}

static void append_slot(struct admission *a, struct admission_slot *s)
{
	s->older = a->newest[s->lane];
	s->newer = NULL;
	if (s->older)
		s->older->newer = s;
	else
		a->oldest[s->lane] = s;
	a->newest[s->lane] = s;
}

void admission_add(struct admission *a, struct admission_slot *s, enum admission_lane lane,
	time_t now)
{
	s->lane = lane;
	s->active_at = now;
	s->listed = true;
	s->doomed = false;
	append_slot(a, s);
	a->count[lane]++;
}

void admission_remove(struct admission *a, struct admission_slot *s)
{
	admission_protect(a, s);
	a->count[s->lane]--;
}

void admission_doom(struct admission *a, struct admission_slot *s)
{
	if (s->doomed)
		return;
	s->doomed = true;
	a->doomed[s->lane]++;
}

void admission_spare(struct admission *a, struct admission_slot *s)
{
	if (!s->doomed)
		return;
	s->doomed = false;
	a->doomed[s->lane]--;
}

void admission_touch(struct admission *a, struct admission_slot *s, time_t now)
{
	s->active_at = now;
	if (!s->listed || a->newest[s->lane] == s)
		return;
	unlink_slot(a, s);
	append_slot(a, s);
}

void admission_protect(struct admission *a, struct admission_slot *s)
{
	admission_spare(a, s); /* an authenticated session is never shed */
	if (!s->listed)
		return;
	unlink_slot(a, s);
	s->listed = false;
}

void admission_walk_start(struct admission_walk *w, const struct admission *a,
	enum admission_verdict verdict, time_t now)
{
	w->next[ADMISSION_MX] = verdict == ADMISSION_ADMIT ? NULL : a->oldest[ADMISSION_MX];
	w->next[ADMISSION_OWNER] = verdict == ADMISSION_FULL ? a->oldest[ADMISSION_OWNER] : NULL;
	w->idle_since = now - SERVER_SHED_IDLE_SECONDS;
	w->spared_for = 0;
}

struct admission_slot *admission_walk_next(struct admission_walk *w)
{
	for (;;) {
		struct admission_slot *mx = w->next[ADMISSION_MX], *owner = w->next[ADMISSION_OWNER];
		struct admission_slot *pick =
			!owner || (mx && mx->active_at <= owner->active_at) ? mx : owner;
		/* The lists are ordered by active_at: past the first recent one there is no
		 * candidate. */
		if (!pick || pick->active_at > w->idle_since)
			return NULL;
		w->next[pick->lane] = pick->newer;
		/* Already named, or it declined for the same newcomer: the next one. */
		if (!pick->doomed && (w->spared_for == 0 || pick->spared_for != w->spared_for))
			return pick;
	}
}

/* ---- the house ---- */

#define IP_BUCKETS 256

struct admission_ip {
	struct admission_ip *next;
	unsigned count;
	char ip[INET6_ADDRSTRLEN];
};

static unsigned hash_ip(const char *ip)
{
	unsigned h = 5381;

	while (*ip)
		h = h * 33 + (unsigned char)*ip++;
	return h % IP_BUCKETS;
}

static struct admission_ip **find_ip(struct admission_house *h, const char *ip)
{
	struct admission_ip **p = &h->ip_buckets[hash_ip(ip)];

	while (*p && strcmp((*p)->ip, ip) != 0)
		p = &(*p)->next;
	return p;
}

void admission_house_init(struct admission_house *h)
{
	memset(h, 0, sizeof(*h));
	measured_lock_init(&h->lock, "admission");
	h->ip_buckets = xcalloc(IP_BUCKETS, sizeof(*h->ip_buckets));
}

void admission_house_destroy(struct admission_house *h)
{
	for (size_t i = 0; i < IP_BUCKETS; i++) {
		while (h->ip_buckets[i]) {
			struct admission_ip *next = h->ip_buckets[i]->next;
			free(h->ip_buckets[i]);
			h->ip_buckets[i] = next;
		}
	}
	free(h->ip_buckets);
	measured_lock_destroy(&h->lock);
}

static void house_add(struct admission_house *h, struct admission_slot *slot, const char *ip,
	enum admission_lane lane, time_t now)
{
	struct admission_ip **entry = find_ip(h, ip);

	if (!*entry) {
		*entry = xcalloc(1, sizeof(**entry));
		snprintf((*entry)->ip, sizeof((*entry)->ip), "%s", ip);
	}
	(*entry)->count++;
	slot->ip = *entry;
	admission_add(&h->lanes, slot, lane, now);
}

/* The first candidate of a walk for verdict, doomed and described in *shed; or NULL. */
static struct admission_slot *doom_candidate(struct admission_house *h,
	enum admission_verdict verdict, uint64_t for_serial, unsigned tries, time_t now,
	struct admission_shed *shed)
{
	struct admission_walk walk;

	admission_walk_start(&walk, &h->lanes, verdict, now);
	walk.spared_for = for_serial;
	struct admission_slot *victim = admission_walk_next(&walk);
	if (!victim)
		return NULL;
	admission_doom(&h->lanes, victim);
	*shed = (struct admission_shed){
		.owner = victim->owner,
		.serial = victim->serial,
		.for_serial = for_serial,
		.lane = victim->lane,
		.idle_seconds = (long)(now - victim->active_at),
		.tries = tries,
	};
	return victim;
}

enum admission_outcome admission_house_enter(struct admission_house *h,
	struct admission_slot *slot, const char *ip, enum admission_lane lane,
	const struct admission_limits *limits, time_t now, struct admission_shed *shed)
{
	enum admission_outcome outcome;

	measured_lock_acquire(&h->lock);
	if (slot->serial == 0)
		slot->serial = ++h->last_serial;
	struct admission_ip *entry = *find_ip(h, ip);
	enum admission_verdict verdict = admission_check(&h->lanes, lane, limits->max_connections);
	if (entry && entry->count >= limits->max_per_ip) {
		outcome = ADMISSION_REFUSED_PER_IP;
	} else if (verdict == ADMISSION_ADMIT) {
		house_add(h, slot, ip, lane, now);
		outcome = ADMISSION_ADMITTED;
	} else {
		struct admission_slot *victim = doom_candidate(h, verdict, slot->serial, 1, now, shed);
		if (!victim) {
			outcome = verdict == ADMISSION_MX_FULL ? ADMISSION_REFUSED_MX_FULL :
				ADMISSION_REFUSED_FULL;
		} else if (victim->owner == slot->owner) {
			shed->here = victim;
			outcome = ADMISSION_SHED_HERE;
		} else {
			/* Its loop closes it soon: the room is given now, not after a round trip. */
			shed->here = NULL;
			house_add(h, slot, ip, lane, now);
			outcome = ADMISSION_ADMITTED_SHED_THERE;
		}
	}
	measured_lock_release(&h->lock);
	return outcome;
}

/* slot could not be shed for the newcomer of serial for_serial: counted again, and no walk
 * for that newcomer names it again. Under the lock. */
static void spare(struct admission_house *h, struct admission_slot *slot, uint64_t for_serial)
{
	admission_spare(&h->lanes, slot);
	slot->spared_for = for_serial;
}

/* The refusal that stands once no candidate could be shed. */
static enum admission_outcome refusal(struct admission_house *h, enum admission_lane lane,
	unsigned max_connections)
{
	measured_lock_acquire(&h->lock);
	enum admission_verdict verdict = admission_check(&h->lanes, lane, max_connections);
	measured_lock_release(&h->lock);
	return verdict == ADMISSION_MX_FULL ? ADMISSION_REFUSED_MX_FULL : ADMISSION_REFUSED_FULL;
}

enum admission_outcome admission_house_admit(struct admission_house *h,
	struct admission_slot *slot, const char *ip, enum admission_lane lane,
	const struct admission_limits *limits, time_t now, admission_shed_here_fn shed_here,
	void *ctx, struct admission_shed *shed)
{
	for (unsigned tries = 0;; tries++) {
		enum admission_outcome outcome =
			admission_house_enter(h, slot, ip, lane, limits, now, shed);
		if (outcome != ADMISSION_SHED_HERE)
			return outcome;
		if (shed_here(ctx, shed))
			continue; /* it left: there is room now */
		/* The next enter passes it over; naming a next candidate is that enter's job. */
		measured_lock_acquire(&h->lock);
		spare(h, shed->here, shed->for_serial);
		measured_lock_release(&h->lock);
		if (tries + 1 >= SERVER_SHED_CANDIDATES_MAX)
			return refusal(h, lane, limits->max_connections);
	}
}

void admission_house_leave(struct admission_house *h, struct admission_slot *slot)
{
	measured_lock_acquire(&h->lock);
	struct admission_ip *entry = slot->ip;
	if (entry && --entry->count == 0) {
		struct admission_ip **p = find_ip(h, entry->ip);
		*p = entry->next;
		free(entry);
	}
	slot->ip = NULL;
	admission_remove(&h->lanes, slot);
	measured_lock_release(&h->lock);
}

void admission_house_touch(struct admission_house *h, struct admission_slot *slot, time_t now)
{
	/* Only this thread writes active_at, so reading it unlocked is safe; within the same
	 * second the lane's order does not change. */
	if (slot->active_at == now)
		return;
	measured_lock_acquire(&h->lock);
	admission_touch(&h->lanes, slot, now);
	measured_lock_release(&h->lock);
}

void admission_house_protect(struct admission_house *h, struct admission_slot *slot)
{
	measured_lock_acquire(&h->lock);
	admission_protect(&h->lanes, slot);
	measured_lock_release(&h->lock);
}

bool admission_house_shed_stands(struct admission_house *h, struct admission_slot *slot)
{
	measured_lock_acquire(&h->lock);
	bool stands = slot->doomed;
	measured_lock_release(&h->lock);
	return stands;
}

bool admission_house_shed_declined(struct admission_house *h, struct admission_slot *slot,
	const struct admission_shed *request, unsigned max_connections, time_t now,
	struct admission_shed *next)
{
	const struct admission *a = &h->lanes;
	bool named = false;

	measured_lock_acquire(&h->lock);
	spare(h, slot, request->for_serial);
	unsigned present = admission_total(a) - a->doomed[ADMISSION_MX] - a->doomed[ADMISSION_OWNER];
	unsigned mx_present = a->count[ADMISSION_MX] - a->doomed[ADMISSION_MX];
	unsigned mx_max = max_connections - admission_reserved(max_connections);
	if (request->tries < SERVER_SHED_CANDIDATES_MAX && (present > max_connections ||
		mx_present > mx_max)) {
		enum admission_verdict verdict = present > max_connections ? ADMISSION_FULL :
			ADMISSION_MX_FULL;
		struct admission_slot *victim = doom_candidate(h, verdict, request->for_serial,
			request->tries + 1, now, next);
		if (victim) {
			next->here = NULL;
			named = true;
		}
	}
	measured_lock_release(&h->lock);
	return named;
}

unsigned admission_house_total(struct admission_house *h)
{
	measured_lock_acquire(&h->lock);
	unsigned total = admission_total(&h->lanes);
	measured_lock_release(&h->lock);
	return total;
}

unsigned admission_house_per_ip(struct admission_house *h, const char *ip)
{
	measured_lock_acquire(&h->lock);
	struct admission_ip *entry = *find_ip(h, ip);
	unsigned count = entry ? entry->count : 0;
	measured_lock_release(&h->lock);
	return count;
}
