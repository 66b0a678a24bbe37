/* test_dnsbl.c: the names a DNSBL is asked (RFC 5782 2.1, 2.4): IPv4 octets reversed, IPv6
 * nibbles reversed, an IPv4-mapped address as IPv4, and names that cannot be asked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "verify/dnsbl.h"

static void test_ipv4_octets_are_reversed(void **state)
{
	char name[300];

	(void)state;
	assert_true(dnsbl_query_name("192.0.2.99", "bl.example", name, sizeof(name)));
	assert_string_equal(name, "99.2.0.192.bl.example");
	assert_true(dnsbl_query_name("127.0.0.2", "zen.spamhaus.org", name, sizeof(name)));
	assert_string_equal(name, "2.0.0.127.zen.spamhaus.org");
}

static void test_ipv6_nibbles_are_reversed(void **state)
{
	char name[300];

	(void)state;
	/* RFC 5782 2.4's example. */
	assert_true(dnsbl_query_name("2001:db8:1:2:3:4:567:89ab", "ugly.example.com", name,
		sizeof(name)));
	assert_string_equal(name, "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2."
	                          "ugly.example.com");
	assert_true(dnsbl_query_name("::1", "bl.test", name, sizeof(name)));
	assert_string_equal(name, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	                          "bl.test");
}

static void test_ipv4_mapped_is_asked_as_ipv4(void **state)
{
	char name[300];

	(void)state;
	assert_true(dnsbl_query_name("::ffff:192.0.2.1", "bl.test", name, sizeof(name)));
	assert_string_equal(name, "1.2.0.192.bl.test");
}

static void test_not_an_address_gives_no_name(void **state)
{
	char name[300] = "x";

	(void)state;
	assert_false(dnsbl_query_name("client.example", "bl.test", name, sizeof(name)));
	assert_string_equal(name, "");
	assert_false(dnsbl_query_name("192.0.2.1", "", name, sizeof(name)));
}

static void test_too_long_gives_no_name(void **state)
{
	char zone[250], name[600], small[10];

	(void)state;
	memset(zone, 'z', sizeof(zone) - 1);
	zone[sizeof(zone) - 1] = '\0';
	/* 10 + 249 octets: more than a DNS name holds. */
	assert_false(dnsbl_query_name("192.0.2.1", zone, name, sizeof(name)));
	assert_false(dnsbl_query_name("192.0.2.1", "bl.test", small, sizeof(small)));
	assert_string_equal(small, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_octets_are_reversed),
		cmocka_unit_test(test_ipv6_nibbles_are_reversed),
		cmocka_unit_test(test_ipv4_mapped_is_asked_as_ipv4),
		cmocka_unit_test(test_not_an_address_gives_no_name),
		cmocka_unit_test(test_too_long_gives_no_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
