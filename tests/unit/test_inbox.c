/* test_inbox.c: items posted from other threads (src/inbox.c) are handled on the loop's
 * thread, each once, in the order each thread posted them; those never handled are given
 * back at the end. */
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "inbox.h"

#define POSTS_PER_THREAD 20000

struct posted {
	int thread;
	int seq;
};

struct receiving_loop {
	struct event_base *base;
	pthread_t thread;
	int next_seq[2];      /* what each posting thread's next item must be */
	int handled, off_loop, out_of_order;
};

static void receive(void *ctx, void *item)
{
	struct receiving_loop *loop = ctx;
	struct posted *p = item;

	loop->off_loop += !pthread_equal(pthread_self(), loop->thread);
	loop->out_of_order += p->seq != loop->next_seq[p->thread];
	loop->next_seq[p->thread] = p->seq + 1;
	free(p);
	if (++loop->handled == 2 * POSTS_PER_THREAD)
		event_base_loopexit(loop->base, NULL);
}

struct posting_thread {
	struct inbox *in;
	int index;
};

static void *post_items(void *arg)
{
	struct posting_thread *t = arg;

	for (int i = 0; i < POSTS_PER_THREAD; i++) {
		struct posted *p = malloc(sizeof(*p));
		if (!p)
			abort(); /* cmocka's asserts belong to the test's own thread */
		p->thread = t->index;
		p->seq = i;
		inbox_post(t->in, p);
	}
	return NULL;
}

static void test_items_from_two_threads_arrive_on_the_loop_in_order(void **state)
{
	struct receiving_loop loop = {.thread = pthread_self()};
	pthread_t threads[2];
	struct timeval limit = {30, 0};

	(void)state;
	loop.base = event_base_new();
	assert_non_null(loop.base);
	struct inbox *in = inbox_new(loop.base, receive, &loop);
	struct posting_thread posters[2] = {{in, 0}, {in, 1}};
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, post_items, &posters[i]), 0);
	event_base_loopexit(loop.base, &limit); /* bounded, whatever happens */
	event_base_dispatch(loop.base);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);
	assert_int_equal(loop.handled, 2 * POSTS_PER_THREAD);
	assert_int_equal(loop.off_loop, 0);
	assert_int_equal(loop.out_of_order, 0);
	inbox_free(in, free);
	event_base_free(loop.base);
}

static int discarded;

static void count_discarded(void *item)
{
	discarded++;
	free(item);
}

static void never_called(void *ctx, void *item)
{
	(void)ctx;
	(void)item;
	fail_msg("the loop never ran: nothing is handled");
}

static void test_items_never_handled_are_given_back_at_the_end(void **state)
{
	struct event_base *base = event_base_new();

	(void)state;
	struct inbox *in = inbox_new(base, never_called, NULL);
	for (int i = 0; i < 3; i++)
		inbox_post(in, malloc(16));
	inbox_free(in, count_discarded);
	assert_int_equal(discarded, 3);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_items_from_two_threads_arrive_on_the_loop_in_order),
		cmocka_unit_test(test_items_never_handled_are_given_back_at_the_end),
	};

	/* As the daemon does: the loop's base can then be woken from other threads. */
	if (evthread_use_pthreads() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
