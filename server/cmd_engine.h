/* cmd_engine.h: `saed tokenize`, `saed forward` and `saed encode`. */
#ifndef SAED_CMD_ENGINE_H
#define SAED_CMD_ENGINE_H

#define CMD_MAX_HOOKS 32

typedef struct cmd_forward_args {
    const char *model_dir, *tokenizer_dir, *text, *ids_json, *processing;
    const char *device, *precision;  /* NULL: SAED_DEVICE / SAED_GPU_PRECISION */
    const char *hooks[CMD_MAX_HOOKS];
    int nhooks, prepend_bos;
} cmd_forward_args;

typedef struct cmd_encode_args {
    const char *model_dir, *sae_dir, *tokenizer_dir, *text, *ids_json;
    const char *device, *precision;  /* NULL: SAED_DEVICE / SAED_GPU_PRECISION */
    int prepend_bos, fold_dec_norm;
} cmd_encode_args;

/* text NULL: read stdin. */
int cmd_tokenize(const char *model_dir, const char *tok_dir, const char *text);
int cmd_forward(const cmd_forward_args *a);
int cmd_encode(const cmd_encode_args *a);

#endif
