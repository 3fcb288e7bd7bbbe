/* wire_case.h: the two casings of Neuronpedia's inference-server wire. Upstream's server speaks
 * camelCase since its rewrite (snake_case still accepted on input); the published npm client
 * neuronpedia-inference-client (1.x) was generated from the older snake_case spec, so it sends
 * snake_case and reads snake_case answers (except `hookName` and `activeFeatures`, camelCase
 * in that spec too). saed builds camelCase and renames keys for a snake_case caller. */
#ifndef SAED_WIRE_CASE_H
#define SAED_WIRE_CASE_H

#include <jansson.h>

typedef enum { WIRE_UNKNOWN = 0, WIRE_CAMEL, WIRE_SNAKE } wire_case;

/* The casing a request body's keys show, objects inside arrays and objects included: snake
 * when some key has an '_', camel when some key has an upper-case letter (snake wins), else
 * WIRE_UNKNOWN (e.g. {"model", "prompt"}: every key one word). */
wire_case wire_case_of(const json_t *body);

/* Parses "camel" or "snake"; -1 otherwise. */
int wire_case_parse(const char *s, wire_case *out);

/* Renames the keys of j's objects, at every depth, from camelCase to snake_case in place
 * (maxValueIndex -> max_value_index), leaving the keys the old spec kept camelCase. Returns j;
 * NULL when out of memory (j is then partly renamed, still valid JSON). */
json_t *wire_snake_keys(json_t *j);

#endif
