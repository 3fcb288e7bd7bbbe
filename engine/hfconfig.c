/* hfconfig.c: see hfconfig.h. The family table lists the model types saed can run; adding
 * one means adding its field names here and its forward pass in the engine. */
#include "engine/hfconfig.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct family {
    const char *model_type;
    const char *f_layer, *f_embd, *f_head, *f_ctx, *f_ctx_alt, *f_eps, *f_act;
} family;

static const family families[] = {
    {"gpt2", "n_layer", "n_embd", "n_head", "n_positions", "n_ctx", "layer_norm_epsilon", "activation_function"},
};

static int get_int(json_t *root, const char *field, const char *alt, int min, int *out, const char *file,
                   char *err, size_t errlen)
{
    json_t *v = json_object_get(root, field);
    if (!v && alt) v = json_object_get(root, alt);
    if (!v) {
        snprintf(err, errlen, "%s: field '%s' is missing", file, field);
        return -1;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > 1 << 24) {
        snprintf(err, errlen, "%s: field '%s' must be an integer >= %d", file, field, min);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

int hf_config_load(const char *dir, hf_config *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        struct stat st;
        if (stat(path, &st)) snprintf(err, errlen, "%s: not found (a HuggingFace model directory has config.json)", path);
        else snprintf(err, errlen, "%s: invalid JSON at line %d: %s", path, je.line, je.text);
        return -1;
    }
    int rc = -1;
    const char *mt = json_string_value(json_object_get(root, "model_type"));
    const family *fam = NULL;
    for (size_t i = 0; mt && i < sizeof families / sizeof families[0]; i++)
        if (!strcmp(families[i].model_type, mt)) fam = &families[i];
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: not a JSON object", path);
        goto out;
    }
    if (!mt) {
        snprintf(err, errlen, "%s: field 'model_type' is missing", path);
        goto out;
    }
    if (!fam) {
        snprintf(err, errlen, "%s: model_type '%s' is not supported (supported: gpt2)", path, mt);
        goto out;
    }
    snprintf(out->architecture, sizeof out->architecture, "%s", fam->model_type);
    if (get_int(root, fam->f_layer, NULL, 1, &out->n_layer, path, err, errlen) ||
        get_int(root, fam->f_embd, NULL, 1, &out->d_model, path, err, errlen) ||
        get_int(root, fam->f_head, NULL, 1, &out->n_head, path, err, errlen) ||
        get_int(root, fam->f_ctx, fam->f_ctx_alt, 1, &out->n_ctx, path, err, errlen) ||
        get_int(root, "vocab_size", NULL, 1, &out->vocab_size, path, err, errlen))
        goto out;
    if (out->d_model % out->n_head) {
        snprintf(err, errlen, "%s: %s (%d) is not a multiple of %s (%d)", path, fam->f_embd, out->d_model,
                 fam->f_head, out->n_head);
        goto out;
    }
    json_t *eps = json_object_get(root, fam->f_eps);
    out->ln_eps = eps ? json_number_value(eps) : 1e-5;
    if (eps && (!json_is_number(eps) || out->ln_eps <= 0)) {
        snprintf(err, errlen, "%s: field '%s' must be a positive number", path, fam->f_eps);
        goto out;
    }
    const char *act = json_string_value(json_object_get(root, fam->f_act));
    snprintf(out->activation, sizeof out->activation, "%s", act ? act : "gelu_new");
    /* The forward implements GPT-2 as released: refuse variants it would run wrongly. */
    if (strcmp(out->activation, "gelu_new") && strcmp(out->activation, "gelu_pytorch_tanh")) {
        snprintf(err, errlen, "%s: activation_function '%s' is not supported (gelu_new)", path, out->activation);
        goto out;
    }
    static const struct { const char *field; int want; } flags[] = {
        {"scale_attn_weights", 1}, {"scale_attn_by_inverse_layer_idx", 0}, {"reorder_and_upcast_attn", 0}};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        json_t *v = json_object_get(root, flags[i].field);
        if (v && json_is_boolean(v) && json_is_true(v) != flags[i].want) {
            snprintf(err, errlen, "%s: %s = %s is not supported", path, flags[i].field, flags[i].want ? "false" : "true");
            goto out;
        }
    }
    struct stat st;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        strcpy(out->weights, "single");
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        if (stat(path, &st) || !S_ISREG(st.st_mode)) {
            snprintf(err, errlen, "%s: no model.safetensors or model.safetensors.index.json", dir);
            goto out;
        }
        strcpy(out->weights, "sharded");
    }
    out->json = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    rc = out->json ? 0 : -1;
out:
    json_decref(root);
    return rc;
}

void hf_config_free(hf_config *c)
{
    free(c->json);
    c->json = NULL;
}
