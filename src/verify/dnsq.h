/* verify/dnsq.h: blocking DNS lookups for the sender checks (SPF, DKIM keys, DMARC records,
 * DNSBLs), made on a worker thread, never on an event loop. c-ares underneath (the resolver
 * the server already uses), the DNSResolver key honoured, each query bounded by
 * DNSQ_QUERY_TIMEOUT_MS and all of one message's queries by one deadline; answers are kept in
 * a bounded cache (DNSQ_CACHE_ENTRIES, TTL capped at DNSQ_TTL_MAX_SECONDS) shared by the
 * threads. A timeout, SERVFAIL or the deadline is DNSQ_TEMPFAIL: a temperror, never a
 * rejection. */
#ifndef MAILPOPBOX_VERIFY_DNSQ_H
#define MAILPOPBOX_VERIFY_DNSQ_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* What one message's lookups share: where to ask and until when. */
struct dnsq_ctx {
	const char *server;       /* "ip:port" (DNSResolver), or NULL for /etc/resolv.conf */
	uint64_t deadline;        /* deadline.h (monotonic milliseconds): no query runs past it */
};

/* Starts ctx with a deadline seconds from now. */
void dnsq_ctx_init(struct dnsq_ctx *ctx, const char *server, unsigned seconds);

enum dnsq_status {
	DNSQ_OK,       /* count >= 1 records of the type asked */
	DNSQ_NODATA,   /* the name exists, no record of that type */
	DNSQ_NXDOMAIN, /* the name does not exist */
	DNSQ_TEMPFAIL, /* timeout, SERVFAIL, REFUSED, the deadline, or a malformed answer */
};

enum dnsq_type {
	DNSQ_A = 1,
	DNSQ_PTR = 12,
	DNSQ_MX = 15,
	DNSQ_TXT = 16,
	DNSQ_AAAA = 28,
};

struct dnsq_rr {
	uint32_t ttl;
	union {
		struct in_addr a;
		struct in6_addr aaaa;
		struct {
			unsigned preference;
			char *host;
		} mx;
		char *txt; /* one TXT record: its character-strings joined, NUL-terminated */
		char *ptr;
	} u;
};

struct dnsq_answer {
	enum dnsq_status status;
	enum dnsq_type type;
	size_t count;
	struct dnsq_rr *rrs;
};

/* Blocking. Fills *out (free with dnsq_answer_free), whatever the status. name without the
 * final dot. */
void dnsq_lookup(const struct dnsq_ctx *ctx, const char *name, enum dnsq_type type,
	struct dnsq_answer *out);
void dnsq_answer_free(struct dnsq_answer *a);

/* Forgets every cached answer (SIGHUP may change DNSResolver; tests). */
void dnsq_cache_clear(void);

#endif
