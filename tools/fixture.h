/* fixture.h: deterministic random GPT-2 checkpoints in HuggingFace layout (config.json +
 * model.safetensors), for tests, benchmarks and demos. The same seed gives the same bytes. */
#ifndef SAED_TOOLS_FIXTURE_H
#define SAED_TOOLS_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

typedef struct fixture_gpt2 {
    int d_model, n_layer, n_head, n_ctx, vocab;
    uint64_t seed;
    int prefixed;       /* names with "transformer." (HF save_pretrained) or without (original gpt2) */
} fixture_gpt2;

/* Writes dir/config.json and dir/model.safetensors (dir must exist). 0 or -1 with err. */
int fixture_gpt2_write(const char *dir, const fixture_gpt2 *f, char *err, size_t errlen);

/* A random checkpoint of a rotary family in HF layout and tensor names: model_type "llama",
 * "mistral", "qwen2", "gemma2" or "gpt_neox". n_kv_head 0 = n_head, head_dim 0 = C/NH,
 * d_mlp 0 = 4C. Token ids 50256 are BOS/EOS, so GPT-2's tokenizer files fit a 50257 vocab. */
typedef struct fixture_rotary {
    const char *model_type;
    int d_model, n_layer, n_head, n_kv_head, head_dim, d_mlp, n_ctx, vocab;
    int bf16;           /* store the weights as BF16 (as most published checkpoints are) */
    uint64_t seed;
} fixture_rotary;

int fixture_rotary_write(const char *dir, const fixture_rotary *f, char *err, size_t errlen);

#endif
