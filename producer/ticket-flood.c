/*
 * ticket-flood: floods ticketd with booking requests, waits for every
 * reply, and proves from the database that nothing was oversold.
 *
 * Default run: the seed's concurrency test, 10 parallel requests for 5
 * seats each on event 99 / section 100 (capacity 5): exactly one can win.
 */
#include "config.h"
#include "kafka.h"
#include "kafkacheck.h"
#include "log.h"
#include "outcome.h"
#include "pgcheck.h"
#include "request.h"

#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct options {
	const char *brokers; /* NULL: ticketd's setting brokers */
	const char *pg;	     /* NULL: ticketd's setting pg_conninfo */
	const char *config;  /* ticketd's settings file, or NULL */
	const struct config *cfg;
	const char *request_topic;
	const char *reply_topic;
	long count;
	int quantity;
	int64_t event_id;
	int64_t section_id;
	int sections; /* spread over section_id .. section_id + sections - 1 */
	long concurrency;
	double rate; /* requests per second, 0: as fast as allowed */
	int timeout_s;
	int fresh_seed;
	int capacity;
	int verify_only;
	int no_verify;
	int mix; /* percent of requests that are holds, with follow-ups */
	int ttl_s;
	int quiet;
	int expect_confirmed; /* -1: no expectation */
	int echo;	      /* relay requests back as replies, no database */
};

/* One request sent: what it was, when, and what came back. */
struct sent {
	int64_t sent_us;
	int64_t answered_us;
	int answers;
	enum request_type type;
	enum outcome_status status;
	char error[32];
	int quantity;
	int64_t section_id;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: ticket-flood [options]\n"
	    "\n"
	    "Sends book requests to ticketd through Kafka, waits for every "
	    "reply,\n"
	    "then checks the sections in PostgreSQL. Exits 1 on an oversell, "
	    "a\n"
	    "broken invariant or a missing reply; 2 on bad usage or setup.\n"
	    "\n"
	    "  -n, --count N         requests to send (default 10)\n"
	    "  -q, --quantity N      seats per request (default 5)\n"
	    "  -e, --event ID        event id (default 99)\n"
	    "  -s, --section ID      section id (default 100)\n"
	    "      --sections N      spread over N sections from --section on "
	    "(default 1)\n"
	    "  -c, --concurrency N   requests in flight at once (default 10)\n"
	    "  -r, --rate N          offer N requests per second (default: no "
	    "limit)\n"
	    "      --mix PERCENT     PERCENT of requests are holds; each hold "
	    "is then\n"
	    "                        confirmed or released, and some bookings "
	    "cancelled\n"
	    "      --ttl SECONDS     ttl_s of the holds (default 30)\n"
	    "      --fresh-seed      reset the section(s) first: no bookings, "
	    "no holds,\n"
	    "                        remaining = capacity (creating them if "
	    "missing)\n"
	    "      --capacity N      capacity for --fresh-seed (default 5)\n"
	    "      --expect-confirmed N  exit 1 unless exactly N requests were "
	    "confirmed\n"
	    "      --verify          only check the invariant of every "
	    "section, send nothing\n"
	    "      --no-verify       skip the database check (Kafka path "
	    "only)\n"
	    "  -t, --timeout S       seconds to wait for the replies (default "
	    "60)\n"
	    "  -b, --brokers LIST    Kafka brokers (default: ticketd's "
	    "brokers)\n"
	    "  -p, --pg CONNINFO     PostgreSQL (default: ticketd's "
	    "pg_conninfo)\n"
	    "      --config FILE     ticketd's settings file: brokers, "
	    "pg_conninfo and\n"
	    "                        the Kafka and security settings "
	    "(kafka_properties,\n"
	    "                        consumer_properties, "
	    "producer_properties,\n"
	    "                        kafka_sasl_password_file, pg_passfile) "
	    "come from it\n"
	    "                        and from TICKETD_* variables, as for "
	    "ticketd\n"
	    "      --request-topic T (default bookings.requests)\n"
	    "      --reply-topic T   (default bookings.replies)\n"
	    "      --quiet           no progress line\n"
	    "      --echo            no flood: relay every request back to "
	    "--reply-topic\n"
	    "                        unchanged until SIGTERM (the benchmark's "
	    "Kafka path\n"
	    "                        without a database)\n");
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"count", required_argument, NULL, 'n'},
	    {"quantity", required_argument, NULL, 'q'},
	    {"event", required_argument, NULL, 'e'},
	    {"section", required_argument, NULL, 's'},
	    {"sections", required_argument, NULL, 'S'},
	    {"concurrency", required_argument, NULL, 'c'},
	    {"rate", required_argument, NULL, 'r'},
	    {"mix", required_argument, NULL, 'm'},
	    {"ttl", required_argument, NULL, 'T'},
	    {"fresh-seed", no_argument, NULL, 'F'},
	    {"capacity", required_argument, NULL, 'C'},
	    {"expect-confirmed", required_argument, NULL, 'E'},
	    {"verify", no_argument, NULL, 'v'},
	    {"no-verify", no_argument, NULL, 'N'},
	    {"timeout", required_argument, NULL, 't'},
	    {"brokers", required_argument, NULL, 'b'},
	    {"pg", required_argument, NULL, 'p'},
	    {"request-topic", required_argument, NULL, 'R'},
	    {"reply-topic", required_argument, NULL, 'P'},
	    {"quiet", no_argument, NULL, 'Q'},
	    {"echo", no_argument, NULL, 'X'},
	    {"config", required_argument, NULL, 'K'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	long v;
	int opt;

	*o = (struct options){
	    .request_topic = "bookings.requests",
	    .reply_topic = "bookings.replies",
	    .count = 10,
	    .quantity = 5,
	    .event_id = 99,
	    .section_id = 100,
	    .sections = 1,
	    .concurrency = 10,
	    .timeout_s = 60,
	    .capacity = 5,
	    .ttl_s = 30,
	    .expect_confirmed = -1,
	};
	while ((opt = getopt_long(argc, argv, "n:q:e:s:c:r:t:b:p:h", longopts,
				  NULL)) != -1) {
		int bad = 0;

		switch (opt) {
		case 'n':
			bad = parse_long(optarg, 1, 100000000, &o->count);
			break;
		case 'q':
			bad = parse_long(optarg, 1, 1000000, &v);
			o->quantity = (int)v;
			break;
		case 'e':
			bad = parse_long(optarg, 1, INT32_MAX, &v);
			o->event_id = v;
			break;
		case 's':
			bad = parse_long(optarg, 1, INT32_MAX, &v);
			o->section_id = v;
			break;
		case 'S':
			bad = parse_long(optarg, 1, 100000, &v);
			o->sections = (int)v;
			break;
		case 'c':
			bad = parse_long(optarg, 1, 1000000, &o->concurrency);
			break;
		case 'r':
			bad = parse_long(optarg, 1, 10000000, &v);
			o->rate = (double)v;
			break;
		case 'm':
			bad = parse_long(optarg, 0, 100, &v);
			o->mix = (int)v;
			break;
		case 'T':
			bad = parse_long(optarg, 1, 86400, &v);
			o->ttl_s = (int)v;
			break;
		case 'F':
			o->fresh_seed = 1;
			break;
		case 'C':
			bad = parse_long(optarg, 0, 2000000000, &v);
			o->capacity = (int)v;
			break;
		case 'E':
			bad = parse_long(optarg, 0, 100000000, &v);
			o->expect_confirmed = (int)v;
			break;
		case 'v':
			o->verify_only = 1;
			break;
		case 'N':
			o->no_verify = 1;
			break;
		case 't':
			bad = parse_long(optarg, 1, 86400, &v);
			o->timeout_s = (int)v;
			break;
		case 'b':
			o->brokers = optarg;
			break;
		case 'p':
			o->pg = optarg;
			break;
		case 'R':
			o->request_topic = optarg;
			break;
		case 'P':
			o->reply_topic = optarg;
			break;
		case 'Q':
			o->quiet = 1;
			break;
		case 'X':
			o->echo = 1;
			break;
		case 'K':
			o->config = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		if (bad) {
			fprintf(stderr,
				"ticket-flood: bad value for --%s: %s\n",
				longopts[0].name ? "option" : "", optarg);
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ database */

static PGconn *db_connect(const struct options *o)
{
	PGconn *conn = PQconnectdb(o->pg);

	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr,
			"ticket-flood: cannot connect to PostgreSQL: %s",
			PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/*
 * The connection made at the start, fit for the check at the end: a flood
 * may outlive its server (a primary killed and a standby promoted), and
 * the conninfo, multi-host, then leads to the new primary. 0, or -1.
 */
static int db_refresh(PGconn *conn)
{
	PGresult *res = PQexec(conn, "SELECT 1");
	int ok = PQresultStatus(res) == PGRES_TUPLES_OK;

	PQclear(res);
	if (ok)
		return 0;
	PQreset(conn);
	if (PQstatus(conn) == CONNECTION_OK)
		return 0;
	fprintf(stderr, "ticket-flood: cannot connect to PostgreSQL again: %s",
		PQerrorMessage(conn));
	return -1;
}

static int db_exec(PGconn *conn, const char *sql, int nparams,
		   const char *const *params)
{
	PGresult *res =
	    PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
		 PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		fprintf(stderr, "ticket-flood: %s", PQerrorMessage(conn));
	PQclear(res);
	return ok ? 0 : -1;
}

/* Reset the flooded sections to a fresh state, creating them if missing. */
static int fresh_seed(PGconn *conn, const struct options *o)
{
	char event[24], first[24], last[24], capacity[24];
	const char *params[4] = {event, first, last, capacity};

	snprintf(event, sizeof(event), "%" PRId64, o->event_id);
	snprintf(first, sizeof(first), "%" PRId64, o->section_id);
	snprintf(last, sizeof(last), "%" PRId64,
		 o->section_id + o->sections - 1);
	snprintf(capacity, sizeof(capacity), "%d", o->capacity);
	if (db_exec(conn, "BEGIN", 0, NULL) != 0 ||
	    db_exec(conn,
		    "INSERT INTO events (id, name) VALUES ($1::bigint, "
		    "'ticket-flood event ' || $1) "
		    "ON CONFLICT (id) DO NOTHING",
		    1, params) != 0 ||
	    db_exec(conn,
		    "DELETE FROM bookings WHERE section_id BETWEEN $1::bigint "
		    "AND $2::bigint",
		    2, params + 1) != 0 ||
	    db_exec(conn,
		    "DELETE FROM holds WHERE section_id BETWEEN $1::bigint AND "
		    "$2::bigint",
		    2, params + 1) != 0 ||
	    db_exec(conn,
		    "INSERT INTO sections (id, event_id, name, capacity, "
		    "remaining) "
		    "SELECT s, $1::bigint, 'section ' || s, $4::int, $4::int "
		    "FROM generate_series($2::bigint, $3::bigint) s "
		    "ON CONFLICT (id) DO UPDATE SET event_id = $1::bigint, "
		    "capacity = $4::int, remaining = $4::int, held = 0, "
		    "version = sections.version + 1",
		    4, params) != 0 ||
	    db_exec(conn, "COMMIT", 0, NULL) != 0)
		return -1;
	return 0;
}

/*
 * The invariant, from the section_invariant view (db/schema.sql), and the
 * at-most-once check from duplicate_executions. Prints each broken section;
 * returns the number of problems, -1 when the query fails.
 */
static int verify(PGconn *conn, const struct options *o, int all_sections)
{
	char first[24], last[24];
	const char *params[2] = {first, last};
	PGresult *res;
	int problems = 0;

	snprintf(first, sizeof(first), "%" PRId64,
		 all_sections ? 0 : o->section_id);
	snprintf(last, sizeof(last), "%" PRId64,
		 all_sections ? INT64_MAX : o->section_id + o->sections - 1);
	res =
	    PQexecParams(conn,
			 "SELECT section_id, capacity, remaining, booked, held "
			 "FROM section_invariant WHERE NOT ok "
			 "AND section_id BETWEEN $1::bigint AND $2::bigint",
			 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "ticket-flood: invariant query: %s",
			PQerrorMessage(conn));
		PQclear(res);
		return -1;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		printf("INVARIANT BROKEN: section %s capacity %s remaining %s "
		       "booked %s held %s\n",
		       PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
		       PQgetvalue(res, r, 2), PQgetvalue(res, r, 3),
		       PQgetvalue(res, r, 4));
		problems++;
	}
	PQclear(res);
	res = PQexec(conn, "SELECT kind, request_key, executions "
			   "FROM duplicate_executions LIMIT 20");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "ticket-flood: duplicate query: %s",
			PQerrorMessage(conn));
		PQclear(res);
		return -1;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		printf("EXECUTED TWICE: %s for request %s, %s times\n",
		       PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
		       PQgetvalue(res, r, 2));
		problems++;
	}
	PQclear(res);
	return problems;
}

/* Capacity, remaining and seats of the flooded sections, summed. */
static int section_totals(PGconn *conn, const struct options *o,
			  long long *capacity, long long *remaining,
			  long long *booked, long long *held)
{
	char first[24], last[24];
	const char *params[2] = {first, last};
	PGresult *res;

	snprintf(first, sizeof(first), "%" PRId64, o->section_id);
	snprintf(last, sizeof(last), "%" PRId64,
		 o->section_id + o->sections - 1);
	res = PQexecParams(
	    conn,
	    "SELECT coalesce(sum(capacity), 0), coalesce(sum(remaining), 0), "
	    "coalesce(sum(booked), 0), coalesce(sum(held), 0) "
	    "FROM section_invariant "
	    "WHERE section_id BETWEEN $1::bigint AND $2::bigint",
	    2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "ticket-flood: %s", PQerrorMessage(conn));
		PQclear(res);
		return -1;
	}
	*capacity = atoll(PQgetvalue(res, 0, 0));
	*remaining = atoll(PQgetvalue(res, 0, 1));
	*booked = atoll(PQgetvalue(res, 0, 2));
	*held = atoll(PQgetvalue(res, 0, 3));
	PQclear(res);
	return 0;
}

/* --------------------------------------------------------------- Kafka */

struct flood {
	const struct options *o;
	rd_kafka_t *producer;
	rd_kafka_t *consumer;
	char run_id[32];
	struct sent *sent;
	long sent_count; /* requests produced */
	long capacity;	 /* of sent[] */
	long answered;	 /* requests with at least one reply */
	long duplicates; /* extra replies */
	long produce_errors;
	long follow_ups;      /* confirm/release/cancel queued */
	int64_t *pending_ids; /* follow-ups to send: hold or booking ids */
	enum request_type *pending_types;
	long pending_count;
	long pending_cap;
	long counts[STATUS_COUNT];
	char samples[5][160];
	int sample_count;
	long long seats_confirmed; /* by book or confirm, minus cancelled */
	int64_t started_us;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
			void *opaque)
{
	struct flood *f = opaque;

	(void)rk;
	if (rkm->err) {
		f->produce_errors++;
		fprintf(stderr, "ticket-flood: produce failed: %s\n",
			rd_kafka_err2str(rkm->err));
	}
}

static rd_kafka_t *make_client(rd_kafka_type_t type, const struct options *o,
			       struct flood *f)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[512];
	rd_kafka_t *rk;
	int bad = 0;

	bad |= kafka_conf_set(conf, "bootstrap.servers", o->brokers, errstr,
			      sizeof(errstr));
	kafka_conf_set_logging(conf);
	if (type == RD_KAFKA_PRODUCER) {
		/* As ticketd's reply producer, so that the --echo relay is
		 * a fair ceiling. */
		bad |= kafka_conf_set(conf, "linger.ms", KAFKA_REPLY_LINGER_MS,
				      errstr, sizeof(errstr));
		bad |=
		    kafka_conf_set(conf, "acks", "all", errstr, sizeof(errstr));
		bad |= kafka_conf_set(conf, "enable.idempotence", "true",
				      errstr, sizeof(errstr));
		rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
		rd_kafka_conf_set_opaque(conf, f);
	} else {
		/* No group: the reply partitions are assigned by hand. */
		bad |= kafka_conf_set(conf, "group.id", "ticket-flood", errstr,
				      sizeof(errstr));
		bad |= kafka_conf_set(conf, "enable.auto.commit", "false",
				      errstr, sizeof(errstr));
		bad |= kafka_conf_set_fetch(conf, errstr, sizeof(errstr));
	}
	/* Then the user's, as ticketd applies them: the benchmark's Kafka
	 * path and its floods then run with the settings ticketd runs with. */
	bad |= kafka_conf_apply_user(conf, o->cfg,
				     type == RD_KAFKA_PRODUCER
					 ? &o->cfg->producer_properties
					 : &o->cfg->consumer_properties,
				     errstr, sizeof(errstr));
	if (bad) {
		fprintf(stderr, "ticket-flood: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "ticket-flood: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
	}
	return rk;
}

/*
 * Before the clock starts: one marker through the producer and back
 * through the reply consumer, so that connections, the idempotent
 * producer's id and the first fetch are not counted as request latency.
 */
static int warm_up(struct flood *f)
{
	char marker[64];
	int64_t deadline = now_us() + 30000000;
	rd_kafka_resp_err_t err;

	/* The producer learns the request topic's partitions now, not on
	 * the first request. */
	{
		rd_kafka_topic_t *rkt =
		    rd_kafka_topic_new(f->producer, f->o->request_topic, NULL);
		const struct rd_kafka_metadata *md = NULL;

		if (rd_kafka_metadata(f->producer, 0, rkt, &md, 10000) ==
		    RD_KAFKA_RESP_ERR_NO_ERROR)
			rd_kafka_metadata_destroy(md);
		rd_kafka_topic_destroy(rkt);
	}
	snprintf(marker, sizeof(marker), "{\"warm_up\":\"%s\"}", f->run_id);
	err = rd_kafka_producev(
	    f->producer, RD_KAFKA_V_TOPIC(f->o->reply_topic),
	    RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
	    RD_KAFKA_V_VALUE(marker, strlen(marker)), RD_KAFKA_V_END);
	if (err) {
		fprintf(stderr, "ticket-flood: warm-up: %s\n",
			rd_kafka_err2str(err));
		return -1;
	}
	while (now_us() < deadline && !interrupted) {
		rd_kafka_message_t *rkm =
		    rd_kafka_consumer_poll(f->consumer, 50);
		int seen = 0;

		rd_kafka_poll(f->producer, 0);
		if (!rkm)
			continue;
		seen = !rkm->err && rkm->len == strlen(marker) &&
		       memcmp(rkm->payload, marker, rkm->len) == 0;
		rd_kafka_message_destroy(rkm);
		if (seen)
			return 0;
	}
	fprintf(stderr, "ticket-flood: no round trip through %s within 30 s\n",
		f->o->reply_topic);
	return -1;
}

/* Assign every reply partition at its current end, so that only replies
 * to this run's requests (and later ones) are read. */
static int assign_replies(struct flood *f)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt =
	    rd_kafka_topic_new(f->consumer, f->o->reply_topic, NULL);
	rd_kafka_topic_partition_list_t *parts;
	rd_kafka_resp_err_t err;
	int rc = -1;

	err = rd_kafka_metadata(f->consumer, 0, rkt, &md, 10000);
	if (err || md->topic_cnt != 1 || md->topics[0].err) {
		fprintf(stderr,
			"ticket-flood: cannot read topic %s from %s: %s\n",
			f->o->reply_topic, f->o->brokers,
			rd_kafka_err2str(err ? err : md->topics[0].err));
		goto done;
	}
	parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
	for (int i = 0; i < md->topics[0].partition_cnt; i++) {
		int64_t low, high;

		err = rd_kafka_query_watermark_offsets(
		    f->consumer, f->o->reply_topic,
		    md->topics[0].partitions[i].id, &low, &high, 10000);
		if (err) {
			fprintf(stderr, "ticket-flood: watermarks of %s: %s\n",
				f->o->reply_topic, rd_kafka_err2str(err));
			rd_kafka_topic_partition_list_destroy(parts);
			goto done;
		}
		rd_kafka_topic_partition_list_add(
		    parts, f->o->reply_topic, md->topics[0].partitions[i].id)
		    ->offset = high;
	}
	err = rd_kafka_assign(f->consumer, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	if (err) {
		fprintf(stderr, "ticket-flood: assign: %s\n",
			rd_kafka_err2str(err));
		goto done;
	}
	rc = warm_up(f);
done:
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return rc;
}

static int grow_sent(struct flood *f)
{
	struct sent *grown;
	long cap = f->capacity ? f->capacity * 2 : 1024;

	grown = realloc(f->sent, (size_t)cap * sizeof(*grown));
	if (!grown)
		return -1;
	memset(grown + f->capacity, 0,
	       (size_t)(cap - f->capacity) * sizeof(*grown));
	f->sent = grown;
	f->capacity = cap;
	return 0;
}

/* Produce request number n: a book or hold, or a queued follow-up. */
static int produce_request(struct flood *f, enum request_type type,
			   int64_t ref_id)
{
	const struct options *o = f->o;
	long n = f->sent_count;
	char request_id[64], key[24], body[512];
	int64_t section = o->section_id + (n % o->sections);
	rd_kafka_headers_t *hdrs;
	rd_kafka_resp_err_t err;
	int len;

	if (n >= f->capacity && grow_sent(f) != 0)
		return -1;
	snprintf(request_id, sizeof(request_id), "flood-%s-%ld", f->run_id, n);
	switch (type) {
	case REQUEST_BOOK:
	case REQUEST_HOLD:
		len = snprintf(
		    body, sizeof(body),
		    "{\"type\":\"%s\",\"request_id\":\"%s\","
		    "\"event_id\":%" PRId64 ",\"section_id\":%" PRId64
		    ",\"quantity\":%d,\"customer\":\"flood-%ld@example.com\"%s",
		    request_type_name(type), request_id, o->event_id, section,
		    o->quantity, n % 1000, type == REQUEST_HOLD ? "" : "}");
		if (type == REQUEST_HOLD)
			len += snprintf(body + len, sizeof(body) - (size_t)len,
					",\"ttl_s\":%d}", o->ttl_s);
		break;
	default:
		len = snprintf(
		    body, sizeof(body),
		    "{\"type\":\"%s\",\"request_id\":\"%s\",\"%s\":%" PRId64
		    "}",
		    request_type_name(type), request_id,
		    type == REQUEST_CANCEL ? "booking_id" : "hold_id", ref_id);
		section = 0; /* unknown here: keyed by nothing */
		break;
	}
	snprintf(key, sizeof(key), "%" PRId64, section);

	hdrs = rd_kafka_headers_new(2);
	rd_kafka_header_add(hdrs, "kafka_replyTopic", -1, o->reply_topic, -1);
	rd_kafka_header_add(hdrs, "kafka_correlationId", -1, request_id, -1);
	for (;;) {
		err = rd_kafka_producev(
		    f->producer, RD_KAFKA_V_TOPIC(o->request_topic),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		    RD_KAFKA_V_KEY(section ? key : NULL,
				   section ? strlen(key) : 0),
		    RD_KAFKA_V_VALUE(body, (size_t)len),
		    RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(f->producer, 10);
	}
	if (err) {
		rd_kafka_headers_destroy(hdrs);
		fprintf(stderr, "ticket-flood: produce: %s\n",
			rd_kafka_err2str(err));
		return -1;
	}
	f->sent[n].sent_us = now_us();
	f->sent[n].type = type;
	f->sent[n].quantity = o->quantity;
	f->sent[n].section_id = section;
	f->sent_count++;
	return 0;
}

static void queue_follow_up(struct flood *f, enum request_type type, int64_t id)
{
	if (f->pending_count == f->pending_cap) {
		long cap = f->pending_cap ? f->pending_cap * 2 : 256;
		int64_t *ids =
		    realloc(f->pending_ids, (size_t)cap * sizeof(*ids));
		enum request_type *types;

		if (!ids)
			return;
		f->pending_ids = ids;
		types = realloc(f->pending_types, (size_t)cap * sizeof(*types));
		if (!types)
			return;
		f->pending_types = types;
		f->pending_cap = cap;
	}
	f->pending_ids[f->pending_count] = id;
	f->pending_types[f->pending_count] = type;
	f->pending_count++;
	f->follow_ups++;
}

static void handle_reply(struct flood *f, const rd_kafka_message_t *rkm)
{
	json_t *root = json_loadb(rkm->payload, rkm->len, 0, NULL);
	const char *rid, *status, *prefix;
	char expected[48];
	long n;
	struct sent *s;

	if (!root)
		return;
	rid = json_string_value(json_object_get(root, "request_id"));
	status = json_string_value(json_object_get(root, "status"));
	snprintf(expected, sizeof(expected), "flood-%s-", f->run_id);
	prefix = expected;
	/* A reply without a status is counted as ok: that is what the Kafka
	 * path benchmark's relay (requests echoed back unchanged) sends. */
	if (!status)
		status = "ok";
	if (!rid || strncmp(rid, prefix, strlen(prefix)) != 0) {
		json_decref(root);
		return; /* someone else's reply */
	}
	n = strtol(rid + strlen(prefix), NULL, 10);
	if (n < 0 || n >= f->sent_count) {
		json_decref(root);
		return;
	}
	s = &f->sent[n];
	if (s->answers++ > 0) {
		f->duplicates++;
		json_decref(root);
		return;
	}
	f->answered++;
	s->answered_us = now_us();
	for (int i = 0; i < STATUS_COUNT; i++) {
		if (strcmp(status,
			   outcome_status_name((enum outcome_status)i)) == 0)
			s->status = (enum outcome_status)i;
	}
	f->counts[s->status]++;
	if (s->status == STATUS_REJECTED || s->status == STATUS_INVALID) {
		json_t *error = json_object_get(root, "error");
		const char *code =
		    json_string_value(json_object_get(error, "code"));

		snprintf(s->error, sizeof(s->error), "%s", code ? code : "?");
		if (f->sample_count < 5)
			snprintf(
			    f->samples[f->sample_count++],
			    sizeof(f->samples[0]), "%s %s: %s", rid,
			    code ? code : "?",
			    json_string_value(json_object_get(error, "message"))
				?: "");
	}
	if (s->status == STATUS_CONFIRMED)
		f->seats_confirmed += s->quantity;
	if (f->o->mix) {
		json_int_t id;

		if (s->status == STATUS_HELD) {
			id = json_integer_value(
			    json_object_get(root, "hold_id"));
			/* two in three holds are paid for, the rest let go */
			queue_follow_up(
			    f, n % 3 ? REQUEST_CONFIRM : REQUEST_RELEASE, id);
		} else if (s->status == STATUS_CONFIRMED && n % 5 == 0) {
			id = json_integer_value(
			    json_object_get(root, "booking_id"));
			queue_follow_up(f, REQUEST_CANCEL, id);
		}
	}
	json_decref(root);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void progress(struct flood *f, int final)
{
	double elapsed = (double)(now_us() - f->started_us) / 1e6;

	if (f->o->quiet || !isatty(STDERR_FILENO))
		return;
	fprintf(stderr, "\r  sent %ld  answered %ld  %.0f req/s  %.1fs%s",
		f->sent_count, f->answered,
		elapsed > 0 ? (double)f->answered / elapsed : 0.0, elapsed,
		final ? "\n" : "   ");
}

/*
 * Is base request n (0, 1, ...) a hold, for --mix PERCENT? Exactly
 * floor(count * mix / 100) of the first count are, spread evenly over the
 * whole run (holds among books, not all at its start).
 */
static int mix_is_hold(long n, int mix)
{
	return (long long)(n + 1) * mix / 100 > (long long)n * mix / 100;
}

static int run_flood(struct flood *f)
{
	const struct options *o = f->o;
	int64_t deadline, last_progress = 0;
	long base = o->count;
	long to_send_base = 0;

	f->started_us = now_us();
	deadline = f->started_us + (int64_t)o->timeout_s * 1000000;
	while (!interrupted && now_us() < deadline) {
		long in_flight = f->sent_count - f->answered;
		int64_t now = now_us();

		/* Send while the window and the rate allow. */
		while (in_flight < o->concurrency &&
		       (to_send_base < base || f->pending_count > 0)) {
			if (o->rate > 0 &&
			    (double)f->sent_count >
				(double)(now - f->started_us) / 1e6 * o->rate)
				break;
			if (f->pending_count > 0) {
				f->pending_count--;
				if (produce_request(
					f, f->pending_types[f->pending_count],
					f->pending_ids[f->pending_count]) != 0)
					return -1;
			} else {
				if (produce_request(
					f,
					mix_is_hold(to_send_base, o->mix)
					    ? REQUEST_HOLD
					    : REQUEST_BOOK,
					0) != 0)
					return -1;
				to_send_base++;
			}
			in_flight++;
		}
		rd_kafka_poll(f->producer, 0);
		for (int i = 0; i < 1000; i++) {
			rd_kafka_message_t *rkm =
			    rd_kafka_consumer_poll(f->consumer, i ? 0 : 5);

			if (!rkm)
				break;
			if (!rkm->err)
				handle_reply(f, rkm);
			rd_kafka_message_destroy(rkm);
		}
		if (now - last_progress > 250000) {
			progress(f, 0);
			last_progress = now;
		}
		if (to_send_base >= base && f->pending_count == 0 &&
		    f->answered >= f->sent_count)
			break;
	}
	progress(f, 1);
	rd_kafka_flush(f->producer, 5000);
	return 0;
}

static void print_summary(struct flood *f, double seconds)
{
	int64_t *lat = malloc((size_t)(f->answered + 1) * sizeof(int64_t));
	long n = 0;

	printf("ticket-flood run %s: event %" PRId64 ", section %" PRId64
	       "%s, %ld requests of %d seats\n",
	       f->run_id, f->o->event_id, f->o->section_id,
	       f->o->sections > 1 ? " and on" : "", f->sent_count,
	       f->o->quantity);
	printf("  %-12s %10s\n", "outcome", "requests");
	printf("  %-12s %10ld\n", "confirmed", f->counts[STATUS_CONFIRMED]);
	printf("  %-12s %10ld\n", "held", f->counts[STATUS_HELD]);
	printf("  %-12s %10ld\n", "ok", f->counts[STATUS_OK]);
	printf("  %-12s %10ld\n", "rejected", f->counts[STATUS_REJECTED]);
	printf("  %-12s %10ld\n", "invalid", f->counts[STATUS_INVALID]);
	printf("  %-12s %10ld\n", "no reply", f->sent_count - f->answered);
	printf("  %-12s %10ld\n", "duplicates", f->duplicates);
	for (int i = 0; i < f->sample_count; i++)
		printf("  sample error: %s\n", f->samples[i]);
	if (lat) {
		for (long i = 0; i < f->sent_count; i++) {
			if (f->sent[i].answers)
				lat[n++] =
				    f->sent[i].answered_us - f->sent[i].sent_us;
		}
		qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
		if (n > 0)
			printf("  latency ms   p50 %.1f  p90 %.1f  p99 %.1f  "
			       "max %.1f\n",
			       (double)lat[n / 2] / 1000.0,
			       (double)lat[(long)((double)n * 0.90)] / 1000.0,
			       (double)lat[(long)((double)n * 0.99)] / 1000.0,
			       (double)lat[n - 1] / 1000.0);
		free(lat);
	}
	printf("  throughput   %.0f replies/s over %.2fs\n",
	       seconds > 0 ? (double)f->answered / seconds : 0.0, seconds);
	/* One line for scripts: key=value, stable names. */
	printf("summary run=%s sent=%ld answered=%ld no_reply=%ld "
	       "duplicate_replies=%ld "
	       "confirmed=%ld held=%ld ok=%ld rejected=%ld invalid=%ld "
	       "seconds=%.3f\n",
	       f->run_id, f->sent_count, f->answered,
	       f->sent_count - f->answered, f->duplicates,
	       f->counts[STATUS_CONFIRMED], f->counts[STATUS_HELD],
	       f->counts[STATUS_OK], f->counts[STATUS_REJECTED],
	       f->counts[STATUS_INVALID], seconds);
}

/*
 * The Kafka path alone: consume requests in a group and produce each one,
 * unchanged, to the reply topic, with the consumer and producer settings
 * ticketd uses. Runs until SIGINT/SIGTERM.
 */
static int run_echo(const struct options *o)
{
	struct flood f = {.o = o};
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *topics;
	rd_kafka_t *consumer;
	char errstr[512];
	long relayed = 0;

	if (kafka_conf_set(conf, "bootstrap.servers", o->brokers, errstr,
			   sizeof(errstr)) ||
	    kafka_conf_set(conf, "group.id", "ticket-flood-echo", errstr,
			   sizeof(errstr)) ||
	    kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr,
			   sizeof(errstr)) ||
	    kafka_conf_set_fetch(conf, errstr, sizeof(errstr)) ||
	    kafka_conf_apply_user(conf, o->cfg, &o->cfg->consumer_properties,
				  errstr, sizeof(errstr))) {
		fprintf(stderr, "ticket-flood: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
		return 2;
	}
	kafka_conf_set_logging(conf);
	consumer =
	    rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (!consumer) {
		fprintf(stderr, "ticket-flood: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
		return 2;
	}
	rd_kafka_poll_set_consumer(consumer);
	f.producer = make_client(RD_KAFKA_PRODUCER, o, &f);
	if (!f.producer) {
		rd_kafka_destroy(consumer);
		return 2;
	}
	/* As ticketd does at start-up: learn the reply topic now, not on
	 * the first message. */
	{
		rd_kafka_topic_t *rkt =
		    rd_kafka_topic_new(f.producer, o->reply_topic, NULL);
		const struct rd_kafka_metadata *md = NULL;

		if (rd_kafka_metadata(f.producer, 0, rkt, &md, 10000) ==
		    RD_KAFKA_RESP_ERR_NO_ERROR)
			rd_kafka_metadata_destroy(md);
		rd_kafka_topic_destroy(rkt);
	}
	topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, o->request_topic,
					  RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(consumer, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	while (!interrupted) {
		rd_kafka_message_t *rkm = rd_kafka_consumer_poll(consumer, 100);

		if (rkm && !rkm->err) {
			rd_kafka_resp_err_t err;

			do {
				err = rd_kafka_producev(
				    f.producer,
				    RD_KAFKA_V_TOPIC(o->reply_topic),
				    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				    RD_KAFKA_V_KEY(rkm->key, rkm->key_len),
				    RD_KAFKA_V_VALUE(rkm->payload, rkm->len),
				    RD_KAFKA_V_END);
				if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
					rd_kafka_poll(f.producer, 10);
			} while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
			relayed++;
		}
		if (rkm)
			rd_kafka_message_destroy(rkm);
		rd_kafka_poll(f.producer, 0);
	}
	rd_kafka_flush(f.producer, 5000);
	rd_kafka_consumer_close(consumer);
	rd_kafka_destroy(consumer);
	rd_kafka_destroy(f.producer);
	printf("echo: %ld requests relayed\n", relayed);
	return 0;
}

/*
 * ticketd's settings (--config, TICKETD_* variables) fill in what the
 * command line did not say, and the Kafka and PostgreSQL credentials are
 * tried before anything is sent: a refusal ends the run with what is wrong
 * (0, or -1 after printing it).
 */
static int settings_load(struct options *o, struct config *cfg, int need_db,
			 int need_kafka)
{
	char errstr[1024];

	if (config_load(cfg, o->config, errstr, sizeof(errstr)) != 0) {
		fprintf(stderr, "ticket-flood: %s\n", errstr);
		return -1;
	}
	o->cfg = cfg;
	if (!o->brokers)
		o->brokers = cfg->brokers;
	if (!o->pg)
		o->pg = cfg->pg_conninfo;
	if (cfg->pg_passfile[0] && setenv("PGPASSFILE", cfg->pg_passfile, 1)) {
		fprintf(stderr, "ticket-flood: cannot set PGPASSFILE\n");
		return -1;
	}
	if (need_db &&
	    pgcheck_run(o->pg, 0, errstr, sizeof(errstr)) != PGCHECK_OK) {
		fprintf(stderr, "ticket-flood: %s\n", errstr);
		return -1;
	}
	if (need_kafka &&
	    kafkacheck_run(cfg, RD_KAFKA_PRODUCER, NULL, 10000, errstr,
			   sizeof(errstr)) == KAFKACHECK_REFUSED) {
		fprintf(stderr, "ticket-flood: %s\n", errstr);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct options o;
	struct config cfg;
	struct flood f;
	PGconn *conn = NULL;
	int rc = 0;
	double seconds;

	if (parse_options(argc, argv, &o) != 0)
		return 2;
	log_init(LOG_LEVEL_WARN, LOG_FORMAT_LOGFMT);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	if (settings_load(&o, &cfg, !o.echo && (!o.no_verify || o.fresh_seed),
			  !o.verify_only) != 0) {
		config_free(&cfg);
		return 2;
	}
	if (o.echo) {
		rc = run_echo(&o);
		config_free(&cfg);
		return rc;
	}
	if (!o.no_verify || o.fresh_seed) {
		conn = db_connect(&o);
		if (!conn) {
			config_free(&cfg);
			return 2;
		}
	}
	if (o.verify_only) {
		int problems = verify(conn, &o, 1);

		PQfinish(conn);
		config_free(&cfg);
		if (problems == 0)
			printf("invariant ok: every section, every request at "
			       "most once\n");
		return problems == 0 ? 0 : 1;
	}
	if (o.fresh_seed && fresh_seed(conn, &o) != 0) {
		PQfinish(conn);
		config_free(&cfg);
		return 2;
	}

	memset(&f, 0, sizeof(f));
	f.o = &o;
	{
		unsigned int seed = (unsigned int)(now_us() ^ getpid());

		snprintf(f.run_id, sizeof(f.run_id), "%08x%04x", rand_r(&seed),
			 (unsigned int)getpid() & 0xffff);
	}
	f.producer = make_client(RD_KAFKA_PRODUCER, &o, &f);
	f.consumer = make_client(RD_KAFKA_CONSUMER, &o, &f);
	if (!f.producer || !f.consumer || assign_replies(&f) != 0) {
		rc = 2;
		goto done;
	}
	if (run_flood(&f) != 0)
		rc = 2;
	seconds = (double)(now_us() - f.started_us) / 1e6;
	print_summary(&f, seconds);

	if (f.answered < f.sent_count) {
		printf("MISSING REPLIES: %ld of %ld requests got no reply "
		       "within %ds\n",
		       f.sent_count - f.answered, f.sent_count, o.timeout_s);
		rc = 1;
	}
	if (f.produce_errors) {
		printf("PRODUCE ERRORS: %ld\n", f.produce_errors);
		rc = 1;
	}
	if (o.expect_confirmed >= 0 &&
	    f.counts[STATUS_CONFIRMED] != o.expect_confirmed) {
		printf("UNEXPECTED: %ld confirmed, expected %d\n",
		       f.counts[STATUS_CONFIRMED], o.expect_confirmed);
		rc = 1;
	}
	if (!o.no_verify) {
		long long capacity, remaining, booked, held;
		int problems = db_refresh(conn) != 0 ? -1 : verify(conn, &o, 0);

		if (problems != 0 ||
		    section_totals(conn, &o, &capacity, &remaining, &booked,
				   &held) != 0) {
			rc = 1;
		} else {
			printf("  section(s)   capacity %lld, remaining %lld, "
			       "booked %lld, held %lld\n",
			       capacity, remaining, booked, held);
			printf("  this run     %lld seats confirmed by book "
			       "replies\n",
			       f.seats_confirmed);
			if (booked > capacity || remaining < 0 ||
			    (o.fresh_seed && !o.mix &&
			     f.seats_confirmed != booked)) {
				printf("OVERSOLD or inconsistent: %lld seats "
				       "booked, capacity %lld\n",
				       booked, capacity);
				rc = 1;
			} else {
				printf("invariant ok: no oversell\n");
			}
		}
	}
done:
	if (f.consumer) {
		rd_kafka_consumer_close(f.consumer);
		rd_kafka_destroy(f.consumer);
	}
	if (f.producer)
		rd_kafka_destroy(f.producer);
	free(f.sent);
	free(f.pending_ids);
	free(f.pending_types);
	if (conn)
		PQfinish(conn);
	config_free(&cfg);
	return rc;
}
