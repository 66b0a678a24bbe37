/* admission.h: who gets a connection slot when the house is full. MaxConnections slots in
 * all, of which a share (admission_reserved) only the owner's listeners (POP3, submission)
 * may take, so the MX port, open to anyone, never fills the house alone. When a connection
 * would be refused, the connection that has gone longest without progress (a complete
 * command line; DATA at SMTP_DATA_MIN_RATE or faster), if that is at least
 * SERVER_SHED_IDLE_SECONDS, is named to be shed instead; an authenticated session never is.
 * Pure: time is passed in and the caller closes what is named. Every operation is O(1): each
 * lane keeps its sheddable connections in a list ordered by last progress. */
#ifndef MAILPOPBOX_ADMISSION_H
#define MAILPOPBOX_ADMISSION_H

#include "bounds.h"

#include <stdbool.h>
#include <time.h>

enum admission_lane {
	ADMISSION_MX,    /* the MX listener: anyone may connect */
	ADMISSION_OWNER, /* POP3 and submission: where the owner logs in */
};
#define ADMISSION_LANES 2

/* Embedded in every admitted connection. */
struct admission_slot {
	struct admission_slot *older, *newer; /* in its lane's list while listed */
	enum admission_lane lane;
	bool listed;      /* may be shed: not an authenticated session */
	time_t active_at; /* last progress (admission counts as progress) */
};

struct admission {
	struct admission_slot *oldest[ADMISSION_LANES], *newest[ADMISSION_LANES];
	unsigned count[ADMISSION_LANES]; /* admitted connections, listed or not */
};

enum admission_verdict {
	ADMISSION_ADMIT,   /* there is room */
	ADMISSION_FULL,    /* all MaxConnections slots are taken: shed from either lane */
	ADMISSION_MX_FULL, /* the MX share is taken: shed an MX connection */
};

/* Slots the MX listener cannot take: SERVER_RESERVED_CONNECTIONS_PERCENT of max_connections,
 * rounded up, but never all of them. */
unsigned admission_reserved(unsigned max_connections);
unsigned admission_total(const struct admission *a);
/* Whether a connection on lane fits as things stand. */
enum admission_verdict admission_check(const struct admission *a, enum admission_lane lane,
	unsigned max_connections);

/* Counts s in its lane and lists it as the newest. */
void admission_add(struct admission *a, struct admission_slot *s, enum admission_lane lane,
	time_t now);
void admission_remove(struct admission *a, struct admission_slot *s);
/* s made progress: it becomes the newest of its lane (if still listed). */
void admission_touch(struct admission *a, struct admission_slot *s, time_t now);
/* s is an authenticated session: still counted, never shed. */
void admission_protect(struct admission *a, struct admission_slot *s);

/* The candidates for one shedding, longest without progress first, each without progress
 * for at least SERVER_SHED_IDLE_SECONDS. The walk stays valid while no slot is removed. */
struct admission_walk {
	struct admission_slot *next[ADMISSION_LANES];
	time_t idle_since; /* active_at at most this */
};
void admission_walk_start(struct admission_walk *w, const struct admission *a,
	enum admission_verdict verdict, time_t now);
struct admission_slot *admission_walk_next(struct admission_walk *w);

#endif
