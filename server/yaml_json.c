/* yaml_json.c: see yaml_json.h. */
#include "server/yaml_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static json_t *plain_scalar(const char *s)
{
    if (!*s || !strcmp(s, "null") || !strcmp(s, "~") || !strcmp(s, "Null") || !strcmp(s, "NULL")) return json_null();
    if (!strcmp(s, "true") || !strcmp(s, "True")) return json_true();
    if (!strcmp(s, "false") || !strcmp(s, "False")) return json_false();
    char *end;
    long long i = strtoll(s, &end, 10);
    if (!*end) return json_integer(i);
    double d = strtod(s, &end);
    if (!*end) return json_real(d);
    return json_string(s);
}

static json_t *node(yaml_document_t *doc, yaml_node_t *n, int depth)
{
    if (!n || depth > 64) return NULL;
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = (const char *)n->data.scalar.value;
        return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? plain_scalar(s) : json_string(s);
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        json_t *a = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
            json_t *v = node(doc, yaml_document_get_node(doc, *it), depth + 1);
            if (!v) return json_decref(a), NULL;
            json_array_append_new(a, v);
        }
        return a;
    }
    if (n->type == YAML_MAPPING_NODE) {
        json_t *o = json_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            json_t *v = node(doc, yaml_document_get_node(doc, p->value), depth + 1);
            if (!k || k->type != YAML_SCALAR_NODE || !v) return json_decref(v), json_decref(o), NULL;
            json_object_set_new(o, (const char *)k->data.scalar.value, v);
        }
        return o;
    }
    return NULL;
}

json_t *yaml_to_json(const char *text, size_t len, char *err, size_t errlen)
{
    yaml_parser_t p;
    yaml_document_t doc;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        snprintf(err, errlen, "line %zu: %s", p.problem_mark.line + 1, p.problem ? p.problem : "invalid YAML");
        yaml_parser_delete(&p);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    json_t *v = root ? node(&doc, root, 0) : json_object();
    if (!v) snprintf(err, errlen, "unsupported YAML (a non-scalar key, or nesting deeper than 64)");
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    return v;
}

typedef struct sink {
    char *buf;
    size_t len;
} sink;

static int on_out(void *ud, unsigned char *data, size_t n)
{
    sink *s = ud;
    char *nb = realloc(s->buf, s->len + n + 1);
    if (!nb) return 0;
    memcpy(nb + s->len, data, n);
    s->buf = nb;
    s->len += n;
    nb[s->len] = '\0';
    return 1;
}

static int scalar(yaml_emitter_t *em, const char *s, int quoted)
{
    yaml_event_t ev;
    return yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), !quoted, quoted,
                                        quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_PLAIN_SCALAR_STYLE) &&
           yaml_emitter_emit(em, &ev);
}

static int emit(yaml_emitter_t *em, const json_t *v)
{
    yaml_event_t ev;
    char num[40];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) || !yaml_emitter_emit(em, &ev))
            return 0;
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) if (!scalar(em, k, 0) || !emit(em, x)) return 0;
        return yaml_mapping_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
    }
    case JSON_ARRAY: {
        if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE) || !yaml_emitter_emit(em, &ev))
            return 0;
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) if (!emit(em, x)) return 0;
        return yaml_sequence_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
    }
    case JSON_STRING: return scalar(em, json_string_value(v), 1);
    case JSON_INTEGER: snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v)); return scalar(em, num, 0);
    case JSON_REAL: snprintf(num, sizeof num, "%.6g", json_real_value(v)); return scalar(em, num, 0);
    case JSON_TRUE: return scalar(em, "true", 0);
    case JSON_FALSE: return scalar(em, "false", 0);
    default: return scalar(em, "null", 0);
    }
}

char *json_to_yaml(const json_t *v)
{
    sink s = {0};
    yaml_emitter_t em;
    yaml_event_t ev;
    yaml_emitter_initialize(&em);
    yaml_emitter_set_output(&em, on_out, &s);
    yaml_emitter_set_unicode(&em, 1);
    int ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) && yaml_emitter_emit(&em, &ev);
    ok = ok && yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) && yaml_emitter_emit(&em, &ev);
    ok = ok && emit(&em, v);
    ok = ok && yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(&em, &ev);
    ok = ok && yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(&em, &ev);
    yaml_emitter_delete(&em);
    if (!ok) {
        free(s.buf);
        return NULL;
    }
    return s.buf;
}
