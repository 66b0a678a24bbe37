/* generation.h: one loaded configuration with what was built from it: the TLS contexts and the
 * DKIM signers. SIGHUP makes a new generation for new connections; each connection keeps the
 * one it started with (reference counted), so a reload never changes a session midway and an
 * old generation is freed when its last connection ends. References are atomic, so a
 * connection may end on any event loop's thread; the current generation is read and replaced
 * through struct generation_current, which the loops share. */
#ifndef MAILPOPBOX_GENERATION_H
#define MAILPOPBOX_GENERATION_H

#include <stdatomic.h>
#include <stddef.h>

#include "config.h"
#include "measured_lock.h"

struct dkim_signer;
struct tls_contexts;

struct generation {
	struct config cfg;
	struct tls_contexts *tls;
	struct dkim_signer **signers; /* per Server (same index as cfg.servers), entries may be NULL */
	atomic_uint refs;
};

/* Builds a generation from cfg, taking it over (cfg is emptied) on success. Loads every
 * certificate and DKIM key; on any failure returns NULL with a one-line message in err and
 * leaves cfg to the caller. The result holds one reference. */
struct generation *generation_new(struct config *cfg, char *err, size_t errsz);
struct generation *generation_ref(struct generation *gen);
void generation_unref(struct generation *gen);
/* The DKIM signer of one of the generation's Servers, or NULL when it has no DKIM key. */
struct dkim_signer *generation_dkim_signer(const struct generation *gen,
	const struct server_config *server);

/* The generation new connections get, shared by every event loop. A loop takes a reference
 * for each new connection (generation_current_get); SIGHUP's handler installs the next one
 * (generation_current_set). The lock is held only to read or swap the pointer and count a
 * reference: loading certificates and freeing the old generation happen outside it. */
struct generation_current {
	struct measured_lock lock; /* guards gen */
	struct generation *gen;
};

/* Takes over the reference of gen. */
void generation_current_init(struct generation_current *cur, struct generation *gen);
/* Drops the current generation's reference (connections may still hold theirs). */
void generation_current_destroy(struct generation_current *cur);
/* A new reference to the current generation: generation_unref() it when done. */
struct generation *generation_current_get(struct generation_current *cur);
/* Makes gen (its reference taken over) the current generation for new connections. */
void generation_current_set(struct generation_current *cur, struct generation *gen);

#endif
