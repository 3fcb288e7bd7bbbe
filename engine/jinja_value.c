/* jinja_value.c: the values of the chat-template engine: the per-render arena, errors with the
 * template's line and column, constructors, lists and ordered dicts, Python's truthiness,
 * equality, str(), repr() and json.dumps(ensure_ascii=False), output buffers and the UTF-8
 * helpers that make lengths and slices count code points as Python does. */
#include "engine/jinja.h"

#include <math.h>    // defines: isfinite, isnan
#include <stdarg.h>  // defines: va_list
#include <stdint.h>  // defines: uint32_t
#include <stdio.h>   // defines: snprintf, vsnprintf
#include <stdlib.h>  // defines: malloc, free, strtod
#include <string.h>  // defines: memcpy, strlen

#include "engine/unicode.h" // defines: uni_utf8_next, uni_class

struct jblk { jblk *next; size_t used, cap; _Alignas(16) unsigned char data[]; };

void *jj_alloc(jctx *c, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!c->arena || c->arena->used + n > c->arena->cap) {
        size_t cap = n > (1u << 16) ? n : (1u << 16);
        if (c->arena_used + cap > JJ_MAX_ARENA) jj_fail(c, (size_t)-1, "memory limit exceeded (%u MiB)", JJ_MAX_ARENA >> 20);
        jblk *b = malloc(sizeof *b + cap);
        if (!b) jj_fail(c, (size_t)-1, "out of memory");
        b->next = c->arena, b->used = 0, b->cap = cap;
        c->arena = b;
        c->arena_used += cap;
    }
    void *p = c->arena->data + c->arena->used;
    c->arena->used += n;
    memset(p, 0, n);
    return p;
}

void jj_free_arena(jctx *c)
{
    for (jblk *b = c->arena, *nx; b; b = nx) nx = b->next, free(b);
    c->arena = NULL, c->arena_used = 0;
}

char *jj_strdup(jctx *c, const char *s, size_t n)
{
    char *p = jj_alloc(c, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static void pos_linecol(const jctx *c, size_t pos, int *line, int *col)
{
    *line = 1, *col = 1;
    for (size_t i = 0; i < pos && i < c->srcn; i++) {
        if (c->src[i] == '\n') ++*line, *col = 1;
        else if (((unsigned char)c->src[i] & 0xC0) != 0x80) ++*col;
    }
}

void jj_fail(jctx *c, size_t pos, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (pos == (size_t)-1) snprintf(c->err, c->errn, "%s", msg);
    else {
        int line, col;
        pos_linecol(c, pos, &line, &col);
        snprintf(c->err, c->errn, "line %d, column %d: %s", line, col, msg);
    }
    longjmp(c->jmp, 1);
}

void jj_fail_plain(jctx *c, const char *msg)
{
    snprintf(c->err, c->errn, "%s", msg);
    longjmp(c->jmp, 1);
}

jv jv_undef(const char *hint) { jv v = {.t = JV_UNDEF, .hint = hint}; return v; }
jv jv_none(void) { jv v = {.t = JV_NONE}; return v; }
jv jv_bool(int b) { jv v = {.t = JV_BOOL, .u.b = !!b}; return v; }
jv jv_int(long long i) { jv v = {.t = JV_INT, .u.i = i}; return v; }
jv jv_float(double f) { jv v = {.t = JV_FLOAT, .u.f = f}; return v; }
jv jv_str(const char *p, size_t n) { jv v = {.t = JV_STR, .u.s = {p, n}}; return v; }
jv jv_cstr(const char *s) { return jv_str(s, strlen(s)); }
jv jv_list(jlist *l) { jv v = {.t = JV_LIST, .u.l = l}; return v; }
jv jv_dict(jdict *d) { jv v = {.t = JV_DICT, .u.d = d}; return v; }

jlist *jl_new(jctx *c, size_t cap)
{
    jlist *l = jj_alloc(c, sizeof *l);
    l->cap = cap ? cap : 4;
    l->v = jj_alloc(c, l->cap * sizeof(jv));
    return l;
}

void jl_push(jctx *c, jlist *l, jv v)
{
    if (l->n == l->cap) {
        jv *nv = jj_alloc(c, 2 * l->cap * sizeof(jv));
        memcpy(nv, l->v, l->n * sizeof(jv));
        l->v = nv, l->cap *= 2;
    }
    l->v[l->n++] = v;
}

jdict *jd_new(jctx *c) { return jj_alloc(c, sizeof(jdict)); }

jv *jd_get(jdict *d, jv k)
{
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(d->k[i], k)) return &d->v[i];
    return NULL;
}

jv *jd_gets(jdict *d, const char *k) { return jd_get(d, jv_cstr(k)); }

void jd_set(jctx *c, jdict *d, jv k, jv v)
{
    jv *old = jd_get(d, k);
    if (old) { *old = v; return; }
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 8;
        jv *nk = jj_alloc(c, cap * sizeof(jv)), *nv = jj_alloc(c, cap * sizeof(jv));
        if (d->n) memcpy(nk, d->k, d->n * sizeof(jv)), memcpy(nv, d->v, d->n * sizeof(jv));
        d->k = nk, d->v = nv, d->cap = cap;
    }
    d->k[d->n] = k, d->v[d->n] = v, d->n++;
}

int jv_truthy(jctx *c, jv v, size_t pos)
{
    (void)c, (void)pos;
    switch (v.t) {
    case JV_UNDEF: case JV_NONE: return 0;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0;
    case JV_STR: return v.u.s.n != 0;
    case JV_LIST: return v.u.l->n != 0;
    case JV_DICT: return v.u.d->n != 0;
    default: return 1;
    }
}

static int is_num(jv v) { return v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT; }
static double num(jv v) { return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : v.u.b; }

/* Python ==: numbers across int/float/bool, strings by bytes, lists and dicts deeply. */
int jv_equal(jv a, jv b)
{
    if (is_num(a) && is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT) return (a.t == JV_INT ? a.u.i : a.u.b) == (b.t == JV_INT ? b.u.i : b.u.b);
        return num(a) == num(b);
    }
    if (a.t != b.t) return 0;
    switch (a.t) {
    case JV_UNDEF: case JV_NONE: return 1;
    case JV_STR: return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    case JV_LIST:
        if (a.u.l->n != b.u.l->n || a.tuple != b.tuple) return 0;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!jv_equal(a.u.l->v[i], b.u.l->v[i])) return 0;
        return 1;
    case JV_DICT:
        if (a.u.d->n != b.u.d->n) return 0;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv *o = jd_get(b.u.d, a.u.d->k[i]);
            if (!o || !jv_equal(a.u.d->v[i], *o)) return 0;
        }
        return 1;
    case JV_NS: return a.u.d == b.u.d;
    case JV_FUNC: return a.u.fn == b.u.fn;
    case JV_MACRO: return a.u.mac == b.u.mac;
    default: return 0;
    }
}

const char *jv_typename(jv v)
{
    static const char *names[] = {"Undefined", "NoneType", "bool", "int", "float", "str", "list", "dict",
                                  "Namespace", "function", "Macro", "method"};
    if (v.t == JV_LIST && v.tuple) return "tuple";
    return names[v.t];
}

/* ---- output buffers ---- */

jbuf *jb_open(jctx *c)
{
    if (c->nbufs >= (int)(sizeof c->bufs / sizeof c->bufs[0])) jj_fail(c, (size_t)-1, "nesting too deep");
    jbuf *b = calloc(1, sizeof *b);
    if (!b) jj_fail(c, (size_t)-1, "out of memory");
    c->bufs[c->nbufs++] = b;
    return b;
}

void jb_close(jctx *c, jbuf *b)
{
    if (c->nbufs && c->bufs[c->nbufs - 1] == b) c->nbufs--;
    free(b->p);
    free(b);
}

void jb_put(jctx *c, jbuf *b, const char *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        if (b->n + n > JJ_MAX_OUTPUT) jj_fail(c, (size_t)-1, "output limit exceeded (%u MiB)", JJ_MAX_OUTPUT >> 20);
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) jj_fail(c, (size_t)-1, "out of memory");
        b->p = np, b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
}

void jb_puts(jctx *c, jbuf *b, const char *s) { jb_put(c, b, s, strlen(s)); }

/* ---- str / repr / json ---- */

/* Python's repr(float): the shortest digits that read back the same, exponent form outside
 * 1e-4 <= |f| < 1e16, and ".0" on integral values. */
void jj_float_repr(double f, char *out, size_t n)
{
    if (isnan(f)) { snprintf(out, n, "nan"); return; }
    if (!isfinite(f)) { snprintf(out, n, f < 0 ? "-inf" : "inf"); return; }
    char e[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, f);
        if (strtod(e, NULL) == f) break;
    }
    /* e = [-]d[.ddd]e[+-]XX: digits and decimal exponent */
    char digits[20];
    int nd = 0, neg = e[0] == '-';
    const char *q = e + neg;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    digits[nd] = 0;
    int exp = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = 0;
    char *o = out;
    size_t left = n;
#define PUT(...) do { int k_ = snprintf(o, left, __VA_ARGS__); if (k_ < 0 || (size_t)k_ >= left) return; o += k_, left -= (size_t)k_; } while (0)
    if (neg) PUT("-");
    if (exp < -4 || exp >= 16) {
        PUT("%c", digits[0]);
        if (nd > 1) PUT(".%s", digits + 1);
        PUT("e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        PUT("0.");
        for (int i = 0; i < -exp - 1; i++) PUT("0");
        PUT("%s", digits);
    } else {
        for (int i = 0; i <= exp; i++) PUT("%c", i < nd ? digits[i] : '0');
        if (nd > exp + 1) PUT(".%s", digits + exp + 1);
        else PUT(".0");
    }
#undef PUT
}

static void repr_str(jctx *c, jbuf *b, const char *p, size_t n)
{
    int has_sq = memchr(p, '\'', n) != NULL, has_dq = memchr(p, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    jb_put(c, b, &q, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        char esc[8];
        if (ch == '\\' || ch == (unsigned char)q) esc[0] = '\\', esc[1] = (char)ch, jb_put(c, b, esc, 2);
        else if (ch == '\n') jb_puts(c, b, "\\n");
        else if (ch == '\r') jb_puts(c, b, "\\r");
        else if (ch == '\t') jb_puts(c, b, "\\t");
        else if (ch < 0x20 || ch == 0x7f) snprintf(esc, sizeof esc, "\\x%02x", ch), jb_puts(c, b, esc);
        else jb_put(c, b, (const char *)&ch, 1);
    }
    jb_put(c, b, &q, 1);
}

static void repr_seq(jctx *c, jbuf *b, jv v, size_t pos, int repr)
{
    (void)repr;
    if (++c->depth > JJ_MAX_DEPTH) jj_fail(c, pos, "value nested too deeply");
    if (v.t == JV_LIST) {
        jb_puts(c, b, v.tuple ? "(" : "[");
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) jb_puts(c, b, ", ");
            jv_repr_to(c, b, v.u.l->v[i], pos);
        }
        if (v.tuple && v.u.l->n == 1) jb_puts(c, b, ",");
        jb_puts(c, b, v.tuple ? ")" : "]");
    } else {
        jb_puts(c, b, v.t == JV_NS ? "<Namespace {" : "{");
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i) jb_puts(c, b, ", ");
            jv_repr_to(c, b, v.u.d->k[i], pos);
            jb_puts(c, b, ": ");
            jv_repr_to(c, b, v.u.d->v[i], pos);
        }
        jb_puts(c, b, v.t == JV_NS ? "}>" : "}");
    }
    c->depth--;
}

void jv_str_to(jctx *c, jbuf *b, jv v, size_t pos)
{
    char num[64];
    switch (v.t) {
    case JV_UNDEF: return;
    case JV_NONE: jb_puts(c, b, "None"); return;
    case JV_BOOL: jb_puts(c, b, v.u.b ? "True" : "False"); return;
    case JV_INT: snprintf(num, sizeof num, "%lld", v.u.i), jb_puts(c, b, num); return;
    case JV_FLOAT: jj_float_repr(v.u.f, num, sizeof num), jb_puts(c, b, num); return;
    case JV_STR: jb_put(c, b, v.u.s.p, v.u.s.n); return;
    case JV_LIST: case JV_DICT: case JV_NS: repr_seq(c, b, v, pos, 0); return;
    default: jj_fail(c, pos, "not implemented: rendering a %s", jv_typename(v));
    }
}

void jv_repr_to(jctx *c, jbuf *b, jv v, size_t pos)
{
    if (v.t == JV_STR) repr_str(c, b, v.u.s.p, v.u.s.n);
    else if (v.t == JV_UNDEF) jb_puts(c, b, "Undefined");
    else jv_str_to(c, b, v, pos);
}

jv jv_to_string(jctx *c, jv v, size_t pos)
{
    if (v.t == JV_STR) return v;
    jbuf *b = jb_open(c);
    jv_str_to(c, b, v, pos);
    jv r = jv_str(jj_strdup(c, b->p ? b->p : "", b->n), b->n);
    jb_close(c, b);
    return r;
}

static void json_str(jctx *c, jbuf *b, const char *p, size_t n)
{
    jb_puts(c, b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        char esc[8];
        switch (ch) {
        case '"': jb_puts(c, b, "\\\""); break;
        case '\\': jb_puts(c, b, "\\\\"); break;
        case '\n': jb_puts(c, b, "\\n"); break;
        case '\r': jb_puts(c, b, "\\r"); break;
        case '\t': jb_puts(c, b, "\\t"); break;
        case '\b': jb_puts(c, b, "\\b"); break;
        case '\f': jb_puts(c, b, "\\f"); break;
        default:
            if (ch < 0x20) snprintf(esc, sizeof esc, "\\u%04x", ch), jb_puts(c, b, esc);
            else jb_put(c, b, (const char *)&ch, 1);
        }
    }
    jb_puts(c, b, "\"");
}

static void json_nl(jctx *c, jbuf *b, int indent, int level)
{
    jb_puts(c, b, "\n");
    for (int i = 0; i < indent * level; i++) jb_puts(c, b, " ");
}

void jv_json_to(jctx *c, jbuf *b, jv v, int indent, int level, size_t pos)
{
    char num[64];
    if (++c->depth > JJ_MAX_DEPTH) jj_fail(c, pos, "value nested too deeply");
    switch (v.t) {
    case JV_NONE: jb_puts(c, b, "null"); break;
    case JV_BOOL: jb_puts(c, b, v.u.b ? "true" : "false"); break;
    case JV_INT: snprintf(num, sizeof num, "%lld", v.u.i), jb_puts(c, b, num); break;
    case JV_FLOAT:
        if (isnan(v.u.f)) jb_puts(c, b, "NaN");
        else if (!isfinite(v.u.f)) jb_puts(c, b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else jj_float_repr(v.u.f, num, sizeof num), jb_puts(c, b, num);
        break;
    case JV_STR: json_str(c, b, v.u.s.p, v.u.s.n); break;
    case JV_LIST:
        if (!v.u.l->n) { jb_puts(c, b, "[]"); break; }
        jb_puts(c, b, "[");
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) jb_puts(c, b, indent >= 0 ? "," : ", ");
            if (indent >= 0) json_nl(c, b, indent, level + 1);
            jv_json_to(c, b, v.u.l->v[i], indent, level + 1, pos);
        }
        if (indent >= 0) json_nl(c, b, indent, level);
        jb_puts(c, b, "]");
        break;
    case JV_DICT:
        if (!v.u.d->n) { jb_puts(c, b, "{}"); break; }
        jb_puts(c, b, "{");
        for (size_t i = 0; i < v.u.d->n; i++) {
            jv k = v.u.d->k[i];
            if (i) jb_puts(c, b, indent >= 0 ? "," : ", ");
            if (indent >= 0) json_nl(c, b, indent, level + 1);
            /* json.dumps turns scalar keys into strings */
            if (k.t == JV_STR) json_str(c, b, k.u.s.p, k.u.s.n);
            else if (k.t == JV_NONE) jb_puts(c, b, "\"null\"");
            else if (k.t == JV_BOOL) jb_puts(c, b, k.u.b ? "\"true\"" : "\"false\"");
            else if (k.t == JV_INT || k.t == JV_FLOAT) {
                jb_puts(c, b, "\"");
                jv_str_to(c, b, k, pos);
                jb_puts(c, b, "\"");
            } else jj_fail(c, pos, "tojson: keys must be str, int, float, bool or None, not %s", jv_typename(k));
            jb_puts(c, b, ": ");
            jv_json_to(c, b, v.u.d->v[i], indent, level + 1, pos);
        }
        if (indent >= 0) json_nl(c, b, indent, level);
        jb_puts(c, b, "}");
        break;
    default: jj_fail(c, pos, "tojson: Object of type %s is not JSON serializable", jv_typename(v));
    }
    c->depth--;
}

/* ---- UTF-8 ---- */

size_t jj_u8len(const char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)p[i] & 0xC0) != 0x80;
    return k;
}

size_t jj_u8off(const char *p, size_t n, size_t k)
{
    size_t i = 0;
    for (; i < n; i++)
        if (((unsigned char)p[i] & 0xC0) != 0x80 && k-- == 0) return i;
    return n;
}

int jj_isspace_at(const char *p, size_t n, size_t *len)
{
    unsigned char ch = (unsigned char)p[0];
    *len = 1;
    if (ch < 0x80) return ch == ' ' || (ch >= 0x09 && ch <= 0x0d) || (ch >= 0x1c && ch <= 0x1f);
    uint32_t cp;
    *len = uni_utf8_next((const unsigned char *)p, n, &cp);
    return cp != UNI_INVALID && uni_class(cp) == UNI_SPACE;
}
