/*
 * libFuzzer target: the query endpoint's routing and parameter parsing on
 * any URL. Each answer is checked against what http.h promises, and ids and
 * limits against a plain reference reading of "a positive decimal up to
 * 2^53 - 1", so that a wrong answer aborts as surely as a bad access.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ID_MAX 9007199254740991LL

static void check(int ok, const char *what, const char *input)
{
	if (!ok) {
		fprintf(stderr, "fuzz_http: broken: %s on \"%s\"\n", what,
			input);
		abort();
	}
}

/* The reference: 1 to 16 ASCII digits, value 1..2^53-1. */
static int reference_id(const char *s, int64_t *out)
{
	size_t len = strlen(s);
	char *end;
	unsigned long long v;

	if (len < 1 || len > 16 || strspn(s, "0123456789") != len)
		return -1;
	v = strtoull(s, &end, 10);
	if (*end != '\0' || v < 1 || v > (unsigned long long)ID_MAX)
		return -1;
	*out = (int64_t)v;
	return 0;
}

static void check_id(const char *s)
{
	int64_t got = -7, want = -7;
	int rc = route_parse_id(s, &got);

	check(rc == reference_id(s, &want), "route_parse_id accepts wrongly",
	      s);
	check(rc != 0 || got == want, "route_parse_id reads a wrong value", s);
	check(rc == 0 || got == -7, "route_parse_id wrote on a refusal", s);
}

static void check_limit(const char *s, int default_limit, int max_limit)
{
	int64_t want;
	int got = -7;
	int rc = route_parse_limit(s, default_limit, max_limit, &got);

	if (!s) {
		check(rc == 0 &&
			  got == (default_limit < max_limit ? default_limit
							    : max_limit),
		      "absent limit", "(null)");
		return;
	}
	if (reference_id(s, &want) == 0 && want <= max_limit)
		check(rc == 0 && got == want, "limit refused or misread", s);
	else
		check(rc == -1 && got == -7, "limit accepted", s);
}

/* Route path with an id buffer of id_size and hold the answer to http.h. */
static void check_route(const char *path, size_t id_size)
{
	static const struct {
		const char *prefix;
		enum route route;
	} with_id[] = {
	    {"/events/", ROUTE_EVENT},
	    {"/bookings/", ROUTE_BOOKING},
	    {"/holds/", ROUTE_HOLD},
	    {"/requests/", ROUTE_REQUEST},
	};
	char *id = malloc(id_size);
	enum route route;
	size_t i;

	if (!id)
		return;
	/* Poison it, so that a missing NUL shows under ASan. */
	memset(id, 'x', id_size);
	route = route_parse(path, id, id_size);
	check(route <= ROUTE_BAD_ID, "route out of range", path);
	check(memchr(id, '\0', id_size) != NULL, "id not terminated", path);
	for (i = 0; i < sizeof(with_id) / sizeof(with_id[0]); i++) {
		if (with_id[i].route == route)
			break;
	}
	if (i < sizeof(with_id) / sizeof(with_id[0])) {
		size_t plen = strlen(with_id[i].prefix);

		/* The id is the rest of the path, whole, one segment. */
		check(strncmp(path, with_id[i].prefix, plen) == 0, "prefix",
		      path);
		check(strcmp(path + plen, id) == 0, "id is not the rest", path);
		check(id[0] != '\0' && !strchr(id, '/'), "id segment", path);
		if (route == ROUTE_REQUEST)
			(void)request_id_valid(id, strlen(id));
		else
			check_id(id);
	} else {
		check(id[0] == '\0', "id set for a route without one", path);
	}
	if (route == ROUTE_BAD_ID)
		check(strlen(path) >= id_size, "BAD_ID for an id that fits",
		      path);
	free(id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *url = malloc(size + 1);
	char *query, *save = NULL;

	if (!url)
		return 0;
	memcpy(url, data, size);
	url[size] = '\0';

	/* libmicrohttpd hands over the path without its query. */
	query = strchr(url, '?');
	if (query)
		*query++ = '\0';
	check_route(url, 160); /* the server's own buffer */
	check_route(url, 8);   /* and a small one, for BAD_ID */
	check_id(url);

	/* The whole query as one value, then each name=value of it. */
	check_limit(query, 50, 500);
	check_limit(NULL, 500, 50);
	if (query) {
		for (char *pair = strtok_r(query, "&", &save); pair;
		     pair = strtok_r(NULL, "&", &save)) {
			char *value = strchr(pair, '=');

			if (!value)
				continue;
			*value++ = '\0';
			if (strcmp(pair, "limit") == 0)
				check_limit(value, 50, 500);
			else
				check_id(value);
		}
	}
	free(url);
	return 0;
}
