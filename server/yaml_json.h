/* yaml_json.h: YAML documents as jansson values and back, for editing a pretrained_saes.yaml
 * that already exists on the Hub (several SAEs of one release go into one file). Plain scalars
 * that read as null, booleans or numbers become those; every other scalar, and every quoted
 * one, a string. Written back, strings are double-quoted (keys plain) so that a folder named
 * "null" or "123" stays a string. Comments and anchors are not kept. */
#ifndef SAED_YAML_JSON_H
#define SAED_YAML_JSON_H

#include <jansson.h>
#include <stddef.h>

/* The first document of text (an empty text: an empty object), or NULL with err. */
json_t *yaml_to_json(const char *text, size_t len, char *err, size_t errlen);
/* malloc'd YAML text of v (objects, arrays, strings, numbers, booleans, null), or NULL. */
char *json_to_yaml(const json_t *v);

#endif
