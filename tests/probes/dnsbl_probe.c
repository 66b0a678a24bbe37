/* dnsbl_probe.c: a test-only driver of verify/dnsbl.c against a real DNS server (dnsmasq).
 * Usage:
 *   dnsbl_probe DNS-SERVER CLIENT-IP ZONE...
 * DNS-SERVER is "ip:port" (DNSResolver) or "-" for /etc/resolv.conf. Prints
 * "listed zone=ZONE reason=REASON" or "not listed"; exits 0. */
#include <stdio.h>
#include <string.h>

#include "bounds.h"
#include "verify/dnsbl.h"

int main(int argc, char **argv)
{
	struct dnsq_ctx ctx;
	struct dnsbl_hit hit;

	if (argc < 4) {
		fprintf(stderr, "usage: dnsbl_probe DNS-SERVER CLIENT-IP ZONE...\n");
		return 2;
	}
	dnsq_ctx_init(&ctx, strcmp(argv[1], "-") == 0 ? NULL : argv[1], DNSBL_DEADLINE_SECONDS);
	verify_dnsbl(&ctx, argv[2], argv + 3, (size_t)(argc - 3), &hit);
	if (hit.listed)
		printf("listed zone=%s reason=%s\n", hit.zone, hit.reason);
	else
		printf("not listed\n");
	return 0;
}
