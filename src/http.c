/*
 * http: the read-only query endpoint (libmicrohttpd): events, bookings,
 * holds, stored request outcomes, health, readiness and metrics.
 *
 * It has its own small pool of PostgreSQL connections, so that a slow
 * query never takes a worker's; with http_pg_conninfo naming another
 * database (a standby) two: the views read there, stored request outcomes
 * on the workers' database (the primary). Every query is parameterised and
 * every page size capped; libmicrohttpd's memory limit refuses oversized
 * request heads and the URL length is checked before routing.
 */
#include "http.h"

#include "cache.h"
#include "clock.h"
#include "consumer.h"
#include "log.h"
#include "metrics.h"
#include "pgcheck.h"
#include "replica.h"
#include "route.h"
#include "views.h"
#include "worker.h"

#include <errno.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HTTP_URL_MAX	   512
#define HTTP_DEFAULT_LIMIT 50
#define HTTP_POOL_WAIT_MS  2000
/* Keys the read cache keeps at once: events' pages and events. */
#define HTTP_CACHE_KEYS 4096
/* /readyz's database check, well inside the 1 s a probe waits by default
 * (Kubernetes' timeoutSeconds): a connection over TLS with SCRAM to a
 * server 50 ms away takes about 7 round trips. */
#define HTTP_READYZ_DB_MS 500

/* A few PostgreSQL connections the endpoint's threads share. */
struct http_pool {
	pthread_mutex_t lock; /* guards idle */
	pthread_cond_t returned;
	struct pg **idle; /* connections not in use */
	int idle_count;
	int pg_count;
	int made; /* lock and returned initialised */
};

struct http_server {
	const struct config *cfg;
	struct metrics *metrics;
	struct consumer *consumer;
	struct worker_pool *pool;
	struct MHD_Daemon *daemon;
	int port;
	struct cache *cache; /* NULL with http_cache_ms = 0 */

	/* The views' connections (http_pg_conninfo), and the primary's for
	 * GET /requests/{id} (pg_conninfo): the same pool when both name
	 * one database. */
	struct http_pool reads;
	struct http_pool primary_pool;
	struct http_pool *requests;
	struct replica *replica; /* the standby's lag; NULL: not sampled */
};

/* ----------------------------------------------------- connection pool */

/* size connections for conninfo, not yet connected. 0, or -1 when out of
 * memory (http_pool_free then frees what was made). */
static int http_pool_make(struct http_pool *hp, const char *conninfo, int size)
{
	pthread_mutex_init(&hp->lock, NULL);
	pthread_cond_init(&hp->returned, NULL);
	hp->made = 1;
	hp->idle = calloc((size_t)size, sizeof(*hp->idle));
	if (!hp->idle)
		return -1;
	for (int i = 0; i < size; i++) {
		struct pg *pg = views_pg_new(conninfo);

		if (!pg)
			return -1;
		hp->idle[hp->idle_count++] = pg;
		hp->pg_count++;
	}
	return 0;
}

/* Free the pool's connections (all returned by now). */
static void http_pool_free(struct http_pool *hp)
{
	for (int i = 0; i < hp->idle_count; i++)
		pg_free(hp->idle[i]);
	free(hp->idle);
	if (hp->made) {
		pthread_mutex_destroy(&hp->lock);
		pthread_cond_destroy(&hp->returned);
	}
	memset(hp, 0, sizeof(*hp));
}

static struct pg *pool_take(struct http_pool *hp)
{
	struct timespec deadline;
	struct pg *pg = NULL;

	clock_deadline_in(&deadline, HTTP_POOL_WAIT_MS);
	pthread_mutex_lock(&hp->lock);
	while (hp->idle_count == 0) {
		if (pthread_cond_timedwait(&hp->returned, &hp->lock,
					   &deadline) == ETIMEDOUT)
			break;
	}
	if (hp->idle_count > 0)
		pg = hp->idle[--hp->idle_count];
	pthread_mutex_unlock(&hp->lock);
	return pg;
}

static void pool_give(struct http_pool *hp, struct pg *pg)
{
	pthread_mutex_lock(&hp->lock);
	hp->idle[hp->idle_count++] = pg;
	pthread_cond_signal(&hp->returned);
	pthread_mutex_unlock(&hp->lock);
}

/* ------------------------------------------------------------ answers */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned int code,
			       const char *content_type, char *body)
{
	/* body is heap: libmicrohttpd frees it with the response. */
	struct MHD_Response *response = MHD_create_response_from_buffer(
	    strlen(body), body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	if (!response) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
				content_type);
	MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL,
				"no-store");
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET");
	ret = MHD_queue_response(conn, code, response);
	MHD_destroy_response(response);
	return ret;
}

static enum MHD_Result respond_json(struct MHD_Connection *conn,
				    unsigned int code, char *body)
{
	if (!body)
		return MHD_NO;
	return respond(conn, code, "application/json", body);
}

/* An error document; message holds no quote or backslash of user input
 * (it is always one of our fixed texts). NULL when out of memory. */
static char *error_body(const char *error_code, const char *message)
{
	char *body = NULL;

	if (asprintf(&body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
		     error_code, message) < 0)
		return NULL;
	return body;
}

/* {"error":{"code":CODE,"message":MESSAGE}}. */
static enum MHD_Result respond_error(struct MHD_Connection *conn,
				     unsigned int code, const char *error_code,
				     const char *message)
{
	return respond_json(conn, code, error_body(error_code, message));
}

/*
 * Run a view: *status and *body (heap) are its answer. 0 for an answer
 * that says what the database holds (200, or 404 for no such row), which
 * may be kept for the cache's interval; -1 for one that says the database
 * could not be asked (503, 500), which is never kept.
 */
static int view_answer(struct http_server *http, enum view view,
		       const char *const *params, const char *not_found,
		       unsigned *status, char **body)
{
	/* A stored outcome is read on the primary: a client that missed
	 * its reply must find it, however far a standby is behind. */
	struct http_pool *hp =
	    view == VIEW_REQUEST ? http->requests : &http->reads;
	struct pg *pg = pool_take(hp);
	char errstr[512];
	char *json = NULL;
	enum pg_status rc;

	if (!pg) {
		*status = MHD_HTTP_SERVICE_UNAVAILABLE;
		*body = error_body("BUSY", "no database connection free");
		return -1;
	}
	if (!pg_connected(pg) && pg_connect(pg, errstr, sizeof(errstr)) != 0) {
		pool_give(hp, pg);
		log_debug("http: %s", errstr);
		*status = MHD_HTTP_SERVICE_UNAVAILABLE;
		*body = error_body("DATABASE_UNAVAILABLE",
				   "the database cannot be reached");
		return -1;
	}
	rc = views_run(pg, view, params, &json, errstr, sizeof(errstr));
	/* A pooled connection may have died while idle (the server
	 * restarted): one fresh try before saying 503. */
	if (rc == PG_DISCONNECTED &&
	    pg_connect(pg, errstr, sizeof(errstr)) == 0)
		rc = views_run(pg, view, params, &json, errstr, sizeof(errstr));
	pool_give(hp, pg);
	if (rc == PG_DISCONNECTED) {
		*status = MHD_HTTP_SERVICE_UNAVAILABLE;
		*body = error_body("DATABASE_UNAVAILABLE",
				   "the database cannot be reached");
		return -1;
	}
	if (rc != PG_OK) {
		log_warn("http: %s", errstr);
		*status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		*body = error_body("INTERNAL", "the query failed");
		return -1;
	}
	*status = json ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND;
	*body = json ? json : error_body("NOT_FOUND", not_found);
	return *body ? 0 : -1;
}

static enum MHD_Result respond_view(struct http_server *http,
				    struct MHD_Connection *conn, enum view view,
				    const char *const *params,
				    const char *not_found)
{
	unsigned status;
	char *body = NULL;

	(void)view_answer(http, view, params, not_found, &status, &body);
	return respond_json(conn, status, body);
}

/* One view, as the cache fetches it (cache_fetch_fn); a failure's answer
 * stays here for the caller. */
struct view_fetch {
	struct http_server *http;
	enum view view;
	const char *const *params;
	const char *not_found;
	unsigned failed_status;
	char *failed_body;
};

static int fetch_view(void *arg, unsigned *status, char **body)
{
	struct view_fetch *f = arg;

	atomic_fetch_add(&f->http->metrics->http_cache_misses, 1);
	if (view_answer(f->http, f->view, f->params, f->not_found, status,
			body) == 0)
		return 0;
	f->failed_status = *status;
	f->failed_body = *body;
	return -1;
}

/* Does If-None-Match name etag? It is "*" or a comma-separated list of
 * entity tags, each maybe weak (W/"..."). */
static int etag_matches(const char *if_none_match, const char *etag)
{
	size_t len = strlen(etag);
	const char *p = if_none_match;

	while (p && *p) {
		size_t n;

		p += strspn(p, " \t,");
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		n = strcspn(p, " \t,");
		if ((n == 1 && *p == '*') ||
		    (n == len && memcmp(p, etag, n) == 0))
			return 1;
		p += n;
	}
	return 0;
}

/*
 * A view from the read cache: at most one query a key per interval,
 * however many ask. The answer says how old it is (Age) and how long a
 * cache in front may keep it (Cache-Control), and is a bodiless 304 for a
 * client that holds it already (If-None-Match).
 */
static enum MHD_Result respond_cached(struct http_server *http,
				      struct MHD_Connection *conn,
				      const char *key, enum view view,
				      const char *const *params,
				      const char *not_found)
{
	struct view_fetch f = {http, view, params, not_found, 0, NULL};
	struct cache_answer answer;
	struct MHD_Response *response;
	char control[48], age[24];
	int not_modified;
	enum MHD_Result ret;

	if (cache_get(http->cache, key, fetch_view, &f, &answer) != 0)
		return f.failed_body
			   ? respond_json(conn, f.failed_status, f.failed_body)
			   : MHD_NO;
	if (answer.hit)
		atomic_fetch_add(&http->metrics->http_cache_hits, 1);
	not_modified = answer.status == MHD_HTTP_OK &&
		       etag_matches(MHD_lookup_connection_value(
					conn, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_IF_NONE_MATCH),
				    answer.etag);
	if (not_modified) {
		free(answer.body);
		response = MHD_create_response_from_buffer(
		    0, NULL, MHD_RESPMEM_PERSISTENT);
	} else {
		response = MHD_create_response_from_buffer(
		    strlen(answer.body), answer.body, MHD_RESPMEM_MUST_FREE);
		if (!response)
			free(answer.body);
	}
	if (!response)
		return MHD_NO;
	snprintf(control, sizeof(control), "public, max-age=%d",
		 http->cfg->http_cache_ms / 1000);
	snprintf(age, sizeof(age), "%lld", (long long)(answer.age_ms / 1000));
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/json");
	MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL,
				control);
	MHD_add_response_header(response, MHD_HTTP_HEADER_ETAG, answer.etag);
	MHD_add_response_header(response, MHD_HTTP_HEADER_AGE, age);
	ret = MHD_queue_response(
	    conn, not_modified ? MHD_HTTP_NOT_MODIFIED : answer.status,
	    response);
	MHD_destroy_response(response);
	return ret;
}

/* A view of events: from the cache when there is one. */
static enum MHD_Result respond_event_view(struct http_server *http,
					  struct MHD_Connection *conn,
					  enum view view,
					  const char *const *params,
					  const char *not_found)
{
	char key[96];

	if (!http->cache)
		return respond_view(http, conn, view, params, not_found);
	if (view == VIEW_EVENT)
		snprintf(key, sizeof(key), "event:%s", params[0]);
	else
		snprintf(key, sizeof(key), "events:%s:%s", params[0],
			 params[1]);
	return respond_cached(http, conn, key, view, params, not_found);
}

/*
 * A GET argument, or NULL when absent. libmicrohttpd decodes %00 into the
 * value, where it would end the C string unseen ("1%00x" read as 1): such
 * a value comes back as "%00", which no id or limit parser accepts.
 */
static const char *arg(struct MHD_Connection *conn, const char *name)
{
	const char *value = NULL;
	size_t len = 0;

	if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, name,
					  strlen(name), &value,
					  &len) != MHD_YES ||
	    !value)
		return NULL;
	return strlen(value) == len ? value : "%00";
}

/*
 * Read the page parameters after= (a cursor: the last id seen) and limit=
 * into text for the query. 0, or -1 with the 400 answer queued in *ret.
 */
static int read_page(struct http_server *http, struct MHD_Connection *conn,
		     char *after, char *limit_text, enum MHD_Result *ret)
{
	int64_t after_id = 0;
	int limit;

	if (arg(conn, "after") &&
	    route_parse_id(arg(conn, "after"), &after_id)) {
		*ret = respond_error(conn, MHD_HTTP_BAD_REQUEST, "BAD_CURSOR",
				     "after must be a positive integer id");
		return -1;
	}
	if (route_parse_limit(arg(conn, "limit"), HTTP_DEFAULT_LIMIT,
			      http->cfg->http_max_limit, &limit) != 0) {
		*ret = respond_error(conn, MHD_HTTP_BAD_REQUEST, "BAD_LIMIT",
				     "limit must be an integer from 1 to the "
				     "configured maximum");
		return -1;
	}
	snprintf(after, 24, "%" PRId64, after_id);
	snprintf(limit_text, 24, "%d", limit);
	return 0;
}

static enum MHD_Result serve_events(struct http_server *http,
				    struct MHD_Connection *conn)
{
	char after[24], limit_text[24];
	const char *params[2] = {after, limit_text};
	enum MHD_Result ret;

	if (read_page(http, conn, after, limit_text, &ret) != 0)
		return ret;
	return respond_event_view(http, conn, VIEW_EVENTS, params, "");
}

static enum MHD_Result serve_bookings(struct http_server *http,
				      struct MHD_Connection *conn)
{
	char event[24], section[24], after[24], limit_text[24];
	const char *customer = NULL;
	size_t customer_len = 0;
	const char *params[5] = {NULL, NULL, NULL, after, limit_text};
	enum MHD_Result ret;
	int64_t v = 0;

	/* With its length: a %00 in it must not cut it short unseen. */
	if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND,
					  "customer", strlen("customer"),
					  &customer, &customer_len) != MHD_YES)
		customer = NULL;
	params[2] = customer;

	if (arg(conn, "event_id")) {
		if (route_parse_id(arg(conn, "event_id"), &v) != 0)
			return respond_error(
			    conn, MHD_HTTP_BAD_REQUEST, "BAD_ID",
			    "event_id must be a positive integer");
		snprintf(event, sizeof(event), "%" PRId64, v);
		params[0] = event;
	}
	if (arg(conn, "section_id")) {
		if (route_parse_id(arg(conn, "section_id"), &v) != 0)
			return respond_error(
			    conn, MHD_HTTP_BAD_REQUEST, "BAD_ID",
			    "section_id must be a positive integer");
		snprintf(section, sizeof(section), "%" PRId64, v);
		params[1] = section;
	}
	if (customer && !route_customer_valid(customer, customer_len))
		return respond_error(
		    conn, MHD_HTTP_BAD_REQUEST, "BAD_CUSTOMER",
		    "customer must be 1 to 254 bytes of UTF-8");
	if (read_page(http, conn, after, limit_text, &ret) != 0)
		return ret;
	return respond_view(http, conn, VIEW_BOOKINGS, params, "");
}

/* ,"database_error":"why" (JSON-escaped: libpq's message quotes names),
 * or "" when the database answered. Heap; NULL when out of memory. */
static char *readyz_reason(enum pgcheck_result db, const char *why)
{
	json_t *text;
	char *quoted, *out = NULL;

	if (db == PGCHECK_OK)
		return strdup("");
	text = json_string(why);
	quoted = text ? json_dumps(text, JSON_ENCODE_ANY) : NULL;
	json_decref(text);
	if (quoted && asprintf(&out, ",\"database_error\":%s", quoted) < 0)
		out = NULL;
	free(quoted);
	return out;
}

/*
 * Ready: a new database connection succeeds within HTTP_READYZ_DB_MS
 * (pgcheck: a new one proves the credentials still work, and no step of
 * it can block past the bound), the workers have theirs and the consumer
 * is a member of the group. Otherwise 503 with the database's reason.
 */
static enum MHD_Result serve_readyz(struct http_server *http,
				    struct MHD_Connection *conn)
{
	int consumer = consumer_ready(http->consumer);
	int workers = worker_pool_db_ready(http->pool);
	char errstr[512] = "";
	enum pgcheck_result db = pgcheck_run(
	    http->cfg->pg_conninfo, HTTP_READYZ_DB_MS, errstr, sizeof(errstr));
	int database = db == PGCHECK_OK;
	char *reason = readyz_reason(db, errstr);
	char *body = NULL;
	char server[160];
	int rc;

	/* The primary the workers found: after a failover, the new one. */
	metrics_db_server(http->metrics, server, sizeof(server));

	if (!database)
		log_debug("readyz: %s", errstr);
	if (!reason)
		return MHD_NO;
	rc = asprintf(
	    &body,
	    "{\"status\":\"%s\",\"database\":\"%s\"%s,\"workers\":\"%s\","
	    "\"database_server\":\"%s\",\"consumer\":\"%s\","
	    "\"assigned_partitions\":%d,\"paused\":%s}",
	    database && consumer && workers ? "ready" : "unavailable",
	    database		    ? "ok"
	    : db == PGCHECK_REFUSED ? "refused"
				    : "down",
	    reason, workers ? "ok" : "waiting", server,
	    consumer ? "ok" : "failed",
	    atomic_load(&http->metrics->assigned_partitions),
	    atomic_load(&http->metrics->consumer_paused) ? "true" : "false");
	free(reason);
	if (rc < 0)
		return MHD_NO;
	return respond_json(conn,
			    database && consumer && workers
				? MHD_HTTP_OK
				: MHD_HTTP_SERVICE_UNAVAILABLE,
			    body);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **state)
{
	struct http_server *http = cls;
	char id[160];
	const char *params[1] = {id};
	int64_t v;
	enum route route;

	(void)version;
	(void)upload_data;
	/* First call: headers only. Answer on the second, ignoring any
	 * body (there is none to a GET that we accept). */
	if (*state == NULL) {
		*state = http;
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	atomic_fetch_add(&http->metrics->http_requests, 1);
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return respond_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
				     "METHOD_NOT_ALLOWED",
				     "this endpoint is read-only: GET only");
	if (strlen(url) > HTTP_URL_MAX)
		return respond_error(conn, MHD_HTTP_URI_TOO_LONG,
				     "URI_TOO_LONG", "the path is too long");

	route = route_parse(url, id, sizeof(id));
	switch (route) {
	case ROUTE_EVENTS:
		return serve_events(http, conn);
	case ROUTE_BOOKINGS:
		return serve_bookings(http, conn);
	case ROUTE_EVENT:
	case ROUTE_BOOKING:
	case ROUTE_HOLD:
		if (route_parse_id(id, &v) != 0)
			return respond_error(
			    conn, MHD_HTTP_BAD_REQUEST, "BAD_ID",
			    "the id must be a positive integer");
		snprintf(id, sizeof(id), "%" PRId64, v);
		if (route == ROUTE_EVENT)
			return respond_event_view(http, conn, VIEW_EVENT,
						  params, "no such event");
		if (route == ROUTE_BOOKING)
			return respond_view(http, conn, VIEW_BOOKING, params,
					    "no such booking");
		return respond_view(http, conn, VIEW_HOLD, params,
				    "no such hold");
	case ROUTE_REQUEST:
		if (!request_id_valid(id, strlen(id)))
			return respond_error(conn, MHD_HTTP_BAD_REQUEST,
					     "BAD_ID",
					     "a request_id is 1 to 128 "
					     "characters of [A-Za-z0-9._:-]");
		return respond_view(http, conn, VIEW_REQUEST, params,
				    "no such request");
	case ROUTE_HEALTHZ:
		return respond_json(conn, MHD_HTTP_OK,
				    strdup("{\"status\":\"ok\"}"));
	case ROUTE_READYZ:
		return serve_readyz(http, conn);
	case ROUTE_METRICS: {
		char *text = metrics_render(http->metrics);

		if (!text)
			return MHD_NO;
		return respond(conn, MHD_HTTP_OK,
			       "text/plain; version=0.0.4; charset=utf-8",
			       text);
	}
	case ROUTE_BAD_ID:
		return respond_error(conn, MHD_HTTP_BAD_REQUEST, "BAD_ID",
				     "the id is too long");
	case ROUTE_NOT_FOUND:
		break;
	}
	return respond_error(conn, MHD_HTTP_NOT_FOUND, "NOT_FOUND",
			     "no such resource");
}

/*
 * Room for `connections` open connections besides ticketd's own files:
 * the soft open-files limit raised toward the hard one. Past the hard
 * limit, connections beyond it are refused (logged once here).
 */
static void raise_open_files_limit(int connections)
{
	struct rlimit lim;
	rlim_t want = (rlim_t)connections + 256;

	if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= want)
		return;
	lim.rlim_cur = lim.rlim_max == RLIM_INFINITY || lim.rlim_max >= want
			   ? want
			   : lim.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur < want)
		log_warn("http: the open-files limit (%llu) is below "
			 "http_max_connections + 256 (%llu): connections past "
			 "it are refused",
			 (unsigned long long)lim.rlim_cur,
			 (unsigned long long)want);
}

int http_start(struct http_server **out, const struct config *cfg,
	       struct metrics *metrics, struct consumer *consumer,
	       struct worker_pool *pool, char *errstr, size_t errstr_size)
{
	struct http_server *http = calloc(1, sizeof(*http));
	struct sockaddr_in addr;
	const union MHD_DaemonInfo *info;

	if (!http) {
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	http->cfg = cfg;
	http->metrics = metrics;
	http->consumer = consumer;
	http->pool = pool;
	*out = http;
	if (strcmp(cfg->http_address, "off") == 0)
		return 0; /* disabled */

	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)cfg->http_port);
	if (inet_pton(AF_INET, cfg->http_address, &addr.sin_addr) != 1) {
		snprintf(errstr, errstr_size,
			 "http_address \"%s\" is not an IPv4 address",
			 cfg->http_address);
		goto fail;
	}
	if (http_pool_make(&http->reads, cfg->http_pg_conninfo,
			   cfg->http_pool_size) != 0) {
		snprintf(errstr, errstr_size, "out of memory");
		goto fail;
	}
	http->requests = &http->reads;
	if (strcmp(cfg->http_pg_conninfo, cfg->pg_conninfo) != 0) {
		if (http_pool_make(&http->primary_pool, cfg->pg_conninfo,
				   cfg->http_pool_size) != 0) {
			snprintf(errstr, errstr_size, "out of memory");
			goto fail;
		}
		http->requests = &http->primary_pool;
		if (replica_start(&http->replica, cfg->http_pg_conninfo,
				  metrics, errstr, errstr_size) != 0)
			goto fail;
	}
	if (cfg->http_cache_ms > 0) {
		http->cache = cache_new(cfg->http_cache_ms, HTTP_CACHE_KEYS);
		if (!http->cache) {
			snprintf(errstr, errstr_size, "out of memory");
			goto fail;
		}
	}
	raise_open_files_limit(cfg->http_max_connections);
	/*
	 * epoll, so that thousands of idle connections cost file descriptors,
	 * not a scan each; a limit per client address, so that one client's
	 * idle connections (a slowloris) leave room for everyone else's; a
	 * short idle timeout, so that a request's headers must keep coming.
	 */
	http->daemon = MHD_start_daemon(
	    MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG,
	    (uint16_t)cfg->http_port, NULL, NULL, on_request, http,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->http_pool_size,
	    MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned int)cfg->http_max_connections,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned int)cfg->http_per_ip_connections,
	    MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned int)cfg->http_idle_timeout_s,
	    MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384, MHD_OPTION_END);
	if (!http->daemon) {
		snprintf(errstr, errstr_size, "cannot listen on %s:%d: %s",
			 cfg->http_address, cfg->http_port, strerror(errno));
		goto fail;
	}
	info = MHD_get_daemon_info(http->daemon, MHD_DAEMON_INFO_BIND_PORT);
	http->port = info ? info->port : cfg->http_port;
	return 0;
fail:
	http_stop(http);
	*out = NULL;
	return -1;
}

int http_port(const struct http_server *http)
{
	return http ? http->port : 0;
}

void http_stop(struct http_server *http)
{
	if (!http)
		return;
	if (http->daemon)
		MHD_stop_daemon(http->daemon);
	replica_stop(http->replica);
	http_pool_free(&http->reads);
	http_pool_free(&http->primary_pool);
	cache_free(http->cache);
	free(http);
}
