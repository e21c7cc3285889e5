/* secret: which parts of ticketd's settings are secrets, how they are shown
 * (masked), and reading one from a file only its owner may read. */
#include "secret.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Longest secret a file may hold: a password, not a key bundle. */
#define SECRET_FILE_MAX 4096

/* Case-insensitive search for needle in the len bytes at s. */
static int contains(const char *s, size_t len, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; i + n <= len; i++) {
		if (strncasecmp(s + i, needle, n) == 0)
			return 1;
	}
	return 0;
}

static int equals(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

int secret_property_is_secret(const char *name, size_t len)
{
	/* Every librdkafka secret says password or secret in its name, but
	 * for the private key given inline and the OAUTHBEARER settings,
	 * which may carry a client secret. */
	return contains(name, len, "password") ||
	       contains(name, len, "secret") ||
	       equals(name, len, "ssl.key.pem") ||
	       equals(name, len, "ssl_key") ||
	       equals(name, len, "sasl.oauthbearer.config");
}

char *secret_mask_property(const char *item)
{
	const char *eq = strchr(item, '=');
	char *out = NULL;

	if (!eq || !secret_property_is_secret(item, (size_t)(eq - item)))
		return strdup(item);
	if (asprintf(&out, "%.*s=%s", (int)(eq - item), item, SECRET_MASK) < 0)
		return NULL;
	return out;
}

/* ------------------------------------------------ connection strings */

/* libpq's keywords whose values are secrets. */
static int conninfo_key_is_secret(const char *key, size_t len)
{
	return equals(key, len, "password") || equals(key, len, "sslpassword");
}

/* A URI query key, %XX-decoded (libpq decodes keys too) into out. */
static void uri_decode(const char *s, size_t len, char *out, size_t out_size)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 1 < out_size; i++) {
		if (s[i] == '%' && i + 2 < len &&
		    isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			char hex[3] = {s[i + 1], s[i + 2], '\0'};

			out[o++] = (char)strtol(hex, NULL, 16);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
}

/*
 * postgresql://[user[:password]@][hosts][/dbname][?key=value&...], written
 * to f with the password after user: and the secret query values masked.
 * The user part ends at the first '@' before any '/', as libpq reads it.
 */
static void mask_uri(FILE *f, const char *uri, size_t scheme_len)
{
	const char *rest = uri + scheme_len;
	const char *end = rest + strcspn(rest, "@/");
	const char *query;

	fwrite(uri, 1, scheme_len, f);
	if (*end == '@') {
		const char *colon = memchr(rest, ':', (size_t)(end - rest));

		if (colon) {
			fwrite(rest, 1, (size_t)(colon - rest), f);
			fprintf(f, ":%s", SECRET_MASK);
		} else {
			fwrite(rest, 1, (size_t)(end - rest), f);
		}
		fputc('@', f);
		rest = end + 1;
	}
	query = strchr(rest, '?');
	if (!query) {
		fputs(rest, f);
		return;
	}
	fwrite(rest, 1, (size_t)(query - rest) + 1, f);
	for (const char *p = query + 1; *p;) {
		size_t len = strcspn(p, "&");
		const char *eq = memchr(p, '=', len);
		char key[64];

		uri_decode(p, eq ? (size_t)(eq - p) : len, key, sizeof(key));
		if (eq && conninfo_key_is_secret(key, strlen(key))) {
			fwrite(p, 1, (size_t)(eq - p), f);
			fprintf(f, "=%s", SECRET_MASK);
		} else {
			fwrite(p, 1, len, f);
		}
		p += len;
		if (*p == '&')
			fputc(*p++, f);
	}
}

/*
 * keyword = value pairs, as libpq reads them: a value is either in single
 * quotes (with \' and \\) or runs to the next blank (with \ escaping one
 * character). Written to f with the secret values masked; -1 when the
 * string is not one libpq would read.
 */
static int mask_pairs(FILE *f, const char *s)
{
	const char *p = s;

	for (;;) {
		const char *key, *value;
		size_t key_len;

		while (isspace((unsigned char)*p))
			fputc(*p++, f);
		if (!*p)
			return 0;
		key = p;
		while (*p && *p != '=' && !isspace((unsigned char)*p))
			p++;
		key_len = (size_t)(p - key);
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '=' || key_len == 0)
			return -1;
		p++;
		while (isspace((unsigned char)*p))
			p++;
		value = p;
		if (*p == '\'') {
			for (p++; *p && *p != '\''; p++) {
				if (*p == '\\' && p[1])
					p++;
			}
			if (*p != '\'')
				return -1; /* unterminated */
			p++;
		} else {
			for (; *p && !isspace((unsigned char)*p); p++) {
				if (*p == '\\' && p[1])
					p++;
			}
		}
		fwrite(key, 1, key_len, f);
		fputc('=', f);
		if (conninfo_key_is_secret(key, key_len))
			fputs(SECRET_MASK, f);
		else
			fwrite(value, 1, (size_t)(p - value), f);
	}
}

char *secret_mask_conninfo(const char *conninfo)
{
	char *out = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&out, &size);
	int rc = 0;

	if (!f)
		return NULL;
	if (strncmp(conninfo, "postgresql://", 13) == 0)
		mask_uri(f, conninfo, 13);
	else if (strncmp(conninfo, "postgres://", 11) == 0)
		mask_uri(f, conninfo, 11);
	else
		rc = mask_pairs(f, conninfo);
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	if (rc != 0) {
		/* Unreadable: it might be anything, a password included. */
		free(out);
		return strdup(SECRET_MASK);
	}
	return out;
}

/* --------------------------------------------------------- secret files */

/* Open path for reading after checking what secret_check_file promises. */
static int open_checked(const char *path, char *errstr, size_t errstr_size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		snprintf(errstr, errstr_size, "%s: cannot read: %s", path,
			 strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(errstr, errstr_size, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(errstr, errstr_size,
			 "%s: others than its owner may read or write it "
			 "(mode %04o): chmod 600 it",
			 path, (unsigned int)(st.st_mode & 07777));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

int secret_check_file(const char *path, char *errstr, size_t errstr_size)
{
	int fd = open_checked(path, errstr, errstr_size);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

int secret_read_file(const char *path, char **out, char *errstr,
		     size_t errstr_size)
{
	char buf[SECRET_FILE_MAX + 2];
	size_t len = 0;
	ssize_t n;
	int fd = open_checked(path, errstr, errstr_size);
	int rc = -1;

	*out = NULL;
	if (fd < 0)
		return -1;
	while (len < sizeof(buf) - 1 &&
	       (n = read(fd, buf + len, sizeof(buf) - 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(errstr, errstr_size, "%s: %s", path,
				 strerror(errno));
			goto fail;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (strlen(buf) > SECRET_FILE_MAX) {
		snprintf(errstr, errstr_size,
			 "%s: the first line is longer than %d bytes", path,
			 SECRET_FILE_MAX);
		goto fail;
	}
	if (buf[0] == '\0') {
		snprintf(errstr, errstr_size, "%s: the first line is empty",
			 path);
		goto fail;
	}
	*out = strdup(buf);
	if (!*out) {
		snprintf(errstr, errstr_size, "out of memory");
		goto fail;
	}
	rc = 0;
fail:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

void secret_free(char *secret)
{
	if (!secret)
		return;
	explicit_bzero(secret, strlen(secret));
	free(secret);
}
