/* wire_case.c: see wire_case.h. */
#include "server/wire_case.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Camel in the snake_case spec as well (UtilSaeVectorPost200Response, ActivationSource...). */
static const char *const kept[] = {"hookName", "activeFeatures"};

static void scan(const json_t *j, int *snake, int *camel, int depth)
{
    if (depth > 32) return;
    if (json_is_array(j)) {
        size_t i;
        const json_t *v;
        json_array_foreach(j, i, v) scan(v, snake, camel, depth + 1);
        return;
    }
    if (!json_is_object(j)) return;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)j, k, v) {
        for (const char *p = k; *p; p++) {
            if (*p == '_') *snake = 1;
            else if (isupper((unsigned char)*p)) *camel = 1;
        }
        scan(v, snake, camel, depth + 1);
    }
}

wire_case wire_case_of(const json_t *body)
{
    int snake = 0, camel = 0;
    scan(body, &snake, &camel, 0);
    return snake ? WIRE_SNAKE : camel ? WIRE_CAMEL : WIRE_UNKNOWN;
}

int wire_case_parse(const char *s, wire_case *out)
{
    if (!strcmp(s, "camel")) *out = WIRE_CAMEL;
    else if (!strcmp(s, "snake")) *out = WIRE_SNAKE;
    else return -1;
    return 0;
}

static int is_kept(const char *k)
{
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++)
        if (!strcmp(k, kept[i])) return 1;
    return 0;
}

/* k in snake_case, or NULL when k has no upper-case letter (or when out of memory: *oom). */
static char *snake_of(const char *k, int *oom)
{
    size_t n = 0, up = 0;
    for (const char *p = k; *p; p++, n++) up += isupper((unsigned char)*p) != 0;
    if (!up || is_kept(k)) return NULL;
    char *s = malloc(n + up + 1), *o = s;
    if (!s) {
        *oom = 1;
        return NULL;
    }
    for (const char *p = k; *p; p++) {
        if (isupper((unsigned char)*p)) {
            if (p != k) *o++ = '_';
            *o++ = (char)tolower((unsigned char)*p);
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return s;
}

static int rename_keys(json_t *j, int depth)
{
    if (depth > 64) return 0;
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) if (rename_keys(v, depth + 1)) return -1;
        return 0;
    }
    if (!json_is_object(j)) return 0;
    /* Collect first: renaming while iterating would revisit or skip keys. */
    size_t n = json_object_size(j), m = 0;
    const char **keys = malloc(sizeof *keys * (n ? n : 1));
    if (!keys) return -1;
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
        if (rename_keys(v, depth + 1)) {
            free(keys);
            return -1;
        }
        keys[m++] = k;
    }
    int oom = 0;
    for (size_t i = 0; i < m && !oom; i++) {
        char *s = snake_of(keys[i], &oom);
        if (!s) continue;
        json_t *val = json_incref(json_object_get(j, keys[i]));
        if (json_object_del(j, keys[i]) || json_object_set_new(j, s, val)) oom = 1;
        free(s);
    }
    free(keys);
    return oom ? -1 : 0;
}

json_t *wire_snake_keys(json_t *j)
{
    return rename_keys(j, 0) ? NULL : j;
}
