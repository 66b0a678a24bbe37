/* test_ids.c: ids (src/ids.c) stay unique when two event loops ask at the same time. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ids.h"

#define IDS_PER_THREAD 50000

struct asking_loop {
	pthread_barrier_t *start;
	char (*ids)[IDS_LENGTH + 1];
};

static void *ask_ids(void *arg)
{
	struct asking_loop *loop = arg;

	pthread_barrier_wait(loop->start);
	for (int i = 0; i < IDS_PER_THREAD; i++)
		ids_new(loop->ids[i], IDS_LENGTH + 1);
	return NULL;
}

static int compare_ids(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void test_two_threads_never_get_the_same_id(void **state)
{
	char (*ids)[IDS_LENGTH + 1] = calloc(2 * IDS_PER_THREAD, sizeof(*ids));
	pthread_barrier_t start;
	pthread_t threads[2];

	(void)state;
	assert_non_null(ids);
	pthread_barrier_init(&start, NULL, 2);
	struct asking_loop loops[2] = {{&start, ids}, {&start, ids + IDS_PER_THREAD}};
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, ask_ids, &loops[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);
	pthread_barrier_destroy(&start);
	qsort(ids, 2 * IDS_PER_THREAD, sizeof(*ids), compare_ids);
	for (int i = 0; i < 2 * IDS_PER_THREAD; i++)
		assert_int_equal(strlen(ids[i]), IDS_LENGTH);
	for (int i = 1; i < 2 * IDS_PER_THREAD; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);
	free(ids);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_threads_never_get_the_same_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
