/* libFuzzer target: the query endpoint's routing and parameter parsing. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *url = malloc(size + 1);
	char *query;
	char id[160];
	int64_t v;
	int limit;

	if (!url)
		return 0;
	memcpy(url, data, size);
	url[size] = '\0';
	query = strchr(url, '?');
	if (query)
		*query++ = '\0';
	switch (http_route_parse(url, id, sizeof(id))) {
	case HTTP_ROUTE_EVENT:
	case HTTP_ROUTE_BOOKING:
	case HTTP_ROUTE_HOLD:
		if (http_parse_id(id, &v) == 0 &&
		    (v < 1 || v > 9007199254740991LL))
			abort();
		break;
	default:
		break;
	}
	if (query && http_parse_limit(query, 50, 500, &limit) == 0 &&
	    (limit < 1 || limit > 500))
		abort();
	free(url);
	return 0;
}
