/* spf_probe.c: a test-only driver of verify/spf.c, so the integration tests can check SPF
 * against records a real DNS server (dnsmasq) serves. Usage:
 *   spf_probe DNS-SERVER CLIENT-IP HELO MAIL-FROM
 * DNS-SERVER is "ip:port" (DNSResolver) or "-" for /etc/resolv.conf; MAIL-FROM "" is the null
 * sender. Prints "mailfrom=RESULT helo=RESULT" and the identities on a second line
 * ("identities mailfrom=ADDRESS helo=NAME"); exits 0. */
#include <stdio.h>
#include <string.h>

#include "bounds.h"
#include "verify/spf.h"

/* The names of RFC 8601 (authres.c's auth_result_name, kept here so the probe does not wait
 * for the header writer). */
static const char *result_name(enum auth_result r)
{
	static const char *const names[] = {"none", "pass", "fail", "softfail", "neutral",
		"temperror", "permerror", "policy"};

	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

int main(int argc, char **argv)
{
	struct dnsq_ctx ctx;
	struct authres_spf mailfrom, helo;

	if (argc != 5) {
		fprintf(stderr, "usage: spf_probe DNS-SERVER CLIENT-IP HELO MAIL-FROM\n");
		return 2;
	}
	dnsq_ctx_init(&ctx, strcmp(argv[1], "-") == 0 ? NULL : argv[1], VERIFY_DEADLINE_SECONDS);
	verify_spf(&ctx, argv[2], argv[3], argv[4], &mailfrom, &helo);
	printf("mailfrom=%s helo=%s\n", result_name(mailfrom.result), result_name(helo.result));
	printf("identities mailfrom=%s helo=%s\n", mailfrom.identity, helo.identity);
	return 0;
}
