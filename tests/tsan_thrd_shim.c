/*
 * tsan_thrd_shim: LD_PRELOADed into a ThreadSanitizer ticketd (make tsan).
 *
 * Debian's librdkafka uses C11 threads: thrd_create, mtx_*, cnd_*. glibc
 * implements them with its internal pthread functions, which
 * ThreadSanitizer (GCC 12, clang 14) does not intercept: the threads run
 * without TSan state (and crash in its allocator) and every lock is
 * invisible, so each hand-over through a librdkafka queue would look like
 * a race. This shim routes them through the public, intercepted pthread
 * calls; glibc's C11 types are its pthread types underneath.
 */
#include <errno.h>
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

int thrd_join(thrd_t thr, int *res)
{
	void *ret;

	if (pthread_join((pthread_t)thr, &ret) != 0)
		return thrd_error;
	if (res)
		*res = (int)(intptr_t)ret;
	return thrd_success;
}

int thrd_detach(thrd_t thr)
{
	return pthread_detach((pthread_t)thr) == 0 ? thrd_success : thrd_error;
}

int mtx_init(mtx_t *m, int type)
{
	pthread_mutexattr_t attr;
	int rc;

	pthread_mutexattr_init(&attr);
	if (type & mtx_recursive)
		pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	rc = pthread_mutex_init((pthread_mutex_t *)m, &attr);
	pthread_mutexattr_destroy(&attr);
	return rc == 0 ? thrd_success : thrd_error;
}

int mtx_lock(mtx_t *m)
{
	return pthread_mutex_lock((pthread_mutex_t *)m) == 0 ? thrd_success
							     : thrd_error;
}

int mtx_trylock(mtx_t *m)
{
	int rc = pthread_mutex_trylock((pthread_mutex_t *)m);

	return rc == 0 ? thrd_success : rc == EBUSY ? thrd_busy : thrd_error;
}

int mtx_timedlock(mtx_t *restrict m, const struct timespec *restrict ts)
{
	int rc = pthread_mutex_timedlock((pthread_mutex_t *)m, ts);

	return rc == 0		 ? thrd_success
	       : rc == ETIMEDOUT ? thrd_timedout
				 : thrd_error;
}

int mtx_unlock(mtx_t *m)
{
	return pthread_mutex_unlock((pthread_mutex_t *)m) == 0 ? thrd_success
							       : thrd_error;
}

void mtx_destroy(mtx_t *m)
{
	pthread_mutex_destroy((pthread_mutex_t *)m);
}

int cnd_init(cnd_t *c)
{
	return pthread_cond_init((pthread_cond_t *)c, NULL) == 0 ? thrd_success
								 : thrd_error;
}

int cnd_signal(cnd_t *c)
{
	return pthread_cond_signal((pthread_cond_t *)c) == 0 ? thrd_success
							     : thrd_error;
}

int cnd_broadcast(cnd_t *c)
{
	return pthread_cond_broadcast((pthread_cond_t *)c) == 0 ? thrd_success
								: thrd_error;
}

int cnd_wait(cnd_t *c, mtx_t *m)
{
	return pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m) == 0
		   ? thrd_success
		   : thrd_error;
}

int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m,
		  const struct timespec *restrict ts)
{
	int rc = pthread_cond_timedwait((pthread_cond_t *)c,
					(pthread_mutex_t *)m, ts);

	return rc == 0		 ? thrd_success
	       : rc == ETIMEDOUT ? thrd_timedout
				 : thrd_error;
}

void cnd_destroy(cnd_t *c)
{
	pthread_cond_destroy((pthread_cond_t *)c);
}
