/* test_dmarc.c: the DMARC glue (src/verify/dmarc.c) around libopendmarc: alignment (relaxed
 * and strict, aspf/adkim), p= and sp=, pass through SPF or DKIM alone, fail and what we do
 * about it, the organizational domain's record for mail from a subdomain, pct=, DNS failures
 * (temperror, never a rejection), and the RFC5322.From domain. DNS is a fake zone here: this
 * file defines dnsq_lookup/dnsq_answer_free, so verify/dnsq.c is not linked in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "mail/headers.h"
#include "verify/dmarc.h"

/* ---- a fake zone ---- */

struct fake_record {
	const char *name;
	enum dnsq_status status;
	const char *txt[3];
};

static const struct fake_record *zone;
static size_t zone_size;
static unsigned lookups;

void dnsq_lookup(const struct dnsq_ctx *ctx, const char *name, enum dnsq_type type,
	struct dnsq_answer *out)
{
	(void)ctx;
	lookups++;
	memset(out, 0, sizeof(*out));
	out->type = type;
	out->status = DNSQ_NXDOMAIN;
	for (size_t i = 0; i < zone_size; i++) {
		if (strcmp(zone[i].name, name) != 0 || type != DNSQ_TXT)
			continue;
		out->status = zone[i].status;
		if (out->status != DNSQ_OK)
			return;
		while (out->count < 3 && zone[i].txt[out->count])
			out->count++;
		out->rrs = xcalloc(out->count, sizeof(*out->rrs));
		for (size_t j = 0; j < out->count; j++)
			out->rrs[j].u.txt = xstrdup(zone[i].txt[j]);
		return;
	}
}

void dnsq_answer_free(struct dnsq_answer *a)
{
	for (size_t i = 0; a->rrs && i < a->count; i++)
		free(a->rrs[i].u.txt);
	free(a->rrs);
	a->rrs = NULL;
	a->count = 0;
}

/* ---- helpers ---- */

static int setup(void **state)
{
	(void)state;
	assert_int_equal(verify_dmarc_init(), 0);
	return 0;
}

static void results(struct authres *ar, enum auth_result spf, const char *mailfrom,
	enum auth_result dkim, const char *d)
{
	memset(ar, 0, sizeof(*ar));
	ar->spf_mailfrom.result = spf;
	snprintf(ar->spf_mailfrom.identity, sizeof(ar->spf_mailfrom.identity), "%s", mailfrom);
	ar->spf_helo.result = AUTH_NONE;
	snprintf(ar->spf_helo.identity, sizeof(ar->spf_helo.identity), "client.example.net");
	if (d) {
		ar->dkim_count = 1;
		ar->dkim[0].result = dkim;
		snprintf(ar->dkim[0].domain, sizeof(ar->dkim[0].domain), "%s", d);
		snprintf(ar->dkim[0].selector, sizeof(ar->dkim[0].selector), "sel");
	}
}

static void assert_dmarc(const struct authres *ar, enum auth_result result,
	enum dmarc_policy policy, enum dmarc_policy disposition)
{
	assert_string_equal(auth_result_name(ar->dmarc.result), auth_result_name(result));
	assert_int_equal(ar->dmarc.policy, policy);
	assert_int_equal(ar->dmarc.disposition, disposition);
}

#define REJECT "v=DMARC1; p=reject"

/* ---- evaluation (no DNS) ---- */

static void test_pass_through_spf_alone(void **state)
{
	struct authres ar;

	(void)state;
	results(&ar, AUTH_PASS, "alice@sender.test", AUTH_NONE, NULL);
	verify_dmarc_evaluate(REJECT, "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_PASS, DMARC_POLICY_REJECT, DMARC_POLICY_NONE);
	assert_string_equal(ar.dmarc.from_domain, "sender.test");
}

static void test_pass_through_dkim_alone(void **state)
{
	struct authres ar;

	(void)state;
	results(&ar, AUTH_FAIL, "alice@sender.test", AUTH_PASS, "sender.test");
	verify_dmarc_evaluate(REJECT, "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_PASS, DMARC_POLICY_REJECT, DMARC_POLICY_NONE);
	/* An unaligned pass first, a failing aligned one after: still pass by the aligned? No:
	 * the aligned one failed; the pass is for another domain. */
	results(&ar, AUTH_NONE, "", AUTH_PASS, "other.test");
	ar.dkim_count = 2;
	ar.dkim[1].result = AUTH_FAIL;
	snprintf(ar.dkim[1].domain, sizeof(ar.dkim[1].domain), "sender.test");
	verify_dmarc_evaluate(REJECT, "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT);
	/* One bad signature does not spoil a good aligned one, in either order. */
	results(&ar, AUTH_NONE, "", AUTH_FAIL, "sender.test");
	ar.dkim_count = 2;
	ar.dkim[1].result = AUTH_PASS;
	snprintf(ar.dkim[1].domain, sizeof(ar.dkim[1].domain), "sender.test");
	verify_dmarc_evaluate(REJECT, "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_PASS, DMARC_POLICY_REJECT, DMARC_POLICY_NONE);
}

static void test_fail_under_each_policy(void **state)
{
	struct authres ar;

	(void)state;
	results(&ar, AUTH_FAIL, "alice@sender.test", AUTH_FAIL, "sender.test");
	verify_dmarc_evaluate(REJECT, "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT);
	/* DMARCReject off: a reject policy is quarantined instead. */
	verify_dmarc_evaluate(REJECT, "sender.test", "sender.test", &ar, false);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_QUARANTINE);
	verify_dmarc_evaluate("v=DMARC1; p=quarantine", "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_QUARANTINE, DMARC_POLICY_QUARANTINE);
	verify_dmarc_evaluate("v=DMARC1; p=none; rua=mailto:d@sender.test", "sender.test",
		"sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_NONE, DMARC_POLICY_NONE);
	/* Passing identifiers of another domain do not align. */
	results(&ar, AUTH_PASS, "bounce@other.test", AUTH_PASS, "other.test");
	verify_dmarc_evaluate(REJECT, "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT);
	/* Nor does a sibling-looking name that merely ends the same way. */
	results(&ar, AUTH_PASS, "x@evilsender.test", AUTH_PASS, "evilsender.test");
	verify_dmarc_evaluate(REJECT, "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT);
}

static void test_relaxed_and_strict_spf_alignment(void **state)
{
	struct authres ar;

	(void)state;
	/* The MAIL FROM domain is a subdomain of the From domain: aligned when relaxed. */
	results(&ar, AUTH_PASS, "bounce@mail.sender.test", AUTH_NONE, NULL);
	verify_dmarc_evaluate(REJECT, "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_PASS, DMARC_POLICY_REJECT, DMARC_POLICY_NONE);
	verify_dmarc_evaluate("v=DMARC1; p=reject; aspf=r", "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_PASS, DMARC_POLICY_REJECT, DMARC_POLICY_NONE);
	verify_dmarc_evaluate("v=DMARC1; p=reject; aspf=s", "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT);
	/* Strict still passes the exact domain, in any case. */
	results(&ar, AUTH_PASS, "bounce@Sender.TEST", AUTH_NONE, NULL);
	verify_dmarc_evaluate("v=DMARC1; p=reject; aspf=s", "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_PASS, DMARC_POLICY_REJECT, DMARC_POLICY_NONE);
	/* A real public suffix: example.co.uk mail through mail.example.co.uk. */
	results(&ar, AUTH_PASS, "b@mail.example.co.uk", AUTH_NONE, NULL);
	verify_dmarc_evaluate(REJECT, "example.co.uk", "example.co.uk", &ar, true);
	assert_dmarc(&ar, AUTH_PASS, DMARC_POLICY_REJECT, DMARC_POLICY_NONE);
	/* ...but never through another registrant under the same public suffix. */
	results(&ar, AUTH_PASS, "b@other.co.uk", AUTH_PASS, "other.co.uk");
	verify_dmarc_evaluate(REJECT, "example.co.uk", "example.co.uk", &ar, true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT);
}

static void test_relaxed_and_strict_dkim_alignment(void **state)
{
	struct authres ar;

	(void)state;
	results(&ar, AUTH_NONE, "", AUTH_PASS, "mail.sender.test");
	verify_dmarc_evaluate(REJECT, "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_PASS, DMARC_POLICY_REJECT, DMARC_POLICY_NONE);
	verify_dmarc_evaluate("v=DMARC1; p=reject; adkim=s", "sender.test", "sender.test", &ar,
		true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT);
	/* adkim=s does not touch SPF, aspf=s does not touch DKIM. */
	results(&ar, AUTH_PASS, "b@mail.sender.test", AUTH_PASS, "sender.test");
	verify_dmarc_evaluate("v=DMARC1; p=reject; aspf=s", "sender.test", "sender.test", &ar,
		true);
	assert_dmarc(&ar, AUTH_PASS, DMARC_POLICY_REJECT, DMARC_POLICY_NONE);
	/* A public suffix is no organization (RFC 7489 3.2): a signature by "co.uk" or "com"
	 * does not align with example.co.uk or example.com, though a parent. */
	results(&ar, AUTH_PASS, "x@co.uk", AUTH_PASS, "co.uk");
	verify_dmarc_evaluate(REJECT, "example.co.uk", "example.co.uk", &ar, true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT);
	results(&ar, AUTH_NONE, "", AUTH_PASS, "com");
	verify_dmarc_evaluate("v=DMARC1; p=quarantine", "example.com", "example.com", &ar, true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_QUARANTINE, DMARC_POLICY_QUARANTINE);
	results(&ar, AUTH_NONE, "", AUTH_PASS, "test");
	verify_dmarc_evaluate(REJECT, "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT);
	/* The signer is the parent of the From domain: relaxed aligns. */
	results(&ar, AUTH_NONE, "", AUTH_PASS, "example.co.uk");
	verify_dmarc_evaluate(REJECT, "example.co.uk", "news.example.co.uk", &ar, true);
	assert_dmarc(&ar, AUTH_PASS, DMARC_POLICY_REJECT, DMARC_POLICY_NONE);
}

static void test_subdomain_policy_from_the_organizational_domain(void **state)
{
	struct authres ar;

	(void)state;
	results(&ar, AUTH_FAIL, "a@news.sender.test", AUTH_NONE, NULL);
	/* Record found at the organizational domain: sp= applies. */
	verify_dmarc_evaluate("v=DMARC1; p=reject; sp=quarantine", "sender.test",
		"news.sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_QUARANTINE, DMARC_POLICY_QUARANTINE);
	assert_string_equal(ar.dmarc.from_domain, "news.sender.test");
	verify_dmarc_evaluate("v=DMARC1; p=quarantine; sp=none", "sender.test", "news.sender.test",
		&ar, true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_NONE, DMARC_POLICY_NONE);
	/* No sp=: p= applies to subdomains too. */
	verify_dmarc_evaluate(REJECT, "sender.test", "news.sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT);
	/* The From domain's own record: p= applies, sp= does not. */
	verify_dmarc_evaluate("v=DMARC1; p=reject; sp=none", "news.sender.test",
		"news.sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT);
	/* And alignment still works for the subdomain's mail through the org record. */
	results(&ar, AUTH_PASS, "a@sender.test", AUTH_NONE, NULL);
	verify_dmarc_evaluate("v=DMARC1; p=reject; sp=reject", "sender.test", "news.sender.test",
		&ar, true);
	assert_dmarc(&ar, AUTH_PASS, DMARC_POLICY_REJECT, DMARC_POLICY_NONE);
}

static void test_no_record_no_from_bad_record(void **state)
{
	struct authres ar;

	(void)state;
	results(&ar, AUTH_FAIL, "a@sender.test", AUTH_FAIL, "sender.test");
	verify_dmarc_evaluate(NULL, NULL, "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_NONE, DMARC_POLICY_ABSENT, DMARC_POLICY_NONE);
	assert_string_equal(ar.dmarc.from_domain, "sender.test");
	verify_dmarc_evaluate(REJECT, "sender.test", "", &ar, true);
	assert_dmarc(&ar, AUTH_NONE, DMARC_POLICY_ABSENT, DMARC_POLICY_NONE);
	assert_string_equal(ar.dmarc.from_domain, "");
	verify_dmarc_evaluate("v=DMARC1; p=bogus", "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_PERMERROR, DMARC_POLICY_ABSENT, DMARC_POLICY_NONE);
	verify_dmarc_evaluate("v=DMARC1; sp=reject", "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_PERMERROR, DMARC_POLICY_ABSENT, DMARC_POLICY_NONE);
}

static void test_temporary_failures_are_never_a_rejection(void **state)
{
	struct authres ar;

	(void)state;
	results(&ar, AUTH_TEMPERROR, "a@sender.test", AUTH_FAIL, "sender.test");
	verify_dmarc_evaluate(REJECT, "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_TEMPERROR, DMARC_POLICY_REJECT, DMARC_POLICY_NONE);
	results(&ar, AUTH_FAIL, "a@sender.test", AUTH_TEMPERROR, "sender.test");
	verify_dmarc_evaluate(REJECT, "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_TEMPERROR, DMARC_POLICY_REJECT, DMARC_POLICY_NONE);
	/* A pass is a pass whatever else failed. */
	results(&ar, AUTH_TEMPERROR, "a@sender.test", AUTH_PASS, "sender.test");
	verify_dmarc_evaluate(REJECT, "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_PASS, DMARC_POLICY_REJECT, DMARC_POLICY_NONE);
}

static void test_pct_zero_applies_the_next_policy_down(void **state)
{
	struct authres ar;

	(void)state;
	results(&ar, AUTH_FAIL, "a@sender.test", AUTH_NONE, NULL);
	verify_dmarc_evaluate("v=DMARC1; p=reject; pct=0", "sender.test", "sender.test", &ar, true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_QUARANTINE);
	verify_dmarc_evaluate("v=DMARC1; p=quarantine; pct=0", "sender.test", "sender.test", &ar,
		true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_QUARANTINE, DMARC_POLICY_NONE);
	verify_dmarc_evaluate("v=DMARC1; p=reject; pct=100", "sender.test", "sender.test", &ar,
		true);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT);
}

static void test_organizational_domains(void **state)
{
	char out[256];

	(void)state;
	assert_true(verify_dmarc_org_domain("a.b.example.co.uk", out, sizeof(out)));
	assert_string_equal(out, "example.co.uk");
	assert_true(verify_dmarc_org_domain("Mail.Example.ORG", out, sizeof(out)));
	assert_string_equal(out, "example.org");
	assert_true(verify_dmarc_org_domain("example.org", out, sizeof(out)));
	assert_string_equal(out, "example.org");
	/* A name under no listed suffix: the default rule "*" (the last label is the suffix). */
	assert_true(verify_dmarc_org_domain("mail.sender.test", out, sizeof(out)));
	assert_string_equal(out, "sender.test");
	assert_true(verify_dmarc_org_domain("a.b.c.sender.test", out, sizeof(out)));
	assert_string_equal(out, "sender.test");
	assert_true(verify_dmarc_org_domain("sender.test", out, sizeof(out)));
	assert_string_equal(out, "sender.test");
	assert_false(verify_dmarc_org_domain("a..b", out, sizeof(out)));
	assert_false(verify_dmarc_org_domain("", out, sizeof(out)));
	assert_false(verify_dmarc_org_domain("a b.test", out, sizeof(out)));
	assert_false(verify_dmarc_org_domain("a.b.example.co.uk", out, 5));
}

/* ---- with the (fake) DNS ---- */

static const struct dnsq_ctx dns;

static void test_record_lookup_and_org_fallback(void **state)
{
	static const struct fake_record records[] = {
		{"_dmarc.sender.test", DNSQ_OK, {"v=spf1 -all", "v=DMARC1; p=reject; sp=quarantine"}},
		{"_dmarc.own.sender.test", DNSQ_OK, {"v=DMARC1; p=none"}},
		{"_dmarc.down.test", DNSQ_TEMPFAIL, {NULL}},
		{"_dmarc.sub.slow.test", DNSQ_NODATA, {NULL}},
		{"_dmarc.slow.test", DNSQ_TEMPFAIL, {NULL}},
		{"_dmarc.twice.test", DNSQ_OK, {"v=DMARC1; p=reject", "v=DMARC1; p=none"}},
		{"_dmarc.prefix.test", DNSQ_OK, {"v=DMARC10; p=reject"}},
	};
	struct authres ar;

	(void)state;
	zone = records;
	zone_size = sizeof(records) / sizeof(records[0]);

	results(&ar, AUTH_FAIL, "a@sender.test", AUTH_NONE, NULL);
	verify_dmarc(&dns, "192.0.2.1", "sender.test", true, &ar);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_REJECT, DMARC_POLICY_REJECT);
	/* No record at the subdomain: the organizational domain's, with its sp=. */
	lookups = 0;
	verify_dmarc(&dns, "2001:db8::1", "News.Sender.Test", true, &ar);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_QUARANTINE, DMARC_POLICY_QUARANTINE);
	assert_string_equal(ar.dmarc.from_domain, "news.sender.test");
	assert_int_equal(lookups, 2);
	/* The subdomain's own record wins. */
	verify_dmarc(&dns, "192.0.2.1", "own.sender.test", true, &ar);
	assert_dmarc(&ar, AUTH_FAIL, DMARC_POLICY_NONE, DMARC_POLICY_NONE);
	/* DNS down at either step: temperror, no policy, no rejection. */
	verify_dmarc(&dns, "192.0.2.1", "down.test", true, &ar);
	assert_dmarc(&ar, AUTH_TEMPERROR, DMARC_POLICY_ABSENT, DMARC_POLICY_NONE);
	verify_dmarc(&dns, "192.0.2.1", "sub.slow.test", true, &ar);
	assert_dmarc(&ar, AUTH_TEMPERROR, DMARC_POLICY_ABSENT, DMARC_POLICY_NONE);
	/* RFC 7489 6.6.3: two records, or none that is DMARC1: no policy. */
	verify_dmarc(&dns, "192.0.2.1", "twice.test", true, &ar);
	assert_dmarc(&ar, AUTH_NONE, DMARC_POLICY_ABSENT, DMARC_POLICY_NONE);
	verify_dmarc(&dns, "192.0.2.1", "prefix.test", true, &ar);
	assert_dmarc(&ar, AUTH_NONE, DMARC_POLICY_ABSENT, DMARC_POLICY_NONE);
	verify_dmarc(&dns, "192.0.2.1", "nothing.test", true, &ar);
	assert_dmarc(&ar, AUTH_NONE, DMARC_POLICY_ABSENT, DMARC_POLICY_NONE);
	/* No From domain: no lookup at all. */
	lookups = 0;
	verify_dmarc(&dns, "192.0.2.1", "", true, &ar);
	assert_dmarc(&ar, AUTH_NONE, DMARC_POLICY_ABSENT, DMARC_POLICY_NONE);
	assert_int_equal(lookups, 0);
	zone = NULL;
	zone_size = 0;
}

/* ---- the From domain ---- */

static bool from_of(const char *message, char *domain, size_t size)
{
	struct mail_headers h;
	size_t header_len;
	bool ok;

	assert_int_equal(mail_headers_parse(message, strlen(message), &h, &header_len),
		MAIL_HEADERS_OK);
	ok = verify_dmarc_from_domain(&h, domain, size);
	mail_headers_free(&h);
	return ok;
}

static void assert_from(const char *from_value, const char *expected)
{
	char message[2048];
	char domain[256];

	snprintf(message, sizeof(message), "Subject: x\r\nFrom: %s\r\nTo: b@c.test\r\n\r\nbody\r\n",
		from_value);
	if (expected) {
		assert_true(from_of(message, domain, sizeof(domain)));
		assert_string_equal(domain, expected);
	} else {
		assert_false(from_of(message, domain, sizeof(domain)));
		assert_string_equal(domain, "");
	}
}

static void test_from_domain(void **state)
{
	char message[4096];
	char domain[256];

	(void)state;
	assert_from("alice@Sender.Test", "sender.test");
	assert_from("<alice@sender.test>", "sender.test");
	assert_from("Alice <alice@sender.test>", "sender.test");
	assert_from("\"Alice Q. Public\" <alice@sender.test>", "sender.test");
	assert_from("\"a@evil.test, <x@evil.test>\" <alice@sender.test>", "sender.test");
	assert_from("\"quoted local\"@sender.test", "sender.test");
	assert_from("\"a@b.test\"@sender.test", "sender.test");
	assert_from("alice@sender.test (Alice)", "sender.test");
	assert_from("(c) Alice (x@evil.test) <alice(c)@(c)sender.test(c)>", "sender.test");
	assert_from("Alice\r\n <alice@sender.test>", "sender.test");
	/* RFC 5322 4.4 obs-domain: comments and spaces around the dots and the '@'. */
	assert_from("alice (c) @ sender (c). test", "sender.test");
	assert_from("<alice@sender.test >", "sender.test");
	assert_from("=?utf-8?q?Al=C3=AFce?= <alice@sender.test.>", "sender.test");
	/* Not exactly one address. */
	assert_from("a@sender.test, b@other.test", NULL);
	assert_from("Friends: a@sender.test;", NULL);
	assert_from("undisclosed-recipients:;", NULL);
	assert_from("Alice <a@sender.test> <b@other.test>", NULL);
	assert_from("<a@sender.test> trailing", NULL);
	assert_from("alice", NULL);
	assert_from("alice@", NULL);
	assert_from("@sender.test", NULL);
	assert_from("alice@[192.0.2.1]", NULL);
	assert_from("alice@sender..test", NULL);
	assert_from("alice@sender.test..", NULL);
	assert_from("alice@.sender.test", NULL);
	assert_from("Alice alice@sender.test", NULL);
	/* A comment separates: "e(c)vil" is two words, not "evil". */
	assert_from("alice@e(c)vil.test", NULL);
	assert_from("alice@e vil.test", NULL);
	assert_from("ali ce@sender.test", NULL);
	assert_from("\"never closed <a@sender.test>", NULL);
	assert_from("(never closed <a@sender.test>", NULL);
	assert_from("Alice <alice@sender.test", NULL);
	assert_from("", NULL);
	/* A long display name still gives the domain (it must not turn a fail into none). */
	{
		char long_from[1600];
		memset(long_from, 'x', 1500);
		snprintf(long_from + 1500, sizeof(long_from) - 1500, " <alice@sender.test>");
		assert_from(long_from, "sender.test");
	}
	/* Two From fields, or none: no domain. */
	assert_false(from_of("From: a@sender.test\r\nFrom: b@sender.test\r\n\r\n", domain,
		sizeof(domain)));
	assert_false(from_of("To: a@sender.test\r\n\r\nFrom: b@sender.test\r\n", domain,
		sizeof(domain)));
	snprintf(message, sizeof(message), "fRoM: a@sender.test\n\nbody\n");
	assert_true(from_of(message, domain, sizeof(domain)));
	assert_string_equal(domain, "sender.test");
	/* A buffer too small for the domain: refused, never cut. */
	assert_false(from_of(message, domain, 5));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pass_through_spf_alone),
		cmocka_unit_test(test_pass_through_dkim_alone),
		cmocka_unit_test(test_fail_under_each_policy),
		cmocka_unit_test(test_relaxed_and_strict_spf_alignment),
		cmocka_unit_test(test_relaxed_and_strict_dkim_alignment),
		cmocka_unit_test(test_subdomain_policy_from_the_organizational_domain),
		cmocka_unit_test(test_no_record_no_from_bad_record),
		cmocka_unit_test(test_temporary_failures_are_never_a_rejection),
		cmocka_unit_test(test_pct_zero_applies_the_next_policy_down),
		cmocka_unit_test(test_organizational_domains),
		cmocka_unit_test(test_record_lookup_and_org_fallback),
		cmocka_unit_test(test_from_domain),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
