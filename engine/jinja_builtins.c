/* jinja_builtins.c: the filters, tests and str/dict methods chat templates use, with Jinja2's
 * and Python's behaviour. Case mapping (upper, lower, title, capitalize) is ASCII only: text
 * with other letters is refused ("not implemented") rather than mapped wrongly. Filters,
 * tests and methods outside these tables are refused by name. */
#include "engine/jinja.h"

#include <stdio.h>  // defines: snprintf
#include <stdlib.h> // defines: strtod, strtoll
#include <string.h> // defines: strcmp, memcmp

static const char *const filters[] = {"trim", "length", "count", "tojson", "upper", "lower", "capitalize", "title",
                                      "default", "d", "join", "list", "first", "last", "string", "int", "float",
                                      "replace", "items", "selectattr", "rejectattr", "map", "select", "reject",
                                      "reverse", "abs", "safe", NULL};
static const char *const tests[] = {"defined", "undefined", "none", "string", "mapping", "iterable", "sequence",
                                    "number", "integer", "float", "boolean", "true", "false", "odd", "even",
                                    "divisibleby", "equalto", "eq", "==", "ne", "!=", "in", "lt", "gt", "le", "ge",
                                    "callable", NULL};

static int in_table(const char *const *t, const char *name)
{
    for (; *t; t++)
        if (!strcmp(*t, name)) return 1;
    return 0;
}

int jj_has_filter(const char *name) { return in_table(filters, name); }
int jj_has_test(const char *name) { return in_table(tests, name); }

static const char *const str_methods[] = {"strip", "lstrip", "rstrip", "split", "startswith", "endswith", "upper",
                                          "lower", "replace", "title", "capitalize", NULL};
static const char *const dict_methods[] = {"items", "keys", "values", "get", NULL};

int jj_is_method(jv self, const char *name)
{
    if (self.t == JV_STR) return in_table(str_methods, name);
    if (self.t == JV_DICT) return in_table(dict_methods, name);
    return 0;
}

static jv mkstr(jctx *c, jbuf *b)
{
    jv r = jv_str(jj_strdup(c, b->p ? b->p : "", b->n), b->n);
    jb_close(c, b);
    return r;
}

static jv need_str(jctx *c, jv v, const char *what, size_t pos)
{
    if (v.t != JV_STR) jj_fail(c, pos, "%s expects a string, not %s", what, jv_typename(v));
    return v;
}

/* ---- case mapping (ASCII) ---- */
enum { CASE_UPPER, CASE_LOWER, CASE_TITLE, CASE_CAPITALIZE };
static jv map_case(jctx *c, jv s, int mode, const char *what, size_t pos)
{
    for (size_t i = 0; i < s.u.s.n; i++)
        if ((unsigned char)s.u.s.p[i] >= 0x80) jj_fail(c, pos, "not implemented: %s of non-ASCII text", what);
    char *o = jj_alloc(c, s.u.s.n + 1);
    int prev_alpha = 0;
    for (size_t i = 0; i < s.u.s.n; i++) {
        char ch = s.u.s.p[i];
        int up = mode == CASE_UPPER || ((mode == CASE_TITLE && !prev_alpha) || (mode == CASE_CAPITALIZE && i == 0));
        if (up && ch >= 'a' && ch <= 'z') ch = (char)(ch - 32);
        else if (!up && ch >= 'A' && ch <= 'Z') ch = (char)(ch + 32);
        o[i] = ch;
        prev_alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
    }
    return jv_str(o, s.u.s.n);
}

/* ---- strip / split ---- */
static int in_chars(jv chars, const char *p, size_t n, size_t *len)
{
    /* one code point of p against the characters of chars */
    size_t l = 1;
    while (l < n && ((unsigned char)p[l] & 0xC0) == 0x80) l++;
    *len = l;
    for (size_t i = 0; i < chars.u.s.n;) {
        size_t m = 1;
        while (i + m < chars.u.s.n && ((unsigned char)chars.u.s.p[i + m] & 0xC0) == 0x80) m++;
        if (m == l && !memcmp(chars.u.s.p + i, p, l)) return 1;
        i += m;
    }
    return 0;
}

static jv strip(jctx *c, jv s, jv chars, int left, int right, size_t pos)
{
    if (chars.t != JV_NONE && chars.t != JV_UNDEF) need_str(c, chars, "strip", pos);
    int ws = chars.t == JV_NONE || chars.t == JV_UNDEF;
    size_t a = 0, b = s.u.s.n, len;
    while (left && a < b && (ws ? jj_isspace_at(s.u.s.p + a, b - a, &len) : in_chars(chars, s.u.s.p + a, b - a, &len))) a += len;
    while (right && b > a) {
        size_t k = b - 1;
        while (k > a && ((unsigned char)s.u.s.p[k] & 0xC0) == 0x80) k--;
        if (!(ws ? jj_isspace_at(s.u.s.p + k, b - k, &len) : in_chars(chars, s.u.s.p + k, b - k, &len))) break;
        b = k;
    }
    return jv_str(s.u.s.p + a, b - a);
}

static jv split(jctx *c, jv s, jv sep, long long maxsplit, size_t pos)
{
    jlist *l = jl_new(c, 4);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, i = 0, len;
    if (sep.t == JV_NONE || sep.t == JV_UNDEF) {
        for (;;) {
            while (i < n && jj_isspace_at(p + i, n - i, &len)) i += len;
            if (i >= n) break;
            if (maxsplit >= 0 && (long long)l->n >= maxsplit) {
                size_t e = n;
                while (e > i) {
                    size_t k = e - 1;
                    while (k > i && ((unsigned char)p[k] & 0xC0) == 0x80) k--;
                    if (!jj_isspace_at(p + k, e - k, &len)) break;
                    e = k;
                }
                jl_push(c, l, jv_str(p + i, e - i));
                break;
            }
            size_t j = i;
            while (j < n && !jj_isspace_at(p + j, n - j, &len)) j += len;
            jl_push(c, l, jv_str(p + i, j - i));
            i = j;
        }
        return jv_list(l);
    }
    need_str(c, sep, "split", pos);
    if (!sep.u.s.n) jj_fail(c, pos, "empty separator");
    for (;;) {
        size_t j = i;
        int found = 0;
        if (maxsplit < 0 || (long long)l->n < maxsplit)
            for (; j + sep.u.s.n <= n; j++)
                if (!memcmp(p + j, sep.u.s.p, sep.u.s.n)) { found = 1; break; }
        if (!found) { jl_push(c, l, jv_str(p + i, n - i)); break; }
        jl_push(c, l, jv_str(p + i, j - i));
        i = j + sep.u.s.n;
    }
    return jv_list(l);
}

static jv replace(jctx *c, jv s, jv old, jv new, long long count, size_t pos)
{
    need_str(c, old, "replace", pos), need_str(c, new, "replace", pos);
    jbuf *b = jb_open(c);
    size_t i = 0, n = s.u.s.n;
    long long done = 0;
    if (!old.u.s.n) { /* Python inserts between every character */
        for (size_t k = 0; k <= n;) {
            if (count < 0 || done < count) jb_put(c, b, new.u.s.p, new.u.s.n), done++;
            if (k == n) break;
            size_t m = 1;
            while (k + m < n && ((unsigned char)s.u.s.p[k + m] & 0xC0) == 0x80) m++;
            jb_put(c, b, s.u.s.p + k, m);
            k += m;
        }
        return mkstr(c, b);
    }
    while (i < n) {
        if ((count < 0 || done < count) && i + old.u.s.n <= n && !memcmp(s.u.s.p + i, old.u.s.p, old.u.s.n)) {
            jb_put(c, b, new.u.s.p, new.u.s.n);
            i += old.u.s.n, done++;
        } else jb_put(c, b, s.u.s.p + i++, 1);
    }
    return mkstr(c, b);
}

static int prefix_match(jctx *c, jv s, jv arg, int suffix, size_t pos)
{
    if (arg.t == JV_LIST && arg.tuple) {
        for (size_t i = 0; i < arg.u.l->n; i++)
            if (prefix_match(c, s, arg.u.l->v[i], suffix, pos)) return 1;
        return 0;
    }
    need_str(c, arg, suffix ? "endswith" : "startswith", pos);
    if (arg.u.s.n > s.u.s.n) return 0;
    return !memcmp(s.u.s.p + (suffix ? s.u.s.n - arg.u.s.n : 0), arg.u.s.p, arg.u.s.n);
}

static jv kwarg(const char **kwn, jv *kwv, size_t nkw, const char *name, jv *args, size_t nargs, size_t idx, jv dflt)
{
    for (size_t k = 0; k < nkw; k++)
        if (!strcmp(kwn[k], name)) return kwv[k];
    return idx < nargs ? args[idx] : dflt;
}

static long long want_int(jctx *c, jv v, const char *what, size_t pos)
{
    if (v.t == JV_INT) return v.u.i;
    if (v.t == JV_BOOL) return v.u.b;
    jj_fail(c, pos, "%s expects an integer, not %s", what, jv_typename(v));
}

jv jj_method(jctx *c, jv self, const char *name, jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw, size_t pos)
{
    jv none = jv_none();
    if (self.t == JV_STR) {
        if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip"))
            return strip(c, self, kwarg(kwn, kwv, nkw, "chars", args, nargs, 0, none), name[0] != 'r', name[0] != 'l', pos);
        if (!strcmp(name, "split")) {
            jv ms = kwarg(kwn, kwv, nkw, "maxsplit", args, nargs, 1, jv_int(-1));
            return split(c, self, kwarg(kwn, kwv, nkw, "sep", args, nargs, 0, none), want_int(c, ms, "split", pos), pos);
        }
        if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
            if (nargs != 1) jj_fail(c, pos, "%s takes one argument", name);
            return jv_bool(prefix_match(c, self, args[0], name[0] == 'e', pos));
        }
        if (!strcmp(name, "upper")) return map_case(c, self, CASE_UPPER, "upper", pos);
        if (!strcmp(name, "lower")) return map_case(c, self, CASE_LOWER, "lower", pos);
        if (!strcmp(name, "title")) return map_case(c, self, CASE_TITLE, "title", pos);
        if (!strcmp(name, "capitalize")) return map_case(c, self, CASE_CAPITALIZE, "capitalize", pos);
        if (!strcmp(name, "replace")) {
            if (nargs < 2) jj_fail(c, pos, "replace takes two or three arguments");
            return replace(c, self, args[0], args[1], nargs > 2 ? want_int(c, args[2], "replace", pos) : -1, pos);
        }
    }
    if (self.t == JV_DICT) {
        jdict *d = self.u.d;
        if (!strcmp(name, "get")) {
            if (!nargs) jj_fail(c, pos, "get expected at least 1 argument");
            jv *v = jd_get(d, args[0]);
            return v ? *v : nargs > 1 ? args[1] : none;
        }
        jlist *l = jl_new(c, d->n);
        for (size_t i = 0; i < d->n; i++) {
            if (!strcmp(name, "keys")) jl_push(c, l, d->k[i]);
            else if (!strcmp(name, "values")) jl_push(c, l, d->v[i]);
            else {
                jlist *pair = jl_new(c, 2);
                jl_push(c, pair, d->k[i]), jl_push(c, pair, d->v[i]);
                jv t = jv_list(pair);
                t.tuple = 1;
                jl_push(c, l, t);
            }
        }
        return jv_list(l);
    }
    jj_fail(c, pos, "not implemented: method '%s' of %s", name, jv_typename(self));
}

/* ---- tests ---- */

static int is_intlike(jv v) { return v.t == JV_INT || v.t == JV_BOOL; }

int jj_test(jctx *c, const char *name, jv v, jv *args, size_t nargs, size_t pos)
{
    if (!strcmp(name, "defined")) return v.t != JV_UNDEF;
    if (!strcmp(name, "undefined")) return v.t == JV_UNDEF;
    if (!strcmp(name, "none")) return v.t == JV_NONE;
    if (!strcmp(name, "string")) return v.t == JV_STR;
    if (!strcmp(name, "mapping")) return v.t == JV_DICT;
    if (!strcmp(name, "iterable")) return v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
    if (!strcmp(name, "sequence")) return v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
    if (!strcmp(name, "number")) return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL;
    if (!strcmp(name, "integer")) return v.t == JV_INT;
    if (!strcmp(name, "float")) return v.t == JV_FLOAT;
    if (!strcmp(name, "boolean")) return v.t == JV_BOOL;
    if (!strcmp(name, "true")) return v.t == JV_BOOL && v.u.b;
    if (!strcmp(name, "false")) return v.t == JV_BOOL && !v.u.b;
    if (!strcmp(name, "callable")) return v.t == JV_FUNC || v.t == JV_MACRO || v.t == JV_METHOD;
    if (v.t == JV_UNDEF) jj_undefined_error(c, v, pos);
    if (!strcmp(name, "odd") || !strcmp(name, "even")) {
        if (!is_intlike(v)) jj_fail(c, pos, "test '%s' expects an integer, not %s", name, jv_typename(v));
        long long i = v.t == JV_INT ? v.u.i : v.u.b;
        return (i % 2 != 0) == (name[0] == 'o');
    }
    if (nargs != 1) jj_fail(c, pos, "test '%s' takes one argument", name);
    jv a = args[0];
    if (!strcmp(name, "divisibleby")) {
        if (!is_intlike(v) || !is_intlike(a)) jj_fail(c, pos, "not implemented: divisibleby on non-integers");
        long long x = v.t == JV_INT ? v.u.i : v.u.b, y = a.t == JV_INT ? a.u.i : a.u.b;
        if (!y) jj_fail(c, pos, "integer modulo by zero");
        return x % y == 0;
    }
    if (!strcmp(name, "equalto") || !strcmp(name, "eq") || !strcmp(name, "==")) return jv_equal(v, a);
    if (!strcmp(name, "ne") || !strcmp(name, "!=")) return !jv_equal(v, a);
    if (!strcmp(name, "in")) {
        if (a.t == JV_LIST) {
            for (size_t i = 0; i < a.u.l->n; i++)
                if (jv_equal(a.u.l->v[i], v)) return 1;
            return 0;
        }
        if (a.t == JV_DICT) return jd_get(a.u.d, v) != NULL;
        if (a.t == JV_STR && v.t == JV_STR) {
            for (size_t i = 0; i + v.u.s.n <= a.u.s.n; i++)
                if (!memcmp(a.u.s.p + i, v.u.s.p, v.u.s.n)) return 1;
            return 0;
        }
        jj_fail(c, pos, "test 'in' on %s", jv_typename(a));
    }
    /* lt gt le ge: numbers or strings */
    int r;
    if ((v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL) && (a.t == JV_INT || a.t == JV_FLOAT || a.t == JV_BOOL)) {
        double x = v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : v.u.b;
        double y = a.t == JV_FLOAT ? a.u.f : a.t == JV_INT ? (double)a.u.i : a.u.b;
        r = x < y ? -1 : x > y;
    } else if (v.t == JV_STR && a.t == JV_STR) {
        size_t m = v.u.s.n < a.u.s.n ? v.u.s.n : a.u.s.n;
        r = memcmp(v.u.s.p, a.u.s.p, m);
        if (!r) r = v.u.s.n < a.u.s.n ? -1 : v.u.s.n > a.u.s.n;
    } else jj_fail(c, pos, "test '%s' between %s and %s", name, jv_typename(v), jv_typename(a));
    if (!strcmp(name, "lt")) return r < 0;
    if (!strcmp(name, "gt")) return r > 0;
    if (!strcmp(name, "le")) return r <= 0;
    return r >= 0;
}

/* ---- filters ---- */

static long long length_of(jctx *c, jv v, size_t pos)
{
    switch (v.t) {
    case JV_UNDEF: return 0;
    case JV_STR: return (long long)jj_u8len(v.u.s.p, v.u.s.n);
    case JV_LIST: return (long long)v.u.l->n;
    case JV_DICT: case JV_NS: return (long long)v.u.d->n;
    default: jj_fail(c, pos, "object of type '%s' has no len()", jv_typename(v));
    }
}

/* selectattr/rejectattr/select/reject: the test named by args[k] with the rest as its args. */
static jv select_items(jctx *c, jv seq, int by_attr, int keep, jv *args, size_t nargs, size_t pos)
{
    jlist *src = jj_iterate(c, seq, pos), *out = jl_new(c, src->n);
    size_t k = 0;
    const char *attr = NULL;
    if (by_attr) {
        if (nargs < 1 || args[0].t != JV_STR) jj_fail(c, pos, "selectattr/rejectattr need an attribute name");
        attr = jj_strdup(c, args[0].u.s.p, args[0].u.s.n), k = 1;
    }
    const char *test = NULL;
    if (nargs > k) {
        if (args[k].t != JV_STR) jj_fail(c, pos, "the test name must be a string");
        test = jj_strdup(c, args[k].u.s.p, args[k].u.s.n);
        if (!jj_has_test(test)) jj_fail(c, pos, "not implemented: test '%s'", test);
        k++;
    }
    for (size_t i = 0; i < src->n; i++) {
        jv v = src->v[i];
        if (attr) {
            if (strchr(attr, '.')) jj_fail(c, pos, "not implemented: dotted attribute in selectattr");
            v = jj_getattr(c, v, attr, pos);
        }
        int ok = test ? jj_test(c, test, v, args + k, nargs - k, pos) : jv_truthy(c, v, pos);
        if (ok == keep) jl_push(c, out, src->v[i]);
    }
    return jv_list(out);
}

jv jj_filter(jctx *c, const char *name, jv v, jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw, size_t pos)
{
    jv none = jv_none();
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        jv dflt = kwarg(kwn, kwv, nkw, "default_value", args, nargs, 0, jv_cstr(""));
        jv boolean = kwarg(kwn, kwv, nkw, "boolean", args, nargs, 1, jv_bool(0));
        if (v.t == JV_UNDEF || (jv_truthy(c, boolean, pos) && !jv_truthy(c, v, pos))) return dflt;
        return v;
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) return jv_int(length_of(c, v, pos));
    if (!strcmp(name, "string")) return jv_to_string(c, v, pos);
    if (!strcmp(name, "safe")) return v;
    if (!strcmp(name, "trim")) {
        jv s = jv_to_string(c, v, pos);
        return strip(c, s, kwarg(kwn, kwv, nkw, "chars", args, nargs, 0, none), 1, 1, pos);
    }
    if (!strcmp(name, "upper")) return map_case(c, jv_to_string(c, v, pos), CASE_UPPER, "upper", pos);
    if (!strcmp(name, "lower")) return map_case(c, jv_to_string(c, v, pos), CASE_LOWER, "lower", pos);
    if (!strcmp(name, "title")) return map_case(c, jv_to_string(c, v, pos), CASE_TITLE, "title", pos);
    if (!strcmp(name, "capitalize")) return map_case(c, jv_to_string(c, v, pos), CASE_CAPITALIZE, "capitalize", pos);
    if (!strcmp(name, "replace")) {
        if (nargs < 2) jj_fail(c, pos, "filter 'replace' takes two or three arguments");
        jv cnt = kwarg(kwn, kwv, nkw, "count", args, nargs, 2, none);
        return replace(c, jv_to_string(c, v, pos), args[0], args[1], cnt.t == JV_NONE ? -1 : want_int(c, cnt, "replace", pos), pos);
    }
    if (!strcmp(name, "tojson")) {
        jv ind = kwarg(kwn, kwv, nkw, "indent", args, nargs, 0, none);
        for (size_t k = 0; k < nkw; k++)
            if (strcmp(kwn[k], "indent")) jj_fail(c, pos, "not implemented: tojson(%s=...)", kwn[k]);
        if (v.t == JV_UNDEF) jj_undefined_error(c, v, pos);
        int indent = ind.t == JV_NONE ? -1 : (int)want_int(c, ind, "tojson indent", pos);
        if (indent > 64) jj_fail(c, pos, "tojson indent too large");
        jbuf *b = jb_open(c);
        jv_json_to(c, b, v, indent < 0 ? -1 : indent, 0, pos);
        return mkstr(c, b);
    }
    if (!strcmp(name, "join")) {
        jv sep = kwarg(kwn, kwv, nkw, "d", args, nargs, 0, jv_cstr(""));
        jv attr = kwarg(kwn, kwv, nkw, "attribute", args, nargs, 1, none);
        sep = jv_to_string(c, sep, pos);
        jlist *l = jj_iterate(c, v, pos);
        jbuf *b = jb_open(c);
        for (size_t i = 0; i < l->n; i++) {
            if (i) jb_put(c, b, sep.u.s.p, sep.u.s.n);
            jv x = l->v[i];
            if (attr.t == JV_STR) x = jj_getattr(c, x, jj_strdup(c, attr.u.s.p, attr.u.s.n), pos);
            jv_str_to(c, b, x, pos);
        }
        return mkstr(c, b);
    }
    if (!strcmp(name, "list")) {
        jlist *src = jj_iterate(c, v, pos), *l = jl_new(c, src->n);
        for (size_t i = 0; i < src->n; i++) jl_push(c, l, src->v[i]);
        return jv_list(l);
    }
    if (!strcmp(name, "reverse")) {
        if (v.t == JV_STR) {
            jlist *src = jj_iterate(c, v, pos);
            jbuf *b = jb_open(c);
            for (size_t i = src->n; i-- > 0;) jb_put(c, b, src->v[i].u.s.p, src->v[i].u.s.n);
            return mkstr(c, b);
        }
        jlist *src = jj_iterate(c, v, pos), *l = jl_new(c, src->n);
        for (size_t i = src->n; i-- > 0;) jl_push(c, l, src->v[i]);
        return jv_list(l);
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        jlist *src = jj_iterate(c, v, pos);
        if (!src->n) return jv_undef(name[0] == 'f' ? "No first item, sequence was empty." : "No last item, sequence was empty.");
        return src->v[name[0] == 'f' ? 0 : src->n - 1];
    }
    if (!strcmp(name, "items")) {
        if (v.t == JV_UNDEF) return jv_list(jl_new(c, 1));
        if (v.t != JV_DICT) jj_fail(c, pos, "filter 'items' expects a mapping, not %s", jv_typename(v));
        return jj_method(c, v, "items", NULL, 0, NULL, NULL, 0, pos);
    }
    if (!strcmp(name, "int")) {
        jv dflt = kwarg(kwn, kwv, nkw, "default", args, nargs, 0, jv_int(0));
        if (v.t == JV_INT) return v;
        if (v.t == JV_BOOL) return jv_int(v.u.b);
        if (v.t == JV_FLOAT) return v.u.f > -9.2e18 && v.u.f < 9.2e18 ? jv_int((long long)v.u.f) : dflt;
        if (v.t == JV_STR) {
            char buf[64];
            snprintf(buf, sizeof buf, "%.*s", (int)(v.u.s.n < 63 ? v.u.s.n : 63), v.u.s.p);
            char *end;
            long long i = strtoll(buf, &end, 10);
            while (*end == ' ' || *end == '\t' || *end == '\n') end++;
            if (end != buf && !*end) return jv_int(i);
            double f = strtod(buf, &end);
            while (*end == ' ' || *end == '\t' || *end == '\n') end++;
            if (end != buf && !*end && f > -9.2e18 && f < 9.2e18) return jv_int((long long)f);
        }
        return dflt;
    }
    if (!strcmp(name, "float")) {
        jv dflt = kwarg(kwn, kwv, nkw, "default", args, nargs, 0, jv_float(0));
        if (v.t == JV_FLOAT) return v;
        if (v.t == JV_INT || v.t == JV_BOOL) return jv_float(v.t == JV_INT ? (double)v.u.i : v.u.b);
        if (v.t == JV_STR) {
            char buf[64], *end;
            snprintf(buf, sizeof buf, "%.*s", (int)(v.u.s.n < 63 ? v.u.s.n : 63), v.u.s.p);
            double f = strtod(buf, &end);
            while (*end == ' ' || *end == '\t' || *end == '\n') end++;
            if (end != buf && !*end) return jv_float(f);
        }
        return dflt;
    }
    if (!strcmp(name, "abs")) {
        if (v.t == JV_INT) {
            if (v.u.i == -9223372036854775807LL - 1) jj_fail(c, pos, "not implemented: integer result beyond 64 bits");
            return jv_int(v.u.i < 0 ? -v.u.i : v.u.i);
        }
        if (v.t == JV_FLOAT) return jv_float(v.u.f < 0 ? -v.u.f : v.u.f);
        if (v.t == JV_BOOL) return jv_int(v.u.b);
        jj_fail(c, pos, "bad operand type for abs(): '%s'", jv_typename(v));
    }
    if (!strcmp(name, "selectattr") || !strcmp(name, "rejectattr"))
        return select_items(c, v, 1, name[0] == 's', args, nargs, pos);
    if (!strcmp(name, "select") || !strcmp(name, "reject")) return select_items(c, v, 0, name[0] == 's', args, nargs, pos);
    if (!strcmp(name, "map")) {
        jlist *src = jj_iterate(c, v, pos), *out = jl_new(c, src->n);
        jv attr = kwarg(kwn, kwv, nkw, "attribute", NULL, 0, 0, none);
        if (attr.t == JV_STR) {
            jv dflt = kwarg(kwn, kwv, nkw, "default", NULL, 0, 0, jv_undef(NULL));
            const char *a = jj_strdup(c, attr.u.s.p, attr.u.s.n);
            if (strchr(a, '.')) jj_fail(c, pos, "not implemented: dotted attribute in map");
            for (size_t i = 0; i < src->n; i++) {
                jv x = jj_getattr(c, src->v[i], a, pos);
                jl_push(c, out, x.t == JV_UNDEF && dflt.t != JV_UNDEF ? dflt : x);
            }
            return jv_list(out);
        }
        if (!nargs || args[0].t != JV_STR) jj_fail(c, pos, "map needs a filter name or attribute=");
        const char *f = jj_strdup(c, args[0].u.s.p, args[0].u.s.n);
        if (!jj_has_filter(f)) jj_fail(c, pos, "not implemented: filter '%s'", f);
        for (size_t i = 0; i < src->n; i++) jl_push(c, out, jj_filter(c, f, src->v[i], args + 1, nargs - 1, kwn, kwv, nkw, pos));
        return jv_list(out);
    }
    jj_fail(c, pos, "not implemented: filter '%s'", name);
}
