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

#endif
