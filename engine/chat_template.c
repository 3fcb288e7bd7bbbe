/* chat_template.c: reads tokenizer_config.json's chat_template, bos_token and eos_token, and
 * renders a conversation with the Jinja engine (engine/jinja.h): lex, parse, run, all in one
 * arena that goes when the render ends, errors or not. */
#include "engine/chat_template.h"

#include <jansson.h>  // defines: json_load_file, json_object_get
#include <stdio.h>    // defines: snprintf
#include <stdlib.h>   // defines: free, malloc
#include <string.h>   // defines: strdup, strlen
#include <sys/stat.h> // defines: stat

#include "engine/jinja.h" // defines: jctx, jj_lex, jj_parse, jj_exec

static int token_field(json_t *root, const char *field, char **out, const char *file, char *err, size_t errn)
{
    json_t *v = json_object_get(root, field);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v)) {
        snprintf(err, errn, "%s: %s must be a string or an object with a string \"content\"", file, field);
        return -1;
    }
    *out = strdup(json_string_value(v));
    return *out ? 0 : -1;
}

int chat_template_load(const char *model_dir, chat_template *out, char *err, size_t errn)
{
    memset(out, 0, sizeof *out);
    char file[4096];
    snprintf(file, sizeof file, "%s/tokenizer_config.json", model_dir);
    struct stat st;
    if (stat(file, &st)) return 0;
    json_error_t je;
    json_t *root = json_load_file(file, JSON_DECODE_INT_AS_REAL, &je); /* model_max_length can be 1e30 */
    if (!root) {
        snprintf(err, errn, "%s: invalid JSON at line %d: %s", file, je.line, je.text);
        return -1;
    }
    int rc = -1;
    json_t *ct = json_object_get(root, "chat_template");
    const char *src = NULL;
    if (!json_is_object(root)) {
        snprintf(err, errn, "%s: not a JSON object", file);
        goto done;
    }
    if (!ct || json_is_null(ct)) { rc = 0; goto done; }
    if (json_is_string(ct)) src = json_string_value(ct);
    else if (json_is_array(ct)) {
        size_t i;
        json_t *e;
        json_array_foreach(ct, i, e) {
            json_t *name = json_object_get(e, "name"), *tpl = json_object_get(e, "template");
            if (!json_is_string(name) || !json_is_string(tpl)) {
                snprintf(err, errn, "%s: chat_template[%zu] must be an object with string \"name\" and \"template\"", file, i);
                goto done;
            }
            if (!strcmp(json_string_value(name), "default")) src = json_string_value(tpl);
        }
        if (!src) { rc = 0; goto done; }
    } else {
        snprintf(err, errn, "%s: chat_template must be a string or a list of {name, template}", file);
        goto done;
    }
    if (token_field(root, "bos_token", &out->bos_token, file, err, errn) ||
        token_field(root, "eos_token", &out->eos_token, file, err, errn))
        goto done;
    out->source = strdup(src);
    rc = out->source ? 1 : -1;
    if (!out->source) snprintf(err, errn, "out of memory");
done:
    json_decref(root);
    if (rc != 1) chat_template_free(out);
    return rc;
}

void chat_template_free(chat_template *t)
{
    free(t->source), free(t->bos_token), free(t->eos_token);
    memset(t, 0, sizeof *t);
}

static void set_global(jctx *c, const char *name, jv v) { jd_set(c, &c->globals->vars, jv_cstr(name), v); }

static jv func(int fn) { jv v = {.t = JV_FUNC, .u.fn = fn}; return v; }

static void free_ctx(jctx *c)
{
    for (int i = c->nbufs; i-- > 0;) free(c->bufs[i]->p), free(c->bufs[i]);
    c->nbufs = 0;
    jj_free_arena(c);
}

static char *render(const chat_template *t, const chat_msg *msgs, size_t n, int add_generation_prompt, char *err,
                    size_t errn)
{
    err[0] = 0;
    if (!t || !t->source) {
        snprintf(err, errn, "no chat template");
        return NULL;
    }
    jctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errn, "out of memory");
        return NULL;
    }
    c->err = err, c->errn = errn, c->src = t->source, c->srcn = strlen(t->source);
    char *result = NULL;
    if (setjmp(c->jmp)) {
        free_ctx(c);
        free(c);
        return NULL;
    }
    size_t ntok;
    jtok *toks = jj_lex(c, c->src, c->srcn, &ntok);
    jnode *prog = jj_parse(c, toks, ntok);
    c->globals = jj_alloc(c, sizeof *c->globals);
    jlist *ml = jl_new(c, n);
    for (size_t i = 0; i < n; i++) {
        jdict *d = jd_new(c);
        jd_set(c, d, jv_cstr("role"), msgs[i].role ? jv_cstr(msgs[i].role) : jv_none());
        jd_set(c, d, jv_cstr("content"), msgs[i].content ? jv_cstr(msgs[i].content) : jv_none());
        jl_push(c, ml, jv_dict(d));
    }
    set_global(c, "messages", jv_list(ml));
    set_global(c, "add_generation_prompt", jv_bool(add_generation_prompt));
    set_global(c, "tools", jv_none());
    set_global(c, "documents", jv_none());
    if (t->bos_token) set_global(c, "bos_token", jv_cstr(t->bos_token));
    if (t->eos_token) set_global(c, "eos_token", jv_cstr(t->eos_token));
    set_global(c, "raise_exception", func(JF_RAISE));
    set_global(c, "namespace", func(JF_NAMESPACE));
    set_global(c, "range", func(JF_RANGE));
    set_global(c, "dict", func(JF_DICT));
    set_global(c, "strftime_now", func(JF_STRFTIME));
    jbuf *out = jb_open(c);
    jj_exec(c, prog, out);
    result = out->p ? out->p : strdup("");
    out->p = NULL;
    jb_close(c, out);
    if (!result) snprintf(err, errn, "out of memory");
    free_ctx(c);
    free(c);
    return result;
}

char *chat_render(const chat_template *t, const chat_msg *msgs, size_t n, int add_generation_prompt, char *err,
                  size_t errn)
{
    char dummy[1];
    if (!err || !errn) return render(t, msgs, n, add_generation_prompt, dummy, sizeof dummy);
    return render(t, msgs, n, add_generation_prompt, err, errn);
}
