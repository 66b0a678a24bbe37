/* admission.h: who gets a connection slot when the house is full. MaxConnections slots in
 * all, of which a share (admission_reserved) only the owner's listeners (POP3, submission)
 * may take, so the MX port, open to anyone, never fills the house alone. When a connection
 * would be refused, the connection that has gone longest without progress (a complete
 * command line; DATA at SMTP_DATA_MIN_RATE or faster), if that is at least
 * SERVER_SHED_IDLE_SECONDS, is named to be shed instead; an authenticated session never is.
 * Time is passed in and the caller closes what is named. Every operation is O(1): each lane
 * keeps its sheddable connections in a list ordered by last progress.
 *
 * struct admission is the bookkeeping alone, for one thread. struct admission_house wraps it,
 * with the per-IP counts, behind one measured lock, for event loops on several threads: a
 * connection to shed may then live on another loop, and only that loop's thread may close
 * it, so the house names it (struct admission_shed: owner loop and serial) for the caller to
 * hand over. */
#ifndef MAILPOPBOX_ADMISSION_H
#define MAILPOPBOX_ADMISSION_H

#include "bounds.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "measured_lock.h"

enum admission_lane {
	ADMISSION_MX,    /* the MX listener: anyone may connect */
	ADMISSION_OWNER, /* POP3 and submission: where the owner logs in */
};
#define ADMISSION_LANES 2

struct admission_ip;

/* Embedded in every admitted connection. */
struct admission_slot {
	struct admission_slot *older, *newer; /* in its lane's list while listed */
	enum admission_lane lane;
	bool listed;      /* may be shed: not an authenticated session */
	bool doomed;      /* named to be shed, and counted as gone, until its loop has shed it */
	time_t active_at; /* last progress (admission counts as progress) */
	/* For the house only: */
	const void *owner;        /* the event loop the connection lives on (set by the caller) */
	uint64_t serial;          /* names it in a shed request; never reused */
	uint64_t spared_for;      /* it declined to be shed for the connection of this serial */
	struct admission_ip *ip;  /* its address's count */
};

struct admission {
	struct admission_slot *oldest[ADMISSION_LANES], *newest[ADMISSION_LANES];
	unsigned count[ADMISSION_LANES];  /* admitted connections, listed or not */
	unsigned doomed[ADMISSION_LANES]; /* of those, named to be shed: their room is given */
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
/* Whether a connection on lane fits as things stand (doomed slots counted as gone). */
enum admission_verdict admission_check(const struct admission *a, enum admission_lane lane,
	unsigned max_connections);

/* Counts s in its lane and lists it as the newest. */
void admission_add(struct admission *a, struct admission_slot *s, enum admission_lane lane,
	time_t now);
void admission_remove(struct admission *a, struct admission_slot *s);
/* s made progress: it becomes the newest of its lane (if still listed). */
void admission_touch(struct admission *a, struct admission_slot *s, time_t now);
/* s is an authenticated session: still counted, never shed (no longer doomed either). */
void admission_protect(struct admission *a, struct admission_slot *s);
/* s is named to be shed: its room is given away, and no walk names it again. */
void admission_doom(struct admission *a, struct admission_slot *s);
/* s could not be shed now (admission_doom undone). */
void admission_spare(struct admission *a, struct admission_slot *s);

/* The candidates for one shedding, longest without progress first, each without progress
 * for at least SERVER_SHED_IDLE_SECONDS, none doomed nor spared for spared_for (0: none).
 * The walk stays valid while no slot is removed. */
struct admission_walk {
	struct admission_slot *next[ADMISSION_LANES];
	time_t idle_since; /* active_at at most this */
	uint64_t spared_for;
};
void admission_walk_start(struct admission_walk *w, const struct admission *a,
	enum admission_verdict verdict, time_t now);
struct admission_slot *admission_walk_next(struct admission_walk *w);

/* ---- The house: the above plus per-IP counts, shared by event loops on several threads. */

struct admission_house {
	struct measured_lock lock; /* guards everything below, and every slot's fields */
	struct admission lanes;
	struct admission_ip **ip_buckets;
	uint64_t last_serial;
};

/* The caps, from the generation the accepting loop uses. */
struct admission_limits {
	unsigned max_connections;
	unsigned max_per_ip;
};

/* A connection to shed: the loop it lives on and its serial. Only that loop's thread may
 * look it up (by serial: it may have ended meanwhile) and close it. */
struct admission_shed {
	struct admission_slot *here; /* for ADMISSION_SHED_HERE only: the slot, on this thread */
	const void *owner;
	uint64_t serial;
	uint64_t for_serial;   /* the connection it makes room for */
	enum admission_lane lane;
	long idle_seconds;     /* for the log line */
	unsigned tries;        /* candidates named so far for this room */
};

enum admission_outcome {
	ADMISSION_ADMITTED,          /* counted until admission_house_leave */
	ADMISSION_REFUSED_PER_IP,    /* MaxConnectionsPerIP */
	ADMISSION_REFUSED_MX_FULL,   /* the MX share is taken, nobody to shed */
	ADMISSION_REFUSED_FULL,      /* every slot is taken, nobody to shed */
	/* Not admitted yet: *shed is on the caller's own loop. Shed it now (its slot is found
	 * by serial, or is the one the caller holds), then ask again; when it declines,
	 * admission_house_shed_declined() first. */
	ADMISSION_SHED_HERE,
	/* Admitted, in the room of *shed, which lives on another loop: post *shed to it. */
	ADMISSION_ADMITTED_SHED_THERE,
};

void admission_house_init(struct admission_house *h);
void admission_house_destroy(struct admission_house *h);
/* Admits slot (slot->owner set by the caller, the rest filled in here) for a client at ip
 * on lane, or says why not, or names whom to shed first (*shed). */
enum admission_outcome admission_house_enter(struct admission_house *h,
	struct admission_slot *slot, const char *ip, enum admission_lane lane,
	const struct admission_limits *limits, time_t now, struct admission_shed *shed);
/* admission_house_enter until the outcome is final: each ADMISSION_SHED_HERE goes to
 * shed_here (on this thread: it closes the connection of request->here, which leaves the
 * house, and returns true; or returns false when it cannot end now), at most
 * SERVER_SHED_CANDIDATES_MAX of them. Returns ADMITTED, ADMITTED_SHED_THERE (with *shed to
 * post) or a REFUSED outcome. */
typedef bool (*admission_shed_here_fn)(void *ctx, const struct admission_shed *request);
enum admission_outcome admission_house_admit(struct admission_house *h,
	struct admission_slot *slot, const char *ip, enum admission_lane lane,
	const struct admission_limits *limits, time_t now, admission_shed_here_fn shed_here,
	void *ctx, struct admission_shed *shed);
void admission_house_leave(struct admission_house *h, struct admission_slot *slot);
/* Progress; takes the lock at most once a second per connection. Owner's thread only. */
void admission_house_touch(struct admission_house *h, struct admission_slot *slot, time_t now);
void admission_house_protect(struct admission_house *h, struct admission_slot *slot);
/* On the owner's thread, for a slot found by a shed request's serial: whether it is still to
 * be shed (it may have logged in since; then nothing is to be done). */
bool admission_house_shed_stands(struct admission_house *h, struct admission_slot *slot);
/* The slot named by request could not be shed now. When the house is still over its caps
 * (the room was given to a connection on another loop), names the next candidate in *next
 * and returns true: hand it over like the first (at most SERVER_SHED_CANDIDATES_MAX tries). */
bool admission_house_shed_declined(struct admission_house *h, struct admission_slot *slot,
	const struct admission_shed *request, unsigned max_connections, time_t now,
	struct admission_shed *next);
unsigned admission_house_total(struct admission_house *h);
/* The connections counted for ip. */
unsigned admission_house_per_ip(struct admission_house *h, const char *ip);

#endif
