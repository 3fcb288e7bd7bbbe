/* jinja_eval.c: runs the syntax tree. Scopes as Jinja2 has them (a for-loop body and a macro
 * get their own, if-blocks do not, so a set inside a loop stays there and templates use
 * namespace() to carry values out), the loop object, macros, Python's operators on int, float,
 * str and list (int64: overflow is refused, not wrapped), chained comparisons, and Jinja2's
 * default Undefined: it renders as "", is false, iterates as empty and has length 0, while
 * attribute access, subscripts, calls and arithmetic on it raise UndefinedError. */
#include "engine/jinja.h"

#include <math.h>   // defines: floor, fmod, pow
#include <stdio.h>  // defines: snprintf
#include <string.h> // defines: strcmp
#include <time.h>   // defines: time, localtime_r, strftime

enum { FLOW_NORMAL, FLOW_BREAK, FLOW_CONTINUE };

static jscope *new_scope(jctx *c, jscope *parent)
{
    jscope *s = jj_alloc(c, sizeof *s);
    s->parent = parent;
    return s;
}

static jv lookup(jctx *c, const char *name)
{
    jv k = jv_cstr(name);
    for (jscope *s = c->scope; s; s = s->parent) {
        jv *v = jd_get(&s->vars, k);
        if (v) return *v;
    }
    size_t n = strlen(name) + 20;
    char *h = jj_alloc(c, n);
    snprintf(h, n, "'%s' is undefined", name);
    return jv_undef(h);
}

_Noreturn void jj_undefined_error(jctx *c, jv v, size_t pos)
{
    jj_fail(c, pos, "%s", v.hint ? v.hint : "value is undefined");
}

static jv undef_attr(jctx *c, jv obj, const char *what, jv key)
{
    jbuf *b = jb_open(c);
    jb_puts(c, b, "'");
    jb_puts(c, b, obj.t == JV_NONE ? "None" : jv_typename(obj));
    jb_puts(c, b, obj.t == JV_NONE ? "' has no " : " object' has no ");
    jb_puts(c, b, what);
    jb_puts(c, b, " ");
    jv_repr_to(c, b, key, (size_t)-1);
    char *h = jj_strdup(c, b->p, b->n);
    jb_close(c, b);
    return jv_undef(h);
}

jv jj_getattr(jctx *c, jv obj, const char *name, size_t pos)
{
    if (obj.t == JV_UNDEF) jj_undefined_error(c, obj, pos);
    if ((obj.t == JV_STR || obj.t == JV_DICT || obj.t == JV_LIST) && jj_is_method(obj, name)) {
        jv m = {.t = JV_METHOD};
        m.u.m.self = jj_alloc(c, sizeof(jv));
        *m.u.m.self = obj;
        m.u.m.name = name;
        return m;
    }
    if (obj.t == JV_DICT || obj.t == JV_NS) {
        jv *v = jd_gets(obj.u.d, name);
        if (v) return *v;
    }
    return undef_attr(c, obj, "attribute", jv_cstr(name));
}

static long long py_index(jctx *c, jv key, size_t pos)
{
    if (key.t == JV_INT) return key.u.i;
    if (key.t == JV_BOOL) return key.u.b;
    jj_fail(c, pos, "indices must be integers, not %s", jv_typename(key));
}

jv jj_getitem(jctx *c, jv obj, jv key, size_t pos)
{
    if (obj.t == JV_UNDEF) jj_undefined_error(c, obj, pos);
    if (key.t == JV_UNDEF) jj_undefined_error(c, key, pos);
    if (obj.t == JV_DICT || obj.t == JV_NS) {
        jv *v = jd_get(obj.u.d, key);
        if (v) return *v;
        if (key.t == JV_STR) {
            char *nm = jj_strdup(c, key.u.s.p, key.u.s.n);
            return jj_getattr(c, obj, nm, pos);
        }
        return undef_attr(c, obj, "element", key);
    }
    if (obj.t == JV_LIST || obj.t == JV_STR) {
        if (key.t == JV_STR) {
            char *nm = jj_strdup(c, key.u.s.p, key.u.s.n);
            return jj_getattr(c, obj, nm, pos);
        }
        if (key.t != JV_INT && key.t != JV_BOOL) return undef_attr(c, obj, "element", key);
        long long i = py_index(c, key, pos);
        long long n = obj.t == JV_LIST ? (long long)obj.u.l->n : (long long)jj_u8len(obj.u.s.p, obj.u.s.n);
        if (i < 0) i += n;
        if (i < 0 || i >= n) return undef_attr(c, obj, "element", key);
        if (obj.t == JV_LIST) return obj.u.l->v[i];
        size_t a = jj_u8off(obj.u.s.p, obj.u.s.n, (size_t)i), b = jj_u8off(obj.u.s.p, obj.u.s.n, (size_t)i + 1);
        return jv_str(obj.u.s.p + a, b - a);
    }
    return undef_attr(c, obj, "element", key);
}

jlist *jj_iterate(jctx *c, jv v, size_t pos)
{
    switch (v.t) {
    case JV_UNDEF: return jl_new(c, 1);
    case JV_LIST: return v.u.l;
    case JV_DICT: {
        jlist *l = jl_new(c, v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++) jl_push(c, l, v.u.d->k[i]);
        return l;
    }
    case JV_STR: {
        jlist *l = jl_new(c, v.u.s.n);
        for (size_t i = 0; i < v.u.s.n;) {
            size_t j = i + 1;
            while (j < v.u.s.n && ((unsigned char)v.u.s.p[j] & 0xC0) == 0x80) j++;
            jl_push(c, l, jv_str(v.u.s.p + i, j - i));
            i = j;
        }
        return l;
    }
    default: jj_fail(c, pos, "'%s' object is not iterable", jv_typename(v));
    }
}

/* Python slice semantics on lists and strings (strings by code point). */
static jv do_slice(jctx *c, jv obj, jnode *e)
{
    if (obj.t == JV_UNDEF) jj_undefined_error(c, obj, e->pos);
    if (obj.t != JV_LIST && obj.t != JV_STR) jj_fail(c, e->pos, "'%s' object is not subscriptable", jv_typename(obj));
    long long n = obj.t == JV_LIST ? (long long)obj.u.l->n : (long long)jj_u8len(obj.u.s.p, obj.u.s.n);
    jv bounds[3];
    jnode *bn[3] = {e->b, e->c, e->d};
    for (int k = 0; k < 3; k++) bounds[k] = bn[k] ? jj_eval(c, bn[k]) : jv_none();
    long long step = bounds[2].t == JV_NONE ? 1 : py_index(c, bounds[2], e->pos);
    if (!step) jj_fail(c, e->pos, "slice step cannot be zero");
    long long lo, hi;
    for (int k = 0; k < 2; k++) {
        long long *x = k ? &hi : &lo;
        if (bounds[k].t == JV_NONE) *x = step > 0 ? (k ? n : 0) : (k ? -1 : n - 1);
        else {
            *x = py_index(c, bounds[k], e->pos);
            if (*x < 0) *x += n;
            if (step > 0) *x = *x < 0 ? 0 : *x > n ? n : *x;
            else *x = *x < -1 ? -1 : *x > n - 1 ? n - 1 : *x;
        }
    }
    jlist *l = jl_new(c, 4);
    jbuf *b = obj.t == JV_STR ? jb_open(c) : NULL;
    for (long long i = lo; step > 0 ? i < hi : i > hi; i += step) {
        if (obj.t == JV_LIST) jl_push(c, l, obj.u.l->v[i]);
        else {
            size_t a = jj_u8off(obj.u.s.p, obj.u.s.n, (size_t)i), z = jj_u8off(obj.u.s.p, obj.u.s.n, (size_t)i + 1);
            jb_put(c, b, obj.u.s.p + a, z - a);
        }
    }
    if (obj.t == JV_LIST) return jv_list(l);
    jv r = jv_str(jj_strdup(c, b->p ? b->p : "", b->n), b->n);
    jb_close(c, b);
    return r;
}

static int is_intlike(jv v) { return v.t == JV_INT || v.t == JV_BOOL; }
static long long ival(jv v) { return v.t == JV_INT ? v.u.i : v.u.b; }
static double fval(jv v) { return v.t == JV_FLOAT ? v.u.f : (double)ival(v); }
static int is_number(jv v) { return is_intlike(v) || v.t == JV_FLOAT; }

static jv concat_str(jctx *c, jv a, jv b)
{
    char *p = jj_alloc(c, a.u.s.n + b.u.s.n + 1);
    memcpy(p, a.u.s.p, a.u.s.n);
    memcpy(p + a.u.s.n, b.u.s.p, b.u.s.n);
    return jv_str(p, a.u.s.n + b.u.s.n);
}

static _Noreturn void bad_operands(jctx *c, size_t pos, const char *op, jv a, jv b)
{
    jj_fail(c, pos, "unsupported operand type(s) for %s: '%s' and '%s'", op, jv_typename(a), jv_typename(b));
}

static jv arith(jctx *c, const char *op, jv a, jv b, size_t pos)
{
    if (!strcmp(op, "~")) {
        jv x = jv_to_string(c, a, pos), y = jv_to_string(c, b, pos);
        return concat_str(c, x, y);
    }
    if (a.t == JV_UNDEF) jj_undefined_error(c, a, pos);
    if (b.t == JV_UNDEF) jj_undefined_error(c, b, pos);
    if (is_intlike(a) && is_intlike(b)) {
        long long x = ival(a), y = ival(b), r;
        switch (op[0]) {
        case '+': if (__builtin_add_overflow(x, y, &r)) goto overflow; return jv_int(r);
        case '-': if (__builtin_sub_overflow(x, y, &r)) goto overflow; return jv_int(r);
        case '*':
            if (op[1] == '*') {
                if (y < 0) return jv_float(pow((double)x, (double)y));
                r = 1;
                for (long long k = 0; k < y; k++)
                    if (__builtin_mul_overflow(r, x, &r)) goto overflow;
                return jv_int(r);
            }
            if (__builtin_mul_overflow(x, y, &r)) goto overflow;
            return jv_int(r);
        case '/':
            if (!y) jj_fail(c, pos, "division by zero");
            if (op[1] == '/') {
                if (x == -9223372036854775807LL - 1 && y == -1) goto overflow;
                r = x / y;
                if ((x % y) && ((x < 0) != (y < 0))) r--;
                return jv_int(r);
            }
            return jv_float((double)x / (double)y);
        case '%':
            if (!y) jj_fail(c, pos, "integer modulo by zero");
            if (x == -9223372036854775807LL - 1 && y == -1) return jv_int(0);
            r = x % y;
            if (r && ((r < 0) != (y < 0))) r += y;
            return jv_int(r);
        }
    }
    if (is_number(a) && is_number(b)) {
        double x = fval(a), y = fval(b);
        switch (op[0]) {
        case '+': return jv_float(x + y);
        case '-': return jv_float(x - y);
        case '*': return jv_float(op[1] == '*' ? pow(x, y) : x * y);
        case '/':
            if (!y) jj_fail(c, pos, "float division by zero");
            return jv_float(op[1] == '/' ? floor(x / y) : x / y);
        case '%': {
            if (!y) jj_fail(c, pos, "float modulo");
            double r = fmod(x, y);
            if (r && ((r < 0) != (y < 0))) r += y;
            return jv_float(r);
        }
        }
    }
    if (!strcmp(op, "+") && a.t == JV_STR && b.t == JV_STR) return concat_str(c, a, b);
    if (!strcmp(op, "+") && a.t == JV_LIST && b.t == JV_LIST) {
        jlist *l = jl_new(c, a.u.l->n + b.u.l->n);
        for (size_t i = 0; i < a.u.l->n; i++) jl_push(c, l, a.u.l->v[i]);
        for (size_t i = 0; i < b.u.l->n; i++) jl_push(c, l, b.u.l->v[i]);
        jv r = jv_list(l);
        r.tuple = a.tuple;
        return r;
    }
    if (!strcmp(op, "*") && ((a.t == JV_STR || a.t == JV_LIST) && is_intlike(b))) {
        long long k = ival(b);
        size_t unit = a.t == JV_STR ? a.u.s.n : a.u.l->n;
        if (k > 0 && unit && (unsigned long long)k > JJ_MAX_OUTPUT / unit) jj_fail(c, pos, "repetition too large");
        if (a.t == JV_STR) {
            jbuf *bb = jb_open(c);
            for (long long i = 0; i < k; i++) jb_put(c, bb, a.u.s.p, a.u.s.n);
            jv r = jv_str(jj_strdup(c, bb->p ? bb->p : "", bb->n), bb->n);
            jb_close(c, bb);
            return r;
        }
        jlist *l = jl_new(c, 4);
        for (long long i = 0; i < k; i++)
            for (size_t j = 0; j < a.u.l->n; j++) jl_push(c, l, a.u.l->v[j]);
        return jv_list(l);
    }
    if (!strcmp(op, "%") && a.t == JV_STR) jj_fail(c, pos, "not implemented: string formatting with %%");
    bad_operands(c, pos, op, a, b);
overflow:
    jj_fail(c, pos, "not implemented: integer result beyond 64 bits");
}

static int contains(jctx *c, jv hay, jv needle, size_t pos)
{
    switch (hay.t) {
    case JV_UNDEF: return 0;
    case JV_STR:
        if (needle.t != JV_STR) jj_fail(c, pos, "'in <string>' requires string as left operand, not %s", jv_typename(needle));
        if (!needle.u.s.n) return 1;
        for (size_t i = 0; i + needle.u.s.n <= hay.u.s.n; i++)
            if (!memcmp(hay.u.s.p + i, needle.u.s.p, needle.u.s.n)) return 1;
        return 0;
    case JV_LIST:
        for (size_t i = 0; i < hay.u.l->n; i++)
            if (jv_equal(hay.u.l->v[i], needle)) return 1;
        return 0;
    case JV_DICT: return jd_get(hay.u.d, needle) != NULL;
    default: jj_fail(c, pos, "argument of type '%s' is not iterable", jv_typename(hay));
    }
}

static int compare(jctx *c, const char *op, jv a, jv b, size_t pos)
{
    if (!strcmp(op, "==")) return jv_equal(a, b);
    if (!strcmp(op, "!=")) return !jv_equal(a, b);
    if (!strcmp(op, "in")) return contains(c, b, a, pos);
    if (!strcmp(op, "not in")) return !contains(c, b, a, pos);
    if (a.t == JV_UNDEF) jj_undefined_error(c, a, pos);
    if (b.t == JV_UNDEF) jj_undefined_error(c, b, pos);
    int r;
    if (is_number(a) && is_number(b)) {
        if (is_intlike(a) && is_intlike(b)) r = ival(a) < ival(b) ? -1 : ival(a) > ival(b);
        else r = fval(a) < fval(b) ? -1 : fval(a) > fval(b);
    } else if (a.t == JV_STR && b.t == JV_STR) {
        size_t m = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        r = memcmp(a.u.s.p, b.u.s.p, m);
        if (!r) r = a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n;
    } else jj_fail(c, pos, "'%s' not supported between instances of '%s' and '%s'", op, jv_typename(a), jv_typename(b));
    if (!strcmp(op, "<")) return r < 0;
    if (!strcmp(op, "<=")) return r <= 0;
    if (!strcmp(op, ">")) return r > 0;
    return r >= 0;
}

static void eval_args(jctx *c, jnode *e, jv **args, jv **kwv)
{
    *args = e->n ? jj_alloc(c, e->n * sizeof(jv)) : NULL;
    *kwv = e->nkw ? jj_alloc(c, e->nkw * sizeof(jv)) : NULL;
    for (size_t i = 0; i < e->n; i++) (*args)[i] = jj_eval(c, e->items[i]);
    for (size_t i = 0; i < e->nkw; i++) (*kwv)[i] = jj_eval(c, e->kwv[i]);
}

static void step(jctx *c, size_t pos)
{
    if (++c->steps > JJ_MAX_STEPS) jj_fail(c, pos, "loop limit exceeded (%ld iterations)", (long)JJ_MAX_STEPS);
}

static jv call_macro(jctx *c, jnode *m, jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw, size_t pos)
{
    step(c, pos);
    if (++c->depth > JJ_MAX_DEPTH) jj_fail(c, pos, "macro recursion too deep");
    if (nargs > m->nkw) jj_fail(c, pos, "macro '%s' takes not more than %zu argument(s)", m->name, m->nkw);
    jscope *saved = c->scope;
    jscope *s = new_scope(c, c->globals);
    for (size_t i = 0; i < m->nkw; i++) {
        jv v;
        int have = 0;
        if (i < nargs) v = args[i], have = 1;
        for (size_t k = 0; k < nkw; k++)
            if (!strcmp(kwn[k], m->kwn[i])) {
                if (have) jj_fail(c, pos, "macro '%s' got multiple values for argument '%s'", m->name, m->kwn[i]);
                v = kwv[k], have = 1;
            }
        if (!have) {
            c->scope = s;
            v = m->kwv[i] ? jj_eval(c, m->kwv[i]) : jv_undef(NULL);
            if (!m->kwv[i]) {
                size_t n = strlen(m->kwn[i]) + 64;
                char *h = jj_alloc(c, n);
                snprintf(h, n, "parameter '%s' was not provided", m->kwn[i]);
                v.hint = h;
            }
        }
        jd_set(c, &s->vars, jv_cstr(m->kwn[i]), v);
    }
    for (size_t k = 0; k < nkw; k++) {
        int known = 0;
        for (size_t i = 0; i < m->nkw; i++) known |= !strcmp(kwn[k], m->kwn[i]);
        if (!known) jj_fail(c, pos, "macro '%s' takes no keyword argument '%s'", m->name, kwn[k]);
    }
    c->scope = s;
    jbuf *b = jb_open(c);
    jj_exec(c, m->b, b);
    jv r = jv_str(jj_strdup(c, b->p ? b->p : "", b->n), b->n);
    jb_close(c, b);
    c->scope = saved;
    c->depth--;
    return r;
}

jv jj_call(jctx *c, jv fn, jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw, size_t pos)
{
    if (fn.t == JV_UNDEF) jj_undefined_error(c, fn, pos);
    if (fn.t == JV_MACRO) return call_macro(c, fn.u.mac, args, nargs, kwn, kwv, nkw, pos);
    if (fn.t == JV_METHOD) return jj_method(c, *fn.u.m.self, fn.u.m.name, args, nargs, kwn, kwv, nkw, pos);
    if (fn.t != JV_FUNC) jj_fail(c, pos, "'%s' object is not callable", jv_typename(fn));
    switch (fn.u.fn) {
    case JF_RAISE: {
        jv m = nargs ? jv_to_string(c, args[0], pos) : jv_cstr("");
        jj_fail_plain(c, jj_strdup(c, m.u.s.p, m.u.s.n));
    }
    case JF_NAMESPACE: case JF_DICT: {
        jdict *d = jd_new(c);
        for (size_t i = 0; i < nargs; i++) {
            if (args[i].t != JV_DICT) jj_fail(c, pos, "not implemented: %s() with a positional argument other than a dict", fn.u.fn == JF_DICT ? "dict" : "namespace");
            for (size_t k = 0; k < args[i].u.d->n; k++) jd_set(c, d, args[i].u.d->k[k], args[i].u.d->v[k]);
        }
        for (size_t k = 0; k < nkw; k++) jd_set(c, d, jv_cstr(kwn[k]), kwv[k]);
        jv r = jv_dict(d);
        if (fn.u.fn == JF_NAMESPACE) r.t = JV_NS;
        return r;
    }
    case JF_RANGE: {
        if (nkw || !nargs || nargs > 3) jj_fail(c, pos, "range() takes 1 to 3 integer arguments");
        long long a[3] = {0, 0, 1};
        for (size_t i = 0; i < nargs; i++) {
            if (!is_intlike(args[i])) jj_fail(c, pos, "range() arguments must be integers, not %s", jv_typename(args[i]));
            a[nargs == 1 ? 1 : i] = ival(args[i]);
        }
        if (!a[2]) jj_fail(c, pos, "range() arg 3 must not be zero");
        double count = ((double)a[1] - (double)a[0]) / (double)a[2];
        if (count > 1e6) jj_fail(c, pos, "loop limit exceeded (range of %.0f items; at most 1000000)", count);
        jlist *l = jl_new(c, 8);
        for (long long i = a[0]; a[2] > 0 ? i < a[1] : i > a[1]; i += a[2]) {
            step(c, pos);
            jl_push(c, l, jv_int(i));
        }
        return jv_list(l);
    }
    case JF_STRFTIME: {
        if (nargs != 1 || args[0].t != JV_STR) jj_fail(c, pos, "strftime_now() takes one format string");
        char fmt[256], out[512];
        snprintf(fmt, sizeof fmt, "%.*s", (int)args[0].u.s.n, args[0].u.s.p);
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        size_t n = strftime(out, sizeof out, fmt, &tm);
        return jv_str(jj_strdup(c, out, n), n);
    }
    }
    jj_fail(c, pos, "not callable");
}

jv jj_eval(jctx *c, jnode *e)
{
    switch (e->kind) {
    case JN_LIT: return e->val;
    case JN_NAME: return lookup(c, e->name);
    case JN_LIST: case JN_TUPLE: {
        jlist *l = jl_new(c, e->n);
        for (size_t i = 0; i < e->n; i++) jl_push(c, l, jj_eval(c, e->items[i]));
        jv r = jv_list(l);
        r.tuple = e->kind == JN_TUPLE;
        return r;
    }
    case JN_DICT: {
        jdict *d = jd_new(c);
        for (size_t i = 0; i < e->n; i++) jd_set(c, d, jj_eval(c, e->items[i]), jj_eval(c, e->items2[i]));
        return jv_dict(d);
    }
    case JN_ATTR: return jj_getattr(c, jj_eval(c, e->a), e->name, e->pos);
    case JN_ITEM: {
        jv obj = jj_eval(c, e->a);
        return jj_getitem(c, obj, jj_eval(c, e->b), e->pos);
    }
    case JN_SLICE: return do_slice(c, jj_eval(c, e->a), e);
    case JN_CALL: {
        jv fn = jj_eval(c, e->a), *args, *kwv;
        eval_args(c, e, &args, &kwv);
        return jj_call(c, fn, args, e->n, e->kwn, kwv, e->nkw, e->pos);
    }
    case JN_FILTER: {
        jv v = jj_eval(c, e->a), *args, *kwv;
        eval_args(c, e, &args, &kwv);
        return jj_filter(c, e->name, v, args, e->n, e->kwn, kwv, e->nkw, e->pos);
    }
    case JN_TEST: {
        jv v = jj_eval(c, e->a), *args, *kwv;
        eval_args(c, e, &args, &kwv);
        return jv_bool(jj_test(c, e->name, v, args, e->n, e->pos) != e->neg);
    }
    case JN_NEG: case JN_POS: {
        jv v = jj_eval(c, e->a);
        if (v.t == JV_UNDEF) jj_undefined_error(c, v, e->pos);
        if (!is_number(v)) jj_fail(c, e->pos, "bad operand type for unary %c: '%s'", e->kind == JN_NEG ? '-' : '+', jv_typename(v));
        if (e->kind == JN_POS) return v.t == JV_BOOL ? jv_int(v.u.b) : v;
        if (v.t == JV_FLOAT) return jv_float(-v.u.f);
        if (ival(v) == -9223372036854775807LL - 1) jj_fail(c, e->pos, "not implemented: integer result beyond 64 bits");
        return jv_int(-ival(v));
    }
    case JN_NOT: return jv_bool(!jv_truthy(c, jj_eval(c, e->a), e->pos));
    case JN_AND: {
        jv l = jj_eval(c, e->a);
        return jv_truthy(c, l, e->pos) ? jj_eval(c, e->b) : l;
    }
    case JN_OR: {
        jv l = jj_eval(c, e->a);
        return jv_truthy(c, l, e->pos) ? l : jj_eval(c, e->b);
    }
    case JN_BIN: return arith(c, e->name, jj_eval(c, e->a), jj_eval(c, e->b), e->pos);
    case JN_CMP: {
        jv l = jj_eval(c, e->items[0]);
        for (size_t i = 0; i < e->n2; i++) {
            jv r = jj_eval(c, e->items[i + 1]);
            if (!compare(c, e->items2[i]->name, l, r, e->items2[i]->pos)) return jv_bool(0);
            l = r;
        }
        return jv_bool(1);
    }
    case JN_COND:
        if (jv_truthy(c, jj_eval(c, e->b), e->pos)) return jj_eval(c, e->a);
        return e->c ? jj_eval(c, e->c) : jv_undef("the conditional expression had no else branch");
    default: jj_fail(c, e->pos, "internal error: statement used as an expression");
    }
}

static int exec_body(jctx *c, jnode *body, jbuf *out);

static jdict *loop_object(jctx *c, jlist *items, size_t i)
{
    jdict *d = jd_new(c);
    long long n = (long long)items->n, k = (long long)i;
    jd_set(c, d, jv_cstr("index"), jv_int(k + 1));
    jd_set(c, d, jv_cstr("index0"), jv_int(k));
    jd_set(c, d, jv_cstr("revindex"), jv_int(n - k));
    jd_set(c, d, jv_cstr("revindex0"), jv_int(n - k - 1));
    jd_set(c, d, jv_cstr("first"), jv_bool(k == 0));
    jd_set(c, d, jv_cstr("last"), jv_bool(k == n - 1));
    jd_set(c, d, jv_cstr("length"), jv_int(n));
    jd_set(c, d, jv_cstr("depth"), jv_int(1));
    jd_set(c, d, jv_cstr("depth0"), jv_int(0));
    if (k > 0) jd_set(c, d, jv_cstr("previtem"), items->v[k - 1]);
    if (k < n - 1) jd_set(c, d, jv_cstr("nextitem"), items->v[k + 1]);
    return d;
}

static void bind_targets(jctx *c, jscope *s, jnode *f, jv item)
{
    if (f->ntargets == 1) { jd_set(c, &s->vars, jv_cstr(f->targets[0]), item); return; }
    jlist *parts = item.t == JV_LIST ? item.u.l : NULL;
    if (item.t == JV_STR || item.t == JV_DICT) parts = jj_iterate(c, item, f->pos);
    if (!parts) jj_fail(c, f->pos, "cannot unpack non-iterable %s object", jv_typename(item));
    if (parts->n != f->ntargets)
        jj_fail(c, f->pos, "%s values to unpack (expected %zu, got %zu)", parts->n > f->ntargets ? "too many" : "not enough", f->ntargets, parts->n);
    for (size_t k = 0; k < f->ntargets; k++) jd_set(c, &s->vars, jv_cstr(f->targets[k]), parts->v[k]);
}

static void exec_for(jctx *c, jnode *f, jbuf *out)
{
    jv it = jj_eval(c, f->a);
    jlist *src = jj_iterate(c, it, f->pos), *items = src;
    jscope *saved = c->scope;
    if (f->d) { /* loop filter: the loop sees only the items it keeps */
        items = jl_new(c, src->n);
        for (size_t i = 0; i < src->n; i++) {
            step(c, f->pos);
            jscope *s = new_scope(c, saved);
            c->scope = s;
            bind_targets(c, s, f, src->v[i]);
            if (jv_truthy(c, jj_eval(c, f->d), f->pos)) jl_push(c, items, src->v[i]);
            c->scope = saved;
        }
    }
    for (size_t i = 0; i < items->n; i++) {
        step(c, f->pos);
        jscope *s = new_scope(c, saved);
        jv loop = jv_dict(loop_object(c, items, i));
        jd_set(c, &s->vars, jv_cstr("loop"), loop);
        bind_targets(c, s, f, items->v[i]);
        c->scope = s;
        int fl = exec_body(c, f->b, out);
        c->scope = saved;
        if (fl == FLOW_BREAK) break;
    }
    if (!items->n && f->c) exec_body(c, f->c, out);
}

/* Runs statements; returns FLOW_BREAK / FLOW_CONTINUE when a loop control ends it early. */
static int exec_body(jctx *c, jnode *body, jbuf *out)
{
    if (++c->depth > JJ_MAX_DEPTH) jj_fail(c, body->pos, "nesting too deep");
    int fl = FLOW_NORMAL;
    for (size_t i = 0; i < body->n && fl == FLOW_NORMAL; i++) {
        jnode *s = body->items[i];
        switch (s->kind) {
        case JN_TEXT: jb_put(c, out, s->val.u.s.p, s->val.u.s.n); break;
        case JN_OUT: jv_str_to(c, out, jj_eval(c, s->a), s->pos); break;
        case JN_IF:
            if (jv_truthy(c, jj_eval(c, s->a), s->pos)) fl = exec_body(c, s->b, out);
            else if (s->c) fl = s->c->kind == JN_IF ? exec_body(c, &(jnode){.kind = JN_BODY, .items = &s->c, .n = 1, .pos = s->pos}, out)
                                                    : exec_body(c, s->c, out);
            break;
        case JN_FOR: exec_for(c, s, out); break;
        case JN_SET: {
            jv v = jj_eval(c, s->a);
            if (s->attr) {
                jv ns = lookup(c, s->name);
                if (ns.t != JV_NS) jj_fail(c, s->pos, "cannot assign attribute on non-namespace object");
                jd_set(c, ns.u.d, jv_cstr(s->attr), v);
            } else jd_set(c, &c->scope->vars, jv_cstr(s->name), v);
            break;
        }
        case JN_SETBLOCK: {
            jbuf *b = jb_open(c);
            exec_body(c, s->b, b);
            jd_set(c, &c->scope->vars, jv_cstr(s->name), jv_str(jj_strdup(c, b->p ? b->p : "", b->n), b->n));
            jb_close(c, b);
            break;
        }
        case JN_MACRO: {
            jv m = {.t = JV_MACRO, .u.mac = s};
            jd_set(c, &c->scope->vars, jv_cstr(s->name), m);
            break;
        }
        case JN_BREAK: fl = FLOW_BREAK; break;
        case JN_CONTINUE: fl = FLOW_CONTINUE; break;
        case JN_BODY: fl = exec_body(c, s, out); break;
        default: jj_fail(c, s->pos, "internal error: expression used as a statement");
        }
    }
    c->depth--;
    return fl;
}

void jj_exec(jctx *c, jnode *body, jbuf *out)
{
    if (!c->scope) c->scope = c->globals;
    exec_body(c, body, out);
}
