/*
 * txn: one batch of requests as one PostgreSQL transaction: read what the
 * batch touches under its locks, let the ledger decide, write everything
 * in bulk, commit.
 */
#ifndef TICKETD_TXN_H
#define TICKETD_TXN_H

#include "availability.h"
#include "ledger.h"
#include "outcome.h"
#include "pg.h"
#include "request.h"

#include <stddef.h>

/* A connection for batch transactions (pg_new with the batch's
 * statements). NULL when out of memory. */
struct pg *txn_pg_new(const char *conninfo);

/* The sections a committed batch created or changed, as they now are
 * (heap: txn_changes_clear); and, after a lost connection, whether the
 * batch may have committed all the same. */
struct txn_changes {
	struct section_state *sections;
	size_t count;
	int commit_unknown;
};

void txn_changes_clear(struct txn_changes *changes);

/*
 * Run reqs[0..n) as one transaction. On PG_OK every out[i] (n blank
 * outcomes given) holds its outcome and reply text (the caller
 * outcome_clears them) and *changes (given empty) the sections' new
 * states; on any other result out[] is blank again, *changes holds no
 * sections, errstr says why, and nothing was committed, with one
 * exception: PG_DISCONNECTED with changes->commit_unknown set means the
 * connection was lost after the COMMIT was sent, so the batch may have
 * committed. Either way the caller runs it again (on a new connection):
 * the idempotency records the batch wrote, if it did, turn the second run
 * into a replay of the same replies.
 */
enum pg_status txn_execute(struct pg *pg, const struct ledger_limits *limits,
			   struct request *const *reqs, size_t n,
			   struct outcome *out, struct txn_changes *changes,
			   char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

#endif
