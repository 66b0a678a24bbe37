/* generation.h: one loaded configuration with what was built from it: the TLS contexts and the
 * DKIM signers. SIGHUP makes a new generation for new connections; each connection keeps the
 * one it started with (reference counted), so a reload never changes a session midway and an
 * old generation is freed when its last connection ends. */
#ifndef MAILPOPBOX_GENERATION_H
#define MAILPOPBOX_GENERATION_H

#include <stddef.h>

#include "config.h"

struct dkim_signer;
struct tls_contexts;

struct generation {
	struct config cfg;
	struct tls_contexts *tls;
	struct dkim_signer **signers; /* per Server (same index as cfg.servers), entries may be NULL */
	unsigned refs;
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

#endif
