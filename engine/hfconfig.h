/* hfconfig.h: reading a HuggingFace model directory's config.json into the few numbers saed
 * needs to know before loading weights. Pure C + jansson: no HTTP, no SQL. */
#ifndef SAED_ENGINE_HFCONFIG_H
#define SAED_ENGINE_HFCONFIG_H

#include <stddef.h>

typedef struct hf_config {
    char architecture[32];  /* model_type, e.g. "gpt2" */
    int n_layer;            /* L */
    int d_model;            /* C */
    int n_head;             /* NH */
    int n_ctx;              /* T max */
    int vocab_size;         /* V */
    double ln_eps;
    char activation[32];
    char weights[16];       /* "single" (model.safetensors) or "sharded" (index json) */
    char *json;             /* config.json as compact JSON text (owned) */
} hf_config;

/* Reads dir/config.json and checks that weights exist. On error returns -1 with a message
 * naming the file and field. */
int hf_config_load(const char *dir, hf_config *out, char *err, size_t errlen);
void hf_config_free(hf_config *c);

#endif
