/* secret: which parts of ticketd's settings are secrets, how they are shown
 * (masked), and reading one from a file only its owner may read. */
#ifndef TICKETD_SECRET_H
#define TICKETD_SECRET_H

#include <stddef.h>

/* What a masked value reads as, wherever a secret would have been shown. */
#define SECRET_MASK "(hidden)"

/*
 * 1 when the librdkafka property named by the len bytes at name holds a
 * secret (sasl.password, ssl.key.password, ssl.keystore.password,
 * ssl.key.pem, sasl.oauthbearer.client.secret, ...), else 0.
 */
int secret_property_is_secret(const char *name, size_t len);

/*
 * item ("name=value") for display: the value replaced by SECRET_MASK when
 * the property is a secret. Heap, the caller frees; NULL when out of
 * memory.
 */
char *secret_mask_property(const char *item);

/*
 * A libpq connection string (keyword=value pairs or a postgresql:// URI)
 * for display: every password (password, sslpassword, a URI's user:password)
 * replaced by SECRET_MASK. A string it cannot read is shown as SECRET_MASK
 * whole rather than risk showing a password. Heap, the caller frees; NULL
 * when out of memory.
 */
char *secret_mask_conninfo(const char *conninfo);

/*
 * Check that path is a regular file that its owner may read and nobody else
 * may read or write (libpq's own rule for a password file). 0, or -1 with
 * the reason in errstr (never any of the file's content).
 */
int secret_check_file(const char *path, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/*
 * The secret in the file at path: its first line, without the line end,
 * after the checks of secret_check_file; it must not be empty. On 0 *out
 * is heap (free it with secret_free); -1 with errstr.
 */
int secret_read_file(const char *path, char **out, char *errstr,
		     size_t errstr_size) __attribute__((warn_unused_result));

/* Overwrite and free a secret (NULL is fine). */
void secret_free(char *secret);

#endif
