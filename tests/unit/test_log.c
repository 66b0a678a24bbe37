/* test_log.c: the log's rate limit for events a remote party can cause at will (src/log.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "log.h"

static void test_the_first_burst_of_an_interval_is_logged_then_counted(void **state)
{
	struct log_rate_limit limit = LOG_RATE_LIMIT_INIT(3, 5);
	unsigned long suppressed = 99;

	(void)state;
	for (int i = 0; i < 3; i++) {
		assert_true(log_rate_limit_allow(&limit, 1000, &suppressed));
		assert_int_equal(suppressed, 0);
	}
	for (int i = 0; i < 7; i++) {
		assert_false(log_rate_limit_allow(&limit, 1004, &suppressed));
		assert_int_equal(suppressed, 0);
	}
}

static void test_the_next_interval_logs_again_and_reports_the_count_once(void **state)
{
	struct log_rate_limit limit = LOG_RATE_LIMIT_INIT(2, 5);
	unsigned long suppressed;

	(void)state;
	for (int i = 0; i < 10; i++)
		log_rate_limit_allow(&limit, 1000, &suppressed);
	assert_true(log_rate_limit_allow(&limit, 1005, &suppressed));
	assert_int_equal(suppressed, 8);
	assert_true(log_rate_limit_allow(&limit, 1005, &suppressed));
	assert_int_equal(suppressed, 0);
	assert_false(log_rate_limit_allow(&limit, 1006, &suppressed));
}

static void test_every_event_is_logged_or_counted(void **state)
{
	struct log_rate_limit limit = LOG_RATE_LIMIT_INIT(10, 5);
	unsigned long suppressed, logged = 0, reported = 0;

	(void)state;
	/* 1000 events over 100 seconds, then one more to flush the count. */
	for (int i = 0; i < 1000; i++) {
		if (log_rate_limit_allow(&limit, 1000 + i / 10, &suppressed))
			logged++;
		reported += suppressed;
	}
	assert_true(log_rate_limit_allow(&limit, 2000, &suppressed));
	reported += suppressed;
	logged++;
	assert_int_equal(logged, 20 * 10 + 1);
	assert_int_equal(logged + reported, 1001);
}

static void test_a_clock_set_back_starts_a_new_interval(void **state)
{
	struct log_rate_limit limit = LOG_RATE_LIMIT_INIT(1, 60);
	unsigned long suppressed;

	(void)state;
	assert_true(log_rate_limit_allow(&limit, 5000, &suppressed));
	assert_false(log_rate_limit_allow(&limit, 5001, &suppressed));
	assert_true(log_rate_limit_allow(&limit, 100, &suppressed));
	assert_int_equal(suppressed, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_first_burst_of_an_interval_is_logged_then_counted),
		cmocka_unit_test(test_the_next_interval_logs_again_and_reports_the_count_once),
		cmocka_unit_test(test_every_event_is_logged_or_counted),
		cmocka_unit_test(test_a_clock_set_back_starts_a_new_interval),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
