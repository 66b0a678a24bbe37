/* verify/dnsbl.c: DNS blocklist lookups (RFC 5782) of the client's address, zone by zone,
 * through verify/dnsq.c. A listing is an A record in 127.0.0.0/8; the TXT record at the same
 * name is the reason given to the client. */
#include "verify/dnsbl.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* RFC 1035 2.3.4, written without the root's dot. */
#define DNS_NAME_MAX 253

bool dnsbl_query_name(const char *client_ip, const char *zone, char *out, size_t outsz)
{
	struct in_addr v4;
	struct in6_addr v6;
	const unsigned char *octets = NULL;
	int n = -1;

	if (outsz == 0)
		return false;
	if (inet_pton(AF_INET, client_ip, &v4) == 1)
		octets = (const unsigned char *)&v4;
	else if (inet_pton(AF_INET6, client_ip, &v6) == 1 && IN6_IS_ADDR_V4MAPPED(&v6))
		octets = v6.s6_addr + 12;
	if (octets) {
		/* RFC 5782 2.1: the octets in reverse. */
		n = snprintf(out, outsz, "%u.%u.%u.%u.%s", octets[3], octets[2], octets[1],
			octets[0], zone);
	} else if (inet_pton(AF_INET6, client_ip, &v6) == 1) {
		/* RFC 5782 2.4: every nibble, the low one of the last octet first. */
		char nibbles[16 * 4 + 1];
		for (int i = 0; i < 16; i++) {
			unsigned char b = v6.s6_addr[15 - i];
			snprintf(nibbles + 4 * i, 5, "%x.%x.", b & 0xf, b >> 4);
		}
		n = snprintf(out, outsz, "%s%s", nibbles, zone);
	}
	if (n < 0 || (size_t)n >= outsz || n > DNS_NAME_MAX || zone[0] == '\0') {
		out[0] = '\0';
		return false;
	}
	return true;
}

/* The first TXT record at name, printable ASCII only (it goes into an SMTP reply and the
 * log), cut to fit reason. */
static void listing_reason(const struct dnsq_ctx *dns, const char *name, char *reason,
	size_t size)
{
	struct dnsq_answer txt;
	size_t used = 0;

	reason[0] = '\0';
	dnsq_lookup(dns, name, DNSQ_TXT, &txt);
	if (txt.status == DNSQ_OK && txt.count > 0) {
		for (const char *c = txt.rrs[0].u.txt; *c && used + 1 < size; c++)
			if (*c >= ' ' && *c <= '~')
				reason[used++] = *c;
		reason[used] = '\0';
	}
	dnsq_answer_free(&txt);
}

void verify_dnsbl(const struct dnsq_ctx *dns, const char *client_ip, char *const *zones,
	size_t zone_count, struct dnsbl_hit *out)
{
	char name[DNS_NAME_MAX + 1];

	memset(out, 0, sizeof(*out));
	for (size_t z = 0; z < zone_count && !out->listed; z++) {
		const char *zone = zones[z];
		if (!dnsbl_query_name(client_ip, zone, name, sizeof(name))) {
			log_warn("dnsbl", "event=dnsbl_skipped zone=%s reason=\"no query name\"", zone);
			continue;
		}
		struct dnsq_answer a;
		dnsq_lookup(dns, name, DNSQ_A, &a);
		if (a.status == DNSQ_TEMPFAIL)
			log_warn("dnsbl", "event=dnsbl_failed zone=%s error=\"no answer\"", zone);
		for (size_t i = 0; a.status == DNSQ_OK && i < a.count; i++) {
			const unsigned char *code = (const unsigned char *)&a.rrs[i].u.a;
			if (code[0] != 127)
				continue;
			/* 127.255.255.0/24 is what Spamhaus and others answer for a refused query
			 * (a public resolver, no access): an error, not a listing. */
			if (code[1] == 255 && code[2] == 255) {
				log_warn("dnsbl", "event=dnsbl_refused zone=%s code=127.255.255.%u", zone,
					code[3]);
				break;
			}
			out->listed = true;
			snprintf(out->zone, sizeof(out->zone), "%s", zone);
			listing_reason(dns, name, out->reason, sizeof(out->reason));
			break;
		}
		dnsq_answer_free(&a);
	}
}
