/*
 * route: which view of the query endpoint a URL asks for, and its ids and
 * page sizes, read strictly. Pure: unit-tested and fuzzed on its own.
 */
#include "route.h"

#include <string.h>

int route_parse_id(const char *s, int64_t *out)
{
	int64_t v = 0;
	size_t len;

	if (!s)
		return -1;
	len = strlen(s);
	if (len < 1 || len > 16)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > 9007199254740991LL)
		return -1;
	*out = v;
	return 0;
}

int route_customer_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *end = p + len;

	if (len < 1 || len > 254)
		return 0;
	while (p < end) {
		unsigned int c = *p, min;
		int more;

		if (c == 0)
			return 0;
		if (c < 0x80) {
			p++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			more = 1;
			c &= 0x1f;
			min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			more = 2;
			c &= 0x0f;
			min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			more = 3;
			c &= 0x07;
			min = 0x10000;
		} else {
			return 0;
		}
		for (p++; more > 0; more--, p++) {
			if (p >= end || (*p & 0xc0) != 0x80)
				return 0;
			c = (c << 6) | (*p & 0x3f);
		}
		/* No overlong forms, surrogates or code points past U+10FFFF.
		 */
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return 0;
	}
	return 1;
}

int route_parse_limit(const char *s, int default_limit, int max_limit, int *out)
{
	int64_t v;

	if (!s) {
		*out = default_limit < max_limit ? default_limit : max_limit;
		return 0;
	}
	if (route_parse_id(s, &v) != 0 || v > max_limit)
		return -1;
	*out = (int)v;
	return 0;
}

enum route route_parse(const char *url, char *id, size_t id_size)
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
	static const struct {
		const char *path;
		enum route route;
	} plain[] = {
	    {"/events", ROUTE_EVENTS},	 {"/bookings", ROUTE_BOOKINGS},
	    {"/healthz", ROUTE_HEALTHZ}, {"/readyz", ROUTE_READYZ},
	    {"/metrics", ROUTE_METRICS},
	};

	id[0] = '\0';
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		if (strcmp(url, plain[i].path) == 0)
			return plain[i].route;
	}
	for (size_t i = 0; i < sizeof(with_id) / sizeof(with_id[0]); i++) {
		size_t plen = strlen(with_id[i].prefix);
		const char *rest;
		size_t len;

		if (strncmp(url, with_id[i].prefix, plen) != 0)
			continue;
		rest = url + plen;
		len = strlen(rest);
		if (len == 0 || strchr(rest, '/'))
			return ROUTE_NOT_FOUND;
		if (len >= id_size)
			return ROUTE_BAD_ID;
		memcpy(id, rest, len + 1);
		return with_id[i].route;
	}
	return ROUTE_NOT_FOUND;
}
