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

/* An untouched window: nothing to find, nothing to commit, no crash. */
static void test_empty_window(void **state)
{
	struct offsets_window w;

	(void)state;
	offsets_init(&w);
	assert_int_equal(offsets_done(&w, 0), -1);
	assert_int_equal(offsets_done(&w, 5), -1);
	assert_int_equal(offsets_committable(&w), -1);
	assert_int_equal(offsets_in_flight(&w), 0);
	offsets_release(&w);
	offsets_release(&w); /* twice is harmless */
}

static void test_offset_zero(void **state)
{
	struct offsets_window w;

	(void)state;
	offsets_init(&w);
	assert_int_equal(offsets_track(&w, 0), 0);
	assert_int_equal(offsets_committable(&w), -1);
	assert_int_equal(offsets_done(&w, 0), 1);
	/* Offset 0 done: commit 1, the next one to consume. */
	assert_int_equal(offsets_committable(&w), 1);
	offsets_release(&w);
}

/* in_flight counts what is not done, whatever order it finishes in. */
static void test_in_flight_counts(void **state)
{
	struct offsets_window w;

	(void)state;
	offsets_init(&w);
	for (int64_t o = 20; o < 30; o++)
		assert_int_equal(offsets_track(&w, o), 0);
	assert_int_equal(offsets_in_flight(&w), 10);
	assert_int_equal(offsets_done(&w, 25), 0);
	assert_int_equal(offsets_done(&w, 29), 0);
	assert_int_equal(offsets_in_flight(&w), 8);
	assert_int_equal(offsets_committable(&w), -1);
	assert_int_equal(offsets_done(&w, 20), 1);
	assert_int_equal(offsets_committable(&w), 21);
	assert_int_equal(offsets_in_flight(&w), 7);
	for (int64_t o = 21; o < 25; o++)
		assert_int_equal(offsets_done(&w, o), 1);
	/* 25 was done already: the commit jumps over it to 26. */
	assert_int_equal(offsets_committable(&w), 26);
	assert_int_equal(offsets_in_flight(&w), 3);
	/* The committable offset stays put while the rest is tracked. */
	assert_int_equal(offsets_track(&w, 40), 0);
	assert_int_equal(offsets_in_flight(&w), 4);
	assert_int_equal(offsets_committable(&w), 26);
	offsets_release(&w);
}

/* Offsets never tracked, inside a gap or below the commit, are refused. */
static void test_untracked_offsets_in_gaps(void **state)
{
	struct offsets_window w;

	(void)state;
	offsets_init(&w);
	assert_int_equal(offsets_track(&w, 5), 0);
	assert_int_equal(offsets_track(&w, 9), 0);
	assert_int_equal(offsets_track(&w, 12), 0);
	assert_int_equal(offsets_done(&w, 4), -1);
	assert_int_equal(offsets_done(&w, 7), -1);
	assert_int_equal(offsets_done(&w, 10), -1);
	assert_int_equal(offsets_done(&w, 13), -1);
	assert_int_equal(offsets_in_flight(&w), 3);
	assert_int_equal(offsets_done(&w, 5), 1);
	assert_int_equal(offsets_committable(&w), 6);
	/* Popped: from before the commit, like a stale completion after a
	 * reassignment. */
	assert_int_equal(offsets_done(&w, 5), -1);
	assert_int_equal(offsets_done(&w, 3), -1);
	assert_int_equal(offsets_committable(&w), 6);
	/* Tracking a gap offset after the fact is out of order. */
	assert_int_equal(offsets_track(&w, 10), -1);
	assert_int_equal(offsets_track(&w, 12), -1);
	assert_int_equal(offsets_track(&w, 13), 0);
	offsets_release(&w);
}

/*
 * The ring is full while it is wrapped (head in the middle): growing it
 * must keep the offsets in order.
 */
static void test_growth_while_wrapped(void **state)
{
	struct offsets_window w;
	int64_t next = 0;

	(void)state;
	offsets_init(&w);
	/* Fill the first ring, finish 40, so head sits at 40 ... */
	for (int i = 0; i < 64; i++)
		assert_int_equal(offsets_track(&w, next++), 0);
	for (int64_t o = 0; o < 40; o++)
		assert_int_equal(offsets_done(&w, o), 1);
	assert_int_equal(offsets_committable(&w), 40);
	/* ... wrap around, and keep going until it grows twice. */
	for (int i = 0; i < 200; i++)
		assert_int_equal(offsets_track(&w, next++), 0);
	assert_int_equal(offsets_in_flight(&w), (size_t)(next - 40));
	/* Every offset is still found, and done from the top down. */
	for (int64_t o = next - 1; o > 40; o--)
		assert_int_equal(offsets_done(&w, o), 0);
	assert_int_equal(offsets_committable(&w), 40);
	assert_int_equal(offsets_done(&w, 40), 1);
	assert_int_equal(offsets_committable(&w), next);
	assert_int_equal(offsets_in_flight(&w), 0);
	offsets_release(&w);
}

/* After a release (a revoked partition), the window starts over. */
static void test_release_starts_over(void **state)
{
	struct offsets_window w;

	(void)state;
	offsets_init(&w);
	assert_int_equal(offsets_track(&w, 100), 0);
	assert_int_equal(offsets_done(&w, 100), 1);
	offsets_release(&w);
	assert_int_equal(offsets_committable(&w), -1);
	assert_int_equal(offsets_in_flight(&w), 0);
	/* Lower than before: a new assignment may start anywhere. */
	assert_int_equal(offsets_track(&w, 50), 0);
	assert_int_equal(offsets_done(&w, 50), 1);
	assert_int_equal(offsets_committable(&w), 51);
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
	    cmocka_unit_test(test_empty_window),
	    cmocka_unit_test(test_offset_zero),
	    cmocka_unit_test(test_in_flight_counts),
	    cmocka_unit_test(test_untracked_offsets_in_gaps),
	    cmocka_unit_test(test_growth_while_wrapped),
	    cmocka_unit_test(test_release_starts_over),
	};

	return cmocka_run_group_tests_name("offsets", tests, NULL, NULL);
}
