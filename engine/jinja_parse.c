/* jinja_parse.c: tokens to a syntax tree with Jinja2's grammar and precedence (conditional
 * expression < or < and < not < comparisons and in < + - < ~ < * / // % < ** < unary minus <
 * filters, tests, calls, attributes and subscripts). Statements: if/elif/else, for (unpacking,
 * loop filter, else), set (name, ns.attr, block form), macro, break, continue, and
 * transformers' generation tag (rendered as its body). Everything else - include, import,
 * extends, block, call, filter blocks, with, raw, unknown filters and tests - is refused with
 * "not implemented: ..." at its line and column, as Jinja2 refuses unknown filters at compile
 * time. */
#include "engine/jinja.h"

#include <stdio.h>  // defines: snprintf
#include <string.h> // defines: strcmp

typedef struct parser { jctx *c; const jtok *t; size_t n, i; int depth; } parser;

static const jtok *peek(parser *P) { return &P->t[P->i]; }
static const jtok *next(parser *P) { const jtok *t = &P->t[P->i]; if (t->t != JT_EOF) P->i++; return t; }
static int is_op(const jtok *t, const char *op) { return t->t == JT_OP && !strcmp(t->p, op); }
static int is_name(const jtok *t, const char *nm) { return t->t == JT_NAME && !strcmp(t->p, nm); }

static const char *describe(const jtok *t)
{
    switch (t->t) {
    case JT_TEXT: return "template text";
    case JT_VAR_BEGIN: return "'{{'";
    case JT_VAR_END: return "end of print statement";
    case JT_BLOCK_BEGIN: return "'{%'";
    case JT_BLOCK_END: return "end of statement block";
    case JT_STRING: return "a string";
    case JT_INT: case JT_FLOAT: return "a number";
    case JT_EOF: return "end of template";
    default: return t->p;
    }
}

static _Noreturn void unexpected(parser *P, const jtok *t, const char *want)
{
    if (t->t == JT_NAME) jj_fail(P->c, t->pos, "syntax error: unexpected '%s', expected %s", t->p, want);
    jj_fail(P->c, t->pos, "syntax error: unexpected %s, expected %s", describe(t), want);
}

static void expect_op(parser *P, const char *op)
{
    const jtok *t = next(P);
    if (!is_op(t, op)) {
        char want[16];
        snprintf(want, sizeof want, "'%s'", op);
        unexpected(P, t, want);
    }
}

static const char *expect_name(parser *P)
{
    const jtok *t = next(P);
    if (t->t != JT_NAME) unexpected(P, t, "a name");
    return t->p;
}

static void expect_block_end(parser *P)
{
    const jtok *t = next(P);
    if (t->t != JT_BLOCK_END) unexpected(P, t, "end of statement block");
}

static jnode *node(parser *P, int kind, size_t pos)
{
    jnode *n = jj_alloc(P->c, sizeof *n);
    n->kind = kind, n->pos = pos;
    return n;
}

/* Growable node arrays in the arena. */
typedef struct nvec { jnode **v; size_t n, cap; } nvec;
static void nv_push(parser *P, nvec *a, jnode *x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 4;
        jnode **nv = jj_alloc(P->c, cap * sizeof *nv);
        if (a->n) memcpy(nv, a->v, a->n * sizeof *nv);
        a->v = nv, a->cap = cap;
    }
    a->v[a->n++] = x;
}

static jnode *parse_expr(parser *P);
static jnode *parse_or(parser *P);
static jnode *parse_unary(parser *P, int with_filter);

static void enter(parser *P, size_t pos)
{
    if (++P->depth > JJ_MAX_DEPTH) jj_fail(P->c, pos, "template nested too deeply");
}

/* "(" args ")" after the "(" was seen: positional then keyword arguments. */
static void parse_args(parser *P, jnode *n)
{
    nvec args = {0}, kwv = {0};
    const char **kwn = NULL;
    size_t nkw = 0, kwcap = 0;
    while (!is_op(peek(P), ")")) {
        if (args.n || nkw) expect_op(P, ",");
        if (is_op(peek(P), ")")) break;
        const jtok *t = peek(P);
        if (t->t == JT_NAME && is_op(&P->t[P->i + 1], "=")) {
            P->i += 2;
            if (nkw == kwcap) {
                kwcap = kwcap ? 2 * kwcap : 4;
                const char **nk = jj_alloc(P->c, kwcap * sizeof *nk);
                if (nkw) memcpy(nk, kwn, nkw * sizeof *nk);
                kwn = nk;
            }
            kwn[nkw++] = t->p;
            nv_push(P, &kwv, parse_expr(P));
        } else {
            if (nkw) jj_fail(P->c, t->pos, "syntax error: positional argument follows keyword argument");
            nv_push(P, &args, parse_expr(P));
        }
    }
    expect_op(P, ")");
    n->items = args.v, n->n = args.n, n->kwn = kwn, n->kwv = kwv.v, n->nkw = nkw;
}

static jnode *parse_primary(parser *P)
{
    const jtok *t = next(P);
    jnode *n;
    switch (t->t) {
    case JT_NAME:
        if (!strcmp(t->p, "true") || !strcmp(t->p, "True") || !strcmp(t->p, "false") || !strcmp(t->p, "False")) {
            n = node(P, JN_LIT, t->pos);
            n->val = jv_bool(t->p[0] == 't' || t->p[0] == 'T');
        } else if (!strcmp(t->p, "none") || !strcmp(t->p, "None")) {
            n = node(P, JN_LIT, t->pos);
            n->val = jv_none();
        } else {
            n = node(P, JN_NAME, t->pos);
            n->name = t->p;
        }
        return n;
    case JT_STRING: {
        /* adjacent string literals concatenate */
        size_t len = t->n, i0 = P->i;
        while (peek(P)->t == JT_STRING) len += next(P)->n;
        char *s = jj_alloc(P->c, len + 1);
        size_t k = 0;
        memcpy(s, t->p, t->n), k = t->n;
        for (size_t i = i0; i < P->i; i++) memcpy(s + k, P->t[i].p, P->t[i].n), k += P->t[i].n;
        n = node(P, JN_LIT, t->pos);
        n->val = jv_str(s, len);
        return n;
    }
    case JT_INT: n = node(P, JN_LIT, t->pos), n->val = jv_int(t->i); return n;
    case JT_FLOAT: n = node(P, JN_LIT, t->pos), n->val = jv_float(t->f); return n;
    case JT_OP:
        if (!strcmp(t->p, "(")) {
            if (is_op(peek(P), ")")) { next(P); return node(P, JN_TUPLE, t->pos); }
            jnode *e = parse_expr(P);
            if (is_op(peek(P), ",")) {
                nvec items = {0};
                nv_push(P, &items, e);
                while (is_op(peek(P), ",")) {
                    next(P);
                    if (is_op(peek(P), ")")) break;
                    nv_push(P, &items, parse_expr(P));
                }
                e = node(P, JN_TUPLE, t->pos);
                e->items = items.v, e->n = items.n;
            }
            expect_op(P, ")");
            return e;
        }
        if (!strcmp(t->p, "[")) {
            nvec items = {0};
            while (!is_op(peek(P), "]")) {
                if (items.n) expect_op(P, ",");
                if (is_op(peek(P), "]")) break;
                nv_push(P, &items, parse_expr(P));
            }
            expect_op(P, "]");
            n = node(P, JN_LIST, t->pos);
            n->items = items.v, n->n = items.n;
            return n;
        }
        if (!strcmp(t->p, "{")) {
            nvec keys = {0}, vals = {0};
            while (!is_op(peek(P), "}")) {
                if (keys.n) expect_op(P, ",");
                if (is_op(peek(P), "}")) break;
                nv_push(P, &keys, parse_expr(P));
                expect_op(P, ":");
                nv_push(P, &vals, parse_expr(P));
            }
            expect_op(P, "}");
            n = node(P, JN_DICT, t->pos);
            n->items = keys.v, n->n = keys.n, n->items2 = vals.v, n->n2 = vals.n;
            return n;
        }
        break;
    default: break;
    }
    unexpected(P, t, "an expression");
}

/* Subscript contents after "[": an index or a slice a:b:c. */
static jnode *parse_subscript(parser *P, jnode *obj, size_t pos)
{
    jnode *parts[3] = {0};
    int colons = 0;
    if (!is_op(peek(P), ":")) parts[0] = parse_expr(P);
    while (colons < 2 && is_op(peek(P), ":")) {
        next(P), colons++;
        if (!is_op(peek(P), ":") && !is_op(peek(P), "]")) parts[colons] = parse_expr(P);
    }
    expect_op(P, "]");
    jnode *n = node(P, colons ? JN_SLICE : JN_ITEM, pos);
    n->a = obj;
    if (colons) n->b = parts[0], n->c = parts[1], n->d = parts[2];
    else n->b = parts[0];
    return n;
}

static jnode *parse_postfix(parser *P, jnode *e)
{
    for (;;) {
        const jtok *t = peek(P);
        if (is_op(t, ".")) {
            next(P);
            const jtok *a = next(P);
            jnode *n;
            if (a->t == JT_NAME) {
                n = node(P, JN_ATTR, t->pos);
                n->name = a->p;
            } else if (a->t == JT_INT) {
                n = node(P, JN_ITEM, t->pos);
                n->b = node(P, JN_LIT, a->pos);
                n->b->val = jv_int(a->i);
            } else unexpected(P, a, "an attribute name");
            n->a = e;
            e = n;
        } else if (is_op(t, "[")) {
            next(P);
            e = parse_subscript(P, e, t->pos);
        } else if (is_op(t, "(")) {
            next(P);
            jnode *n = node(P, JN_CALL, t->pos);
            n->a = e;
            parse_args(P, n);
            e = n;
        } else return e;
    }
}

/* Filters (|name(args)), tests (is [not] name [arg]) and calls after a unary expression. */
static jnode *parse_filters(parser *P, jnode *e)
{
    for (;;) {
        const jtok *t = peek(P);
        if (is_op(t, "|")) {
            next(P);
            const jtok *nt = next(P);
            if (nt->t != JT_NAME) unexpected(P, nt, "a filter name");
            const char *name = nt->p;
            while (is_op(peek(P), ".")) { /* dotted filter names do not exist in our set */
                next(P);
                name = expect_name(P);
            }
            if (!jj_has_filter(name)) jj_fail(P->c, nt->pos, "not implemented: filter '%s'", name);
            jnode *n = node(P, JN_FILTER, nt->pos);
            n->name = name, n->a = e;
            if (is_op(peek(P), "(")) next(P), parse_args(P, n);
            e = n;
        } else if (is_name(t, "is")) {
            next(P);
            jnode *n = node(P, JN_TEST, t->pos);
            if (is_name(peek(P), "not")) next(P), n->neg = 1;
            const jtok *nt = next(P);
            if (nt->t != JT_NAME) unexpected(P, nt, "a test name");
            n->name = nt->p;
            if (!strcmp(n->name, "none") || !strcmp(n->name, "None")) n->name = "none";
            else if (!strcmp(n->name, "True")) n->name = "true";
            else if (!strcmp(n->name, "False")) n->name = "false";
            if (!jj_has_test(n->name)) jj_fail(P->c, nt->pos, "not implemented: test '%s'", n->name);
            n->a = e;
            const jtok *q = peek(P);
            if (is_op(q, "(")) next(P), parse_args(P, n);
            else if ((q->t == JT_NAME || q->t == JT_STRING || q->t == JT_INT || q->t == JT_FLOAT || is_op(q, "[") ||
                      is_op(q, "{") || is_op(q, "-")) &&
                     !is_name(q, "else") && !is_name(q, "or") && !is_name(q, "and") && !is_name(q, "if") &&
                     !is_name(q, "is") && !is_name(q, "in") && !is_name(q, "not")) {
                jnode *arg = parse_postfix(P, parse_primary(P));
                n->items = jj_alloc(P->c, sizeof(jnode *));
                n->items[0] = arg, n->n = 1;
            }
            e = n;
        } else if (is_op(t, "(")) {
            next(P);
            jnode *n = node(P, JN_CALL, t->pos);
            n->a = e;
            parse_args(P, n);
            e = n;
        } else return e;
    }
}

static jnode *parse_unary(parser *P, int with_filter)
{
    const jtok *t = peek(P);
    enter(P, t->pos);
    jnode *e;
    if (is_op(t, "-") || is_op(t, "+")) {
        next(P);
        e = node(P, t->p[0] == '-' ? JN_NEG : JN_POS, t->pos);
        e->a = parse_unary(P, 0);
    } else e = parse_primary(P);
    e = parse_postfix(P, e);
    if (with_filter) e = parse_filters(P, e);
    P->depth--;
    return e;
}

static jnode *binop(parser *P, const char *op, size_t pos, jnode *l, jnode *r)
{
    jnode *n = node(P, JN_BIN, pos);
    n->name = op, n->a = l, n->b = r;
    return n;
}

static jnode *parse_pow(parser *P)
{
    jnode *l = parse_unary(P, 1);
    while (is_op(peek(P), "**")) {
        const jtok *t = next(P);
        l = binop(P, "**", t->pos, l, parse_unary(P, 1));
    }
    return l;
}

static jnode *parse_mul(parser *P)
{
    jnode *l = parse_pow(P);
    for (;;) {
        const jtok *t = peek(P);
        if (!is_op(t, "*") && !is_op(t, "/") && !is_op(t, "//") && !is_op(t, "%")) return l;
        next(P);
        l = binop(P, t->p, t->pos, l, parse_pow(P));
    }
}

static jnode *parse_concat(parser *P)
{
    jnode *l = parse_mul(P);
    while (is_op(peek(P), "~")) {
        const jtok *t = next(P);
        l = binop(P, "~", t->pos, l, parse_mul(P));
    }
    return l;
}

static jnode *parse_add(parser *P)
{
    jnode *l = parse_concat(P);
    for (;;) {
        const jtok *t = peek(P);
        if (!is_op(t, "+") && !is_op(t, "-")) return l;
        next(P);
        l = binop(P, t->p, t->pos, l, parse_concat(P));
    }
}

/* Chained comparisons a < b < c, and in / not in, as Python evaluates them. */
static jnode *parse_compare(parser *P)
{
    jnode *first = parse_add(P);
    nvec operands = {0}, ops = {0};
    nv_push(P, &operands, first);
    for (;;) {
        const jtok *t = peek(P);
        const char *op = NULL;
        if (t->t == JT_OP && (!strcmp(t->p, "==") || !strcmp(t->p, "!=") || !strcmp(t->p, "<") || !strcmp(t->p, "<=") ||
                              !strcmp(t->p, ">") || !strcmp(t->p, ">=")))
            op = t->p, next(P);
        else if (is_name(t, "in")) op = "in", next(P);
        else if (is_name(t, "not") && is_name(&P->t[P->i + 1], "in")) op = "not in", P->i += 2;
        else break;
        jnode *o = node(P, JN_LIT, t->pos);
        o->name = op;
        nv_push(P, &ops, o);
        nv_push(P, &operands, parse_add(P));
    }
    if (!ops.n) return first;
    jnode *n = node(P, JN_CMP, first->pos);
    n->items = operands.v, n->n = operands.n, n->items2 = ops.v, n->n2 = ops.n;
    return n;
}

static jnode *parse_not(parser *P)
{
    const jtok *t = peek(P);
    if (is_name(t, "not")) {
        next(P);
        enter(P, t->pos);
        jnode *n = node(P, JN_NOT, t->pos);
        n->a = parse_not(P);
        P->depth--;
        return n;
    }
    return parse_compare(P);
}

static jnode *parse_and(parser *P)
{
    jnode *l = parse_not(P);
    while (is_name(peek(P), "and")) {
        const jtok *t = next(P);
        jnode *n = node(P, JN_AND, t->pos);
        n->a = l, n->b = parse_not(P);
        l = n;
    }
    return l;
}

static jnode *parse_or(parser *P)
{
    jnode *l = parse_and(P);
    while (is_name(peek(P), "or")) {
        const jtok *t = next(P);
        jnode *n = node(P, JN_OR, t->pos);
        n->a = l, n->b = parse_and(P);
        l = n;
    }
    return l;
}

/* a if cond [else b]: without else the value is Undefined when cond is false. */
static jnode *parse_expr(parser *P)
{
    enter(P, peek(P)->pos);
    jnode *e = parse_or(P);
    while (is_name(peek(P), "if")) {
        const jtok *t = next(P);
        jnode *n = node(P, JN_COND, t->pos);
        n->a = e, n->b = parse_or(P);
        if (is_name(peek(P), "else")) next(P), n->c = parse_expr(P);
        e = n;
    }
    P->depth--;
    return e;
}

/* ---- statements ---- */

static jnode *parse_body(parser *P, const char *const *ends, const char **which);

static jnode *parse_if(parser *P, size_t pos)
{
    jnode *n = node(P, JN_IF, pos);
    n->a = parse_expr(P);
    expect_block_end(P);
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    const char *which;
    n->b = parse_body(P, ends, &which);
    if (!strcmp(which, "elif")) {
        n->c = parse_if(P, P->t[P->i - 1].pos);
        return n;
    }
    if (!strcmp(which, "else")) {
        expect_block_end(P);
        static const char *const end2[] = {"endif", NULL};
        n->c = parse_body(P, end2, &which);
    }
    expect_block_end(P);
    return n;
}

static jnode *parse_for(parser *P, size_t pos)
{
    jnode *n = node(P, JN_FOR, pos);
    const char *names[8];
    size_t nn = 0;
    int paren = is_op(peek(P), "(");
    if (paren) next(P);
    do {
        if (nn == 8) jj_fail(P->c, peek(P)->pos, "not implemented: unpacking into more than 8 names");
        names[nn++] = expect_name(P);
    } while (is_op(peek(P), ",") && next(P));
    if (paren) expect_op(P, ")");
    n->targets = jj_alloc(P->c, nn * sizeof *n->targets);
    memcpy(n->targets, names, nn * sizeof *names);
    n->ntargets = nn;
    const jtok *t = next(P);
    if (!is_name(t, "in")) unexpected(P, t, "'in'");
    /* the iterable is an or-expression so that "if" starts the loop filter */
    n->a = parse_or(P);
    if (is_name(peek(P), "if")) next(P), n->d = parse_expr(P);
    if (is_name(peek(P), "recursive")) jj_fail(P->c, peek(P)->pos, "not implemented: recursive loops");
    expect_block_end(P);
    static const char *const ends[] = {"else", "endfor", NULL};
    const char *which;
    n->b = parse_body(P, ends, &which);
    if (!strcmp(which, "else")) {
        expect_block_end(P);
        static const char *const end2[] = {"endfor", NULL};
        n->c = parse_body(P, end2, &which);
    }
    expect_block_end(P);
    return n;
}

static jnode *parse_set(parser *P, size_t pos)
{
    const char *name = expect_name(P), *attr = NULL;
    if (is_op(peek(P), ".")) next(P), attr = expect_name(P);
    if (is_op(peek(P), ",")) jj_fail(P->c, peek(P)->pos, "not implemented: set with unpacking");
    if (peek(P)->t == JT_BLOCK_END) {
        if (attr) jj_fail(P->c, pos, "not implemented: block set of a namespace attribute");
        next(P);
        jnode *n = node(P, JN_SETBLOCK, pos);
        n->name = name;
        static const char *const ends[] = {"endset", NULL};
        const char *which;
        n->b = parse_body(P, ends, &which);
        expect_block_end(P);
        return n;
    }
    if (is_op(peek(P), "|")) jj_fail(P->c, peek(P)->pos, "not implemented: filtered block set");
    expect_op(P, "=");
    jnode *n = node(P, JN_SET, pos);
    n->name = name, n->attr = attr;
    n->a = parse_expr(P);
    if (is_op(peek(P), ",")) jj_fail(P->c, peek(P)->pos, "not implemented: set of a tuple without parentheses");
    expect_block_end(P);
    return n;
}

static jnode *parse_macro(parser *P, size_t pos)
{
    jnode *n = node(P, JN_MACRO, pos);
    n->name = expect_name(P);
    expect_op(P, "(");
    const char *names[64];
    jnode *defs[64];
    size_t k = 0;
    while (!is_op(peek(P), ")")) {
        if (k) expect_op(P, ",");
        if (is_op(peek(P), ")")) break;
        if (k == 64) jj_fail(P->c, peek(P)->pos, "not implemented: macros with more than 64 parameters");
        names[k] = expect_name(P);
        defs[k] = NULL;
        if (is_op(peek(P), "=")) next(P), defs[k] = parse_expr(P);
        else if (k && defs[k - 1]) jj_fail(P->c, peek(P)->pos, "syntax error: non-default argument follows default argument");
        k++;
    }
    expect_op(P, ")");
    expect_block_end(P);
    n->kwn = jj_alloc(P->c, (k + 1) * sizeof *n->kwn);
    n->kwv = jj_alloc(P->c, (k + 1) * sizeof *n->kwv);
    memcpy(n->kwn, names, k * sizeof *names);
    memcpy(n->kwv, defs, k * sizeof *defs);
    n->nkw = k;
    static const char *const ends[] = {"endmacro", NULL};
    const char *which;
    n->b = parse_body(P, ends, &which);
    if (peek(P)->t == JT_NAME) next(P); /* {% endmacro name %} */
    expect_block_end(P);
    return n;
}

/* A sequence of statements up to one of the block tags in ends (the tag name is consumed,
 * which receives it); ends NULL: up to the end of the template. */
static jnode *parse_body(parser *P, const char *const *ends, const char **which)
{
    jnode *body = node(P, JN_BODY, peek(P)->pos);
    nvec st = {0};
    enter(P, peek(P)->pos);
    for (;;) {
        const jtok *t = next(P);
        if (t->t == JT_EOF) {
            if (!ends) break;
            jj_fail(P->c, t->pos, "syntax error: unexpected end of template, expected '%s'", ends[0]);
        }
        if (t->t == JT_TEXT) {
            jnode *n = node(P, JN_TEXT, t->pos);
            n->val = jv_str(t->p, t->n);
            nv_push(P, &st, n);
            continue;
        }
        if (t->t == JT_VAR_BEGIN) {
            jnode *n = node(P, JN_OUT, t->pos);
            n->a = parse_expr(P);
            const jtok *e = next(P);
            if (e->t != JT_VAR_END) unexpected(P, e, "end of print statement");
            nv_push(P, &st, n);
            continue;
        }
        if (t->t != JT_BLOCK_BEGIN) unexpected(P, t, "a statement");
        const jtok *kw = next(P);
        if (kw->t != JT_NAME) unexpected(P, kw, "a statement name");
        for (size_t k = 0; ends && ends[k]; k++)
            if (!strcmp(kw->p, ends[k])) {
                *which = ends[k];
                P->depth--;
                body->items = st.v, body->n = st.n;
                return body;
            }
        const char *w = kw->p;
        jnode *n;
        if (!strcmp(w, "if")) n = parse_if(P, kw->pos);
        else if (!strcmp(w, "for")) n = parse_for(P, kw->pos);
        else if (!strcmp(w, "set")) n = parse_set(P, kw->pos);
        else if (!strcmp(w, "macro")) n = parse_macro(P, kw->pos);
        else if (!strcmp(w, "break") || !strcmp(w, "continue")) {
            n = node(P, w[0] == 'b' ? JN_BREAK : JN_CONTINUE, kw->pos);
            expect_block_end(P);
        } else if (!strcmp(w, "generation")) {
            expect_block_end(P);
            static const char *const gend[] = {"endgeneration", NULL};
            const char *wh;
            n = parse_body(P, gend, &wh);
            expect_block_end(P);
        } else if (!strcmp(w, "include") || !strcmp(w, "import") || !strcmp(w, "from") || !strcmp(w, "extends") ||
                   !strcmp(w, "block") || !strcmp(w, "call") || !strcmp(w, "filter") || !strcmp(w, "with") ||
                   !strcmp(w, "raw") || !strcmp(w, "autoescape") || !strcmp(w, "do") || !strcmp(w, "trans"))
            jj_fail(P->c, kw->pos, "not implemented: {%% %s %%}", w);
        else if (ends) jj_fail(P->c, kw->pos, "syntax error: unexpected '%s', expected '%s'", w, ends[0]);
        else jj_fail(P->c, kw->pos, "syntax error: unknown tag '%s'", w);
        nv_push(P, &st, n);
    }
    P->depth--;
    body->items = st.v, body->n = st.n;
    return body;
}

jnode *jj_parse(jctx *c, const jtok *toks, size_t ntok)
{
    parser P = {.c = c, .t = toks, .n = ntok};
    return parse_body(&P, NULL, NULL);
}
