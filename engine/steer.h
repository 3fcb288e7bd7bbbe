/* steer.h: steering vectors applied through the model's write hooks (engine/model.h), with
 * Neuronpedia's two methods: SIMPLE_ADDITIVE h ← h + coeff·v, and ORTHOGONAL_DECOMP
 * h ← h + (coeff − 1)(h·v̂)v̂ (coeff 1 leaves h alone, 0 removes the direction). Applied to every
 * position a forward shows, so a cached generation steers the prompt at prefill and each new
 * token after. A built set is read-only: several forwards and threads may use it at once.
 * Pure C: no HTTP, no SQL. */
#ifndef SAED_ENGINE_STEER_H
#define SAED_ENGINE_STEER_H

#include <stddef.h>

#include "engine/hooks.h"
#include "engine/model.h"

typedef enum steer_method { STEER_ADDITIVE, STEER_ORTHOGONAL } steer_method;

/* "SIMPLE_ADDITIVE" / "ORTHOGONAL_DECOMP"; -1 for anything else. */
int steer_method_parse(const char *s);
const char *steer_method_name(steer_method m);

typedef struct steer_set steer_set;

steer_set *steer_new(steer_method m);
void steer_free(steer_set *s);
/* Adds one vector v (n floats, copied) for hook hp, acting on columns [col0, col0 + n) of each
 * row the hook shows (all of them for a residual hook; one head's for an SAE with
 * hook_head_index). Vectors at the same hook are applied in the order added. -1 with err for
 * a non-finite value or coefficient. */
int steer_add(steer_set *s, hook_point hp, int col0, const float *v, int n, double coeff, char *err, size_t errlen);
/* The write hooks that apply the set, one per distinct hook point, for fwd_opts.hooks; valid
 * until steer_free. A row narrower than a vector's columns aborts the forward. */
const hook_req *steer_hooks(const steer_set *s, int *nhooks);

/* Leaves the rows of a forward over exactly T positions per sequence alone where skip[t] is
 * set (Neuronpedia's steer_special_tokens false: the chat prompt's special tokens are not
 * steered). Set it for the prefill and clear it (skip NULL) before the steps: it is the one
 * mutable part of a set, so a set with a mask belongs to one generation. skip is borrowed. */
void steer_skip(steer_set *s, const unsigned char *skip, int T);

/* One row: what the hooks do to h (width floats) for the vectors at hp; for tests and tools. */
void steer_apply_row(const steer_set *s, hook_point hp, float *h, int width);

#endif
