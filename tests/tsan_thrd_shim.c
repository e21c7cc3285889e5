/*
 * tsan_thrd_shim: LD_PRELOADed into a ThreadSanitizer ticketd (make tsan).
 *
 * Debian's librdkafka starts its threads with C11 thrd_create. glibc's
 * thrd_create calls its internal pthread_create, which ThreadSanitizer
 * (GCC 12, clang 14) does not intercept, so those threads run without
 * TSan state and crash in its allocator. This shim routes thrd_create
 * through the public, intercepted pthread_create; glibc's thrd_join reads
 * the int result back from the pointer the trampoline returns.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

struct start {
	thrd_start_t func;
	void *arg;
};

static void *trampoline(void *p)
{
	struct start s = *(struct start *)p;

	free(p);
	return (void *)(intptr_t)s.func(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t func, void *arg)
{
	struct start *s = malloc(sizeof(*s));
	pthread_t tid;

	if (!s)
		return thrd_nomem;
	s->func = func;
	s->arg = arg;
	if (pthread_create(&tid, NULL, trampoline, s) != 0) {
		free(s);
		return thrd_error;
	}
	*thr = (thrd_t)tid;
	return thrd_success;
}
