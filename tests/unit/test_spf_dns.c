/* test_spf_dns.c: verify/spf_dns.c's conversion of dnsq answers into libspf2's records: the
 * data of each type where the interpreter reads it, the statuses as h_errno codes (NXDOMAIN
 * HOST_NOT_FOUND, no data NO_DATA, a failure TRY_AGAIN, which libspf2 makes a temperror). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "verify/spf_dns.h"

static SPF_dns_server_t layer;
static struct dnsq_ctx ctx;

static int init_layer(void **state)
{
	(void)state;
	dnsq_ctx_init(&ctx, "127.0.0.1:9", 1);
	spf_dns_layer_init(&layer, &ctx);
	return 0;
}

static void test_txt_records_keep_their_text(void **state)
{
	struct dnsq_rr rrs[2] = {{.ttl = 300}, {.ttl = 100}};
	rrs[0].u.txt = "v=spf1 ip4:192.0.2.0/24 -all";
	rrs[1].u.txt = "other";
	struct dnsq_answer a = {.status = DNSQ_OK, .type = DNSQ_TXT, .count = 2, .rrs = rrs};

	(void)state;
	SPF_dns_rr_t *rr = spf_dns_rr_from_answer(&layer, "sender.test", ns_t_txt, &a);
	assert_int_equal(rr->herrno, NETDB_SUCCESS);
	assert_int_equal(rr->num_rr, 2);
	assert_string_equal(rr->rr[0]->txt, "v=spf1 ip4:192.0.2.0/24 -all");
	assert_string_equal(rr->rr[1]->txt, "other");
	assert_string_equal(rr->domain, "sender.test");
	assert_int_equal(rr->rr_type, ns_t_txt);
	assert_int_equal(rr->ttl, 100);
	SPF_dns_rr_free(rr);
}

static void test_addresses_and_exchanges(void **state)
{
	struct dnsq_rr v4 = {.ttl = 60}, v6 = {.ttl = 60}, mx = {.ttl = 60};
	v4.u.a.s_addr = htonl(0xc0000201);
	v6.u.aaaa = in6addr_loopback;
	mx.u.mx.preference = 10;
	mx.u.mx.host = "mail.sender.test";
	struct dnsq_answer a4 = {.status = DNSQ_OK, .type = DNSQ_A, .count = 1, .rrs = &v4};
	struct dnsq_answer a6 = {.status = DNSQ_OK, .type = DNSQ_AAAA, .count = 1, .rrs = &v6};
	struct dnsq_answer amx = {.status = DNSQ_OK, .type = DNSQ_MX, .count = 1, .rrs = &mx};

	(void)state;
	SPF_dns_rr_t *rr = spf_dns_rr_from_answer(&layer, "h.test", ns_t_a, &a4);
	assert_int_equal(rr->num_rr, 1);
	assert_int_equal(ntohl(rr->rr[0]->a.s_addr), 0xc0000201);
	SPF_dns_rr_free(rr);
	rr = spf_dns_rr_from_answer(&layer, "h.test", ns_t_aaaa, &a6);
	assert_int_equal(rr->num_rr, 1);
	assert_memory_equal(&rr->rr[0]->aaaa, &in6addr_loopback, sizeof(struct in6_addr));
	SPF_dns_rr_free(rr);
	rr = spf_dns_rr_from_answer(&layer, "sender.test", ns_t_mx, &amx);
	assert_int_equal(rr->num_rr, 1);
	assert_string_equal(rr->rr[0]->mx, "mail.sender.test");
	SPF_dns_rr_free(rr);
}

static void test_statuses_become_h_errno(void **state)
{
	static const struct {
		enum dnsq_status status;
		int herrno;
	} cases[] = {{DNSQ_NXDOMAIN, HOST_NOT_FOUND}, {DNSQ_NODATA, NO_DATA},
		{DNSQ_TEMPFAIL, TRY_AGAIN}, {DNSQ_OK, NO_DATA} /* OK without records */};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dnsq_answer a = {.status = cases[i].status, .type = DNSQ_TXT};
		SPF_dns_rr_t *rr = spf_dns_rr_from_answer(&layer, "x.test", ns_t_txt, &a);
		assert_int_equal(rr->herrno, cases[i].herrno);
		assert_int_equal(rr->num_rr, 0);
		SPF_dns_rr_free(rr);
	}
}

static void test_obsolete_spf_type_is_no_data_without_asking(void **state)
{
	(void)state;
	/* The context's server is the discard port, where nobody answers: had it been asked,
	 * the answer would be TRY_AGAIN. */
	SPF_dns_rr_t *rr = SPF_dns_lookup(&layer, "sender.test", ns_t_spf, 1);
	assert_int_equal(rr->herrno, NO_DATA);
	assert_int_equal(rr->num_rr, 0);
	SPF_dns_rr_free(rr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_txt_records_keep_their_text),
		cmocka_unit_test(test_addresses_and_exchanges),
		cmocka_unit_test(test_statuses_become_h_errno),
		cmocka_unit_test(test_obsolete_spf_type_is_no_data_without_asking),
	};

	return cmocka_run_group_tests(tests, init_layer, NULL);
}
