/* verify/spf_dns.h: a libspf2 DNS layer over verify/dnsq.h, so SPF's queries keep to the
 * message's deadline, ask the DNSResolver and share the answer cache. */
#ifndef MAILPOPBOX_VERIFY_SPF_DNS_H
#define MAILPOPBOX_VERIFY_SPF_DNS_H

/* libspf2's headers use these without including them. */
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <spf2/spf.h>

#include "verify/dnsq.h"

/* Fills *layer (the caller's, nothing to free; libspf2 does not free a layer without a
 * destructor) to look names up through ctx, which must outlive it. */
void spf_dns_layer_init(SPF_dns_server_t *layer, const struct dnsq_ctx *ctx);

/* libspf2's form of answer, a lookup of domain for type made by layer: the records and the
 * h_errno code (NETDB_SUCCESS, NO_DATA, HOST_NOT_FOUND, TRY_AGAIN). The library frees it. */
SPF_dns_rr_t *spf_dns_rr_from_answer(SPF_dns_server_t *layer, const char *domain,
	ns_type type, const struct dnsq_answer *answer);

#endif
