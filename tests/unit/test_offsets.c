/* Unit tests for offsets: the committable offset never skips work. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "offsets.h"

static void test_nothing_done_nothing_to_commit(void **state)
{
	struct offsets_window w;

	(void)state;
	offsets_init(&w);
	assert_int_equal(offsets_committable(&w), -1);
	assert_int_equal(offsets_track(&w, 10), 0);
	assert_int_equal(offsets_committable(&w), -1);
	assert_int_equal(offsets_in_flight(&w), 1);
	offsets_release(&w);
}

static void test_in_order(void **state)
{
	struct offsets_window w;

	(void)state;
	offsets_init(&w);
	for (int64_t o = 0; o < 5; o++)
		assert_int_equal(offsets_track(&w, o), 0);
	for (int64_t o = 0; o < 5; o++) {
		assert_int_equal(offsets_done(&w, o), 1);
		assert_int_equal(offsets_committable(&w), o + 1);
	}
	assert_int_equal(offsets_in_flight(&w), 0);
	offsets_release(&w);
}

static void test_out_of_order_waits_for_the_lowest(void **state)
{
	struct offsets_window w;

	(void)state;
	offsets_init(&w);
	for (int64_t o = 100; o < 104; o++)
		assert_int_equal(offsets_track(&w, o), 0);
	assert_int_equal(offsets_done(&w, 102), 0);
	assert_int_equal(offsets_done(&w, 101), 0);
	assert_int_equal(offsets_committable(&w), -1);
	assert_int_equal(offsets_in_flight(&w), 2);
	assert_int_equal(offsets_done(&w, 100), 1);
	assert_int_equal(offsets_committable(&w), 103);
	assert_int_equal(offsets_done(&w, 103), 1);
	assert_int_equal(offsets_committable(&w), 104);
	offsets_release(&w);
}

static void test_gaps(void **state)
{
	struct offsets_window w;

	(void)state;
	offsets_init(&w);
	assert_int_equal(offsets_track(&w, 5), 0);
	assert_int_equal(offsets_track(&w, 9), 0);
	assert_int_equal(offsets_track(&w, 12), 0);
	assert_int_equal(offsets_done(&w, 9), 0);
	assert_int_equal(offsets_done(&w, 5), 1);
	assert_int_equal(offsets_committable(&w), 10);
	assert_int_equal(offsets_done(&w, 12), 1);
	assert_int_equal(offsets_committable(&w), 13);
	offsets_release(&w);
}

static void test_unknown_and_repeated_marks_are_refused(void **state)
{
	struct offsets_window w;

	(void)state;
	offsets_init(&w);
	assert_int_equal(offsets_track(&w, 1), 0);
	assert_int_equal(offsets_track(&w, 2), 0);
	assert_int_equal(offsets_done(&w, 7), -1);
	assert_int_equal(offsets_done(&w, 2), 0);
	assert_int_equal(offsets_done(&w, 2), -1);
	assert_int_equal(offsets_done(&w, 1), 1);
	assert_int_equal(offsets_done(&w, 1), -1);
	assert_int_equal(offsets_committable(&w), 3);
	offsets_release(&w);
}

static void test_offsets_must_increase(void **state)
{
	struct offsets_window w;

	(void)state;
	offsets_init(&w);
	assert_int_equal(offsets_track(&w, 5), 0);
	assert_int_equal(offsets_track(&w, 5), -1);
	assert_int_equal(offsets_track(&w, 4), -1);
	assert_int_equal(offsets_track(&w, -1), -1);
	offsets_release(&w);
}

/* Past the ring's first capacity, completed in a shuffled order. */
static void test_growth_and_shuffled_completion(void **state)
{
	enum { N = 10000 };
	struct offsets_window w;
	int64_t *order = malloc(N * sizeof(*order));
	unsigned int seed = 42;

	(void)state;
	assert_non_null(order);
	offsets_init(&w);
	for (int64_t i = 0; i < N; i++) {
		assert_int_equal(offsets_track(&w, 1000 + i * 2), 0);
		order[i] = 1000 + i * 2;
	}
	for (int i = N - 1; i > 0; i--) {
		int j = rand_r(&seed) % (i + 1);
		int64_t t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (int i = 0; i < N; i++) {
		int64_t before = offsets_committable(&w);

		assert_true(offsets_done(&w, order[i]) >= 0);
		/* Never backwards, never past work in flight. */
		assert_true(offsets_committable(&w) >= before);
	}
	assert_int_equal(offsets_committable(&w), 1000 + (N - 1) * 2 + 1);
	assert_int_equal(offsets_in_flight(&w), 0);
	/* And the ring keeps working after draining. */
	assert_int_equal(offsets_track(&w, 50000), 0);
	assert_int_equal(offsets_done(&w, 50000), 1);
	assert_int_equal(offsets_committable(&w), 50001);
	offsets_release(&w);
	free(order);
}

/* Interleaved tracking and completion wraps the ring around. */
static void test_ring_wraps(void **state)
{
	struct offsets_window w;
	int64_t next = 0, oldest = 0;

	(void)state;
	offsets_init(&w);
	for (int round = 0; round < 1000; round++) {
		for (int k = 0; k < 7; k++)
			assert_int_equal(offsets_track(&w, next++), 0);
		for (int k = 0; k < 5; k++)
			assert_true(offsets_done(&w, oldest++) >= 0);
		assert_int_equal(offsets_committable(&w), oldest);
	}
	assert_int_equal(offsets_in_flight(&w), (size_t)(next - oldest));
	offsets_release(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nothing_done_nothing_to_commit),
	    cmocka_unit_test(test_in_order),
	    cmocka_unit_test(test_out_of_order_waits_for_the_lowest),
	    cmocka_unit_test(test_gaps),
	    cmocka_unit_test(test_unknown_and_repeated_marks_are_refused),
	    cmocka_unit_test(test_offsets_must_increase),
	    cmocka_unit_test(test_growth_and_shuffled_completion),
	    cmocka_unit_test(test_ring_wraps),
	};

	return cmocka_run_group_tests_name("offsets", tests, NULL, NULL);
}
