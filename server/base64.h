/* base64.h: RFC 4648 base64 (with padding), for the Hub's commit API (file contents and
 * preupload samples travel base64-encoded in JSON). */
#ifndef SAED_BASE64_H
#define SAED_BASE64_H

#include <stddef.h>

/* malloc'd, NUL-terminated. */
char *base64_encode(const void *data, size_t n);
/* malloc'd bytes (length in *n), or NULL for text that is not base64. */
unsigned char *base64_decode(const char *text, size_t len, size_t *n);

#endif
