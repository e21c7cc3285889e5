/*
 * reaper: a thread that returns the seats of expired holds, in batches,
 * skipping sections that workers hold locked. Several ticketd processes
 * can run one each without waiting on each other.
 */
#include "reaper.h"

#include "job.h"
#include "log.h"
#include "metrics.h"
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct reaper {
	const struct config *cfg;
	struct metrics *metrics;
	struct store *st;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int stopping; /* guarded by lock */
};

/* Sleep ms unless stopped first. 1 when stopping. */
static int pause_or_stop(struct reaper *r, int ms)
{
	struct timespec deadline;
	int stopping;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->lock);
	while (!r->stopping && pthread_cond_timedwait(&r->wake, &r->lock,
						      &deadline) != ETIMEDOUT)
		;
	stopping = r->stopping;
	pthread_mutex_unlock(&r->lock);
	return stopping;
}

static void *reaper_main(void *arg)
{
	struct reaper *r = arg;
	char errstr[512];
	int down = 0;

	while (!pause_or_stop(r, r->cfg->reaper_interval_ms)) {
		int reaped;
		enum store_result rc;

		if (!store_connected(r->st) &&
		    store_connect(r->st, errstr, sizeof(errstr)) != 0) {
			if (!down)
				log_warn("reaper: %s", errstr);
			down = 1;
			continue;
		}
		down = 0;
		/* A full batch means more may be due: go again at once. */
		do {
			rc = store_reap_expired_holds(
			    r->st, r->cfg->reaper_batch, &reaped, errstr,
			    sizeof(errstr));
			if (rc == STORE_OK && reaped > 0) {
				atomic_fetch_add(&r->metrics->holds_reaped,
						 (unsigned long long)reaped);
				log_debug("reaper: %d expired holds ended",
					  reaped);
			}
		} while (rc == STORE_OK && reaped >= r->cfg->reaper_batch);
		if (rc != STORE_OK && rc != STORE_RETRY)
			log_warn("reaper: %s", errstr);
	}
	return NULL;
}

int reaper_start(struct reaper **out, const struct config *cfg,
		 struct metrics *metrics, char *errstr, size_t errstr_size)
{
	struct reaper *r = calloc(1, sizeof(*r));
	struct store_limits limits = {0};

	if (!r) {
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	r->cfg = cfg;
	r->metrics = metrics;
	r->st = store_new(cfg->pg_conninfo, &limits);
	if (!r->st) {
		snprintf(errstr, errstr_size, "out of memory");
		free(r);
		return -1;
	}
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	if (pthread_create(&r->thread, NULL, reaper_main, r) != 0) {
		snprintf(errstr, errstr_size, "cannot start the reaper: %s",
			 strerror(errno));
		store_free(r->st);
		pthread_mutex_destroy(&r->lock);
		pthread_cond_destroy(&r->wake);
		free(r);
		return -1;
	}
	*out = r;
	return 0;
}

void reaper_stop(struct reaper *r)
{
	pthread_mutex_lock(&r->lock);
	r->stopping = 1;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	store_free(r->st);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->wake);
	free(r);
}
