/* test_authres.c: the Authentication-Results field we write (src/verify/authres.c), byte for
 * byte as docs and the integration tests expect it (RFC 8601), and the recognition of a field
 * that claims our authserv-id, which received mail must not keep (RFC 8601 5). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "verify/authres.h"

static void set(char *dst, size_t size, const char *s)
{
	snprintf(dst, size, "%s", s);
}

/* The example of the design: every kind of resinfo once. */
static void example(struct authres *ar)
{
	memset(ar, 0, sizeof(*ar));
	ar->spf_mailfrom.result = AUTH_PASS;
	set(ar->spf_mailfrom.identity, sizeof(ar->spf_mailfrom.identity), "alice@sender.test");
	ar->spf_helo.result = AUTH_NONE;
	set(ar->spf_helo.identity, sizeof(ar->spf_helo.identity), "client.sender.test");
	ar->dkim_count = 2;
	ar->dkim[0].result = AUTH_PASS;
	set(ar->dkim[0].domain, sizeof(ar->dkim[0].domain), "sender.test");
	set(ar->dkim[0].selector, sizeof(ar->dkim[0].selector), "sel1");
	set(ar->dkim[0].b, sizeof(ar->dkim[0].b), "AbCdEfGh");
	ar->dkim[1].result = AUTH_FAIL;
	set(ar->dkim[1].comment, sizeof(ar->dkim[1].comment), "body hash did not verify");
	set(ar->dkim[1].domain, sizeof(ar->dkim[1].domain), "sender.test");
	set(ar->dkim[1].selector, sizeof(ar->dkim[1].selector), "sel2");
	set(ar->dkim[1].b, sizeof(ar->dkim[1].b), "XyZ12345");
	ar->dmarc.result = AUTH_PASS;
	set(ar->dmarc.from_domain, sizeof(ar->dmarc.from_domain), "sender.test");
	ar->dmarc.policy = DMARC_POLICY_REJECT;
	ar->dmarc.disposition = DMARC_POLICY_NONE;
}

static void assert_written(const struct authres *ar, const char *newline, const char *expected)
{
	struct strbuf out;

	strbuf_init(&out);
	authres_write(ar, "mx.example.org", newline, &out);
	assert_string_equal(out.data, expected);
	assert_int_equal(out.len, strlen(expected));
	strbuf_free(&out);
}

static void test_the_design_example_byte_for_byte(void **state)
{
	struct authres ar;

	(void)state;
	example(&ar);
	assert_written(&ar, "\r\n",
		"Authentication-Results: mx.example.org;\r\n"
		"\tspf=pass smtp.mailfrom=alice@sender.test;\r\n"
		"\tspf=none smtp.helo=client.sender.test;\r\n"
		"\tdkim=pass header.d=sender.test header.s=sel1 header.b=AbCdEfGh;\r\n"
		"\tdkim=fail (body hash did not verify) header.d=sender.test header.s=sel2 "
		"header.b=XyZ12345;\r\n"
		"\tdmarc=pass (p=reject dis=none) header.from=sender.test\r\n");
}

static void test_bare_lf_messages_get_bare_lf_folding(void **state)
{
	struct authres ar;

	(void)state;
	example(&ar);
	ar.dkim_count = 1;
	assert_written(&ar, "\n",
		"Authentication-Results: mx.example.org;\n"
		"\tspf=pass smtp.mailfrom=alice@sender.test;\n"
		"\tspf=none smtp.helo=client.sender.test;\n"
		"\tdkim=pass header.d=sender.test header.s=sel1 header.b=AbCdEfGh;\n"
		"\tdmarc=pass (p=reject dis=none) header.from=sender.test\n");
}

static void test_every_result_has_its_rfc_name(void **state)
{
	static const struct {
		enum auth_result r;
		const char *name;
	} names[] = {
		{AUTH_NONE, "none"}, {AUTH_PASS, "pass"}, {AUTH_FAIL, "fail"},
		{AUTH_SOFTFAIL, "softfail"}, {AUTH_NEUTRAL, "neutral"},
		{AUTH_TEMPERROR, "temperror"}, {AUTH_PERMERROR, "permerror"},
		{AUTH_POLICY, "policy"},
	};
	struct authres ar;

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char expected[1024];
		assert_string_equal(auth_result_name(names[i].r), names[i].name);
		memset(&ar, 0, sizeof(ar));
		ar.spf_mailfrom.result = names[i].r;
		set(ar.spf_mailfrom.identity, sizeof(ar.spf_mailfrom.identity), "a@b.test");
		ar.spf_helo.result = names[i].r;
		set(ar.spf_helo.identity, sizeof(ar.spf_helo.identity), "h.test");
		ar.dkim_count = 1;
		ar.dkim[0].result = names[i].r;
		set(ar.dkim[0].domain, sizeof(ar.dkim[0].domain), "b.test");
		set(ar.dkim[0].selector, sizeof(ar.dkim[0].selector), "s");
		set(ar.dkim[0].b, sizeof(ar.dkim[0].b), "12345678");
		ar.dmarc.result = names[i].r;
		set(ar.dmarc.from_domain, sizeof(ar.dmarc.from_domain), "b.test");
		snprintf(expected, sizeof(expected),
			"Authentication-Results: mx.example.org;\r\n"
			"\tspf=%s smtp.mailfrom=a@b.test;\r\n"
			"\tspf=%s smtp.helo=h.test;\r\n"
			"\tdkim=%s header.d=b.test header.s=s header.b=12345678;\r\n"
			"\tdmarc=%s header.from=b.test\r\n",
			names[i].name, names[i].name, names[i].name, names[i].name);
		assert_written(&ar, "\r\n", expected);
	}
}

static void test_null_sender_and_no_signature_and_no_from(void **state)
{
	struct authres ar;

	(void)state;
	memset(&ar, 0, sizeof(ar));
	/* RFC 7208 2.4: a null sender is checked as postmaster@HELO, and written so. */
	ar.spf_mailfrom.result = AUTH_NONE;
	set(ar.spf_mailfrom.identity, sizeof(ar.spf_mailfrom.identity),
		"postmaster@client.sender.test");
	ar.spf_helo.result = AUTH_NONE;
	set(ar.spf_helo.identity, sizeof(ar.spf_helo.identity), "client.sender.test");
	ar.dkim_count = 0;
	ar.dmarc.result = AUTH_NONE;
	ar.dmarc.policy = DMARC_POLICY_ABSENT;
	assert_written(&ar, "\r\n",
		"Authentication-Results: mx.example.org;\r\n"
		"\tspf=none smtp.mailfrom=postmaster@client.sender.test;\r\n"
		"\tspf=none smtp.helo=client.sender.test;\r\n"
		"\tdkim=none;\r\n"
		"\tdmarc=none\r\n");
}

static void test_dmarc_policy_comment_and_disposition(void **state)
{
	struct authres ar;

	(void)state;
	example(&ar);
	ar.dkim_count = 0;
	ar.dmarc.result = AUTH_FAIL;
	ar.dmarc.policy = DMARC_POLICY_QUARANTINE;
	ar.dmarc.disposition = DMARC_POLICY_QUARANTINE;
	assert_written(&ar, "\r\n",
		"Authentication-Results: mx.example.org;\r\n"
		"\tspf=pass smtp.mailfrom=alice@sender.test;\r\n"
		"\tspf=none smtp.helo=client.sender.test;\r\n"
		"\tdkim=none;\r\n"
		"\tdmarc=fail (p=quarantine dis=quarantine) header.from=sender.test\r\n");
	ar.dmarc.policy = DMARC_POLICY_NONE;
	ar.dmarc.disposition = DMARC_POLICY_NONE;
	ar.dmarc.result = AUTH_FAIL;
	{
		struct strbuf out;
		strbuf_init(&out);
		authres_write(&ar, "mx.example.org", "\r\n", &out);
		assert_non_null(strstr(out.data, "\tdmarc=fail (p=none dis=none) header.from=sender.test\r\n"));
		strbuf_free(&out);
	}
	ar.dmarc.policy = DMARC_POLICY_REJECT;
	ar.dmarc.disposition = DMARC_POLICY_REJECT;
	{
		struct strbuf out;
		strbuf_init(&out);
		authres_write(&ar, "mx.example.org", "\r\n", &out);
		assert_non_null(strstr(out.data, "\tdmarc=fail (p=reject dis=reject) header.from=sender.test\r\n"));
		strbuf_free(&out);
	}
}

static void test_several_signatures_in_order_and_bounded(void **state)
{
	struct authres ar;
	struct strbuf out;
	size_t lines = 0;
	const char *p;

	(void)state;
	example(&ar);
	ar.dkim_count = DKIM_SIGNATURES_MAX + 5; /* never more than the array holds */
	for (size_t i = 0; i < DKIM_SIGNATURES_MAX; i++) {
		ar.dkim[i].result = i % 2 ? AUTH_PERMERROR : AUTH_PASS;
		ar.dkim[i].comment[0] = '\0';
		snprintf(ar.dkim[i].domain, sizeof(ar.dkim[i].domain), "d%zu.test", i);
		snprintf(ar.dkim[i].selector, sizeof(ar.dkim[i].selector), "s%zu", i);
		snprintf(ar.dkim[i].b, sizeof(ar.dkim[i].b), "b%zu", i);
	}
	strbuf_init(&out);
	authres_write(&ar, "mx.example.org", "\r\n", &out);
	for (p = out.data; (p = strstr(p, "\tdkim=")); p++)
		lines++;
	assert_int_equal(lines, DKIM_SIGNATURES_MAX);
	assert_non_null(strstr(out.data,
		"\tdkim=pass header.d=d0.test header.s=s0 header.b=b0;\r\n"
		"\tdkim=permerror header.d=d1.test header.s=s1 header.b=b1;\r\n"));
	assert_true(strstr(out.data, "d0.test") < strstr(out.data, "d7.test"));
	strbuf_free(&out);
}

static void test_a_signature_without_domain_or_selector_omits_them(void **state)
{
	struct authres ar;
	struct strbuf out;

	(void)state;
	example(&ar);
	ar.dkim_count = 1;
	memset(&ar.dkim[0], 0, sizeof(ar.dkim[0]));
	ar.dkim[0].result = AUTH_PERMERROR;
	set(ar.dkim[0].comment, sizeof(ar.dkim[0].comment), "signature missing required tag");
	strbuf_init(&out);
	authres_write(&ar, "mx.example.org", "\r\n", &out);
	assert_non_null(strstr(out.data, "\tdkim=permerror (signature missing required tag);\r\n"));
	strbuf_free(&out);
}

static void test_values_that_are_not_tokens_are_quoted(void **state)
{
	struct authres ar;
	struct strbuf out;

	(void)state;
	example(&ar);
	ar.dkim_count = 1;
	set(ar.spf_mailfrom.identity, sizeof(ar.spf_mailfrom.identity), "\"a b\"@x.test");
	set(ar.dkim[0].b, sizeof(ar.dkim[0].b), "ab/cd+=e"); /* '/' and '=' are tspecials */
	set(ar.dkim[0].comment, sizeof(ar.dkim[0].comment), "odd (nested) \\ comment");
	ar.dkim[0].result = AUTH_FAIL;
	set(ar.spf_helo.identity, sizeof(ar.spf_helo.identity), "evil\r\nX-Injected: 1");
	strbuf_init(&out);
	authres_write(&ar, "mx.example.org", "\r\n", &out);
	assert_non_null(strstr(out.data, "\tspf=pass smtp.mailfrom=\"\\\"a b\\\"@x.test\";\r\n"));
	assert_non_null(strstr(out.data, "header.b=\"ab/cd+=e\""));
	assert_non_null(strstr(out.data, "dkim=fail (odd \\(nested\\) \\\\ comment) header.d="));
	/* A value can never end the field: CR and LF are replaced. */
	assert_non_null(strstr(out.data, "\tspf=none smtp.helo=\"evil??X-Injected: 1\";\r\n"));
	assert_null(strstr(out.data, "\r\nX-Injected"));
	strbuf_free(&out);

	/* A plain address is written as it is (RFC 8601 2.2 pvalue allows local-part@domain). */
	example(&ar);
	set(ar.spf_mailfrom.identity, sizeof(ar.spf_mailfrom.identity), "a.b+tag@x-y.test");
	strbuf_init(&out);
	authres_write(&ar, "mx.example.org", "\r\n", &out);
	assert_non_null(strstr(out.data, "smtp.mailfrom=a.b+tag@x-y.test;"));
	strbuf_free(&out);
	/* A local part that is not a dot-atom is quoted with the rest. */
	example(&ar);
	set(ar.spf_mailfrom.identity, sizeof(ar.spf_mailfrom.identity), "a..b@x.test");
	strbuf_init(&out);
	authres_write(&ar, "mx.example.org", "\r\n", &out);
	assert_non_null(strstr(out.data, "smtp.mailfrom=\"a..b@x.test\";"));
	strbuf_free(&out);
}

static void test_an_address_literal_as_authserv_id_is_quoted(void **state)
{
	struct authres ar;
	struct strbuf out;

	(void)state;
	example(&ar);
	strbuf_init(&out);
	authres_write(&ar, "[192.0.2.1]", "\r\n", &out);
	assert_memory_equal(out.data, "Authentication-Results: \"[192.0.2.1]\";\r\n", 40);
	strbuf_free(&out);
}

static bool claims(const char *value)
{
	return authres_claims(value, strlen(value), "mx.example.org");
}

static void test_claims_our_authserv_id(void **state)
{
	(void)state;
	assert_true(claims("mx.example.org; spf=pass smtp.mailfrom=a@b"));
	assert_true(claims(" mx.example.org;spf=pass"));
	assert_true(claims("MX.Example.ORG; dkim=pass"));
	assert_true(claims("mx.example.org"));
	assert_true(claims("mx.example.org; none"));
	/* RFC 8601 2.2: CFWS before it, a version after it. */
	assert_true(claims("mx.example.org 1; spf=pass"));
	assert_true(claims("\r\n\tmx.example.org\r\n\t1;\r\n\tspf=pass"));
	assert_true(claims("(forged) mx.example.org; spf=pass"));
	assert_true(claims("(nested (comment) \\) here) mx.example.org(after); spf=pass"));
	assert_true(claims("mx.example.org (comment) 1 (more); spf=pass"));
	/* authserv-id is a value: a quoted-string too. */
	assert_true(claims("\"mx.example.org\"; spf=pass"));
	assert_true(claims("\"mx.\\example.org\"; spf=pass"));
	assert_true(claims("\"MX.EXAMPLE.ORG\" 1; spf=pass"));
}

static void test_does_not_claim_another_id(void **state)
{
	(void)state;
	assert_false(claims("other.example.org; spf=pass"));
	assert_false(claims("mx.example.org.evil; spf=pass"));
	assert_false(claims("mx.example.orgx; spf=pass"));
	assert_false(claims("mx.example.or; spf=pass"));
	assert_false(claims("x.mx.example.org; spf=pass"));
	assert_false(claims("\"mx.example.org.evil\"; spf=pass"));
	assert_false(claims("\"mx.example.or\"; spf=pass"));
	assert_false(claims("\"mx.example.org")); /* quote never closed */
	assert_false(claims("(mx.example.org) other.example.org; spf=pass"));
	assert_false(claims("(never closed mx.example.org"));
	assert_false(claims(""));
	assert_false(claims("   "));
	assert_false(claims("; mx.example.org"));
	assert_false(authres_claims("mx.example.org; spf=pass", 24, ""));
	/* Only len octets count: a prefix of the id is not the id. */
	assert_false(authres_claims("mx.example.org", 13, "mx.example.org"));
	assert_true(authres_claims("mx.example.orgX", 14, "mx.example.org"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_design_example_byte_for_byte),
		cmocka_unit_test(test_bare_lf_messages_get_bare_lf_folding),
		cmocka_unit_test(test_every_result_has_its_rfc_name),
		cmocka_unit_test(test_null_sender_and_no_signature_and_no_from),
		cmocka_unit_test(test_dmarc_policy_comment_and_disposition),
		cmocka_unit_test(test_several_signatures_in_order_and_bounded),
		cmocka_unit_test(test_a_signature_without_domain_or_selector_omits_them),
		cmocka_unit_test(test_values_that_are_not_tokens_are_quoted),
		cmocka_unit_test(test_an_address_literal_as_authserv_id_is_quoted),
		cmocka_unit_test(test_claims_our_authserv_id),
		cmocka_unit_test(test_does_not_claim_another_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
