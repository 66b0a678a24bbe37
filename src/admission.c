/* admission.c: the connection slots, their reserved share and the choice of whom to shed
 * when they are all taken (admission.h). */
#include "admission.h"

#include <stdint.h>

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
	if (lane == ADMISSION_MX &&
	    a->count[ADMISSION_MX] >= max_connections - admission_reserved(max_connections))
		return ADMISSION_MX_FULL;
	if (admission_total(a) >= max_connections)
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
	append_slot(a, s);
	a->count[lane]++;
}

void admission_remove(struct admission *a, struct admission_slot *s)
{
	admission_protect(a, s);
	a->count[s->lane]--;
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
}

struct admission_slot *admission_walk_next(struct admission_walk *w)
{
	struct admission_slot *mx = w->next[ADMISSION_MX], *owner = w->next[ADMISSION_OWNER];
	struct admission_slot *pick = !owner || (mx && mx->active_at <= owner->active_at) ? mx : owner;

	/* The lists are ordered by active_at: past the first recent one there is no candidate. */
	if (!pick || pick->active_at > w->idle_since)
		return NULL;
	w->next[pick->lane] = pick->newer;
	return pick;
}
