/* test_generation.c: sharing configuration generations between event loops (src/generation.c):
 * references counted exactly when taken and dropped on several threads at once, and the
 * current generation replaced under them without a connection losing the one it holds. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "generation.h"

#define LOOP_ROUNDS 20000
#define RELOADS 50

static struct generation *make_generation(const char *hostname)
{
	char json[512], err[256];
	struct config cfg;

	snprintf(json, sizeof(json), "{\"Hostname\": \"%s\", \"Servers\": [{\"Domain\": "
		"\"example.org\", \"MailboxPassword\": \"pw\", \"MaildropPath\": \"/nonexistent\"}]}",
		hostname);
	assert_int_equal(config_load_string(json, &cfg, err, sizeof(err)), 0);
	struct generation *gen = generation_new(&cfg, err, sizeof(err));
	assert_non_null(gen);
	return gen;
}

static void test_a_connection_keeps_its_generation_across_a_reload(void **state)
{
	struct generation_current cur;

	(void)state;
	generation_current_init(&cur, make_generation("first.example.org"));
	struct generation *held = generation_current_get(&cur);
	generation_current_set(&cur, make_generation("second.example.org"));
	/* The reload dropped the daemon's reference; the connection's keeps it alive. */
	assert_int_equal(atomic_load(&held->refs), 1);
	assert_string_equal(held->cfg.hostname, "first.example.org");
	struct generation *next = generation_current_get(&cur);
	assert_string_equal(next->cfg.hostname, "second.example.org");
	generation_unref(next);
	generation_unref(held);
	generation_current_destroy(&cur);
}

struct accepting_loop {
	struct generation_current *cur;
	pthread_barrier_t *start;
	unsigned connections;
};

/* An event loop accepting connections that end at once: one reference taken and dropped
 * each, some held across the next accept as a slower connection would. */
static void *accept_connections(void *arg)
{
	struct accepting_loop *loop = arg;
	struct generation *slow = NULL;

	pthread_barrier_wait(loop->start);
	for (unsigned i = 0; i < LOOP_ROUNDS; i++) {
		struct generation *gen = generation_current_get(loop->cur);
		loop->connections += gen->cfg.hostname[0] == 'g';
		if (i % 7 == 0) {
			generation_unref(slow);
			slow = gen;
		} else {
			generation_unref(gen);
		}
	}
	generation_unref(slow);
	return NULL;
}

static void test_two_loops_and_reloads_keep_exact_reference_counts(void **state)
{
	struct generation_current cur;
	struct generation *made[RELOADS + 1];
	pthread_barrier_t start;
	pthread_t threads[2];

	(void)state;
	for (int i = 0; i <= RELOADS; i++) {
		char name[64];
		snprintf(name, sizeof(name), "gen%d.example.org", i);
		/* The test keeps a reference of its own, so each can be checked afterwards. */
		made[i] = generation_ref(make_generation(name));
	}
	generation_current_init(&cur, made[0]);
	pthread_barrier_init(&start, NULL, 3);
	struct accepting_loop loops[2] = {{&cur, &start, 0}, {&cur, &start, 0}};
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, accept_connections, &loops[i]), 0);
	pthread_barrier_wait(&start);
	for (int i = 1; i <= RELOADS; i++)
		generation_current_set(&cur, made[i]); /* SIGHUP on the main thread */
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);
	pthread_barrier_destroy(&start);
	assert_int_equal(loops[0].connections + loops[1].connections, 2 * LOOP_ROUNDS);
	/* Every reference a loop took was dropped: only the test's remain, and the current. */
	for (int i = 0; i < RELOADS; i++)
		assert_int_equal(atomic_load(&made[i]->refs), 1);
	assert_int_equal(atomic_load(&made[RELOADS]->refs), 2);
	struct measured_lock_stats stats = measured_lock_stats(&cur.lock);
	assert_int_equal(stats.acquisitions, 2 * LOOP_ROUNDS + RELOADS);
	print_message("generation lock: %llu acquisitions, %llu contended, longest hold %llu ns\n",
		(unsigned long long)stats.acquisitions, (unsigned long long)stats.contended,
		(unsigned long long)stats.hold_ns_max);
	generation_current_destroy(&cur);
	for (int i = 0; i <= RELOADS; i++)
		generation_unref(made[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_connection_keeps_its_generation_across_a_reload),
		cmocka_unit_test(test_two_loops_and_reloads_keep_exact_reference_counts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
