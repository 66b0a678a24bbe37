/* verify/dnsbl.h: DNS blocklists: the client's address looked up in each zone (RFC 5782:
 * reversed IPv4 octets or IPv6 nibbles, then the zone; an A record in 127.0.0.0/8 means
 * listed, the TXT record at the same name says why). Blocking: a worker. */
#ifndef MAILPOPBOX_VERIFY_DNSBL_H
#define MAILPOPBOX_VERIFY_DNSBL_H

#include <stdbool.h>
#include <stddef.h>

#include "bounds.h"
#include "verify/dnsq.h"

struct dnsbl_hit {
	bool listed;
	char zone[256];                   /* the first zone that lists the client */
	char reason[DNSBL_REASON_MAX];    /* its TXT record (printable ASCII only), or "" */
};

/* Asks the zones in order and stops at the first listing. A zone that fails to answer is
 * skipped (logged): a blocklist that is down never refuses mail. */
void verify_dnsbl(const struct dnsq_ctx *dns, const char *client_ip, char *const *zones,
	size_t zone_count, struct dnsbl_hit *out);

#endif
