/* test_dirsync.c: group commit of directory syncs (src/dirsync.c) with real threads and a fake
 * sync that the test opens and closes like a gate: a caller never returns before a sync that
 * began after its call, every caller a failed sync covered gets the error, and the table of
 * directories stays bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "dirsync.h"

/* Every wait in these tests gives up after this long (a broken coalescer fails, not hangs). */
#define WAIT_LIMIT_MS 10000

/* The fake sync: each call takes a number (1, 2, ...), blocks until the test has let that many
 * calls through, and returns the result the test chose for its number. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	unsigned started;            /* calls that began */
	unsigned released;           /* calls allowed to return */
	unsigned returned;
	unsigned running_for[4];     /* calls inside, per directory "d0".."d3" (fallback test) */
	int fail_number;             /* this call fails with EIO (0: none) */
	bool gated;                  /* false: calls return at once */
} fake = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, {0}, 0, false};

static void fake_reset(bool gated)
{
	pthread_mutex_lock(&fake.lock);
	fake.started = fake.released = fake.returned = 0;
	memset(fake.running_for, 0, sizeof(fake.running_for));
	fake.fail_number = 0;
	fake.gated = gated;
	pthread_mutex_unlock(&fake.lock);
}

static struct timespec deadline_after(long ms)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static int fake_directory_index(const char *path)
{
	return path[0] == 'd' && path[1] >= '0' && path[1] <= '3' ? path[1] - '0' : -1;
}

static int fake_sync(const char *path)
{
	int index = fake_directory_index(path), r = 0;
	struct timespec limit = deadline_after(WAIT_LIMIT_MS);
	unsigned number;

	pthread_mutex_lock(&fake.lock);
	number = ++fake.started;
	if (index >= 0)
		fake.running_for[index]++;
	pthread_cond_broadcast(&fake.changed);
	while (fake.gated && fake.released < number)
		if (pthread_cond_timedwait(&fake.changed, &fake.lock, &limit) != 0)
			break;
	if (index >= 0)
		fake.running_for[index]--;
	fake.returned++;
	if ((int)number == fake.fail_number)
		r = -1;
	pthread_cond_broadcast(&fake.changed);
	pthread_mutex_unlock(&fake.lock);
	if (r < 0)
		errno = EIO;
	return r;
}

/* Lets calls up to number return. */
static void fake_release(unsigned number)
{
	pthread_mutex_lock(&fake.lock);
	fake.released = number;
	pthread_cond_broadcast(&fake.changed);
	pthread_mutex_unlock(&fake.lock);
}

/* Waits until *counter (a field of fake) reaches value; false after WAIT_LIMIT_MS. */
static bool fake_wait_for(const unsigned *counter, unsigned value)
{
	struct timespec limit = deadline_after(WAIT_LIMIT_MS);
	bool reached;

	pthread_mutex_lock(&fake.lock);
	while (*counter < value)
		if (pthread_cond_timedwait(&fake.changed, &fake.lock, &limit) != 0)
			break;
	reached = *counter >= value;
	pthread_mutex_unlock(&fake.lock);
	return reached;
}

static unsigned fake_read(const unsigned *counter)
{
	unsigned v;

	pthread_mutex_lock(&fake.lock);
	v = *counter;
	pthread_mutex_unlock(&fake.lock);
	return v;
}

static void sleep_ms(long ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&t, NULL);
}

/* Waits until users threads are inside dirsync_sync for path. */
static bool wait_for_users(struct dirsync *s, const char *path, unsigned users)
{
	for (long waited = 0; waited < WAIT_LIMIT_MS; waited++) {
		if (dirsync_users(s, path) >= users)
			return true;
		sleep_ms(1);
	}
	return false;
}

/* A thread calling dirsync_sync once; the test joins it for the result. */
struct caller {
	struct dirsync *syncer;
	const char *path;
	pthread_t thread;
	int result;
	int error;
	atomic_bool returned;
};

static void *caller_run(void *arg)
{
	struct caller *c = arg;

	c->result = dirsync_sync(c->syncer, c->path);
	c->error = c->result < 0 ? errno : 0;
	atomic_store(&c->returned, true);
	return NULL;
}

static void caller_start(struct caller *c, struct dirsync *s, const char *path)
{
	c->syncer = s;
	c->path = path;
	c->result = 1;
	c->error = 0;
	atomic_store(&c->returned, false);
	assert_int_equal(pthread_create(&c->thread, NULL, caller_run, c), 0);
}

static void caller_join(struct caller *c)
{
	assert_int_equal(pthread_join(c->thread, NULL), 0);
}

static int setup(void **state)
{
	struct dirsync *s = calloc(1, sizeof(*s));

	dirsync_init(s, fake_sync);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	dirsync_destroy(*state);
	free(*state);
	return 0;
}

static void test_a_lone_caller_syncs_once(void **state)
{
	struct dirsync *s = *state;

	fake_reset(false);
	assert_int_equal(dirsync_sync(s, "d0"), 0);
	assert_int_equal(dirsync_sync(s, "d0"), 0);
	assert_int_equal(fake_read(&fake.started), 2);
	assert_int_equal(dirsync_users(s, "d0"), 0);
}

static void test_a_sync_that_began_before_the_call_does_not_cover_it(void **state)
{
	struct dirsync *s = *state;
	struct caller first, second;

	fake_reset(true);
	caller_start(&first, s, "d0");
	assert_true(fake_wait_for(&fake.started, 1));
	/* second arrives while sync 1 runs: its rename may have come after sync 1 began. */
	caller_start(&second, s, "d0");
	assert_true(wait_for_users(s, "d0", 2));
	fake_release(1);
	caller_join(&first);
	assert_int_equal(first.result, 0);
	/* Sync 1 is over, but second waits for the sync it leads now. */
	assert_true(fake_wait_for(&fake.started, 2));
	assert_false(atomic_load(&second.returned));
	fake_release(2);
	caller_join(&second);
	assert_int_equal(second.result, 0);
	assert_int_equal(fake_read(&fake.started), 2);
}

static void test_callers_arriving_during_one_sync_share_the_next(void **state)
{
	struct dirsync *s = *state;
	struct caller leader, followers[5];

	fake_reset(true);
	caller_start(&leader, s, "d0");
	assert_true(fake_wait_for(&fake.started, 1));
	for (size_t i = 0; i < 5; i++)
		caller_start(&followers[i], s, "d0");
	assert_true(wait_for_users(s, "d0", 6));
	fake_release(2);
	caller_join(&leader);
	for (size_t i = 0; i < 5; i++) {
		caller_join(&followers[i]);
		assert_int_equal(followers[i].result, 0);
	}
	/* Six callers, two syncs: the five followers had one between them. */
	assert_int_equal(fake_read(&fake.started), 2);
	assert_int_equal(dirsync_users(s, "d0"), 0);
}

static void test_a_failed_sync_fails_every_caller_it_covered(void **state)
{
	struct dirsync *s = *state;
	struct caller leader, followers[4];

	fake_reset(true);
	fake.fail_number = 2;
	caller_start(&leader, s, "d0");
	assert_true(fake_wait_for(&fake.started, 1));
	for (size_t i = 0; i < 4; i++)
		caller_start(&followers[i], s, "d0");
	assert_true(wait_for_users(s, "d0", 5));
	fake_release(2);
	caller_join(&leader);
	assert_int_equal(leader.result, 0); /* sync 1 succeeded, and covered only the leader */
	for (size_t i = 0; i < 4; i++) {
		caller_join(&followers[i]);
		assert_int_equal(followers[i].result, -1);
		assert_int_equal(followers[i].error, EIO);
	}
	/* The failure is not remembered past its followers: the next caller syncs afresh. */
	fake_reset(false);
	assert_int_equal(dirsync_sync(s, "d0"), 0);
}

static void test_a_failed_sync_fails_its_lone_leader(void **state)
{
	struct dirsync *s = *state;

	fake_reset(false);
	fake.fail_number = 1;
	errno = 0;
	assert_int_equal(dirsync_sync(s, "d0"), -1);
	assert_int_equal(errno, EIO);
}

static void test_directories_do_not_share_syncs(void **state)
{
	struct dirsync *s = *state;
	struct caller a, b;

	fake_reset(true);
	caller_start(&a, s, "d0");
	caller_start(&b, s, "d1");
	/* Both syncs run at once: d1's caller does not wait behind d0's. */
	assert_true(fake_wait_for(&fake.started, 2));
	fake_release(2);
	caller_join(&a);
	caller_join(&b);
	assert_int_equal(a.result, 0);
	assert_int_equal(b.result, 0);
}

static void test_a_full_table_syncs_without_sharing(void **state)
{
	struct dirsync *s = *state;
	struct caller holders[DIRSYNC_SLOTS], extra[2];
	char names[DIRSYNC_SLOTS][16];

	fake_reset(true);
	/* Every slot held by a sync in progress ("x0", "x1", ...: not the fake's d0..d3). */
	for (size_t i = 0; i < DIRSYNC_SLOTS; i++) {
		snprintf(names[i], sizeof(names[i]), "x%zu", i);
		caller_start(&holders[i], s, names[i]);
	}
	assert_true(fake_wait_for(&fake.started, DIRSYNC_SLOTS));
	/* One directory more: two callers for it run their own syncs side by side. */
	caller_start(&extra[0], s, "d2");
	caller_start(&extra[1], s, "d2");
	assert_true(fake_wait_for(&fake.started, DIRSYNC_SLOTS + 2));
	assert_int_equal(fake_read(&fake.running_for[2]), 2);
	assert_int_equal(dirsync_users(s, "d2"), 0);
	fake_release(DIRSYNC_SLOTS + 2);
	for (size_t i = 0; i < DIRSYNC_SLOTS; i++) {
		caller_join(&holders[i]);
		assert_int_equal(holders[i].result, 0);
	}
	caller_join(&extra[0]);
	caller_join(&extra[1]);
	assert_int_equal(extra[0].result, 0);
	assert_int_equal(extra[1].result, 0);
	/* Every slot is given back once its callers returned. */
	for (size_t i = 0; i < DIRSYNC_SLOTS; i++)
		assert_int_equal(dirsync_users(s, names[i]), 0);
}

static void test_a_path_longer_than_a_slot_is_synced_alone(void **state)
{
	struct dirsync *s = *state;
	char path[DIRSYNC_PATH_MAX + 8];

	fake_reset(false);
	memset(path, 'p', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(dirsync_sync(s, path), 0);
	assert_int_equal(fake_read(&fake.started), 1);
}

/* Many threads, many rounds, ungated: each checks that some sync began after its call began
 * and returned before its call did. */
static atomic_uint stress_clock;         /* ticks at every call and every sync start */
static atomic_uint stress_covered_start; /* the start tick of the latest sync that returned */

static int stamping_sync(const char *path)
{
	unsigned start = atomic_fetch_add(&stress_clock, 1) + 1;

	(void)path;
	sleep_ms(1);
	/* Syncs of one directory never overlap, so this only moves forward. */
	atomic_store(&stress_covered_start, start);
	return 0;
}

#define STRESS_THREADS 8
#define STRESS_ROUNDS 40

static atomic_uint stress_uncovered;

static void *stress_run(void *arg)
{
	struct dirsync *s = arg;

	for (int round = 0; round < STRESS_ROUNDS; round++) {
		unsigned called = atomic_fetch_add(&stress_clock, 1) + 1;

		if (dirsync_sync(s, "d3") != 0 || atomic_load(&stress_covered_start) <= called)
			atomic_fetch_add(&stress_uncovered, 1);
	}
	return NULL;
}

static void test_every_caller_is_covered_by_a_sync_begun_after_its_call(void **state)
{
	struct dirsync s;
	pthread_t threads[STRESS_THREADS];

	(void)state;
	dirsync_init(&s, stamping_sync);
	for (size_t i = 0; i < STRESS_THREADS; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, stress_run, &s), 0);
	for (size_t i = 0; i < STRESS_THREADS; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);
	assert_int_equal(atomic_load(&stress_uncovered), 0);
	dirsync_destroy(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_lone_caller_syncs_once, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_a_sync_that_began_before_the_call_does_not_cover_it, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_callers_arriving_during_one_sync_share_the_next, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_a_failed_sync_fails_every_caller_it_covered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_failed_sync_fails_its_lone_leader, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_directories_do_not_share_syncs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_full_table_syncs_without_sharing, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_a_path_longer_than_a_slot_is_synced_alone, setup,
			teardown),
		cmocka_unit_test(test_every_caller_is_covered_by_a_sync_begun_after_its_call),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
