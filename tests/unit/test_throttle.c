/* test_throttle.c: per-IP failed-login throttling (src/throttle.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>

#include <cmocka.h>

#include "measured_lock.h"
#include "throttle.h"

static void test_each_failure_waits_one_second_longer(void **state)
{
	struct throttle *t = throttle_new(10, 600, 900);
	bool locked;

	(void)state;
	assert_int_equal(throttle_failure(t, "192.0.2.1", 1000, &locked), 1);
	assert_int_equal(throttle_failure(t, "192.0.2.1", 1001, &locked), 2);
	assert_int_equal(throttle_failure(t, "192.0.2.1", 1002, &locked), 3);
	assert_false(locked);
	/* Another address has its own count. */
	assert_int_equal(throttle_failure(t, "192.0.2.2", 1002, &locked), 1);
	throttle_free(t);
}

static void test_delay_is_capped(void **state)
{
	struct throttle *t = throttle_new(100, 600, 900);
	bool locked;
	unsigned delay = 0;

	(void)state;
	for (int i = 0; i < 50; i++)
		delay = throttle_failure(t, "192.0.2.1", 1000 + i, &locked);
	assert_int_equal(delay, THROTTLE_MAX_DELAY_SECONDS);
	throttle_free(t);
}

static void test_max_failures_lock_the_address_out_for_the_lockout(void **state)
{
	struct throttle *t = throttle_new(3, 600, 900);
	bool locked;

	(void)state;
	throttle_failure(t, "192.0.2.1", 1000, &locked);
	throttle_failure(t, "192.0.2.1", 1001, &locked);
	assert_false(throttle_blocked(t, "192.0.2.1", 1001));
	throttle_failure(t, "192.0.2.1", 1002, &locked);
	assert_true(locked);
	assert_true(throttle_blocked(t, "192.0.2.1", 1003));
	assert_true(throttle_blocked(t, "192.0.2.1", 1002 + 899));
	assert_false(throttle_blocked(t, "192.0.2.1", 1002 + 900));
	assert_false(throttle_blocked(t, "192.0.2.2", 1003));
	throttle_free(t);
}

static void test_failures_outside_the_window_are_forgotten(void **state)
{
	struct throttle *t = throttle_new(3, 600, 900);
	bool locked;

	(void)state;
	throttle_failure(t, "192.0.2.1", 1000, &locked);
	throttle_failure(t, "192.0.2.1", 1001, &locked);
	assert_int_equal(throttle_failure(t, "192.0.2.1", 1000 + 600, &locked), 1);
	assert_false(locked);
	throttle_free(t);
}

static void test_success_clears_the_count(void **state)
{
	struct throttle *t = throttle_new(3, 600, 900);
	bool locked;

	(void)state;
	throttle_failure(t, "192.0.2.1", 1000, &locked);
	throttle_failure(t, "192.0.2.1", 1001, &locked);
	throttle_success(t, "192.0.2.1");
	assert_int_equal(throttle_failure(t, "192.0.2.1", 1002, &locked), 1);
	throttle_free(t);
}

static void test_many_addresses_stay_bounded_and_keep_working(void **state)
{
	struct throttle *t = throttle_new(3, 600, 900);
	char ip[64];
	bool locked;

	(void)state;
	/* Each new address is one record, and a success drops an unlocked one. */
	assert_int_equal(throttle_entries(t), 0);
	throttle_failure(t, "192.0.2.1", 1000, &locked);
	throttle_failure(t, "192.0.2.2", 1000, &locked);
	throttle_failure(t, "192.0.2.2", 1000, &locked);
	assert_int_equal(throttle_entries(t), 2);
	throttle_success(t, "192.0.2.1");
	assert_int_equal(throttle_entries(t), 1);
	/* Far more addresses than entries: the table evicts, never grows, never fails. */
	for (int i = 0; i < THROTTLE_MAX_ENTRIES * 4; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		throttle_failure(t, ip, 1000, &locked);
		assert_in_range(throttle_entries(t), 1, THROTTLE_MAX_ENTRIES);
	}
	/* Full: the flood filled the table rather than being dropped. */
	assert_in_range(throttle_entries(t), THROTTLE_MAX_ENTRIES / 2, THROTTLE_MAX_ENTRIES);
	for (int i = 0; i < 3; i++)
		throttle_failure(t, "192.0.2.99", 1001, &locked);
	assert_true(throttle_blocked(t, "192.0.2.99", 1002));
	assert_in_range(throttle_entries(t), THROTTLE_MAX_ENTRIES / 2, THROTTLE_MAX_ENTRIES);
	throttle_free(t);
}

/* Event loops on two threads share one table. */
#define THREAD_ROUNDS 20000

struct failing_loop {
	struct throttle *t;
	pthread_barrier_t *start; /* both run at once */
	int index;
	unsigned lockouts_started;
};

static void *fail_logins(void *arg)
{
	struct failing_loop *loop = arg;
	char own[64];
	bool locked;

	pthread_barrier_wait(loop->start);
	for (int i = 0; i < THREAD_ROUNDS; i++) {
		throttle_failure(loop->t, "192.0.2.7", 1000, &locked);
		loop->lockouts_started += locked;
		/* Addresses of its own, so both threads also claim records; few enough that the
		 * table never has to evict a record. */
		snprintf(own, sizeof(own), "10.%d.0.%d", loop->index, i & 255);
		throttle_failure(loop->t, own, 1000, &locked);
	}
	return NULL;
}

static void test_two_threads_count_every_failure_of_a_shared_address(void **state)
{
	/* The lockout starts at exactly the 2 * THREAD_ROUNDS-th failure: a lost update would
	 * start none. */
	struct throttle *t = throttle_new(2 * THREAD_ROUNDS, 600, 900);
	pthread_barrier_t start;
	struct failing_loop loops[2] = {{t, &start, 1, 0}, {t, &start, 2, 0}};
	pthread_t threads[2];

	(void)state;
	pthread_barrier_init(&start, NULL, 2);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, fail_logins, &loops[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);
	pthread_barrier_destroy(&start);
	assert_int_equal(loops[0].lockouts_started + loops[1].lockouts_started, 1);
	struct measured_lock_stats stats = measured_lock_stats(throttle_lock(t));
	assert_int_equal(stats.acquisitions, 4 * THREAD_ROUNDS);
	assert_true(stats.contended <= stats.acquisitions);
	assert_true(stats.hold_ns_max >= stats.hold_ns_total / stats.acquisitions);
	print_message("throttle lock: %llu acquisitions, %llu contended, longest hold %llu ns, "
		"mean %llu ns\n", (unsigned long long)stats.acquisitions,
		(unsigned long long)stats.contended, (unsigned long long)stats.hold_ns_max,
		(unsigned long long)(stats.hold_ns_total / stats.acquisitions));
	assert_true(throttle_blocked(t, "192.0.2.7", 1001));
	throttle_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_failure_waits_one_second_longer),
		cmocka_unit_test(test_delay_is_capped),
		cmocka_unit_test(test_max_failures_lock_the_address_out_for_the_lockout),
		cmocka_unit_test(test_failures_outside_the_window_are_forgotten),
		cmocka_unit_test(test_success_clears_the_count),
		cmocka_unit_test(test_many_addresses_stay_bounded_and_keep_working),
		cmocka_unit_test(test_two_threads_count_every_failure_of_a_shared_address),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
