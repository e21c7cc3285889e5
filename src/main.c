/* main: ticketd's start-up, signal handling and orderly shutdown. */
#include "config.h"
#include "consumer.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "reaper.h"
#include "publisher.h"
#include "worker.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICKETD_VERSION "0.1.0"

/* How long shutdown waits to leave the consumer group after the drain. */
#define CONSUMER_CLOSE_MS 10000

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
	    worker_pool_start(&pool, &cfg, pub, &metrics, errstr,
			      sizeof(errstr)) != 0 ||
	    reaper_start(&reaper, &cfg, &metrics, errstr, sizeof(errstr)) !=
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
	consumer_close(consumer, CONSUMER_CLOSE_MS);
	log_info("ticketd stopped");
	config_free(&cfg);
	return 0;
}
