/* main: ticketd's start-up, signal handling and orderly shutdown. */
#include "availability.h"
#include "config.h"
#include "cpus.h"
#include "consumer.h"
#include "http.h"
#include "kafkacheck.h"
#include "log.h"
#include "metrics.h"
#include "pgcheck.h"
#include "reaper.h"
#include "version.h"
#include "publisher.h"
#include "worker.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long shutdown waits to leave the consumer group after the drain. */
#define CONSUMER_CLOSE_MS 10000

/* How long start-up waits for the brokers to answer before it goes on
 * without (the clients keep trying). */
#define KAFKA_CHECK_MS 10000

static volatile sig_atomic_t run = 1;

static void on_signal(int sig)
{
	(void)sig;
	run = 0;
}

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: ticketd [-c FILE] [--check-config] [--print-config]\n"
	    "\n"
	    "  -c, --config FILE   settings file (libconfig); default: none, "
	    "built-in\n"
	    "                      defaults; TICKETD_<SETTING> variables "
	    "override both\n"
	    "      --check-config  load the settings, report problems, exit\n"
	    "      --print-config  print the settings in effect, exit\n"
	    "  -V, --version       print the version, exit\n"
	    "  -h, --help          this text\n");
}

/*
 * Before anything joins the group: do PostgreSQL and Kafka take ticketd's
 * credentials and TLS settings? A refusal will not pass by waiting, so it
 * stops start-up with what is wrong (0 / -1 with errstr); a service that
 * is not reachable yet only gets a warning, as the workers and the Kafka
 * clients keep trying on their own.
 */
static int check_services(const struct config *cfg, char *errstr,
			  size_t errstr_size)
{
	enum pgcheck_result pg;
	enum kafkacheck_result kafka;

	pg = pgcheck_run(cfg->pg_conninfo, 0, errstr, errstr_size);
	if (pg == PGCHECK_REFUSED)
		return -1;
	if (pg == PGCHECK_DOWN)
		log_warn("%s; starting anyway, the workers keep trying",
			 errstr);
	kafka =
	    kafkacheck_run(cfg, RD_KAFKA_CONSUMER, &cfg->consumer_properties,
			   KAFKA_CHECK_MS, errstr, errstr_size);
	/* The reply producer too, when its own properties may change how
	 * it connects. */
	if (kafka == KAFKACHECK_OK && cfg->producer_properties.count > 0)
		kafka = kafkacheck_run(cfg, RD_KAFKA_PRODUCER,
				       &cfg->producer_properties,
				       KAFKA_CHECK_MS, errstr, errstr_size);
	if (kafka == KAFKACHECK_REFUSED)
		return -1;
	if (kafka == KAFKACHECK_DOWN)
		log_warn("%s; starting anyway, the clients keep trying",
			 errstr);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", no_argument, NULL, 'k'},
	    {"print-config", no_argument, NULL, 'p'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config_path = NULL;
	int check_only = 0, print_only = 0, opt;
	struct config cfg;
	struct metrics metrics;
	struct consumer *consumer = NULL;
	struct publisher *pub = NULL;
	struct availability *av = NULL;
	struct worker_pool *pool = NULL;
	struct reaper *reaper = NULL;
	struct http_server *http = NULL;
	struct sigaction sa;
	char errstr[1024];
	int drained;

	while ((opt = getopt_long(argc, argv, "c:Vh", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'k':
			check_only = 1;
			break;
		case 'p':
			print_only = 1;
			break;
		case 'V':
			printf("ticketd %s\n", TICKETD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	if (config_load(&cfg, config_path, errstr, sizeof(errstr)) != 0) {
		fprintf(stderr, "ticketd: %s\n", errstr);
		config_free(&cfg);
		return 2;
	}
	if (cfg.workers == 0)
		cfg.workers = config_workers_for_cpus(cpus_available());
	if (check_only || print_only) {
		if (print_only)
			config_print(&cfg);
		else
			printf("ticketd: %s: ok\n",
			       config_path ? config_path : "(defaults)");
		config_free(&cfg);
		return 0;
	}
	log_init((enum log_level)log_level_parse(cfg.log_level),
		 (enum log_format)log_format_parse(cfg.log_format));
	metrics_init(&metrics);
	/* Every libpq connection of the process reads it (a passfile= in
	 * pg_conninfo still wins); set while there is one thread. */
	if (cfg.pg_passfile[0] && setenv("PGPASSFILE", cfg.pg_passfile, 1)) {
		log_error("start-up failed: cannot set PGPASSFILE");
		config_free(&cfg);
		return 1;
	}
	if (check_services(&cfg, errstr, sizeof(errstr)) != 0) {
		log_error("start-up failed: %s", errstr);
		config_free(&cfg);
		return 1;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (consumer_start(&consumer, &cfg, &metrics, errstr, sizeof(errstr)) !=
		0 ||
	    publisher_start(&pub, &cfg, &metrics, consumer_job_done, consumer,
			    errstr, sizeof(errstr)) != 0 ||
	    availability_start(&av, &cfg, &metrics, errstr, sizeof(errstr)) !=
		0 ||
	    worker_pool_start(&pool, &cfg, pub, av, &metrics, errstr,
			      sizeof(errstr)) != 0 ||
	    reaper_start(&reaper, &cfg, &metrics, av, errstr, sizeof(errstr)) !=
		0 ||
	    http_start(&http, &cfg, &metrics, consumer, pool, errstr,
		       sizeof(errstr)) != 0) {
		log_error("start-up failed: %s", errstr);
		return 1;
	}
	consumer_set_pool(consumer, pool);
	log_info("ticketd %s started: brokers=%s group=%s topic=%s workers=%d "
		 "batch_max=%d http=%s:%d",
		 TICKETD_VERSION, cfg.brokers, cfg.group_id, cfg.request_topic,
		 cfg.workers, cfg.batch_max, cfg.http_address, http_port(http));

	consumer_run(consumer, &run);

	/* Shutdown: no more polling; finish what is in flight within the
	 * bound; stop the workers; deliver the replies; commit; leave. */
	log_info("shutting down: draining in-flight requests (at most %d ms)",
		 cfg.drain_timeout_ms);
	drained = consumer_drain(consumer, cfg.drain_timeout_ms);
	if (!drained)
		log_warn("drain timed out; unfinished requests are redelivered "
			 "after restart and run at most once");
	worker_pool_stop(pool);
	publisher_stop(pub, drained ? 5000 : 1000);
	http_stop(http);
	reaper_stop(reaper);
	availability_stop(av, 2000);
	consumer_close(consumer, CONSUMER_CLOSE_MS);
	log_info("ticketd stopped");
	metrics_destroy(&metrics);
	config_free(&cfg);
	return 0;
}
