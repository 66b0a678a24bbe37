/* spf_probe.c: a test-only driver of verify/spf.c, so the integration tests can check SPF
 * against records a real DNS server (dnsmasq) serves. Usage:
 *   spf_probe DNS-SERVER CLIENT-IP HELO MAIL-FROM [THREADS]
 * DNS-SERVER is "ip:port" (DNSResolver) or "-" for /etc/resolv.conf; MAIL-FROM "" is the null
 * sender. Prints "mailfrom=RESULT helo=RESULT" and the identities on a second line
 * ("identities mailfrom=ADDRESS helo=NAME"); exits 0. With THREADS (at most 16) the check
 * runs on that many threads at once, as on the server's workers, and the two lines are
 * printed once per thread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "verify/spf.h"

#define THREADS_MAX 16

struct check {
	char **argv;
	struct authres_spf mailfrom, helo;
};

/* The names of RFC 8601 (authres.c's auth_result_name, kept here so the probe does not wait
 * for the header writer). */
static const char *result_name(enum auth_result r)
{
	static const char *const names[] = {"none", "pass", "fail", "softfail", "neutral",
		"temperror", "permerror", "policy"};

	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

static void *run_check(void *arg)
{
	struct check *c = arg;
	struct dnsq_ctx ctx;

	dnsq_ctx_init(&ctx, strcmp(c->argv[1], "-") == 0 ? NULL : c->argv[1],
		VERIFY_DEADLINE_SECONDS);
	verify_spf(&ctx, c->argv[2], c->argv[3], c->argv[4], &c->mailfrom, &c->helo);
	return NULL;
}

int main(int argc, char **argv)
{
	struct check checks[THREADS_MAX];
	pthread_t threads[THREADS_MAX];
	int count = argc == 6 ? atoi(argv[5]) : 1;

	if ((argc != 5 && argc != 6) || count < 1 || count > THREADS_MAX) {
		fprintf(stderr, "usage: spf_probe DNS-SERVER CLIENT-IP HELO MAIL-FROM [THREADS]\n");
		return 2;
	}
	for (int i = 0; i < count; i++) {
		checks[i].argv = argv;
		if (pthread_create(&threads[i], NULL, run_check, &checks[i]) != 0)
			return 2;
	}
	for (int i = 0; i < count; i++) {
		pthread_join(threads[i], NULL);
		printf("mailfrom=%s helo=%s\n", result_name(checks[i].mailfrom.result),
			result_name(checks[i].helo.result));
		printf("identities mailfrom=%s helo=%s\n", checks[i].mailfrom.identity,
			checks[i].helo.identity);
	}
	return 0;
}
