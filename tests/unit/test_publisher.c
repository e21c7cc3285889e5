/*
 * Unit tests for the publisher against librdkafka's in-process mock
 * cluster, which can fail produce requests on purpose: a reply is never
 * lost, and a reply rerouted to the dead-letter topic stays the reply when
 * that delivery fails for a passing reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <time.h>

#include "config.h"
#include "job.h"
#include "metrics.h"
#include "publisher.h"

#define PRODUCE_API_KEY 0 /* the Kafka protocol's ProduceRequest */

static const char *const request_value =
    "{\"type\":\"book\",\"request_id\":\"r-1\",\"event_id\":1,"
    "\"section_id\":2,\"quantity\":1,\"customer\":\"c\"}";
static const char *const reply_value =
    "{\"request_id\":\"r-1\",\"type\":\"book\",\"status\":\"confirmed\"}";

struct cluster {
	rd_kafka_t *host; /* the mock cluster lives in this handle */
	rd_kafka_mock_cluster_t *mock;
	struct config cfg;
	char *properties[2];
	struct metrics metrics;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int done_calls, done_ok;

static void on_done(struct job *job, int ok, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	done_calls++;
	done_ok += ok;
	pthread_cond_broadcast(&done_cond);
	pthread_mutex_unlock(&lock);
	job_free(job);
}

static void cluster_start(struct cluster *c)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[512];

	memset(c, 0, sizeof(*c));
	/* The host has no brokers of its own, and says so at level 5. */
	assert_int_equal(
	    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)),
	    RD_KAFKA_CONF_OK);
	c->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	assert_non_null(c->host);
	c->mock = rd_kafka_mock_cluster_new(c->host, 1);
	assert_non_null(c->mock);
	assert_int_equal(rd_kafka_mock_topic_create(c->mock, "replies", 4, 1),
			 RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_mock_topic_create(c->mock, "dead", 1, 1),
			 RD_KAFKA_RESP_ERR_NO_ERROR);
	c->cfg.brokers = (char *)rd_kafka_mock_cluster_bootstraps(c->mock);
	c->cfg.client_id = "test";
	c->cfg.group_id = "test-group";
	c->cfg.reply_topic = "replies";
	c->cfg.dead_letter_topic = "dead";
	/* Deliveries that fail give up quickly, so that ticketd's own
	 * retry is what the test sees. */
	c->properties[0] = "message.timeout.ms=700";
	c->properties[1] = "retry.backoff.ms=50";
	c->cfg.producer_properties.items = c->properties;
	c->cfg.producer_properties.count = 2;
	metrics_init(&c->metrics);
	pthread_mutex_lock(&lock);
	done_calls = done_ok = 0;
	pthread_mutex_unlock(&lock);
}

static void cluster_stop(struct cluster *c)
{
	rd_kafka_mock_cluster_destroy(c->mock);
	rd_kafka_destroy(c->host);
}

static struct job *reply_job(int32_t reply_partition)
{
	struct job *job = calloc(1, sizeof(*job));

	assert_non_null(job);
	job->topic = "requests";
	job->partition = 3;
	job->offset = 7;
	job->key = strdup("2");
	job->key_len = 1;
	job->value = strdup(request_value);
	job->value_len = strlen(request_value);
	snprintf(job->reply_topic, sizeof(job->reply_topic), "replies");
	job->reply_partition = reply_partition;
	job->outcome = OUTCOME_BLANK;
	job->outcome.status = STATUS_CONFIRMED;
	job->outcome.reply = strdup(reply_value);
	assert_true(job->key && job->value && job->outcome.reply);
	return job;
}

static void wait_done(int want)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 30;
	pthread_mutex_lock(&lock);
	while (done_calls < want &&
	       pthread_cond_timedwait(&done_cond, &lock, &deadline) == 0)
		;
	pthread_mutex_unlock(&lock);
	assert_int_equal(done_calls, want);
}

/*
 * A reader of one partition of a topic of the mock cluster, from its
 * start, with the simple consumer (no group to join or leave). Opened
 * before anything is produced: a client that connects to the mock cluster
 * after a producer has come and gone is not always answered.
 */
struct reader {
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	int32_t partition;
};

static void reader_open(struct reader *r, struct cluster *c, const char *topic,
			int32_t partition)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char errstr[512];

	assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers",
					   c->cfg.brokers, errstr,
					   sizeof(errstr)),
			 RD_KAFKA_CONF_OK);
	/* A connection the mock broker leaves hanging is given up soon. */
	assert_int_equal(rd_kafka_conf_set(conf,
					   "socket.connection.setup.timeout.ms",
					   "1000", errstr, sizeof(errstr)),
			 RD_KAFKA_CONF_OK);
	r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	assert_non_null(r->rk);
	r->rkt = rd_kafka_topic_new(r->rk, topic, NULL);
	assert_non_null(r->rkt);
	r->partition = partition;
	assert_int_equal(rd_kafka_consume_start(r->rkt, partition,
						RD_KAFKA_OFFSET_BEGINNING),
			 0);
}

/* What arrives within seconds, up to max; the caller destroys each before
 * reader_close (a handle waits for its messages). */
static size_t reader_read(struct reader *r, rd_kafka_message_t **out,
			  size_t max, int seconds)
{
	time_t until = time(NULL) + seconds;
	size_t n = 0;

	while (time(NULL) < until && n < max) {
		rd_kafka_message_t *rkm =
		    rd_kafka_consume(r->rkt, r->partition, 100);

		if (!rkm)
			continue;
		if (rkm->err)
			rd_kafka_message_destroy(rkm);
		else
			out[n++] = rkm;
	}
	return n;
}

static void reader_close(struct reader *r)
{
	rd_kafka_consume_stop(r->rkt, r->partition);
	rd_kafka_topic_destroy(r->rkt);
	rd_kafka_destroy(r->rk);
}

static const char *header(rd_kafka_message_t *rkm, const char *name, char *buf,
			  size_t size)
{
	rd_kafka_headers_t *hdrs = NULL;
	const void *value;
	size_t len;

	if (rd_kafka_message_headers(rkm, &hdrs) != 0 ||
	    rd_kafka_header_get_last(hdrs, name, &value, &len) != 0)
		return NULL;
	snprintf(buf, size, "%.*s", (int)len, (const char *)value);
	return buf;
}

/*
 * Publish one reply to reply_partition while the broker fails the next
 * `failures` produce requests for a passing reason (too few in-sync
 * replicas), so that some deliveries fail and ticketd's own retry is what
 * finally delivers it; wait until the job is done.
 */
static void publish_through_failures(struct cluster *c, int32_t reply_partition,
				     size_t failures)
{
	rd_kafka_resp_err_t errors[64];
	struct publisher *pub;
	char errstr[512];

	assert_true(failures <= sizeof(errors) / sizeof(errors[0]));
	assert_int_equal(publisher_start(&pub, &c->cfg, &c->metrics, on_done,
					 NULL, errstr, sizeof(errstr)),
			 0);
	for (size_t i = 0; i < failures; i++)
		errors[i] = RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS;
	rd_kafka_mock_push_request_errors_array(c->mock, PRODUCE_API_KEY,
						failures, errors);
	publisher_send(pub, reply_job(reply_partition));
	wait_done(1);
	assert_int_equal(done_ok, 1);
	/* The path under test ran: at least one delivery failed. */
	assert_true(atomic_load(&c->metrics.reply_failures) >= 1);
	publisher_stop(pub, 5000);
}

/* A reply whose address cannot exist (partition 99 of a 4-partition
 * topic) goes to the dead-letter topic; the first tries there fail for a
 * passing reason: the message that finally lands is the reply, never a
 * dead-letter copy of the request. */
static void test_a_rerouted_reply_retried_stays_the_reply(void **state)
{
	rd_kafka_message_t *got[4];
	struct cluster c;
	struct reader dead;
	char buf[512];

	(void)state;
	cluster_start(&c);
	reader_open(&dead, &c, "dead", 0);
	publish_through_failures(&c, 99, 60);
	assert_int_equal(reader_read(&dead, got, 4, 3), 1);
	assert_int_equal(got[0]->len, strlen(reply_value));
	assert_memory_equal(got[0]->payload, reply_value, got[0]->len);
	assert_string_equal(
	    header(got[0], "ticketd-reply-topic", buf, sizeof(buf)), "replies");
	assert_non_null(strstr(
	    header(got[0], "kafka_dlt-exception-message", buf, sizeof(buf)),
	    "partition 99 undeliverable"));
	/* Every message goes before its handle does. */
	rd_kafka_message_destroy(got[0]);
	reader_close(&dead);
	cluster_stop(&c);
}

/* A reply whose delivery fails for a passing reason is produced again
 * until it is delivered, to its own address. */
static void test_a_reply_is_retried_until_delivered(void **state)
{
	rd_kafka_message_t *got[4];
	struct cluster c;
	struct reader replies, dead;

	(void)state;
	cluster_start(&c);
	reader_open(&replies, &c, "replies", 2);
	reader_open(&dead, &c, "dead", 0);
	publish_through_failures(&c, 2, 40);
	assert_int_equal(reader_read(&replies, got, 4, 3), 1);
	assert_int_equal(got[0]->partition, 2);
	assert_memory_equal(got[0]->payload, reply_value, got[0]->len);
	rd_kafka_message_destroy(got[0]);
	assert_int_equal(reader_read(&dead, got, 4, 1), 0);
	reader_close(&replies);
	reader_close(&dead);
	cluster_stop(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_rerouted_reply_retried_stays_the_reply),
	    cmocka_unit_test(test_a_reply_is_retried_until_delivered),
	};

	return cmocka_run_group_tests_name("publisher", tests, NULL, NULL);
}
