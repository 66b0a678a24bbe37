/* generation.c: loading a configuration's keys and certificates as one unit, and sharing it by
 * (atomic) reference count between the daemon and the connections that started under it, on
 * whichever event loop they run. */
#include "generation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "mail/dkim.h"
#include "tls.h"

static void free_signers(struct dkim_signer **signers, size_t count)
{
	for (size_t i = 0; signers && i < count; i++)
		dkim_signer_free(signers[i]);
	free(signers);
}

struct generation *generation_new(struct config *cfg, char *err, size_t errsz)
{
	struct tls_contexts *tls = tls_contexts_load(cfg, err, errsz);
	struct dkim_signer **signers;

	if (!tls)
		return NULL;
	signers = xcalloc(cfg->server_count, sizeof(*signers));
	for (size_t i = 0; i < cfg->server_count; i++) {
		const struct server_config *server = &cfg->servers[i];
		char why[400];
		if (!server->dkim_key_path)
			continue;
		signers[i] = dkim_signer_new(server->domain, server->dkim_selector,
			server->dkim_key_path, why, sizeof(why));
		if (!signers[i]) {
			snprintf(err, errsz, "Servers[%zu].DKIMKeyPath: %s", i, why);
			free_signers(signers, cfg->server_count);
			tls_contexts_free(tls);
			return NULL;
		}
	}
	struct generation *gen = xcalloc(1, sizeof(*gen));
	gen->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	gen->tls = tls;
	gen->signers = signers;
	atomic_init(&gen->refs, 1);
	return gen;
}

struct generation *generation_ref(struct generation *gen)
{
	/* The caller holds a reference already: nothing to order against. */
	atomic_fetch_add_explicit(&gen->refs, 1, memory_order_relaxed);
	return gen;
}

void generation_unref(struct generation *gen)
{
	/* Release: this thread's uses happen before the free; acquire: the freeing thread sees
	 * every other thread's (the usual reference count, as in Boost's shared_ptr). */
	if (!gen || atomic_fetch_sub_explicit(&gen->refs, 1, memory_order_acq_rel) > 1)
		return;
	free_signers(gen->signers, gen->cfg.server_count);
	tls_contexts_free(gen->tls);
	config_free(&gen->cfg);
	free(gen);
}

struct dkim_signer *generation_dkim_signer(const struct generation *gen,
	const struct server_config *server)
{
	size_t i = (size_t)(server - gen->cfg.servers);

	return i < gen->cfg.server_count ? gen->signers[i] : NULL;
}

void generation_current_init(struct generation_current *cur, struct generation *gen)
{
	measured_lock_init(&cur->lock, "generation");
	cur->gen = gen;
}

void generation_current_destroy(struct generation_current *cur)
{
	generation_unref(cur->gen);
	cur->gen = NULL;
	measured_lock_destroy(&cur->lock);
}

struct generation *generation_current_get(struct generation_current *cur)
{
	measured_lock_acquire(&cur->lock);
	/* Counted under the lock: a concurrent set cannot drop the last reference first. */
	struct generation *gen = generation_ref(cur->gen);
	measured_lock_release(&cur->lock);
	return gen;
}

void generation_current_set(struct generation_current *cur, struct generation *gen)
{
	measured_lock_acquire(&cur->lock);
	struct generation *old = cur->gen;
	cur->gen = gen;
	measured_lock_release(&cur->lock);
	generation_unref(old); /* may free keys and certificates: not under the lock */
}
