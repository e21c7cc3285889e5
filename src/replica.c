/*
 * replica: how far the query endpoint's database (http_pg_conninfo, maybe
 * a standby) is behind its primary, sampled once a second on a connection
 * of its own into the metrics, so that no request pays for it.
 *
 * The lag is the age of the last transaction the standby replayed, or 0
 * when it streams from its primary and has replayed everything it
 * received: on a primary that commits nothing for a while, the age alone
 * would grow though the standby is not behind. A standby that lost its
 * primary keeps ageing (its wal receiver does not stream), which is the
 * truth: nothing new reaches it. Reading pg_stat_wal_receiver's status
 * needs pg_read_all_stats (or pg_monitor) for a role that is not a
 * superuser; without it the lag of an idle primary's standby reads as the
 * time since its last commit.
 */
#include "replica.h"

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPLICA_INTERVAL_MS 1000

enum { REPLICA_LAG, REPLICA_COUNT };

static const struct pg_statement replica_statements[REPLICA_COUNT] = {
    [REPLICA_LAG] =
	{"replica_lag", 0,
	 "SELECT pg_is_in_recovery()::int,"
	 " CASE WHEN NOT pg_is_in_recovery() THEN 0"
	 "  WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()"
	 "   AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver"
	 "    WHERE status = 'streaming') THEN 0"
	 "  ELSE coalesce((extract(epoch FROM clock_timestamp()"
	 "   - pg_last_xact_replay_timestamp()) * 1000000)::bigint, -1)"
	 " END",
	 0},
};

struct replica {
	struct metrics *metrics;
	struct pg *pg;
	pthread_t thread;
	pthread_mutex_t lock; /* guards stopping */
	pthread_cond_t wake;
	int stopping;
	int down_logged;
};

/* One sample into the metrics; on failure both read "not known". */
static void sample(struct replica *r)
{
	char errstr[512];
	PGresult *res = NULL;
	enum pg_status rc;

	if (!pg_connected(r->pg) &&
	    pg_connect(r->pg, errstr, sizeof(errstr)) != 0) {
		rc = PG_DISCONNECTED;
	} else {
		rc = pg_run(r->pg, REPLICA_LAG, NULL, &res, errstr,
			    sizeof(errstr));
		if (rc == PG_OK && PQntuples(res) != 1) {
			snprintf(errstr, sizeof(errstr), "replica_lag: no row");
			rc = PG_LOCAL;
		}
	}
	if (rc != PG_OK) {
		PQclear(res);
		atomic_store(&r->metrics->http_db_standby, -1);
		atomic_store(&r->metrics->http_db_lag_us, -1);
		if (!r->down_logged)
			log_warn("replica: cannot read the query endpoint's "
				 "replication lag: %s",
				 errstr);
		r->down_logged = 1;
		return;
	}
	atomic_store(&r->metrics->http_db_standby, (int)pg_int(res, 0, 0));
	atomic_store(&r->metrics->http_db_lag_us, pg_int(res, 0, 1));
	PQclear(res);
	if (r->down_logged)
		log_info("replica: the query endpoint's database answers "
			 "again");
	r->down_logged = 0;
}

static void *replica_main(void *arg)
{
	struct replica *r = arg;

	pthread_mutex_lock(&r->lock);
	while (!r->stopping) {
		struct timespec deadline;

		pthread_mutex_unlock(&r->lock);
		sample(r);
		clock_deadline_in(&deadline, REPLICA_INTERVAL_MS);
		pthread_mutex_lock(&r->lock);
		while (!r->stopping &&
		       pthread_cond_timedwait(&r->wake, &r->lock, &deadline) !=
			   ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int replica_start(struct replica **out, const char *conninfo,
		  struct metrics *metrics, char *errstr, size_t errstr_size)
{
	struct replica *r = calloc(1, sizeof(*r));
	int rc;

	*out = NULL;
	if (!r) {
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	r->metrics = metrics;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	r->pg = pg_new(conninfo, replica_statements, REPLICA_COUNT);
	if (!r->pg) {
		snprintf(errstr, errstr_size, "out of memory");
		goto fail;
	}
	rc = pthread_create(&r->thread, NULL, replica_main, r);
	if (rc != 0) {
		snprintf(errstr, errstr_size,
			 "cannot start the replication lag sampler: %s",
			 strerror(rc));
		goto fail;
	}
	*out = r;
	return 0;
fail:
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->wake);
	pg_free(r->pg);
	free(r);
	return -1;
}

void replica_stop(struct replica *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = 1;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->wake);
	pg_free(r->pg);
	free(r);
}
