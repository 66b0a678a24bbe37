/* test_worker.c: the worker pool (src/worker.c): threads start only when a job would wait,
 * never beyond the maximum; every job's work runs on a worker and its done function on the
 * event loop thread, once. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "worker.h"

#define JOBS 64

struct job {
	pthread_t loop_thread;
	pthread_t ran_on;
	pthread_mutex_t *gate; /* held by the test to keep workers busy */
	int *done_count;
	struct event_base *base;
	int total;
	int done_calls;
	int done_on_loop;
};

static void work(void *arg)
{
	struct job *j = arg;

	if (j->gate) {
		pthread_mutex_lock(j->gate);
		pthread_mutex_unlock(j->gate);
	}
	j->ran_on = pthread_self();
}

static void done(void *arg)
{
	struct job *j = arg;

	j->done_calls++;
	j->done_on_loop = pthread_equal(pthread_self(), j->loop_thread);
	if (++*j->done_count == j->total)
		event_base_loopexit(j->base, NULL);
}

static void run_until_done(struct event_base *base)
{
	struct timeval limit = {30, 0};

	event_base_loopexit(base, &limit); /* bounded, whatever happens */
	event_base_dispatch(base);
}

static void test_no_thread_before_the_first_job(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct worker_pool *pool = worker_pool_new(base, 16);

	assert_int_equal(worker_pool_threads(pool), 0);
	assert_int_equal(worker_pool_pending(pool), 0);
	worker_pool_free(pool);
	event_base_free(base);
}

static void test_sequential_jobs_use_one_thread(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct worker_pool *pool = worker_pool_new(base, 16);
	int count = 0;

	for (int i = 0; i < 10; i++) {
		struct job j = {.loop_thread = pthread_self(), .done_count = &count, .base = base,
			.total = i + 1};
		worker_pool_submit(pool, work, done, &j);
		run_until_done(base);
		assert_int_equal(j.done_calls, 1);
		assert_true(j.done_on_loop);
		assert_false(pthread_equal(j.ran_on, pthread_self()));
	}
	/* Each job finished before the next was submitted: an idle thread took it. */
	assert_int_equal(worker_pool_threads(pool), 1);
	worker_pool_free(pool);
	event_base_free(base);
}

static void test_waiting_jobs_start_threads_up_to_the_maximum(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct worker_pool *pool = worker_pool_new(base, 5);
	pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
	static struct job jobs[JOBS];
	int count = 0;

	pthread_mutex_lock(&gate); /* every job blocks: none finishes, each new one must wait */
	for (int i = 0; i < JOBS; i++) {
		jobs[i] = (struct job){.loop_thread = pthread_self(), .gate = &gate,
			.done_count = &count, .base = base, .total = JOBS};
		worker_pool_submit(pool, work, done, &jobs[i]);
		assert_true(worker_pool_threads(pool) <= 5);
	}
	assert_int_equal(worker_pool_threads(pool), 5);
	assert_int_equal(worker_pool_pending(pool), JOBS);
	pthread_mutex_unlock(&gate);
	run_until_done(base);
	assert_int_equal(count, JOBS);
	assert_int_equal(worker_pool_pending(pool), 0);
	for (int i = 0; i < JOBS; i++) {
		assert_int_equal(jobs[i].done_calls, 1);
		assert_true(jobs[i].done_on_loop);
	}
	assert_int_equal(worker_pool_threads(pool), 5);
	worker_pool_free(pool);
	event_base_free(base);
}

/* Each event loop has its own pool: jobs submitted on a loop finish on that loop. */
#define LOOP_JOBS 500

struct loop_with_pool {
	struct job jobs[LOOP_JOBS];
	int count;
	int done_elsewhere;
};

static void *run_loop_with_pool(void *arg)
{
	struct loop_with_pool *l = arg;
	struct event_base *base = event_base_new();
	struct worker_pool *pool = worker_pool_new(base, 4);

	for (int i = 0; i < LOOP_JOBS; i++) {
		l->jobs[i] = (struct job){.loop_thread = pthread_self(), .done_count = &l->count,
			.base = base, .total = LOOP_JOBS};
		worker_pool_submit(pool, work, done, &l->jobs[i]);
	}
	run_until_done(base);
	for (int i = 0; i < LOOP_JOBS; i++)
		l->done_elsewhere += l->jobs[i].done_calls != 1 || !l->jobs[i].done_on_loop;
	worker_pool_free(pool);
	event_base_free(base);
	return NULL;
}

static void test_two_loops_with_a_pool_each_finish_jobs_on_their_own_loop(void **state)
{
	static struct loop_with_pool loops[2];
	pthread_t threads[2];

	(void)state;
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, run_loop_with_pool, &loops[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(loops[i].count, LOOP_JOBS);
		assert_int_equal(loops[i].done_elsewhere, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_loops_with_a_pool_each_finish_jobs_on_their_own_loop),
		cmocka_unit_test(test_no_thread_before_the_first_job),
		cmocka_unit_test(test_sequential_jobs_use_one_thread),
		cmocka_unit_test(test_waiting_jobs_start_threads_up_to_the_maximum),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
