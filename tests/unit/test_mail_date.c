/* test_mail_date.c: the one RFC 5322 3.3 date-time format (src/mail/date.c), in UTC and in a
 * zone with an offset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mail/date.h"
#include "strbuf.h"

/* 2023-11-14 22:13:20 UTC */
#define FIXED_TIME ((time_t)1700000000)

static void use_zone(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

static int utc(void **state)
{
	(void)state;
	use_zone("UTC0");
	return 0;
}

static void test_utc_date_has_two_digit_day_and_zero_offset(void **state)
{
	char date[MAIL_DATE_MAX];

	(void)state;
	mail_date_format(0, date);
	assert_string_equal(date, "Thu, 01 Jan 1970 00:00:00 +0000");
	mail_date_format(FIXED_TIME, date);
	assert_string_equal(date, "Tue, 14 Nov 2023 22:13:20 +0000");
	mail_date_format(951782400, date); /* a leap day */
	assert_string_equal(date, "Tue, 29 Feb 2000 00:00:00 +0000");
}

/* RFC 5322 3.3: the local time, with its offset from UTC. */
static void test_local_time_carries_its_offset(void **state)
{
	char date[MAIL_DATE_MAX];

	(void)state;
	use_zone("CET-1CEST,M3.5.0,M10.5.0/3");
	mail_date_format(FIXED_TIME, date);
	assert_string_equal(date, "Tue, 14 Nov 2023 23:13:20 +0100");
	mail_date_format(FIXED_TIME - 90 * 86400, date); /* summer time */
	assert_string_equal(date, "Thu, 17 Aug 2023 00:13:20 +0200");
	use_zone("NST+3:30");
	mail_date_format(FIXED_TIME, date);
	assert_string_equal(date, "Tue, 14 Nov 2023 18:43:20 -0330");
}

static void test_a_year_rfc_5322_cannot_write_gives_the_epoch(void **state)
{
	char date[MAIL_DATE_MAX];

	(void)state;
	mail_date_format((time_t)-2300000000LL, date); /* 1897 */
	assert_string_equal(date, "Thu, 01 Jan 1970 00:00:00 +0000");
	mail_date_format((time_t)300000000000LL, date); /* year 11476 */
	assert_string_equal(date, "Thu, 01 Jan 1970 00:00:00 +0000");
}

static void test_append_adds_the_same_text(void **state)
{
	char date[MAIL_DATE_MAX];
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb);
	strbuf_append_str(&sb, "Date: ");
	mail_date_append(&sb, FIXED_TIME);
	mail_date_format(FIXED_TIME, date);
	assert_int_equal(sb.len, strlen("Date: ") + strlen(date));
	assert_string_equal(sb.data + strlen("Date: "), date);
	strbuf_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_utc_date_has_two_digit_day_and_zero_offset, utc),
		cmocka_unit_test_setup(test_local_time_carries_its_offset, utc),
		cmocka_unit_test_setup(test_a_year_rfc_5322_cannot_write_gives_the_epoch, utc),
		cmocka_unit_test_setup(test_append_adds_the_same_text, utc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
