/*
 * replica: how far the query endpoint's database (http_pg_conninfo, maybe
 * a standby) is behind its primary, sampled once a second on a connection
 * of its own into the metrics.
 */
#ifndef TICKETD_REPLICA_H
#define TICKETD_REPLICA_H

#include <stddef.h>

struct metrics;
struct replica;

/*
 * Start sampling the server conninfo leads to (copied) into metrics'
 * http_db_standby and http_db_lag_us (metrics is borrowed: it outlives
 * the sampler). 0, or -1 with errstr.
 */
int replica_start(struct replica **out, const char *conninfo,
		  struct metrics *metrics, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Stop the sampler and free it (NULL is fine). */
void replica_stop(struct replica *r);

#endif
