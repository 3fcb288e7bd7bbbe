/* jinja.h: internals of the chat-template Jinja engine (engine/jinja_*.c), behind the public
 * engine/chat_template.h. One render owns one jctx: every token, node and value lives in its
 * arena and goes at once; an error anywhere longjmps back to the entry point with the message
 * in ctx->err. Semantics follow Python Jinja2 as transformers configures it (trim_blocks,
 * lstrip_blocks, loop controls, default Undefined, immutable sandbox). */
#ifndef SAED_ENGINE_JINJA_H
#define SAED_ENGINE_JINJA_H

#include <setjmp.h> // defines: jmp_buf
#include <stddef.h> // defines: size_t

/* Limits: a hostile or broken template errors instead of exhausting the machine. */
#define JJ_MAX_ARENA (256u << 20)  /* bytes of tokens, nodes and values per render */
#define JJ_MAX_OUTPUT (16u << 20)  /* bytes of rendered text */
#define JJ_MAX_DEPTH 200           /* nesting of expressions, blocks and macro calls */
#define JJ_MAX_STEPS 10000000L     /* loop iterations + macro calls per render */

typedef struct jblk jblk;
typedef struct jnode jnode;
typedef struct jlist jlist;
typedef struct jdict jdict;

enum jv_type { JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_NS, JV_FUNC, JV_MACRO, JV_METHOD };
enum jv_func { JF_RAISE, JF_NAMESPACE, JF_RANGE, JF_STRFTIME, JF_DICT };

typedef struct jv {
    int t;
    int tuple; /* JV_LIST: a tuple (repr with parentheses) */
    union {
        int b;
        long long i;
        double f;
        struct { const char *p; size_t n; } s;
        jlist *l;
        jdict *d;   /* JV_DICT, JV_NS */
        int fn;     /* JV_FUNC */
        jnode *mac; /* JV_MACRO */
        struct { struct jv *self; const char *name; } m; /* JV_METHOD */
    } u;
    const char *hint; /* JV_UNDEF: what is undefined, for the error a use of it raises */
} jv;

struct jlist { jv *v; size_t n, cap; };
struct jdict { jv *k, *v; size_t n, cap; };

/* Growable output text (malloc'd, not the arena; capped at JJ_MAX_OUTPUT). */
typedef struct jbuf { char *p; size_t n, cap; } jbuf;

typedef struct jscope { struct jscope *parent; jdict vars; } jscope;

typedef struct jctx {
    jmp_buf jmp;
    char *err;
    size_t errn;
    jblk *arena;
    size_t arena_used;
    const char *src; /* the template, for line/column of errors */
    size_t srcn;
    int depth;
    long steps;
    jscope *globals;
    jscope *scope; /* innermost scope of the running code */
    jbuf *bufs[JJ_MAX_DEPTH + 8]; /* open output buffers, freed on error */
    int nbufs;
} jctx;

/* ---- tokens (jinja_lex.c) ---- */
enum jtok_type { JT_TEXT, JT_VAR_BEGIN, JT_VAR_END, JT_BLOCK_BEGIN, JT_BLOCK_END, JT_NAME, JT_STRING, JT_INT, JT_FLOAT, JT_OP, JT_EOF };
typedef struct jtok {
    int t;
    const char *p; /* JT_TEXT, JT_NAME, JT_STRING (unescaped), JT_OP: text, NUL-terminated */
    size_t n;
    long long i;
    double f;
    size_t pos; /* byte offset in the template */
} jtok;

jtok *jj_lex(jctx *c, const char *src, size_t n, size_t *ntok);

/* ---- syntax tree (jinja_parse.c) ---- */
enum jnode_kind {
    /* expressions */
    JN_LIT, JN_NAME, JN_LIST, JN_TUPLE, JN_DICT, JN_ATTR, JN_ITEM, JN_SLICE, JN_CALL, JN_FILTER, JN_TEST,
    JN_NEG, JN_POS, JN_NOT, JN_AND, JN_OR, JN_BIN, JN_CMP, JN_COND,
    /* statements */
    JN_TEXT, JN_OUT, JN_IF, JN_FOR, JN_SET, JN_SETBLOCK, JN_MACRO, JN_BREAK, JN_CONTINUE, JN_BODY
};

struct jnode {
    int kind;
    size_t pos;
    const char *name;   /* JN_NAME, JN_ATTR, JN_FILTER, JN_TEST, JN_SET target, JN_MACRO, JN_BIN/JN_CMP op */
    const char *attr;   /* JN_SET: ns.attr target */
    jv val;             /* JN_LIT, JN_TEXT */
    jnode *a, *b, *c, *d; /* children: operands, condition, iterable, slice bounds, loop filter */
    jnode **items;      /* list/tuple/dict keys/args/body/JN_CMP operands */
    size_t n;
    jnode **items2;     /* dict values / else body / JN_CMP ops as JN_LIT strings */
    size_t n2;
    const char **kwn;   /* keyword argument names, or macro parameter names */
    jnode **kwv;        /* keyword argument values, or macro parameter defaults (NULL: none) */
    size_t nkw;
    const char **targets; /* JN_FOR loop variables */
    size_t ntargets;
    int neg;            /* JN_TEST: "is not" */
};

jnode *jj_parse(jctx *c, const jtok *toks, size_t ntok);
/* Whether name is a filter / test the engine implements (the parser refuses others). */
int jj_has_filter(const char *name);
int jj_has_test(const char *name);

/* ---- values (jinja_value.c) ---- */
void *jj_alloc(jctx *c, size_t n);
void jj_free_arena(jctx *c);
char *jj_strdup(jctx *c, const char *s, size_t n);
_Noreturn void jj_fail(jctx *c, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
_Noreturn void jj_fail_plain(jctx *c, const char *msg);

jv jv_undef(const char *hint);
jv jv_none(void);
jv jv_bool(int b);
jv jv_int(long long i);
jv jv_float(double f);
jv jv_str(const char *p, size_t n);
jv jv_cstr(const char *s);
jv jv_list(jlist *l);
jv jv_dict(jdict *d);
jlist *jl_new(jctx *c, size_t cap);
void jl_push(jctx *c, jlist *l, jv v);
jdict *jd_new(jctx *c);
void jd_set(jctx *c, jdict *d, jv k, jv v);
jv *jd_get(jdict *d, jv k);
jv *jd_gets(jdict *d, const char *k);

int jv_truthy(jctx *c, jv v, size_t pos);
int jv_equal(jv a, jv b);
const char *jv_typename(jv v); /* Python's type name: "str", "dict", ... */
/* Python str() / repr() of a value, appended to b. */
void jv_str_to(jctx *c, jbuf *b, jv v, size_t pos);
void jv_repr_to(jctx *c, jbuf *b, jv v, size_t pos);
jv jv_to_string(jctx *c, jv v, size_t pos);
/* json.dumps(v, ensure_ascii=False, indent=indent) (indent < 0: None). */
void jv_json_to(jctx *c, jbuf *b, jv v, int indent, int level, size_t pos);
/* Python float repr. */
void jj_float_repr(double f, char *out, size_t n);

/* Output buffers. jb_open registers one with the context so an error frees it. */
jbuf *jb_open(jctx *c);
void jb_close(jctx *c, jbuf *b); /* must be the most recent open one */
void jb_put(jctx *c, jbuf *b, const char *p, size_t n);
void jb_puts(jctx *c, jbuf *b, const char *s);

/* UTF-8: code points in s, and the byte offset of code point k. */
size_t jj_u8len(const char *p, size_t n);
size_t jj_u8off(const char *p, size_t n, size_t k);
int jj_isspace_at(const char *p, size_t n, size_t *len); /* Python str.isspace of the char at p */

/* ---- evaluation (jinja_eval.c, jinja_builtins.c) ---- */
void jj_exec(jctx *c, jnode *body, jbuf *out);
jv jj_eval(jctx *c, jnode *e);
jv jj_getattr(jctx *c, jv obj, const char *name, size_t pos);
jv jj_getitem(jctx *c, jv obj, jv key, size_t pos);
/* Iteration as Python's for: a list, a dict's keys, a string's characters; Undefined is empty. */
jlist *jj_iterate(jctx *c, jv v, size_t pos);
jv jj_call(jctx *c, jv fn, jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw, size_t pos);
jv jj_filter(jctx *c, const char *name, jv v, jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw, size_t pos);
int jj_test(jctx *c, const char *name, jv v, jv *args, size_t nargs, size_t pos);
jv jj_method(jctx *c, jv self, const char *name, jv *args, size_t nargs, const char **kwn, jv *kwv, size_t nkw, size_t pos);
/* Whether a str/dict has a method of that name (attribute access yields a bound method). */
int jj_is_method(jv self, const char *name);
/* Undefined used where a value is needed: raises Jinja2's UndefinedError. */
_Noreturn void jj_undefined_error(jctx *c, jv v, size_t pos);

#endif
