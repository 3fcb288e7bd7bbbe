/* OpenAPI 3.1 response validator (test support code).
 *
 * YAML -> jansson conversion uses libyaml's event API; YAML 1.2 core-schema
 * resolution for plain scalars, quoted scalars are always strings. Anchors
 * are tolerated but aliases are rejected (the spec should not need them).
 *
 * JSON Schema subset: boolean schemas, $ref (local "#/..." JSON pointers,
 * siblings of $ref are applied too, as in 3.1), type (string or array,
 * "integer" accepts reals with zero fraction), OpenAPI 3.0 "nullable", enum,
 * const, allOf/anyOf/oneOf/not, if/then/else, minimum/maximum,
 * exclusiveMinimum/exclusiveMaximum (3.1 numbers or 3.0 booleans),
 * minLength/maxLength (code points), minItems/maxItems/uniqueItems,
 * items/prefixItems, required, properties, additionalProperties,
 * minProperties/maxProperties.
 * Not checked: pattern, patternProperties (its presence disables the
 * additionalProperties check to avoid false failures), format, multipleOf,
 * contains, dependent*, unevaluated*, discriminator (plain oneOf semantics
 * apply), readOnly/writeOnly. A response that documents no content is not
 * checked for an empty body. HEAD without a "head" operation is checked
 * against "get" (status and Content-Type only, no body). text/event-stream
 * bodies are checked event by event against the media's itemSchema (OpenAPI
 * 3.2), JSON data against its contentSchema (see oas_check_sse). */
#include "oas.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define OAS_MAX_SCHEMA_DEPTH 64
#define OAS_MAX_YAML_DEPTH 512 /* keeps the recursive YAML builder off the stack limit */

struct oas_op {
    char method[8]; /* lower case, as the yaml key */
    char *tpl;
    json_t *node;
    int hit;
};

struct oas {
    json_t *doc;
    struct oas_op *ops;
    size_t nops;
};

static const char *const oas_methods[] = {"get", "put", "post", "delete", "options", "head", "patch"};

static void oas_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void oas_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---------- JSON pointer resolution ---------- */

/* Resolves a local "#/a/b" reference; handles ~0 ~1 and %XX (URI fragment). */
static json_t *oas_resolve(json_t *doc, const char *ref)
{
    if (!ref || ref[0] != '#')
        return NULL;
    const char *p = ref + 1;
    if (!*p)
        return doc;
    if (*p != '/')
        return NULL;
    char *tok = malloc(strlen(p) + 1);
    if (!tok)
        return NULL;
    json_t *node = doc;
    while (node && *p == '/') {
        p++;
        size_t n = 0;
        while (*p && *p != '/') {
            if (p[0] == '~' && (p[1] == '0' || p[1] == '1')) {
                tok[n++] = p[1] == '0' ? '~' : '/';
                p += 2;
            } else if (p[0] == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
                char hex[3] = {p[1], p[2], 0};
                tok[n++] = (char)strtol(hex, NULL, 16);
                p += 3;
            } else {
                tok[n++] = *p++;
            }
        }
        tok[n] = 0;
        if (json_is_object(node)) {
            node = json_object_get(node, tok);
        } else if (json_is_array(node)) {
            char *end;
            errno = 0;
            unsigned long idx = strtoul(tok, &end, 10);
            node = (n && !*end && !errno && isdigit((unsigned char)tok[0]))
                       ? json_array_get(node, idx) : NULL;
        } else {
            node = NULL;
        }
    }
    free(tok);
    return node;
}

/* Follows chains of Reference Objects (responses, path items). */
static json_t *oas_deref(json_t *doc, json_t *node)
{
    for (int i = 0; i < 16 && json_is_object(node); i++) {
        json_t *r = json_object_get(node, "$ref");
        if (!json_is_string(r))
            return node;
        node = oas_resolve(doc, json_string_value(r));
    }
    return json_is_object(node) ? node : NULL;
}

/* ---------- YAML -> JSON ---------- */

struct oas_refrec {
    char *ref;
    size_t line;
};

typedef struct {
    yaml_parser_t p;
    const char *file;
    char *err;
    size_t errlen;
    int failed;
    struct oas_refrec *refs; /* every "$ref" string, verified after loading */
    size_t nrefs, caprefs;
} oas_yctx;

static int oas_ynext(oas_yctx *c, yaml_event_t *ev)
{
    if (yaml_parser_parse(&c->p, ev))
        return 0;
    oas_errf(c->err, c->errlen, "%s:%zu: YAML error: %s%s%s", c->file,
             (size_t)c->p.problem_mark.line + 1, c->p.problem ? c->p.problem : "parse error",
             c->p.context ? " " : "", c->p.context ? c->p.context : "");
    c->failed = 1;
    return -1;
}

static int oas_yfail(oas_yctx *c, size_t line0, const char *msg, const char *arg)
{
    if (!c->failed)
        oas_errf(c->err, c->errlen, "%s:%zu: %s%s", c->file, line0 + 1, msg, arg ? arg : "");
    c->failed = 1;
    return -1;
}

static int oas_is_int(const char *s, int *base)
{
    const char *p = s;
    if (p[0] == '0' && p[1] == 'x') {
        p += 2;
        *base = 16;
        if (!*p)
            return 0;
        for (; *p; p++)
            if (!isxdigit((unsigned char)*p))
                return 0;
        return 1;
    }
    if (p[0] == '0' && p[1] == 'o') {
        p += 2;
        *base = 8;
        if (!*p)
            return 0;
        for (; *p; p++)
            if (*p < '0' || *p > '7')
                return 0;
        return 1;
    }
    *base = 10;
    if (*p == '+' || *p == '-')
        p++;
    if (!*p)
        return 0;
    for (; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    return 1;
}

/* YAML 1.2 core float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int oas_is_float(const char *p)
{
    size_t before = 0, after = 0;
    if (*p == '+' || *p == '-')
        p++;
    while (isdigit((unsigned char)*p))
        p++, before++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p))
            p++, after++;
    }
    if (!before && !after)
        return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    return *p == 0;
}

static json_t *oas_yscalar(const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                !(tag && strcmp(tag, YAML_STR_TAG) == 0);
    if (!plain || strlen(s) != n)
        return json_stringn(s, n);
    if (n == 0 || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
        return json_null();
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        return json_true();
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return json_false();
    int base;
    if (oas_is_int(s, &base)) {
        errno = 0;
        long long v = strtoll(base == 10 ? s : s + 2, NULL, base);
        if (!errno)
            return json_integer(v);
        return base == 10 ? json_real(strtod(s, NULL)) : json_stringn(s, n);
    }
    if (oas_is_float(s)) {
        double d = strtod(s, NULL);
        if (isfinite(d))
            return json_real(d);
    }
    return json_stringn(s, n); /* includes .inf/.nan: jansson cannot hold them */
}

/* Builds the node started by *ev (which it consumes). */
static json_t *oas_ynode(oas_yctx *c, yaml_event_t *ev, int depth)
{
    size_t line = ev->start_mark.line;
    if (depth > OAS_MAX_YAML_DEPTH) {
        yaml_event_delete(ev);
        oas_yfail(c, line, "YAML nesting too deep", NULL);
        return NULL;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        json_t *v = oas_yscalar(ev);
        yaml_event_delete(ev);
        if (!v)
            oas_yfail(c, line, "invalid UTF-8 in scalar", NULL);
        return v;
    }
    case YAML_SEQUENCE_START_EVENT: {
        yaml_event_delete(ev);
        json_t *arr = json_array();
        for (;;) {
            yaml_event_t e;
            if (oas_ynext(c, &e))
                break;
            if (e.type == YAML_SEQUENCE_END_EVENT) {
                yaml_event_delete(&e);
                return arr;
            }
            json_t *v = oas_ynode(c, &e, depth + 1);
            if (!v)
                break;
            json_array_append_new(arr, v);
        }
        json_decref(arr);
        return NULL;
    }
    case YAML_MAPPING_START_EVENT: {
        yaml_event_delete(ev);
        json_t *obj = json_object();
        for (;;) {
            yaml_event_t e;
            if (oas_ynext(c, &e))
                break;
            if (e.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&e);
                return obj;
            }
            size_t kline = e.start_mark.line;
            if (e.type != YAML_SCALAR_EVENT || strlen((char *)e.data.scalar.value) != e.data.scalar.length) {
                yaml_event_delete(&e);
                oas_yfail(c, kline, "unsupported mapping key (must be a plain string)", NULL);
                break;
            }
            /* Keys stay strings even when they look like numbers ("200:"). */
            char *key = strdup((char *)e.data.scalar.value);
            yaml_event_delete(&e);
            if (!key || oas_ynext(c, &e)) {
                free(key);
                break;
            }
            json_t *v = oas_ynode(c, &e, depth + 1);
            if (!v) {
                free(key);
                break;
            }
            if (json_object_get(obj, key)) {
                json_decref(v);
                oas_yfail(c, kline, "duplicate key: ", key);
                free(key);
                break;
            }
            if (!strcmp(key, "$ref") && json_is_string(v)) {
                if (c->nrefs == c->caprefs) {
                    size_t nc = c->caprefs ? c->caprefs * 2 : 32;
                    struct oas_refrec *nr = realloc(c->refs, nc * sizeof *nr);
                    if (!nr) {
                        json_decref(v);
                        free(key);
                        oas_yfail(c, kline, "out of memory", NULL);
                        break;
                    }
                    c->refs = nr;
                    c->caprefs = nc;
                }
                c->refs[c->nrefs].ref = strdup(json_string_value(v));
                c->refs[c->nrefs++].line = kline;
            }
            if (json_object_set_new(obj, key, v)) {
                free(key);
                oas_yfail(c, kline, "invalid key: ", NULL);
                break;
            }
            free(key);
        }
        json_decref(obj);
        return NULL;
    }
    case YAML_ALIAS_EVENT:
        yaml_event_delete(ev);
        oas_yfail(c, line, "YAML aliases are not supported", NULL);
        return NULL;
    default:
        yaml_event_delete(ev);
        oas_yfail(c, line, "unexpected YAML event", NULL);
        return NULL;
    }
}

/* Parses the first document of the file. */
static json_t *oas_yload(oas_yctx *c, FILE *f)
{
    yaml_event_t e;
    json_t *root = NULL;
    yaml_parser_set_input_file(&c->p, f);
    if (oas_ynext(c, &e))
        return NULL;
    yaml_event_delete(&e); /* STREAM_START */
    if (oas_ynext(c, &e))
        return NULL;
    if (e.type != YAML_DOCUMENT_START_EVENT) {
        size_t line = e.start_mark.line;
        yaml_event_delete(&e);
        oas_yfail(c, line, "empty YAML file", NULL);
        return NULL;
    }
    yaml_event_delete(&e);
    if (oas_ynext(c, &e))
        return NULL;
    root = oas_ynode(c, &e, 0);
    if (root && oas_ynext(c, &e) == 0)
        yaml_event_delete(&e); /* DOCUMENT_END; later documents are ignored */
    if (c->failed) {
        json_decref(root);
        return NULL;
    }
    return root;
}

oas *oas_load(const char *yaml_path, char *err, size_t errlen)
{
    oas_errf(err, errlen, "%s", "");
    FILE *f = fopen(yaml_path, "rb");
    if (!f) {
        oas_errf(err, errlen, "%s: cannot open: %s", yaml_path, strerror(errno));
        return NULL;
    }
    oas_yctx c = {.file = yaml_path, .err = err, .errlen = errlen};
    if (!yaml_parser_initialize(&c.p)) {
        fclose(f);
        oas_errf(err, errlen, "%s: yaml_parser_initialize failed", yaml_path);
        return NULL;
    }
    json_t *doc = oas_yload(&c, f);
    yaml_parser_delete(&c.p);
    fclose(f);

    oas *o = NULL;
    for (size_t i = 0; doc && i < c.nrefs; i++) {
        if (!c.refs[i].ref || !oas_resolve(doc, c.refs[i].ref)) {
            oas_errf(err, errlen, "%s:%zu: unresolvable $ref '%s' (only local '#/...' refs are supported)",
                     yaml_path, c.refs[i].line + 1, c.refs[i].ref ? c.refs[i].ref : "?");
            goto out;
        }
    }
    if (!doc)
        goto out;
    if (!json_is_object(doc)) {
        oas_errf(err, errlen, "%s: top level is not a mapping", yaml_path);
        goto out;
    }
    json_t *ver = json_object_get(doc, "openapi");
    /* An unquoted "openapi: 3.1" arrives as a real; accept it too. */
    int ver_ok = (json_is_string(ver) && !strncmp(json_string_value(ver), "3.", 2)) ||
                 (json_is_real(ver) && json_real_value(ver) >= 3 && json_real_value(ver) < 4);
    if (!ver_ok) {
        oas_errf(err, errlen, "%s: missing or unsupported \"openapi\" version (need 3.x)", yaml_path);
        goto out;
    }
    json_t *paths = json_object_get(doc, "paths");
    if (!json_is_object(paths)) {
        oas_errf(err, errlen, "%s: missing \"paths\" mapping", yaml_path);
        goto out;
    }

    o = calloc(1, sizeof *o);
    if (!o)
        goto out;
    o->doc = doc;
    doc = NULL;
    const char *tpl;
    json_t *item;
    size_t cap = 0;
    json_object_foreach(paths, tpl, item) {
        json_t *pi = oas_deref(o->doc, item);
        if (tpl[0] != '/' || !pi) {
            oas_errf(err, errlen, "%s: path '%s': must start with '/' and be a mapping", yaml_path, tpl);
            goto fail;
        }
        for (size_t m = 0; m < sizeof oas_methods / sizeof *oas_methods; m++) {
            json_t *op = json_object_get(pi, oas_methods[m]);
            if (!op)
                continue;
            if (!json_is_object(op)) {
                oas_errf(err, errlen, "%s: %s %s: operation is not a mapping", yaml_path, oas_methods[m], tpl);
                goto fail;
            }
            if (o->nops == cap) {
                cap = cap ? cap * 2 : 16;
                struct oas_op *n = realloc(o->ops, cap * sizeof *n);
                if (!n)
                    goto fail;
                o->ops = n;
            }
            struct oas_op *d = &o->ops[o->nops];
            snprintf(d->method, sizeof d->method, "%s", oas_methods[m]);
            d->tpl = strdup(tpl);
            d->node = op;
            d->hit = 0;
            if (!d->tpl)
                goto fail;
            o->nops++;
        }
    }
    goto out;
fail:
    oas_free(o);
    o = NULL;
out:
    for (size_t i = 0; i < c.nrefs; i++)
        free(c.refs[i].ref);
    free(c.refs);
    json_decref(doc);
    return o;
}

void oas_free(oas *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->nops; i++)
        free(o->ops[i].tpl);
    free(o->ops);
    json_decref(o->doc);
    free(o);
}

/* ---------- schema validation ---------- */

typedef struct {
    json_t *doc;
    char *err;
    size_t errlen;
    const char *ref; /* innermost $ref followed, for error context */
    char path[512];  /* JSON pointer of the instance being checked */
    size_t plen;
} oas_vctx;

static size_t oas_ppush(oas_vctx *c, const char *key)
{
    size_t old = c->plen, n = c->plen;
    const size_t cap = sizeof c->path - 4; /* room for "..." + NUL */
    if (n < cap)
        c->path[n++] = '/';
    for (const char *k = key; *k && n < cap; k++) {
        if (*k == '~' || *k == '/') {
            c->path[n++] = '~';
            if (n < cap)
                c->path[n++] = *k == '~' ? '0' : '1';
        } else {
            c->path[n++] = *k;
        }
    }
    if (n >= cap) {
        memcpy(c->path + cap, "...", 4);
        c->plen = cap + 3;
    } else {
        c->path[n] = 0;
        c->plen = n;
    }
    return old;
}

static size_t oas_ppush_idx(oas_vctx *c, size_t i)
{
    char b[32];
    snprintf(b, sizeof b, "%zu", i);
    return oas_ppush(c, b);
}

static void oas_ppop(oas_vctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = 0;
}

static const char *oas_jtype(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

/* Short description of a value for messages: type plus a truncated dump. */
static void oas_describe(const json_t *v, char *buf, size_t n)
{
    if (json_is_object(v) || json_is_array(v)) {
        snprintf(buf, n, "%s", oas_jtype(v));
        return;
    }
    char *d = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (d && strlen(d) > 48)
        memcpy(d + 45, "...", 4);
    snprintf(buf, n, "%s %s", oas_jtype(v), d ? d : "?");
    free(d);
}

static int oas_vfail(oas_vctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int oas_vfail(oas_vctx *c, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    oas_errf(c->err, c->errlen, "at body%s: %s%s%s%s", c->path, msg, c->ref ? " (schema " : "",
             c->ref ? c->ref : "", c->ref ? ")" : "");
    return -1;
}

/* Numeric-aware equality: enum [1] must accept 1.0 and vice versa. */
static int oas_jeq(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b))
        return 0;
    if (json_is_string(a))
        return json_string_length(a) == json_string_length(b) &&
               !memcmp(json_string_value(a), json_string_value(b), json_string_length(a));
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!oas_jeq(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    if (json_is_object(a)) {
        const char *k;
        json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach(a, k, v) {
            json_t *w = json_object_get(b, k);
            if (!w || !oas_jeq(v, w))
                return 0;
        }
        return 1;
    }
    return 1; /* true/false/null of equal type */
}

static int oas_type_ok(const char *t, json_t *v)
{
    if (!strcmp(t, "integer")) {
        if (json_is_integer(v))
            return 1;
        if (!json_is_real(v))
            return 0;
        /* Avoids floor() so users need not link libm; beyond 2^53 every double is integral. */
        double d = json_real_value(v);
        if (d >= 9007199254740992.0 || d <= -9007199254740992.0)
            return 1;
        return (double)(long long)d == d;
    }
    if (!strcmp(t, "number")) return json_is_number(v);
    if (!strcmp(t, "string")) return json_is_string(v);
    if (!strcmp(t, "boolean")) return json_is_boolean(v);
    if (!strcmp(t, "object")) return json_is_object(v);
    if (!strcmp(t, "array")) return json_is_array(v);
    if (!strcmp(t, "null")) return json_is_null(v);
    return 0;
}

static int oas_num(json_t *s, const char *key, double *out)
{
    json_t *v = json_object_get(s, key);
    if (!json_is_number(v))
        return 0;
    *out = json_number_value(v);
    return 1;
}

static size_t oas_utf8_len(const char *s, size_t n)
{
    size_t cp = 0;
    for (size_t i = 0; i < n; i++)
        cp += ((unsigned char)s[i] & 0xC0) != 0x80;
    return cp;
}

static int oas_validate(oas_vctx *c, json_t *s, json_t *inst, int depth);

/* Runs a subschema without reporting; returns 0 when it matches. The
 * sub-error goes to buf so branch failures can be summarised. */
static int oas_try(oas_vctx *c, json_t *s, json_t *inst, int depth, char *buf, size_t n)
{
    char *oe = c->err;
    size_t ol = c->errlen;
    c->err = buf;
    c->errlen = n;
    if (n)
        buf[0] = 0;
    int r = oas_validate(c, s, inst, depth);
    c->err = oe;
    c->errlen = ol;
    return r;
}

static int oas_combinator(oas_vctx *c, json_t *s, json_t *inst, int depth, const char *kw)
{
    json_t *list = json_object_get(s, kw);
    if (!list)
        return 0;
    if (!json_is_array(list) || !json_array_size(list))
        return oas_vfail(c, "invalid schema: %s must be a non-empty array", kw);
    if (!strcmp(kw, "allOf")) {
        for (size_t i = 0; i < json_array_size(list); i++)
            if (oas_validate(c, json_array_get(list, i), inst, depth + 1))
                return -1;
        return 0;
    }
    char summary[1536] = "", sub[512];
    size_t slen = 0, matches = 0, first = 0, second = 0;
    for (size_t i = 0; i < json_array_size(list); i++) {
        if (oas_try(c, json_array_get(list, i), inst, depth + 1, sub, sizeof sub) == 0) {
            if (matches == 0)
                first = i;
            else if (matches == 1)
                second = i;
            matches++;
            if (kw[0] == 'a') /* anyOf: one is enough */
                return 0;
        } else if (slen < sizeof summary) {
            int w = snprintf(summary + slen, sizeof summary - slen, "%s[%zu] %s", slen ? "; " : "", i, sub);
            if (w > 0)
                slen += (size_t)w;
        }
    }
    if (matches == 1)
        return 0;
    if (matches > 1)
        return oas_vfail(c, "value matches %zu oneOf branches (e.g. %zu and %zu), expected exactly one",
                         matches, first, second);
    return oas_vfail(c, "value matches none of the %zu %s branches: %s", json_array_size(list), kw, summary);
}

static int oas_validate(oas_vctx *c, json_t *s, json_t *inst, int depth)
{
    if (depth > OAS_MAX_SCHEMA_DEPTH)
        return oas_vfail(c, "schema nesting deeper than %d (recursive $ref?)", OAS_MAX_SCHEMA_DEPTH);
    if (json_is_true(s))
        return 0;
    if (json_is_false(s))
        return oas_vfail(c, "no value allowed here (schema is false)");
    if (!json_is_object(s))
        return oas_vfail(c, "invalid schema (not an object or boolean)");

    char desc[96];
    json_t *ref = json_object_get(s, "$ref");
    if (ref) {
        json_t *t = json_is_string(ref) ? oas_resolve(c->doc, json_string_value(ref)) : NULL;
        if (!t)
            return oas_vfail(c, "unresolvable $ref");
        const char *old = c->ref;
        c->ref = json_string_value(ref);
        int r = oas_validate(c, t, inst, depth + 1);
        c->ref = old;
        if (r)
            return r;
    }

    json_t *type = json_object_get(s, "type");
    if (type && !(json_is_null(inst) && json_is_true(json_object_get(s, "nullable")))) {
        int ok = 0;
        if (json_is_string(type)) {
            ok = oas_type_ok(json_string_value(type), inst);
        } else if (json_is_array(type)) {
            for (size_t i = 0; i < json_array_size(type) && !ok; i++)
                ok = json_is_string(json_array_get(type, i)) &&
                     oas_type_ok(json_string_value(json_array_get(type, i)), inst);
        }
        if (!ok) {
            char *ts = json_dumps(type, JSON_ENCODE_ANY | JSON_COMPACT);
            oas_describe(inst, desc, sizeof desc);
            oas_vfail(c, "expected type %s, got %s", ts ? ts : "?", desc);
            free(ts);
            return -1;
        }
    }

    json_t *en = json_object_get(s, "enum");
    if (json_is_array(en)) {
        int ok = 0;
        for (size_t i = 0; i < json_array_size(en) && !ok; i++)
            ok = oas_jeq(json_array_get(en, i), inst);
        if (!ok) {
            char *es = json_dumps(en, JSON_ENCODE_ANY | JSON_COMPACT);
            oas_describe(inst, desc, sizeof desc);
            oas_vfail(c, "expected one of %.300s, got %s", es ? es : "?", desc);
            free(es);
            return -1;
        }
    }
    json_t *cn = json_object_get(s, "const");
    if (cn && !oas_jeq(cn, inst)) {
        char *cs = json_dumps(cn, JSON_ENCODE_ANY | JSON_COMPACT);
        oas_describe(inst, desc, sizeof desc);
        oas_vfail(c, "expected const %.300s, got %s", cs ? cs : "?", desc);
        free(cs);
        return -1;
    }

    double lim;
    if (json_is_number(inst)) {
        double v = json_number_value(inst);
        json_t *exmin = json_object_get(s, "exclusiveMinimum"), *exmax = json_object_get(s, "exclusiveMaximum");
        if (oas_num(s, "minimum", &lim)) {
            if (json_is_true(exmin) ? !(v > lim) : !(v >= lim))
                return oas_vfail(c, "expected %s %g, got %g", json_is_true(exmin) ? ">" : ">=", lim, v);
        }
        if (oas_num(s, "maximum", &lim)) {
            if (json_is_true(exmax) ? !(v < lim) : !(v <= lim))
                return oas_vfail(c, "expected %s %g, got %g", json_is_true(exmax) ? "<" : "<=", lim, v);
        }
        if (oas_num(s, "exclusiveMinimum", &lim) && !(v > lim))
            return oas_vfail(c, "expected > %g, got %g", lim, v);
        if (oas_num(s, "exclusiveMaximum", &lim) && !(v < lim))
            return oas_vfail(c, "expected < %g, got %g", lim, v);
    }

    if (json_is_string(inst)) {
        double len = (double)oas_utf8_len(json_string_value(inst), json_string_length(inst));
        if (oas_num(s, "minLength", &lim) && len < lim)
            return oas_vfail(c, "expected string of at least %g characters, got %g", lim, len);
        if (oas_num(s, "maxLength", &lim) && len > lim)
            return oas_vfail(c, "expected string of at most %g characters, got %g", lim, len);
    }

    if (json_is_array(inst)) {
        size_t n = json_array_size(inst);
        if (oas_num(s, "minItems", &lim) && (double)n < lim)
            return oas_vfail(c, "expected at least %g items, got %zu", lim, n);
        if (oas_num(s, "maxItems", &lim) && (double)n > lim)
            return oas_vfail(c, "expected at most %g items, got %zu", lim, n);
        if (json_is_true(json_object_get(s, "uniqueItems")))
            for (size_t i = 0; i < n; i++)
                for (size_t j = i + 1; j < n; j++)
                    if (oas_jeq(json_array_get(inst, i), json_array_get(inst, j)))
                        return oas_vfail(c, "expected unique items, items %zu and %zu are equal", i, j);
        json_t *prefix = json_object_get(s, "prefixItems"), *items = json_object_get(s, "items");
        size_t np = 0;
        if (json_is_array(items)) /* draft-4 tuple form */
            prefix = items, items = NULL;
        if (json_is_array(prefix))
            np = json_array_size(prefix);
        for (size_t i = 0; i < n; i++) {
            json_t *sub = i < np ? json_array_get(prefix, i) : items;
            if (!sub)
                continue;
            size_t old = oas_ppush_idx(c, i);
            int r = oas_validate(c, sub, json_array_get(inst, i), depth + 1);
            oas_ppop(c, old);
            if (r)
                return r;
        }
    }

    if (json_is_object(inst)) {
        json_t *req = json_object_get(s, "required");
        for (size_t i = 0; json_is_array(req) && i < json_array_size(req); i++) {
            const char *k = json_string_value(json_array_get(req, i));
            if (k && !json_object_get(inst, k))
                return oas_vfail(c, "missing required property \"%s\"", k);
        }
        size_t n = json_object_size(inst);
        if (oas_num(s, "minProperties", &lim) && (double)n < lim)
            return oas_vfail(c, "expected at least %g properties, got %zu", lim, n);
        if (oas_num(s, "maxProperties", &lim) && (double)n > lim)
            return oas_vfail(c, "expected at most %g properties, got %zu", lim, n);
        json_t *props = json_object_get(s, "properties");
        json_t *addl = json_object_get(s, "additionalProperties");
        if (json_object_get(s, "patternProperties"))
            addl = NULL; /* without pattern support we cannot tell which keys are "additional" */
        const char *k;
        json_t *v;
        json_object_foreach(inst, k, v) {
            json_t *ps = json_is_object(props) ? json_object_get(props, k) : NULL;
            if (!ps && json_is_false(addl))
                return oas_vfail(c, "unexpected property \"%s\" (additionalProperties is false)", k);
            if (!ps && json_is_object(addl))
                ps = addl;
            if (!ps)
                continue;
            size_t old = oas_ppush(c, k);
            int r = oas_validate(c, ps, v, depth + 1);
            oas_ppop(c, old);
            if (r)
                return r;
        }
    }

    if (oas_combinator(c, s, inst, depth, "allOf") || oas_combinator(c, s, inst, depth, "anyOf") ||
        oas_combinator(c, s, inst, depth, "oneOf"))
        return -1;

    char sub[256];
    json_t *nt = json_object_get(s, "not");
    if (nt && oas_try(c, nt, inst, depth + 1, sub, sizeof sub) == 0)
        return oas_vfail(c, "value must not match the \"not\" schema");
    json_t *ifs = json_object_get(s, "if");
    if (ifs) {
        json_t *branch = json_object_get(s, oas_try(c, ifs, inst, depth + 1, sub, sizeof sub) == 0 ? "then" : "else");
        if (branch && oas_validate(c, branch, inst, depth + 1))
            return -1;
    }
    return 0;
}

/* ---------- request matching ---------- */

/* Matches one template segment (may mix literals and {param}) against one
 * path segment; each {param} takes one or more characters. */
static int oas_seg_match(const char *t, size_t tn, const char *p, size_t pn)
{
    while (tn && t[0] != '{') {
        if (!pn || t[0] != p[0])
            return 0;
        t++, tn--, p++, pn--;
    }
    if (!tn)
        return pn == 0;
    const char *close = memchr(t, '}', tn);
    if (!close) /* stray '{': literal */
        return pn && p[0] == '{' && oas_seg_match(t + 1, tn - 1, p + 1, pn - 1);
    size_t rest = tn - (size_t)(close + 1 - t);
    for (size_t k = 1; k <= pn; k++)
        if (oas_seg_match(close + 1, rest, p + k, pn - k))
            return 1;
    return 0;
}

static size_t oas_trim_slash(const char *s, size_t n)
{
    while (n > 1 && s[n - 1] == '/')
        n--;
    return n;
}

/* On match sets *nlit (literal segment count) and *mask (literal segments,
 * leftmost in the high bit) used to rank literal templates first. */
static int oas_path_match(const char *tpl, const char *path, size_t pl, int *nlit, uint64_t *mask)
{
    size_t tl = oas_trim_slash(tpl, strlen(tpl));
    pl = oas_trim_slash(path, pl);
    if (!tl || !pl || tpl[0] != '/' || path[0] != '/')
        return 0;
    size_t ti = 1, pi = 1;
    unsigned seg = 0;
    *nlit = 0;
    *mask = 0;
    for (;; seg++) {
        const char *te = memchr(tpl + ti, '/', tl - ti), *pe = memchr(path + pi, '/', pl - pi);
        size_t tend = te ? (size_t)(te - tpl) : tl, pend = pe ? (size_t)(pe - path) : pl;
        if (!oas_seg_match(tpl + ti, tend - ti, path + pi, pend - pi))
            return 0;
        if (!memchr(tpl + ti, '{', tend - ti)) {
            (*nlit)++;
            if (seg < 64)
                *mask |= (uint64_t)1 << (63 - seg);
        }
        if (tend == tl || pend == pl)
            return tend == tl && pend == pl;
        ti = tend + 1;
        pi = pend + 1;
    }
}

static const char *oas_best_template(oas *o, const char *path, size_t pl)
{
    const char *best = NULL;
    int bestlit = -1;
    uint64_t bestmask = 0;
    for (size_t i = 0; i < o->nops; i++) {
        int nlit;
        uint64_t mask;
        if (best && !strcmp(o->ops[i].tpl, best))
            continue;
        if (!oas_path_match(o->ops[i].tpl, path, pl, &nlit, &mask))
            continue;
        if (nlit > bestlit || (nlit == bestlit && mask > bestmask)) {
            best = o->ops[i].tpl;
            bestlit = nlit;
            bestmask = mask;
        }
    }
    return best;
}

static struct oas_op *oas_find_op(oas *o, const char *tpl, const char *method)
{
    for (size_t i = 0; i < o->nops; i++)
        if (!strcmp(o->ops[i].tpl, tpl) && !strcmp(o->ops[i].method, method))
            return &o->ops[i];
    return NULL;
}

static void oas_keys(json_t *obj, char *buf, size_t n)
{
    const char *k;
    json_t *v;
    size_t len = 0;
    buf[0] = 0;
    json_object_foreach(obj, k, v) {
        (void)v;
        if (len >= n)
            break;
        int w = snprintf(buf + len, n - len, "%s%s", len ? ", " : "", k);
        if (w > 0)
            len += (size_t)w;
    }
}

/* Copies the media type (before ';', trimmed, lower-cased). */
static void oas_media(const char *ct, size_t ctlen, char *out, size_t n)
{
    size_t a = 0, b;
    while (a < ctlen && isspace((unsigned char)ct[a]))
        a++;
    for (b = a; b < ctlen && ct[b] != ';'; b++)
        ;
    while (b > a && isspace((unsigned char)ct[b - 1]))
        b--;
    size_t len = b - a < n - 1 ? b - a : n - 1;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)ct[a + i]);
    out[len] = 0;
}

/* Finds the content entry for media type mt: exact match first, then a
 * "type/ *" wildcard, then the any-type wildcard (spaces keep this a comment). */
static json_t *oas_find_media(json_t *content, const char *mt)
{
    json_t *best = NULL;
    int rank = 0;
    const char *k;
    json_t *v;
    const char *slash = strchr(mt, '/');
    size_t mtype = slash ? (size_t)(slash - mt) : strlen(mt);
    json_object_foreach(content, k, v) {
        char km[128];
        oas_media(k, strlen(k), km, sizeof km);
        int r = 0;
        if (!strcmp(km, mt))
            r = 3;
        else if (!strcmp(km, "*/*"))
            r = 1;
        else if (strlen(km) == mtype + 2 && !strncmp(km, mt, mtype) && !strcmp(km + mtype, "/*"))
            r = 2;
        if (r > rank) {
            rank = r;
            best = v;
        }
    }
    return best;
}

/* Validates inst against schema s with error paths under body<at>. */
static int oas_validate_at(oas *o, json_t *s, json_t *inst, const char *at, char *det, size_t detlen)
{
    oas_vctx c = {.doc = o->doc, .err = det, .errlen = detlen};
    c.plen = (size_t)snprintf(c.path, sizeof c.path, "%s", at);
    if (c.plen >= sizeof c.path)
        c.plen = sizeof c.path - 1;
    return oas_validate(&c, s, inst, 0);
}

/* text/event-stream: the body is split into events (blocks ended by a blank line; `field: value`
 * lines, data lines joined with "\n", `:` comments ignored), each checked as an object
 * {data, event, id, retry} against the media's itemSchema (OpenAPI 3.2's schema of one item of
 * a sequential media type). When itemSchema's data has contentMediaType application/json, the
 * data is parsed and checked against its contentSchema. No itemSchema: nothing is checked. */
static int oas_check_sse(oas *o, json_t *media, const char *body, size_t len, char *det, size_t detlen)
{
    json_t *item = json_is_object(media) ? json_object_get(media, "itemSchema") : NULL;
    if (!item)
        return 0;
    json_t *dprop = oas_deref(o->doc, item);
    dprop = json_is_object(dprop) ? json_object_get(json_object_get(dprop, "properties"), "data") : NULL;
    json_t *content = json_is_object(dprop) ? json_object_get(dprop, "contentSchema") : NULL;
    const char *cmt = json_is_object(dprop) ? json_string_value(json_object_get(dprop, "contentMediaType")) : NULL;
    if (!cmt || strcmp(cmt, "application/json"))
        content = NULL;
    size_t pos = 0;
    int n = 0, rc = 0;
    while (pos < len && rc == 0) {
        json_t *ev = json_object();
        char *data = NULL;
        size_t dlen = 0;
        int fields = 0, ended = 0;
        while (pos < len) {
            const char *nl = memchr(body + pos, '\n', len - pos);
            if (!nl)
                break; /* a line without its end */
            size_t ll = (size_t)(nl - (body + pos));
            const char *line = body + pos;
            pos += ll + 1;
            if (ll && line[ll - 1] == '\r')
                ll--;
            if (ll == 0) {
                ended = 1;
                break;
            }
            if (line[0] == ':')
                continue;
            const char *colon = memchr(line, ':', ll);
            size_t kl = colon ? (size_t)(colon - line) : ll;
            const char *v = colon ? colon + 1 : line + ll;
            if (colon && v < line + ll && *v == ' ')
                v++;
            size_t vl = (size_t)(line + ll - v);
            char key[32];
            snprintf(key, sizeof key, "%.*s", (int)(kl < 31 ? kl : 31), line);
            fields++;
            if (!strcmp(key, "data")) {
                char *nd = realloc(data, dlen + vl + 2);
                if (!nd)
                    break;
                data = nd;
                if (dlen)
                    data[dlen++] = '\n';
                memcpy(data + dlen, v, vl);
                dlen += vl;
                data[dlen] = 0;
            } else if (!strcmp(key, "retry")) {
                json_object_set_new(ev, key, json_integer(strtoll(v, NULL, 10)));
            } else {
                json_object_set_new(ev, key, json_stringn(v, vl));
            }
        }
        if (!ended) {
            snprintf(det, detlen, "event stream: event %d does not end with a blank line", n);
            rc = -1;
        } else if (fields) {
            char at[64];
            snprintf(at, sizeof at, "/event/%d", n);
            if (data)
                json_object_set_new(ev, "data", json_stringn(data, dlen));
            rc = oas_validate_at(o, item, ev, at, det, detlen);
            if (rc == 0 && content && data) {
                json_error_t je;
                json_t *inst = json_loadb(data, dlen, JSON_DECODE_ANY, &je);
                snprintf(at, sizeof at, "/event/%d/data", n);
                if (!inst) {
                    snprintf(det, detlen, "at body%s: not valid JSON: %s", at, je.text);
                    rc = -1;
                } else {
                    rc = oas_validate_at(o, content, inst, at, det, detlen);
                }
                json_decref(inst);
            }
            n++;
        }
        free(data);
        json_decref(ev);
    }
    return rc;
}

int oas_check(oas *o, const char *method, const char *path, int status, const char *content_type,
              const char *body, size_t body_len, char *err, size_t errlen)
{
    char det[2048] = "", m[16], mt[128];
    const char *tpl = NULL;
    int rc = -1;
    oas_errf(err, errlen, "%s", "");
    if (!o || !method || !path)
        goto done_noprefix;

    size_t i;
    for (i = 0; method[i] && i < sizeof m - 1; i++)
        m[i] = (char)tolower((unsigned char)method[i]);
    m[i] = 0;
    size_t pl = strcspn(path, "?#");

    tpl = oas_best_template(o, path, pl);
    if (!tpl) {
        snprintf(det, sizeof det, "no path template in the spec matches");
        goto done;
    }
    struct oas_op *op = oas_find_op(o, tpl, m);
    int nobody = 0;
    if (!op && !strcmp(m, "head")) {
        op = oas_find_op(o, tpl, "get");
        nobody = 1;
    }
    if (!op) {
        snprintf(det, sizeof det, "no \"%s\" operation documented for this path", m);
        goto done;
    }
    if (!nobody)
        op->hit = 1;

    json_t *responses = json_object_get(op->node, "responses");
    if (!json_is_object(responses)) {
        snprintf(det, sizeof det, "operation documents no responses");
        goto done;
    }
    char key[16];
    snprintf(key, sizeof key, "%d", status);
    json_t *resp = json_object_get(responses, key);
    if (!resp) {
        snprintf(key, sizeof key, "%dXX", status / 100);
        resp = json_object_get(responses, key);
    }
    if (!resp) {
        snprintf(key, sizeof key, "%dxx", status / 100);
        resp = json_object_get(responses, key);
    }
    if (!resp)
        resp = json_object_get(responses, "default");
    if (!resp) {
        char keys[512];
        oas_keys(responses, keys, sizeof keys);
        snprintf(det, sizeof det, "status %d not documented (documented: %s)", status, keys);
        goto done;
    }
    resp = oas_deref(o->doc, resp);
    if (!resp) {
        snprintf(det, sizeof det, "response object is not a mapping or has a bad $ref");
        goto done;
    }
    json_t *content = json_object_get(resp, "content");
    if (!json_is_object(content) || !json_object_size(content)) {
        rc = 0; /* no documented content: nothing to check */
        goto done;
    }
    char keys[512];
    oas_keys(content, keys, sizeof keys);
    if (!content_type || !*content_type) {
        snprintf(det, sizeof det, "missing Content-Type (documented: %s)", keys);
        goto done;
    }
    oas_media(content_type, strlen(content_type), mt, sizeof mt);
    json_t *media = oas_find_media(content, mt);
    if (!media) {
        snprintf(det, sizeof det, "Content-Type \"%s\" not documented (documented: %s)", mt, keys);
        goto done;
    }
    size_t mtl = strlen(mt);
    int is_json = !strcmp(mt, "application/json") || (mtl > 5 && !strcmp(mt + mtl - 5, "+json"));
    if (!nobody && !strcmp(mt, "text/event-stream")) {
        rc = oas_check_sse(o, media, body ? body : "", body ? body_len : 0, det, sizeof det);
        goto done;
    }
    if (nobody || !is_json) {
        rc = 0;
        goto done;
    }
    json_error_t jerr;
    json_t *inst = json_loadb(body ? body : "", body ? body_len : 0, JSON_DECODE_ANY, &jerr);
    if (!inst) {
        snprintf(det, sizeof det, "body is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        goto done;
    }
    json_t *schema = json_is_object(media) ? json_object_get(media, "schema") : NULL;
    if (schema) {
        oas_vctx c = {.doc = o->doc, .err = det, .errlen = sizeof det};
        rc = oas_validate(&c, schema, inst, 0);
    } else {
        rc = 0;
    }
    json_decref(inst);
done:
    if (rc)
        oas_errf(err, errlen, "%s %s%s%s%s -> %d: %s", method, path, tpl ? " [" : "", tpl ? tpl : "",
                 tpl ? "]" : "", status, det);
    return rc;
done_noprefix:
    oas_errf(err, errlen, "oas_check: invalid arguments");
    return -1;
}

int oas_unexercised(oas *o, void (*cb)(const char *method, const char *path_template, void *ud), void *ud)
{
    int n = 0;
    for (size_t i = 0; o && i < o->nops; i++) {
        if (o->ops[i].hit)
            continue;
        n++;
        if (cb) {
            char up[8];
            size_t j;
            for (j = 0; o->ops[i].method[j] && j < sizeof up - 1; j++)
                up[j] = (char)toupper((unsigned char)o->ops[i].method[j]);
            up[j] = 0;
            cb(up, o->ops[i].tpl, ud);
        }
    }
    return n;
}
