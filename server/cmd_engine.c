/* cmd_engine.c: the engine's command-line entry points (`saed tokenize`, `saed forward`,
 * `saed encode`):
 * thin wrappers that read arguments, call engine/, and print JSON. Exit status 0 ok, 1 failure
 * (the message names the file, hook or field), 2 usage. */
#include "engine/tok_prompt.h"
#include "server/cmd_engine.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "engine/sae.h"
#include "engine/tokenizer.h"
#include "server/device.h"

/* Reads all of stdin (for --text omitted). */
static char *read_stdin(size_t *len)
{
    size_t cap = 1 << 16, n = 0, k;
    char *buf = malloc(cap);
    while (buf && (k = fread(buf + n, 1, cap - n - 1, stdin)) > 0) {
        n += k;
        if (cap - n < 1024) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
    }
    if (buf) buf[n] = '\0';
    *len = n;
    return buf;
}

static tokenizer *load_tokenizer(const char *model_dir, const char *tok_dir, const char *cmd)
{
    char err[1024];
    tokenizer *t = tok_load_dir(tok_dir ? tok_dir : model_dir, err, sizeof err);
    if (!t) fprintf(stderr, "saed %s: tokenizer: %s\n", cmd, err);
    return t;
}

static int print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9) | JSON_ENSURE_ASCII);
    json_decref(j);
    if (!s) {
        fprintf(stderr, "saed: out of memory\n");
        return 1;
    }
    puts(s);
    free(s);
    return 0;
}

int cmd_tokenize(const char *model_dir, const char *tok_dir, const char *text)
{
    if (!model_dir && !tok_dir) {
        fprintf(stderr, "saed tokenize: --model DIR (or --tokenizer DIR) is required\n");
        return 2;
    }
    tokenizer *t = load_tokenizer(model_dir, tok_dir, "tokenize");
    if (!t) return 1;
    size_t len = 0;
    char *own = NULL;
    if (!text) {
        if (!(own = read_stdin(&len))) return 1;
        text = own;
    } else {
        len = strlen(text);
    }
    int32_t *ids = NULL;
    char err[512];
    int n = tok_encode(t, text, len, &ids, err, sizeof err);
    int rc = 1;
    if (n < 0) {
        fprintf(stderr, "saed tokenize: %s\n", err);
    } else {
        json_t *jid = json_array(), *jtok = json_array();
        for (int i = 0; i < n; i++) {
            char *s = tok_token_str(t, ids[i]);
            json_array_append_new(jid, json_integer(ids[i]));
            json_array_append_new(jtok, json_string(s ? s : ""));
            free(s);
        }
        rc = print_json(json_pack("{s:o,s:o}", "ids", jid, "tokens", jtok));
    }
    free(ids);
    free(own);
    tok_free(t);
    return rc;
}

typedef struct hook_out {
    const char *name;
    json_t *rows;
} hook_out;

static int collect(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    hook_out *h = ud;
    json_t *rows = json_array();
    if (hp.kind == HOOK_PATTERN) {
        /* (NH, T, Tk) for the one sequence: rows per head, then per query position. */
        int Tk = width / (width / T > 0 ? width / T : 1);
        int NH = width / Tk;
        (void)Tk;
        for (int hh = 0; hh < NH; hh++) {
            json_t *head = json_array();
            for (int t = 0; t < T; t++) {
                json_t *row = json_array();
                for (int k = 0; k < T; k++) json_array_append_new(row, json_real(act[((size_t)hh * T + t) * T + k]));
                json_array_append_new(head, row);
            }
            json_array_append_new(rows, head);
        }
    } else {
        for (int t = 0; t < B * T; t++) {
            json_t *row = json_array();
            for (int i = 0; i < width; i++) json_array_append_new(row, json_real(act[(size_t)t * width + i]));
            json_array_append_new(rows, row);
        }
    }
    json_decref(h->rows);
    h->rows = rows;
    return 0;
}

/* ids from a JSON array of integers. */
static int parse_ids(const char *s, int32_t **ids, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    if (!json_is_array(j) || json_array_size(j) == 0) {
        snprintf(err, errlen, "--ids: expected a non-empty JSON array of token ids%s%s", j ? "" : ": ", j ? "" : je.text);
        json_decref(j);
        return -1;
    }
    int n = (int)json_array_size(j);
    *ids = malloc(sizeof(int32_t) * n);
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(j, (size_t)i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 0x7fffffff) {
            snprintf(err, errlen, "--ids: element %d is not a token id", i);
            free(*ids);
            json_decref(j);
            return -1;
        }
        (*ids)[i] = (int32_t)json_integer_value(v);
    }
    json_decref(j);
    return n;
}

/* The token ids of --ids JSON or of --text T (tokenized with the model's tokenizer or
 * tok_dir), BOS first with prepend_bos. The count, or -1 after printing the problem. */
static int input_ids(const char *cmd, const char *model_dir, const char *tok_dir, const char *text, const char *ids_json,
                     int prepend_bos, int32_t **out)
{
    char err[1024];
    int32_t *ids = NULL;
    int T;
    tokenizer *tk = NULL;
    if (ids_json) {
        if ((T = parse_ids(ids_json, &ids, err, sizeof err)) < 0) {
            fprintf(stderr, "saed %s: %s\n", cmd, err);
            return -1;
        }
    } else {
        if (!(tk = load_tokenizer(model_dir, tok_dir, cmd))) return -1;
        if ((T = tok_encode(tk, text, strlen(text), &ids, err, sizeof err)) < 0) {
            fprintf(stderr, "saed %s: %s\n", cmd, err);
            tok_free(tk);
            return -1;
        }
    }
    if (prepend_bos) {
        int32_t *b = malloc(sizeof(int32_t) * (T + 1));
        b[0] = tk ? tok_prompt_bos(tk) : TOK_GPT2_EOS;
        memcpy(b + 1, ids, sizeof(int32_t) * T);
        free(ids);
        ids = b;
        T++;
    }
    tok_free(tk);
    if (T == 0) {
        fprintf(stderr, "saed %s: no tokens (empty text without --prepend-bos)\n", cmd);
        free(ids);
        return -1;
    }
    *out = ids;
    return T;
}

int cmd_forward(const cmd_forward_args *a)
{
    char err[1024];
    if (!a->model_dir || (!a->text && !a->ids_json) || (a->text && a->ids_json)) {
        fprintf(stderr, "saed forward: --model DIR and exactly one of --text T or --ids JSON are required\n");
        return 2;
    }
    int proc = model_processing_parse(a->processing ? a->processing : "none");
    if (proc < 0) {
        fprintf(stderr, "saed forward: --processing '%s': expected none, center_writing_weights, fold_value_biases, fold_ln or tl\n",
                a->processing);
        return 2;
    }
    hf_config hc;
    if (hf_config_load(a->model_dir, &hc, err, sizeof err)) {
        fprintf(stderr, "saed forward: %s\n", err);
        return 1;
    }
    int n_layer = hc.n_layer;
    hf_config_free(&hc);
    hook_point hps[CMD_MAX_HOOKS];
    for (int i = 0; i < a->nhooks; i++)
        if (hook_parse(a->hooks[i], n_layer, &hps[i], err, sizeof err)) {
            fprintf(stderr, "saed forward: %s\n", err);
            return 1;
        }
    int32_t *ids = NULL;
    int T = input_ids("forward", a->model_dir, a->tokenizer_dir, a->text, a->ids_json, a->prepend_bos, &ids);
    if (T < 0) return 1;
    saed_backend *be = device_open(device_spec_arg(a->device), device_precision_arg(a->precision), 0, err, sizeof err);
    model *m = be ? model_load(a->model_dir, be, err, sizeof err) : NULL;
    if (!m) {
        fprintf(stderr, "saed forward: %s\n", err);
        free(ids);
        backend_close(be);
        return 1;
    }
    const int V = model_config(m)->vocab_size;
    hook_out outs[CMD_MAX_HOOKS] = {{0}};
    hook_req reqs[CMD_MAX_HOOKS];
    for (int i = 0; i < a->nhooks; i++) {
        outs[i].name = a->hooks[i];
        reqs[i] = (hook_req){hps[i], collect, &outs[i], 0};
    }
    float *logits = malloc(sizeof(float) * V);
    int32_t *argmax = malloc(sizeof(int32_t) * T);
    fwd_opts o = {.processing = proc, .hooks = reqs, .nhooks = a->nhooks, .logits = logits, .logits_last_only = 1,
                  .argmax = argmax};
    int rc = 1;
    if (model_forward(m, ids, 1, T, &o, err, sizeof err)) {
        fprintf(stderr, "saed forward: %s\n", err);
    } else {
        json_t *j = json_object(), *jh = json_object(), *ji = json_array(), *jl = json_array(), *ja = json_array();
        for (int t = 0; t < T; t++) {
            json_array_append_new(ji, json_integer(ids[t]));
            json_array_append_new(ja, json_integer(argmax[t]));
        }
        for (int v = 0; v < V; v++) json_array_append_new(jl, json_real(logits[v]));
        for (int i = 0; i < a->nhooks; i++) {
            json_object_set_new(jh, outs[i].name, outs[i].rows ? outs[i].rows : json_array());
            outs[i].rows = NULL;
        }
        json_object_set_new(j, "ids", ji);
        json_object_set_new(j, "hooks", jh);
        json_object_set_new(j, "logits_last", jl);
        json_object_set_new(j, "argmax", ja);
        rc = print_json(j);
    }
    for (int i = 0; i < a->nhooks; i++) json_decref(outs[i].rows);
    free(logits);
    free(argmax);
    free(ids);
    model_free(m);
    backend_close(be);
    return rc;
}

/* Copies the hook's (T,width) rows. */
typedef struct hook_rows {
    float *x;
    int T, width;
} hook_rows;

static int keep_rows(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)hp;
    hook_rows *h = ud;
    free(h->x);
    if (!(h->x = malloc(sizeof(float) * (size_t)B * T * width))) return 1;
    memcpy(h->x, act, sizeof(float) * (size_t)B * T * width);
    h->T = B * T;
    h->width = width;
    return 0;
}

int cmd_encode(const cmd_encode_args *a)
{
    char err[1024];
    if (!a->model_dir || !a->sae_dir || (!a->text && !a->ids_json) || (a->text && a->ids_json)) {
        fprintf(stderr, "saed encode: --model DIR, --sae DIR and exactly one of --text T or --ids JSON are required\n");
        return 2;
    }
    /* Configs first: a wrong pairing fails before any weight is read. */
    sae_cfg sc;
    hf_config hc;
    hook_point hp;
    if (sae_cfg_load(a->sae_dir, &sc, err, sizeof err)) {
        fprintf(stderr, "saed encode: %s\n", err);
        return 1;
    }
    if (hf_config_load(a->model_dir, &hc, err, sizeof err)) {
        fprintf(stderr, "saed encode: %s\n", err);
        sae_cfg_free(&sc);
        return 1;
    }
    int col0, ncols, rc = sae_cfg_check_model(&sc, &hc, &hp, err, sizeof err);
    if (rc) fprintf(stderr, "saed encode: %s (SAE %s, model %s)\n", err, a->sae_dir, a->model_dir);
    sae_cfg_hook_columns(&sc, &hc, &col0, &ncols);
    const int proc = sae_cfg_processing(&sc);
    hf_config_free(&hc);
    sae_cfg_free(&sc);
    if (rc) return 1;
    int32_t *ids = NULL;
    int T = input_ids("encode", a->model_dir, a->tokenizer_dir, a->text, a->ids_json, a->prepend_bos, &ids);
    if (T < 0) return 1;
    saed_backend *be = device_open(device_spec_arg(a->device), device_precision_arg(a->precision), 0, err, sizeof err);
    model *m = be ? model_load(a->model_dir, be, err, sizeof err) : NULL;
    sae_load_opts lo = {.fold_dec_norm = a->fold_dec_norm};
    sae *s = m ? sae_load(a->sae_dir, be, &lo, err, sizeof err) : NULL;
    hook_rows h = {0};
    sae_sparse sp = {0};
    float *x = NULL;
    rc = 1;
    if (!s) {
        fprintf(stderr, "saed encode: %s\n", err);
        goto done;
    }
    const int D = sae_config(s)->d_in;
    hook_req req = {hp, keep_rows, &h, 0};
    fwd_opts o = {.processing = proc, .hooks = &req, .nhooks = 1};
    if (model_forward(m, ids, 1, T, &o, err, sizeof err)) {
        fprintf(stderr, "saed encode: %s\n", err);
        goto done;
    }
    /* The SAE's columns of the hook (one head when hook_head_index is set). */
    if (!h.x || h.T != T || col0 + ncols > h.width || ncols != D || !(x = malloc(sizeof(float) * (size_t)T * D))) {
        fprintf(stderr, "saed encode: the hook gave no usable rows\n");
        goto done;
    }
    for (int t = 0; t < T; t++) memcpy(x + (size_t)t * D, h.x + (size_t)t * h.width + col0, sizeof(float) * D);
    if (sae_encode_sparse(s, x, T, &sp, err, sizeof err)) {
        fprintf(stderr, "saed encode: %s\n", err);
        goto done;
    }
    json_t *ji = json_array(), *ja = json_array(), *jl = json_array();
    for (int t = 0; t < T; t++) {
        json_t *row = json_array();
        for (int j = 0; j < sp.count[t]; j++)
            json_array_append_new(row, json_pack("[i,f]", (int)sp.idx[sp.offset[t] + j], (double)sp.val[sp.offset[t] + j]));
        json_array_append_new(ji, json_integer(ids[t]));
        json_array_append_new(ja, row);
        json_array_append_new(jl, json_integer(sp.count[t]));
    }
    rc = print_json(json_pack("{s:o,s:o,s:o}", "ids", ji, "acts", ja, "l0", jl));
done:
    sae_sparse_free(&sp);
    free(x);
    free(h.x);
    free(ids);
    sae_free(s);
    model_free(m);
    backend_close(be);
    return rc;
}
