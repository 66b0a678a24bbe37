/* dnsbl_probe.c: a test-only driver of verify/dnsbl.c against a real DNS server (dnsmasq).
 * Usage:
 *   dnsbl_probe DNS-SERVER CLIENT-IP ZONE...
 * DNS-SERVER is "ip:port" (DNSResolver) or "-" for /etc/resolv.conf. Prints
 * "listed zone=ZONE reason=REASON" or "not listed"; exits 0. With $DNSBL_PROBE_SANDBOX set to
 * a scratch directory, the server's Landlock sandbox (sandbox.c, its spool there) is applied
 * first, as on a worker of the server: c-ares then reads /etc/resolv.conf confined. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "config.h"
#include "fsutil.h"
#include "sandbox.h"
#include "verify/dnsbl.h"

static int apply_sandbox(const char *scratch)
{
	struct config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.spool_path = fs_path_printf("%s/spool", scratch);
	char *config_path = fs_path_printf("%s/mailpopbox.json", scratch);
	int r = sandbox_apply(&cfg, config_path);
	free(config_path);
	free(cfg.spool_path);
	return r;
}

int main(int argc, char **argv)
{
	struct dnsq_ctx ctx;
	struct dnsbl_hit hit;

	if (argc < 4) {
		fprintf(stderr, "usage: dnsbl_probe DNS-SERVER CLIENT-IP ZONE...\n");
		return 2;
	}
	const char *scratch = getenv("DNSBL_PROBE_SANDBOX");
	if (scratch && apply_sandbox(scratch) != 0)
		return 2;
	dnsq_ctx_init(&ctx, strcmp(argv[1], "-") == 0 ? NULL : argv[1], DNSBL_DEADLINE_SECONDS);
	verify_dnsbl(&ctx, argv[2], argv + 3, (size_t)(argc - 3), &hit);
	if (hit.listed)
		printf("listed zone=%s reason=%s\n", hit.zone, hit.reason);
	else
		printf("not listed\n");
	return 0;
}
