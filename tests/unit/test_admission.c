/* test_admission.c: connection slots (src/admission.c): the owner's reserved share, which
 * connection a full house sheds, and that authenticated sessions are never among them; then
 * the house shared by event loops: exact counts under two threads, and a connection to shed
 * on another loop named for that loop instead of closed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "admission.h"

#define NOW 100000
/* Long enough without progress to be shed. */
#define STALE (NOW - SERVER_SHED_IDLE_SECONDS)

/* The candidates of one walk, in order, into out; returns how many. */
static size_t walk_all(const struct admission *a, enum admission_verdict verdict,
	struct admission_slot **out, size_t max)
{
	struct admission_walk walk;
	size_t n = 0;

	admission_walk_start(&walk, a, verdict, NOW);
	for (struct admission_slot *s; n < max && (s = admission_walk_next(&walk)) != NULL;)
		out[n++] = s;
	return n;
}

static void test_a_tenth_rounded_up_is_reserved_but_never_every_slot(void **state)
{
	(void)state;
	assert_int_equal(admission_reserved(1000), 100);
	assert_int_equal(admission_reserved(40), 4);
	assert_int_equal(admission_reserved(41), 5);
	assert_int_equal(admission_reserved(4), 1);
	assert_int_equal(admission_reserved(2), 1);
	assert_int_equal(admission_reserved(1), 0);
	assert_int_equal(admission_reserved(INT32_MAX), 214748365);
}

static void test_the_mx_lane_cannot_take_the_reserved_slots(void **state)
{
	struct admission a = {0};
	struct admission_slot slots[10];

	(void)state;
	for (int i = 0; i < 9; i++) {
		assert_int_equal(admission_check(&a, ADMISSION_MX, 10), ADMISSION_ADMIT);
		admission_add(&a, &slots[i], ADMISSION_MX, NOW);
	}
	/* 10 slots, 1 reserved: the MX share is full, the owner's slot is still free. */
	assert_int_equal(admission_check(&a, ADMISSION_MX, 10), ADMISSION_MX_FULL);
	assert_int_equal(admission_check(&a, ADMISSION_OWNER, 10), ADMISSION_ADMIT);
	admission_add(&a, &slots[9], ADMISSION_OWNER, NOW);
	assert_int_equal(admission_check(&a, ADMISSION_OWNER, 10), ADMISSION_FULL);
	assert_int_equal(admission_check(&a, ADMISSION_MX, 10), ADMISSION_MX_FULL);
	assert_int_equal(admission_total(&a), 10);
	admission_remove(&a, &slots[0]);
	assert_int_equal(admission_check(&a, ADMISSION_MX, 10), ADMISSION_ADMIT);
}

static void test_the_owner_lane_may_take_every_slot(void **state)
{
	struct admission a = {0};
	struct admission_slot slots[10];

	(void)state;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(admission_check(&a, ADMISSION_OWNER, 10), ADMISSION_ADMIT);
		admission_add(&a, &slots[i], ADMISSION_OWNER, NOW);
	}
	/* The MX share is not taken: a new MX connection may shed from either lane. */
	assert_int_equal(admission_check(&a, ADMISSION_OWNER, 10), ADMISSION_FULL);
	assert_int_equal(admission_check(&a, ADMISSION_MX, 10), ADMISSION_FULL);
}

static void test_the_longest_without_progress_is_shed_first(void **state)
{
	struct admission a = {0};
	struct admission_slot s[3], *got[4];

	(void)state;
	admission_add(&a, &s[0], ADMISSION_MX, STALE - 30);
	admission_add(&a, &s[1], ADMISSION_MX, STALE - 20);
	admission_add(&a, &s[2], ADMISSION_MX, STALE - 10);
	/* s[0] makes progress: it is now the last candidate, s[1] the first. */
	admission_touch(&a, &s[0], STALE);
	assert_int_equal(walk_all(&a, ADMISSION_MX_FULL, got, 4), 3);
	assert_ptr_equal(got[0], &s[1]);
	assert_ptr_equal(got[1], &s[2]);
	assert_ptr_equal(got[2], &s[0]);
}

static void test_recent_progress_is_never_shed(void **state)
{
	struct admission a = {0};
	struct admission_slot s[2], *got[2];

	(void)state;
	admission_add(&a, &s[0], ADMISSION_MX, STALE);
	admission_add(&a, &s[1], ADMISSION_MX, STALE + 1);
	assert_int_equal(walk_all(&a, ADMISSION_MX_FULL, got, 2), 1);
	assert_ptr_equal(got[0], &s[0]);
	admission_touch(&a, &s[0], NOW);
	assert_int_equal(walk_all(&a, ADMISSION_MX_FULL, got, 2), 0);
}

static void test_authenticated_sessions_are_never_shed_but_still_counted(void **state)
{
	struct admission a = {0};
	struct admission_slot s[2], *got[2];

	(void)state;
	admission_add(&a, &s[0], ADMISSION_OWNER, STALE - 100);
	admission_add(&a, &s[1], ADMISSION_OWNER, STALE - 50);
	admission_protect(&a, &s[0]);
	admission_touch(&a, &s[0], STALE - 200); /* progress of a protected session: no relisting */
	assert_int_equal(walk_all(&a, ADMISSION_FULL, got, 2), 1);
	assert_ptr_equal(got[0], &s[1]);
	assert_int_equal(admission_total(&a), 2);
	admission_remove(&a, &s[0]);
	admission_remove(&a, &s[1]);
	assert_int_equal(admission_total(&a), 0);
	assert_int_equal(walk_all(&a, ADMISSION_FULL, got, 2), 0);
}

static void test_a_full_mx_share_sheds_only_mx_connections(void **state)
{
	struct admission a = {0};
	struct admission_slot mx, owner, *got[2];

	(void)state;
	admission_add(&a, &owner, ADMISSION_OWNER, STALE - 100);
	admission_add(&a, &mx, ADMISSION_MX, STALE - 50);
	assert_int_equal(walk_all(&a, ADMISSION_MX_FULL, got, 2), 1);
	assert_ptr_equal(got[0], &mx);
}

static void test_a_full_house_sheds_from_both_lanes_oldest_first(void **state)
{
	struct admission a = {0};
	struct admission_slot mx[2], owner[2], *got[4];

	(void)state;
	admission_add(&a, &mx[0], ADMISSION_MX, STALE - 40);
	admission_add(&a, &owner[0], ADMISSION_OWNER, STALE - 30);
	admission_add(&a, &mx[1], ADMISSION_MX, STALE - 20);
	admission_add(&a, &owner[1], ADMISSION_OWNER, STALE - 10);
	assert_int_equal(walk_all(&a, ADMISSION_FULL, got, 4), 4);
	assert_ptr_equal(got[0], &mx[0]);
	assert_ptr_equal(got[1], &owner[0]);
	assert_ptr_equal(got[2], &mx[1]);
	assert_ptr_equal(got[3], &owner[1]);
}

static void test_removing_keeps_the_lists_linked(void **state)
{
	struct admission a = {0};
	struct admission_slot s[3], *got[3];

	(void)state;
	for (int i = 0; i < 3; i++)
		admission_add(&a, &s[i], ADMISSION_MX, STALE - 10 + i);
	admission_remove(&a, &s[1]); /* the middle */
	assert_int_equal(walk_all(&a, ADMISSION_MX_FULL, got, 3), 2);
	assert_ptr_equal(got[0], &s[0]);
	assert_ptr_equal(got[1], &s[2]);
	admission_remove(&a, &s[2]); /* the newest */
	admission_remove(&a, &s[0]); /* the oldest, now alone */
	assert_null(a.oldest[ADMISSION_MX]);
	assert_null(a.newest[ADMISSION_MX]);
	assert_int_equal(a.count[ADMISSION_MX], 0);
}

/* ---- the house ---- */

static const int loop_a, loop_b; /* two event loops, by address */

static bool no_shedding_expected(void *ctx, const struct admission_shed *request)
{
	(void)ctx;
	(void)request;
	fail_msg("nobody has gone long enough without progress to be shed");
	return false;
}

#define HOUSE_ROUNDS 5000
#define HOUSE_HELD 6 /* per thread: together more than the house holds */

struct admitting_loop {
	struct admission_house *house;
	pthread_barrier_t *start;
	const void *owner;
	const char *ip;
	unsigned admitted, refused, over_cap;
};

static void *admit_and_leave(void *arg)
{
	struct admitting_loop *loop = arg;
	struct admission_limits limits = {10, 1000};
	struct admission_slot slots[HOUSE_HELD];
	bool held[HOUSE_HELD];
	struct admission_shed shed;

	pthread_barrier_wait(loop->start);
	for (int round = 0; round < HOUSE_ROUNDS; round++) {
		for (int i = 0; i < HOUSE_HELD; i++) {
			memset(&slots[i], 0, sizeof(slots[i]));
			slots[i].owner = loop->owner;
			enum admission_outcome outcome = admission_house_admit(loop->house, &slots[i],
				loop->ip, i % 2 ? ADMISSION_MX : ADMISSION_OWNER, &limits, NOW,
				no_shedding_expected, NULL, &shed);
			held[i] = outcome == ADMISSION_ADMITTED;
			loop->admitted += held[i];
			loop->refused += outcome == ADMISSION_REFUSED_FULL ||
				outcome == ADMISSION_REFUSED_MX_FULL;
			loop->over_cap += admission_house_total(loop->house) > limits.max_connections;
		}
		for (int i = 0; i < HOUSE_HELD; i++) {
			if (held[i])
				admission_house_touch(loop->house, &slots[i], NOW + 1 + round % 3);
		}
		for (int i = 0; i < HOUSE_HELD; i++) {
			if (held[i])
				admission_house_leave(loop->house, &slots[i]);
		}
	}
	return NULL;
}

static void test_two_loops_admitting_and_leaving_keep_exact_counts(void **state)
{
	struct admission_house house;
	pthread_barrier_t start;
	pthread_t threads[2];

	(void)state;
	admission_house_init(&house);
	pthread_barrier_init(&start, NULL, 2);
	struct admitting_loop loops[2] = {
		{&house, &start, &loop_a, "192.0.2.1", 0, 0, 0},
		{&house, &start, &loop_b, "192.0.2.2", 0, 0, 0},
	};
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, admit_and_leave, &loops[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);
	pthread_barrier_destroy(&start);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(loops[i].admitted + loops[i].refused, HOUSE_ROUNDS * HOUSE_HELD);
		assert_int_equal(loops[i].over_cap, 0);
		assert_true(loops[i].admitted > 0);
	}
	/* Every admitted connection left: nothing is counted any more. */
	assert_int_equal(admission_house_total(&house), 0);
	assert_int_equal(admission_house_per_ip(&house, "192.0.2.1"), 0);
	assert_int_equal(admission_house_per_ip(&house, "192.0.2.2"), 0);
	assert_int_equal(house.lanes.count[ADMISSION_MX] + house.lanes.count[ADMISSION_OWNER], 0);
	assert_null(house.lanes.oldest[ADMISSION_MX]);
	assert_null(house.lanes.oldest[ADMISSION_OWNER]);
	struct measured_lock_stats stats = measured_lock_stats(&house.lock);
	print_message("admission lock: %llu acquisitions, %llu contended, longest hold %llu ns, "
		"mean %llu ns\n", (unsigned long long)stats.acquisitions,
		(unsigned long long)stats.contended, (unsigned long long)stats.hold_ns_max,
		(unsigned long long)(stats.hold_ns_total / stats.acquisitions));
	admission_house_destroy(&house);
}

/* MaxConnections 3: two MX slots, both held by loop A's idle clients. */
static void fill_mx_share_on_loop_a(struct admission_house *house, struct admission_slot *held,
	const struct admission_limits *limits)
{
	struct admission_shed shed;

	admission_house_init(house);
	for (int i = 0; i < 2; i++) {
		memset(&held[i], 0, sizeof(held[i]));
		held[i].owner = &loop_a;
		assert_int_equal(admission_house_enter(house, &held[i], "192.0.2.1", ADMISSION_MX,
			limits, STALE - 1 + i, &shed), ADMISSION_ADMITTED);
	}
}

static void test_a_connection_on_another_loop_is_named_for_it_and_the_room_given(void **state)
{
	struct admission_limits limits = {3, 10};
	struct admission_house house;
	struct admission_slot held[2], newcomer = {.owner = &loop_b};
	struct admission_shed shed;

	(void)state;
	fill_mx_share_on_loop_a(&house, held, &limits);
	assert_int_equal(admission_house_enter(&house, &newcomer, "192.0.2.9", ADMISSION_MX,
		&limits, NOW, &shed), ADMISSION_ADMITTED_SHED_THERE);
	/* Loop A's oldest is named, by its serial, for loop A to close. */
	assert_ptr_equal(shed.owner, &loop_a);
	assert_true(shed.serial == held[0].serial);
	assert_true(shed.for_serial == newcomer.serial);
	assert_int_equal(shed.lane, ADMISSION_MX);
	assert_int_equal(shed.idle_seconds, SERVER_SHED_IDLE_SECONDS + 1);
	/* Counted until it is gone, but its room is the newcomer's: a third MX client is not
	 * admitted in the same room, it names loop A's other idle client. */
	assert_int_equal(admission_house_total(&house), 3);
	struct admission_slot third = {.owner = &loop_b};
	assert_int_equal(admission_house_enter(&house, &third, "192.0.2.9", ADMISSION_MX,
		&limits, NOW, &shed), ADMISSION_ADMITTED_SHED_THERE);
	assert_true(shed.serial == held[1].serial);
	/* Loop A: the first is still to be shed and goes; the second logged in meanwhile. */
	assert_true(admission_house_shed_stands(&house, &held[0]));
	admission_house_leave(&house, &held[0]);
	admission_house_protect(&house, &held[1]);
	assert_false(admission_house_shed_stands(&house, &held[1]));
	assert_int_equal(admission_house_per_ip(&house, "192.0.2.9"), 2);
	assert_int_equal(admission_house_total(&house), 3);
	admission_house_leave(&house, &held[1]);
	admission_house_leave(&house, &newcomer);
	admission_house_leave(&house, &third);
	assert_int_equal(admission_house_total(&house), 0);
	admission_house_destroy(&house);
}

static void test_a_declined_shed_on_another_loop_names_the_next_candidate(void **state)
{
	struct admission_limits limits = {3, 10};
	struct admission_house house;
	struct admission_slot held[2], newcomer = {.owner = &loop_b};
	struct admission_shed shed, next;

	(void)state;
	fill_mx_share_on_loop_a(&house, held, &limits);
	assert_int_equal(admission_house_enter(&house, &newcomer, "192.0.2.9", ADMISSION_MX,
		&limits, NOW, &shed), ADMISSION_ADMITTED_SHED_THERE);
	/* Loop A cannot close its oldest now (a commit is running): the house is one over its
	 * MX share, so the next candidate is named. */
	assert_true(admission_house_shed_declined(&house, &held[0], &shed, limits.max_connections,
		NOW, &next));
	assert_true(next.serial == held[1].serial);
	assert_int_equal(next.tries, 2);
	admission_house_leave(&house, &held[1]);
	/* Back within the caps: a decline now names nobody. */
	assert_false(admission_house_shed_stands(&house, &held[0]));
	assert_int_equal(admission_house_total(&house), 2);
	admission_house_leave(&house, &held[0]);
	admission_house_leave(&house, &newcomer);
	admission_house_destroy(&house);
}

struct same_loop_shedding {
	struct admission_house *house;
	struct admission_slot *held;
	unsigned asked;
};

/* Loop A's shed callback: its oldest connection is committing and cannot end; the next
 * one is closed (and leaves the house). */
static bool shed_on_loop_a(void *ctx, const struct admission_shed *request)
{
	struct same_loop_shedding *s = ctx;

	s->asked++;
	assert_ptr_equal(request->owner, &loop_a);
	if (request->here == &s->held[0])
		return false;
	assert_ptr_equal(request->here, &s->held[1]);
	admission_house_leave(s->house, request->here);
	return true;
}

static bool decline_every_shed(void *ctx, const struct admission_shed *request)
{
	unsigned *declined = ctx;

	(void)request;
	++*declined;
	return false;
}

static void test_a_connection_on_the_same_loop_is_shed_at_once_passing_over_a_busy_one(
	void **state)
{
	struct admission_limits limits = {3, 10};
	struct admission_house house;
	struct admission_slot held[2], newcomer = {.owner = &loop_a};
	struct admission_shed shed;
	struct same_loop_shedding shedding = {&house, held, 0};

	(void)state;
	fill_mx_share_on_loop_a(&house, held, &limits);
	assert_int_equal(admission_house_admit(&house, &newcomer, "192.0.2.9", ADMISSION_MX,
		&limits, NOW, shed_on_loop_a, &shedding, &shed), ADMISSION_ADMITTED);
	assert_int_equal(shedding.asked, 2);
	/* The busy one is still counted and may be shed for a later newcomer. */
	assert_int_equal(admission_house_total(&house), 2);
	assert_false(held[0].doomed);
	/* Still busy for the next newcomer, and nobody else is idle: refused. */
	struct admission_slot later = {.owner = &loop_a};
	unsigned declined = 0;
	assert_int_equal(admission_house_admit(&house, &later, "192.0.2.9", ADMISSION_MX,
		&limits, NOW, decline_every_shed, &declined, &shed), ADMISSION_REFUSED_MX_FULL);
	assert_int_equal(declined, 1);
	assert_false(held[0].doomed);
	assert_int_equal(admission_house_total(&house), 2);
	admission_house_leave(&house, &newcomer);
	admission_house_leave(&house, &held[0]);
	admission_house_destroy(&house);
}

static void test_the_per_ip_cap_refuses_whatever_the_room(void **state)
{
	struct admission_limits limits = {100, 2};
	struct admission_house house;
	struct admission_slot slots[3] = {{.owner = &loop_a}, {.owner = &loop_b},
		{.owner = &loop_a}};
	struct admission_shed shed;

	(void)state;
	admission_house_init(&house);
	for (int i = 0; i < 2; i++)
		assert_int_equal(admission_house_enter(&house, &slots[i], "192.0.2.5", ADMISSION_MX,
			&limits, NOW, &shed), ADMISSION_ADMITTED);
	assert_int_equal(admission_house_enter(&house, &slots[2], "192.0.2.5", ADMISSION_OWNER,
		&limits, NOW, &shed), ADMISSION_REFUSED_PER_IP);
	admission_house_leave(&house, &slots[0]);
	assert_int_equal(admission_house_enter(&house, &slots[2], "192.0.2.5", ADMISSION_OWNER,
		&limits, NOW, &shed), ADMISSION_ADMITTED);
	assert_int_equal(admission_house_per_ip(&house, "192.0.2.5"), 2);
	admission_house_leave(&house, &slots[1]);
	admission_house_leave(&house, &slots[2]);
	assert_int_equal(admission_house_per_ip(&house, "192.0.2.5"), 0);
	admission_house_destroy(&house);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_tenth_rounded_up_is_reserved_but_never_every_slot),
		cmocka_unit_test(test_the_mx_lane_cannot_take_the_reserved_slots),
		cmocka_unit_test(test_the_owner_lane_may_take_every_slot),
		cmocka_unit_test(test_the_longest_without_progress_is_shed_first),
		cmocka_unit_test(test_recent_progress_is_never_shed),
		cmocka_unit_test(test_authenticated_sessions_are_never_shed_but_still_counted),
		cmocka_unit_test(test_a_full_mx_share_sheds_only_mx_connections),
		cmocka_unit_test(test_a_full_house_sheds_from_both_lanes_oldest_first),
		cmocka_unit_test(test_removing_keeps_the_lists_linked),
		cmocka_unit_test(test_two_loops_admitting_and_leaving_keep_exact_counts),
		cmocka_unit_test(test_a_connection_on_another_loop_is_named_for_it_and_the_room_given),
		cmocka_unit_test(test_a_declined_shed_on_another_loop_names_the_next_candidate),
		cmocka_unit_test(
			test_a_connection_on_the_same_loop_is_shed_at_once_passing_over_a_busy_one),
		cmocka_unit_test(test_the_per_ip_cap_refuses_whatever_the_room),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
