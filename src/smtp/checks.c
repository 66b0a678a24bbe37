/* smtp/checks.c: the DNSBL check of an MX client at connect, run as a job of its connection
 * (reading stops meanwhile, so no RCPT is answered before the verdict is in). A zone that
 * does not answer lists nobody (verify/dnsbl.h): a blocklist that is down never refuses mail. */
#include "smtp/checks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bounds.h"
#include "log.h"
#include "smtp/session.h"
#include "verify/dnsbl.h"
#include "verify/dnsq.h"

struct smtp_dnsbl_check {
	const struct config *cfg; /* the connection's generation's: lives as long as it */
	char client_ip[64];
	struct dnsbl_hit hit;
};

struct smtp_dnsbl_check *smtp_dnsbl_check_new(const struct config *cfg, const char *client_ip)
{
	struct smtp_dnsbl_check *c;

	if (cfg->dnsbl_zone_count == 0)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->cfg = cfg;
	snprintf(c->client_ip, sizeof(c->client_ip), "%s", client_ip);
	return c;
}

void smtp_dnsbl_check_run(struct smtp_dnsbl_check *c)
{
	struct dnsq_ctx dns;

	dnsq_ctx_init(&dns, c->cfg->dns_resolver, DNSBL_DEADLINE_SECONDS);
	verify_dnsbl(&dns, c->client_ip, c->cfg->dnsbl_zones, c->cfg->dnsbl_zone_count, &c->hit);
}

void smtp_dnsbl_check_finish(struct smtp_dnsbl_check *c, struct smtp_session *session)
{
	char reason[DNSBL_REASON_MAX + 8];

	if (c->hit.listed) {
		log_info("smtp", "event=dnsbl_listed client=%s zone=%s reason=%s", c->client_ip,
			c->hit.zone, log_quote(reason, sizeof(reason), c->hit.reason,
				strlen(c->hit.reason)));
		smtp_session_set_dnsbl(session, c->hit.zone, c->hit.reason);
	}
	free(c);
}
