/*
 * ledger_db: an in-memory stand-in for the tables txn.c reads and writes,
 * for the ledger's tests. db_run_batch does what txn_execute does around
 * the ledger (feed it what a batch would read under its locks, answer its
 * requests for expired holds, apply the rows it leaves), without SQL.
 */
#ifndef TICKETD_TEST_LEDGER_DB_H
#define TICKETD_TEST_LEDGER_DB_H

#include "ledger.h"
#include "outcome.h"
#include "request.h"

#include <stddef.h>
#include <stdint.h>

#define DB_MAX 512

/* The batch's clock in these tests: 2027-01-15T08:00:00Z. */
#define DB_NOW_US 1800000000000000LL
#define DB_SECOND 1000000LL

/* What the tests' requests are parsed with. */
extern const struct request_limits db_parse_limits;

struct db_section {
	int64_t id, event_id;
	int capacity, remaining;
	int held; /* the counter; db_invariant_holds checks it */
};

struct db_hold {
	int64_t id, event_id, section_id;
	int quantity;
	char customer[REQUEST_CUSTOMER_MAX + 1];
	enum ledger_hold_status status;
	int64_t expires_us;
};

struct db_booking {
	int64_t id, event_id, section_id;
	int quantity;
	int cancelled;
	int64_t hold_id;
	char customer[REQUEST_CUSTOMER_MAX + 1];
};

struct db_record {
	char key[REQUEST_ID_MAX + 1];
	char *fingerprint; /* heap */
	char status[16];
	char *reply; /* heap */
};

struct db {
	struct db_section sections[DB_MAX];
	size_t section_count;
	struct db_hold holds[DB_MAX];
	size_t hold_count;
	struct db_booking bookings[DB_MAX];
	size_t booking_count;
	struct db_record records[DB_MAX];
	size_t record_count;
	int64_t events[DB_MAX];
	size_t event_count;
	int64_t next_id[LEDGER_ID_KINDS]; /* the sequences */
	int64_t now_us;			  /* the transaction's clock */
	int expired_reads;		  /* LEDGER_NEED_EXPIRED answered */
};

/* An empty database (db_free one that was used first). */
void db_init(struct db *db, int64_t now_us);
/* Free the records' texts; db is empty afterwards. */
void db_free(struct db *db);

/* Rows put in directly, as a test's starting state. A section's held
 * counter follows the active holds given for it, before or after it. */
void db_add_event(struct db *db, int64_t id);
void db_add_section(struct db *db, int64_t id, int64_t event_id, int capacity,
		    int remaining);
void db_add_hold(struct db *db, int64_t id, int64_t event_id,
		 int64_t section_id, int quantity, const char *customer,
		 enum ledger_hold_status status, int64_t expires_us);
void db_add_booking(struct db *db, int64_t id, int64_t event_id,
		    int64_t section_id, int quantity, const char *customer,
		    int cancelled);
void db_add_record(struct db *db, const char *key, const char *fingerprint,
		   const char *status, const char *reply);

struct db_section *db_section(struct db *db, int64_t id);
struct db_hold *db_hold(struct db *db, int64_t id);
struct db_booking *db_booking(struct db *db, int64_t id);

/*
 * Run reqs[0..n) as one batch: out[] (n blank outcomes) gets every
 * outcome with its reply text; on LEDGER_OK the rows are applied to db,
 * on anything else db is unchanged and out[] is cleared. The ledger's own
 * result is returned (LEDGER_NEED_EXPIRED is answered here).
 */
enum ledger_result db_run_batch(struct db *db,
				const struct ledger_limits *limits,
				struct request *const *reqs, size_t n,
				struct outcome *out);

/* Every section: capacity - remaining = confirmed seats + active held
 * seats, 0 <= remaining <= capacity, held = active held seats. 1 when it
 * holds. */
int db_invariant_holds(const struct db *db);

#endif
