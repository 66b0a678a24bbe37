/* verify/spf_dns.c: the libspf2 DNS layer that asks verify/dnsq.c (see spf_dns.h). Modelled
 * on libspf2's spf_dns_zone.c: each answer becomes an SPF_dns_rr_t of the record data the
 * interpreter reads. */
#include "verify/spf_dns.h"

#include <string.h>

#include "log.h"

/* The dnsq type for a libspf2 query type; 0 for a type we never ask. */
static enum dnsq_type dnsq_type_of(ns_type type)
{
	switch ((int)type) {
	case ns_t_a:
		return DNSQ_A;
	case ns_t_aaaa:
		return DNSQ_AAAA;
	case ns_t_mx:
		return DNSQ_MX;
	case ns_t_txt:
		return DNSQ_TXT;
	case ns_t_ptr:
		return DNSQ_PTR;
	default:
		return 0;
	}
}

static SPF_dns_stat_t herrno_of(enum dnsq_status status)
{
	switch (status) {
	case DNSQ_OK:
		return NETDB_SUCCESS;
	case DNSQ_NODATA:
		return NO_DATA;
	case DNSQ_NXDOMAIN:
		return HOST_NOT_FOUND;
	default:
		return TRY_AGAIN;
	}
}

static void rr_room(SPF_dns_rr_t *rr, int i, size_t size)
{
	if (SPF_dns_rr_buf_realloc(rr, i, size) != SPF_E_SUCCESS)
		fatal("event=out_of_memory where=spf_dns");
}

SPF_dns_rr_t *spf_dns_rr_from_answer(SPF_dns_server_t *layer, const char *domain,
	ns_type type, const struct dnsq_answer *answer)
{
	uint32_t ttl = UINT32_MAX;

	for (size_t i = 0; i < answer->count; i++)
		if (answer->rrs[i].ttl < ttl)
			ttl = answer->rrs[i].ttl;
	SPF_dns_stat_t herrno = herrno_of(answer->status);
	if (herrno == NETDB_SUCCESS && answer->count == 0)
		herrno = NO_DATA;
	SPF_dns_rr_t *rr = SPF_dns_rr_new_init(layer, domain, type,
		herrno == NETDB_SUCCESS ? (int)(ttl > INT32_MAX ? INT32_MAX : ttl) : 0, herrno);
	if (!rr)
		fatal("event=out_of_memory where=spf_dns");
	if (herrno != NETDB_SUCCESS)
		return rr;
	for (size_t i = 0; i < answer->count && i < INT32_MAX; i++) {
		const struct dnsq_rr *from = &answer->rrs[i];
		int at = (int)i;
		switch (answer->type) {
		case DNSQ_A:
			rr_room(rr, at, sizeof(rr->rr[at]->a));
			rr->rr[at]->a = from->u.a;
			break;
		case DNSQ_AAAA:
			rr_room(rr, at, sizeof(rr->rr[at]->aaaa));
			rr->rr[at]->aaaa = from->u.aaaa;
			break;
		case DNSQ_MX:
			/* The interpreter takes the exchanges in the order given; preference plays no
			 * part in SPF (RFC 7208 5.4). */
			rr_room(rr, at, strlen(from->u.mx.host) + 1);
			strcpy(rr->rr[at]->mx, from->u.mx.host);
			break;
		case DNSQ_TXT:
			rr_room(rr, at, strlen(from->u.txt) + 1);
			strcpy(rr->rr[at]->txt, from->u.txt);
			break;
		case DNSQ_PTR:
			rr_room(rr, at, strlen(from->u.ptr) + 1);
			strcpy(rr->rr[at]->ptr, from->u.ptr);
			break;
		}
		rr->num_rr = at + 1;
	}
	return rr;
}

static SPF_dns_rr_t *layer_lookup(SPF_dns_server_t *layer, const char *domain, ns_type type,
	int should_cache)
{
	const struct dnsq_ctx *ctx = layer->hook;
	enum dnsq_type asked = dnsq_type_of(type);
	struct dnsq_answer answer;

	(void)should_cache; /* dnsq caches every answer by its TTL */
	if (asked == 0) {
		/* RFC 7208 14.1: the SPF RR type (99) is obsolete, and libspf2 tries it before TXT:
		 * it is answered "no data" without asking anyone. */
		struct dnsq_answer none = {.status = DNSQ_NODATA, .type = DNSQ_TXT};
		return spf_dns_rr_from_answer(layer, domain, type, &none);
	}
	dnsq_lookup(ctx, domain, asked, &answer);
	SPF_dns_rr_t *rr = spf_dns_rr_from_answer(layer, domain, type, &answer);
	dnsq_answer_free(&answer);
	return rr;
}

void spf_dns_layer_init(SPF_dns_server_t *layer, const struct dnsq_ctx *ctx)
{
	memset(layer, 0, sizeof(*layer));
	layer->destroy = NULL; /* ours: libspf2 leaves it alone */
	layer->lookup = layer_lookup;
	layer->name = "mailpopbox-dnsq";
	layer->hook = (void *)ctx;
}
