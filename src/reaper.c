/*
 * reaper: a thread that returns the seats of expired holds, in batches,
 * skipping sections that workers hold locked. Several ticketd processes
 * can run one each without waiting on each other.
 */
#include "reaper.h"

#include "availability.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"
#include "pgarray.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The reaper's statements. */
enum reap_statement {
	REAP_CANDIDATES,
	REAP_LOCK_SECTIONS,
	REAP_EXPIRE,
	REAP_COUNT,
};

static const struct pg_statement reap_statements[REAP_COUNT] = {
    [REAP_CANDIDATES] = {"reap_candidates", 1,
			 "SELECT DISTINCT section_id FROM ("
			 " SELECT section_id FROM holds"
			 " WHERE status = 'active' AND expires_at <= now()"
			 " ORDER BY expires_at LIMIT $1::int) due",
			 1},
    [REAP_LOCK_SECTIONS] = {"reap_lock_sections", 1,
			    "SELECT id FROM sections "
			    "WHERE id = ANY($1::bigint[]) "
			    "ORDER BY id FOR UPDATE SKIP LOCKED"},
    /* The expired holds' seats back, and each section's new state as
     * the availability stream publishes it (see txn.c), with the count
     * of holds ended in every row. */
    [REAP_EXPIRE] =
	{"reap_expire", 1,
	 "WITH expired AS ("
	 " UPDATE holds SET status = 'expired', ended_at = now()"
	 " WHERE section_id = ANY($1::bigint[]) AND status = 'active'"
	 " AND expires_at <= now()"
	 " RETURNING section_id, quantity),"
	 " returned AS ("
	 " SELECT section_id, sum(quantity)::int AS seats"
	 " FROM expired GROUP BY section_id),"
	 " updated AS ("
	 " UPDATE sections s SET remaining = s.remaining + r.seats,"
	 " held = s.held - r.seats, version = s.version + 1"
	 " FROM returned r WHERE s.id = r.section_id"
	 " RETURNING s.id, s.event_id, s.capacity, s.remaining, s.held,"
	 " s.version) "
	 "SELECT u.*,"
	 " (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,"
	 " (SELECT count(*) FROM expired) FROM updated u",
	 1},
};

struct reaper {
	const struct config *cfg;
	struct metrics *metrics;
	struct availability *av;
	struct pg *pg;
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

	clock_deadline_in(&deadline, ms);
	pthread_mutex_lock(&r->lock);
	while (!r->stopping && pthread_cond_timedwait(&r->wake, &r->lock,
						      &deadline) != ETIMEDOUT)
		;
	stopping = r->stopping;
	pthread_mutex_unlock(&r->lock);
	return stopping;
}

/* Publish the sections' new states (rows of REAP_EXPIRE), once
 * committed. */
static void publish_states(struct availability *av, const PGresult *res)
{
	struct section_state states[64];
	size_t n = 0;

	for (int r = 0; r < PQntuples(res); r++) {
		states[n++] = (struct section_state){
		    .section_id = pg_int(res, r, 0),
		    .event_id = pg_int(res, r, 1),
		    .capacity = (int)pg_int(res, r, 2),
		    .remaining = (int)pg_int(res, r, 3),
		    .held = (int)pg_int(res, r, 4),
		    .version = pg_int(res, r, 5),
		    .at_us = pg_int(res, r, 6),
		};
		if (n == sizeof(states) / sizeof(states[0])) {
			availability_publish(av, states, n);
			n = 0;
		}
	}
	availability_publish(av, states, n);
}

/*
 * One transaction: expire up to batch_max holds whose time is up,
 * returning their seats, skipping sections another transaction has
 * locked, and publish the sections' new states once committed. *reaped
 * is how many holds ended.
 */
static enum pg_status reap_once(struct pg *pg, struct availability *av,
				int batch_max, int *reaped, char *errstr,
				size_t errstr_size)
{
	struct pgarray ids = PGARRAY_INIT, locked = PGARRAY_INIT;
	char limit[24];
	const char *params[1];
	PGresult *res = NULL;
	enum pg_status rc;

	*reaped = 0;
	if (!pg_connected(pg)) {
		snprintf(errstr, errstr_size, "not connected");
		return PG_DISCONNECTED;
	}
	rc = pg_command(pg, "BEGIN", errstr, errstr_size);
	if (rc != PG_OK)
		return rc;
	snprintf(limit, sizeof(limit), "%d", batch_max);
	params[0] = limit;
	rc = pg_run(pg, REAP_CANDIDATES, params, &res, errstr, errstr_size);
	if (rc != PG_OK)
		goto fail;
	for (int r = 0; r < PQntuples(res); r++)
		pgarray_int(&ids, pg_int(res, r, 0));
	PQclear(res);
	res = NULL;
	if (ids.count == 0)
		goto commit;

	/* Sections first, as the workers lock them: no deadlock. A section
	 * a worker holds is skipped; the worker reclaims its expired holds
	 * itself when it needs the seats. */
	params[0] = pgarray_done(&ids);
	if (!params[0])
		goto oom;
	rc = pg_run(pg, REAP_LOCK_SECTIONS, params, &res, errstr, errstr_size);
	if (rc != PG_OK)
		goto fail;
	for (int r = 0; r < PQntuples(res); r++)
		pgarray_int(&locked, pg_int(res, r, 0));
	PQclear(res);
	res = NULL;
	if (locked.count == 0)
		goto commit;
	params[0] = pgarray_done(&locked);
	if (!params[0])
		goto oom;
	rc = pg_run(pg, REAP_EXPIRE, params, &res, errstr, errstr_size);
	if (rc != PG_OK)
		goto fail;
	*reaped = PQntuples(res) > 0 ? (int)pg_int(res, 0, 7) : 0;
commit:
	rc = pg_command(pg, "COMMIT", errstr, errstr_size);
	if (rc != PG_OK)
		*reaped = 0;
	else if (res)
		publish_states(av, res);
	PQclear(res);
	pgarray_free(&ids);
	pgarray_free(&locked);
	return rc;
oom:
	snprintf(errstr, errstr_size, "out of memory");
	rc = PG_LOCAL;
fail:
	pg_rollback(pg);
	pgarray_free(&ids);
	pgarray_free(&locked);
	return rc;
}

static void *reaper_main(void *arg)
{
	struct reaper *r = arg;
	char errstr[512];
	int down = 0;

	while (!pause_or_stop(r, r->cfg->reaper_interval_ms)) {
		int reaped;
		enum pg_status rc;

		if (!pg_connected(r->pg) &&
		    pg_connect(r->pg, errstr, sizeof(errstr)) != 0) {
			if (!down)
				log_warn("reaper: %s", errstr);
			down = 1;
			continue;
		}
		down = 0;
		/* A full batch means more may be due: go again at once. */
		do {
			rc = reap_once(r->pg, r->av, r->cfg->reaper_batch,
				       &reaped, errstr, sizeof(errstr));
			if (rc == PG_OK && reaped > 0) {
				atomic_fetch_add(&r->metrics->holds_reaped,
						 (unsigned long long)reaped);
				log_debug("reaper: %d expired holds ended",
					  reaped);
			}
		} while (rc == PG_OK && reaped >= r->cfg->reaper_batch);
		if (rc != PG_OK && rc != PG_RETRY)
			log_warn("reaper: %s", errstr);
	}
	return NULL;
}

int reaper_start(struct reaper **out, const struct config *cfg,
		 struct metrics *metrics, struct availability *av, char *errstr,
		 size_t errstr_size)
{
	struct reaper *r = calloc(1, sizeof(*r));
	int rc;

	if (!r) {
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	r->cfg = cfg;
	r->metrics = metrics;
	r->av = av;
	r->pg = pg_new(cfg->pg_conninfo, reap_statements, REAP_COUNT);
	if (!r->pg) {
		snprintf(errstr, errstr_size, "out of memory");
		free(r);
		return -1;
	}
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	rc = pthread_create(&r->thread, NULL, reaper_main, r);
	if (rc != 0) {
		snprintf(errstr, errstr_size, "cannot start the reaper: %s",
			 strerror(rc));
		pg_free(r->pg);
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
	pg_free(r->pg);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->wake);
	free(r);
}
