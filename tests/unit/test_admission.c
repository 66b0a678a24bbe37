/* test_admission.c: connection slots (src/admission.c): the owner's reserved share, which
 * connection a full house sheds, and that authenticated sessions are never among them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
