/* verify/dmarc.h: DMARC (RFC 7489) with libopendmarc and the public suffix list (Debian's
 * publicsuffix package): the RFC5322.From domain, the record of that domain or of its
 * organizational domain (looked up through verify/dnsq.h and handed to the library), SPF and
 * DKIM alignment, and the policy to apply. */
#ifndef MAILPOPBOX_VERIFY_DMARC_H
#define MAILPOPBOX_VERIFY_DMARC_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/headers.h"
#include "verify/authres.h"
#include "verify/dnsq.h"

/* Once, before the sandbox: loads the public suffix list. Returns 0, or -1 (logged). */
int verify_dmarc_init(void);

/* The domain of the message's From (exactly one From field with exactly one address, RFC
 * 7489 6.6.1), lower-cased, into domain; false (and "") otherwise. */
bool verify_dmarc_from_domain(const struct mail_headers *h, char *domain, size_t size);

/* Blocking. ar->spf_mailfrom and ar->dkim[] in, ar->dmarc out (from_domain "" -> none).
 * reject_enabled (DMARCReject) decides whether a fail under p=reject is disposition reject. */
void verify_dmarc(const struct dnsq_ctx *dns, const char *client_ip, const char *from_domain,
	bool reject_enabled, struct authres *ar);

/* The pure part of verify_dmarc (no DNS; unit-tested): record is the DMARC record found at
 * record_domain (from_domain itself, or its organizational domain: then sp= applies), or NULL
 * when there is none. ar->spf_mailfrom and ar->dkim[] in, ar->dmarc out. */
void verify_dmarc_evaluate(const char *record, const char *record_domain, const char *from_domain,
	struct authres *ar, bool reject_enabled);

/* RFC 7489 3.2: the organizational domain of domain (public suffix list, default rule "*"),
 * lower-case, into out; false when domain is not a domain name or does not fit. */
bool verify_dmarc_org_domain(const char *domain, char *out, size_t size);

#endif
