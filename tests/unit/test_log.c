/* test_log.c: the log's rate limit for events a remote party can cause at will, and lines
 * from several threads never mixed (src/log.c). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

#define LINES_PER_THREAD 2000
#define PAD 1500 /* long lines: two of them would not fit in one pipe write (PIPE_BUF) */

struct logging_thread {
	pthread_barrier_t *start;
	int index;
};

static void *log_lines(void *arg)
{
	struct logging_thread *t = arg;
	char pad[PAD + 1];

	memset(pad, 'a' + t->index, PAD);
	pad[PAD] = '\0';
	pthread_barrier_wait(t->start);
	for (int i = 0; i < LINES_PER_THREAD; i++)
		log_info("test", "event=line thread=%d seq=%d pad=%s end", t->index, i, pad);
	return NULL;
}

static void test_lines_from_two_threads_are_never_mixed(void **state)
{
	FILE *out = tmpfile();
	pthread_barrier_t start;
	pthread_t threads[2];
	struct logging_thread loggers[2] = {{&start, 0}, {&start, 1}};
	int saved = dup(STDERR_FILENO);

	(void)state;
	assert_non_null(out);
	fflush(stderr);
	dup2(fileno(out), STDERR_FILENO);
	pthread_barrier_init(&start, NULL, 2);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, log_lines, &loggers[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);
	pthread_barrier_destroy(&start);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(out);
	char *line = NULL;
	size_t cap = 0;
	int next_seq[2] = {0, 0};
	while (getline(&line, &cap, out) > 0) {
		int thread, seq, consumed = 0;
		char *event = strstr(line, "module=test event=line ");
		assert_non_null(event);
		assert_int_equal(sscanf(event, "module=test event=line thread=%d seq=%d pad=%n",
			&thread, &seq, &consumed), 2);
		assert_true(thread == 0 || thread == 1);
		assert_int_equal(seq, next_seq[thread]);
		next_seq[thread]++;
		for (int i = 0; i < PAD; i++)
			assert_int_equal(event[consumed + i], 'a' + thread);
		assert_string_equal(event + consumed + PAD, " end\n");
	}
	assert_int_equal(next_seq[0], LINES_PER_THREAD);
	assert_int_equal(next_seq[1], LINES_PER_THREAD);
	free(line);
	fclose(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_from_two_threads_are_never_mixed),
		cmocka_unit_test(test_the_first_burst_of_an_interval_is_logged_then_counted),
		cmocka_unit_test(test_the_next_interval_logs_again_and_reports_the_count_once),
		cmocka_unit_test(test_every_event_is_logged_or_counted),
		cmocka_unit_test(test_a_clock_set_back_starts_a_new_interval),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
