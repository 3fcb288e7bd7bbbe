/* OpenAPI 3.1 response validator for the API tests.
 *
 * Loads a YAML spec, matches (method, path, status) against it and validates
 * the response Content-Type and JSON body against the documented schema.
 * Supported JSON Schema subset and limitations are documented in oas.c. */
#ifndef SAED_TESTS_OAS_H
#define SAED_TESTS_OAS_H

#include <stddef.h>

typedef struct oas oas; /* opaque */

/* Returns NULL on error with "file:line: message" (or "file: message") in err. */
oas *oas_load(const char *yaml_path, char *err, size_t errlen);
void oas_free(oas *o);

/* Validate one HTTP response. path is the request path without query string
 * (a query/fragment is stripped anyway); trailing slashes are tolerated.
 * Marks the matched operation as exercised. Returns 0 if valid, -1 with
 * "METHOD path [template] -> status: at body/ptr: what was expected" in err. */
int oas_check(oas *o, const char *method, const char *path, int status,
              const char *content_type, const char *body, size_t body_len,
              char *err, size_t errlen);

/* Calls cb (may be NULL) with the upper-case method and path template of each
 * operation oas_check never matched; returns how many there are. */
int oas_unexercised(oas *o,
                    void (*cb)(const char *method, const char *path_template, void *ud),
                    void *ud);

#endif
