/* generation.c: loading a configuration's keys and certificates as one unit, and sharing it by
 * reference count between the daemon and the connections that started under it. */
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
	gen->refs = 1;
	return gen;
}

struct generation *generation_ref(struct generation *gen)
{
	gen->refs++;
	return gen;
}

void generation_unref(struct generation *gen)
{
	if (!gen || --gen->refs > 0)
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
