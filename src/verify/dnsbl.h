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

/* The name to ask of zone for client_ip (RFC 5782 2.1, 2.4): "4.3.2.1.zone" for 1.2.3.4, the
 * 32 nibbles of an IPv6 address in reverse, dot-separated, then the zone; an IPv4-mapped IPv6
 * address as the IPv4 address it is. Pure. false (out "") when client_ip is not an address or
 * the name would not fit out or a DNS name (253 octets). */
bool dnsbl_query_name(const char *client_ip, const char *zone, char *out, size_t outsz);

/* Asks the zones in order and stops at the first listing. A zone that fails to answer is
 * skipped (logged): a blocklist that is down never refuses mail. */
void verify_dnsbl(const struct dnsq_ctx *dns, const char *client_ip, char *const *zones,
	size_t zone_count, struct dnsbl_hit *out);

#endif
