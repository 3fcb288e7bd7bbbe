/* steer.h: Neuronpedia's completion steering as a service (POST /api/steer, /api/steer-chat and
 * the inference-server's /v1/steer routes, which store nothing): resolving the
 * model and the features' SAEs, answering from the stored outputs when an identical request was
 * stored, generating the DEFAULT and STEERED continuations with the engine (engine/generate.h,
 * engine/steer.h) step by step, and storing them. Knows SQL (db/) and the engine cache, not
 * HTTP: failures come back as svc_err; a progress callback lets the caller stream. */
#ifndef SAED_STEER_H
#define SAED_STEER_H

#include <jansson.h>
#include <stdbool.h>

#include "db/db.h"
#include "engine/steer.h"
#include "server/app.h"
#include "server/registry.h"

#define STEER_MAX_FEATURES 64

typedef struct steer_feature {
    char layer[129];     /* the SAE id, e.g. "6-res-jb" */
    char index[12];      /* canonical decimal, as stored */
    double strength;
} steer_feature;

/* A raw vector at a TransformerLens hook (Neuronpedia's /v1/steer `vectors`). */
typedef struct steer_vec {
    char hook[129];      /* e.g. "blocks.1.hook_resid_pre" */
    const float *v;      /* n floats, borrowed */
    int n;
    double strength;
} steer_vec;

typedef struct steer_req {
    const char *prompt;  /* borrowed */
    char model_id[129];
    steer_feature features[STEER_MAX_FEATURES];
    int nfeatures;
    double temperature, freq_penalty, seed, strength_multiplier;
    int n_tokens, n_logprobs;
    steer_method method;
    /* POST /api/steer-chat: each run's conversation ([STEER_STEERED], [STEER_DEFAULT]: borrowed
     * arrays of {role, content}), rendered with the model's chat template (generation prompt
     * added) and tokenized as HF's add_special_tokens=False; NULL for /api/steer. */
    json_t *chat[2];
    bool steer_special;  /* steer-chat: steer the prompt's special tokens too */
    /* The inference-server wire (the /v1/steer routes). vectors (borrowed) replace the
     * features when nvectors > 0: each goes to its hook as given, seen without model
     * processing. normalize: each vector becomes v/‖v‖ before its coefficient. skip_run[k]:
     * run k is not generated (its text is ""). ephemeral: nothing is looked up in or written to
     * the store (call no steer_store). */
    const steer_vec *vectors;
    int nvectors;
    bool normalize, ephemeral;
    bool skip_run[2];
} steer_req;

enum { STEER_STEERED, STEER_DEFAULT };

/* Texts are the continuation only, valid UTF-8. */
typedef struct steer_out {
    char *text[2];       /* [STEER_STEERED], [STEER_DEFAULT] */
    json_t *logprobs[2]; /* [{token, logprob, topLogprobs}] per token, or NULL when n_logprobs is 0 */
    char id[64];         /* the STEERED output's id once stored */
    char *prompt[2];     /* steer-chat: each run's rendered prompt as the tokenizer decodes it */
} steer_out;
void steer_out_free(steer_out *o);

typedef struct steer_plan steer_plan;

/* Checks the model and the features (404 unknown, 400 when the request cannot run: context
 * too small, a feature's SAE at a hook the model cannot steer, a chat request for a model
 * without a chat template or one the template refuses...), looks up stored outputs and,
 * unless both are stored, loads what generation needs. NULL with e. */
steer_plan *steer_prepare(saed_app *app, db_conn *c, const steer_req *q, svc_err *e);
/* Both outputs came from the store: steer_generate only copies them. */
bool steer_plan_stored(const steer_plan *p);
/* steer-chat: run k's rendered prompt ("" for /api/steer). */
const char *steer_plan_rendered(const steer_plan *p, int k);
/* Run k's prompt ids as the tokenizer decodes them (malloc'd valid UTF-8; NULL when the plan
 * came from the store or out of memory). */
char *steer_plan_prompt_text(const steer_plan *p, int k);
void steer_plan_free(steer_plan *p);

/* Called after each step with both texts so far (a character whose bytes are not all there yet
 * is held back); a non-zero return stops the generation. */
typedef int (*steer_progress)(void *ud, const char *steered, const char *deflt);
/* Generates what the store did not have, both runs one token at a time in turn, checking
 * between tokens whether the server is stopping. -1 with e (code "cancelled" when progress
 * stopped it). */
int steer_generate(steer_plan *p, steer_progress cb, void *ud, steer_out *out, svc_err *e);
/* Stores the outputs (unless both came from the store) and fills out->id. */
int steer_store(db_conn *c, steer_plan *p, steer_out *out, svc_err *e);

/* bytes[0, len) as valid UTF-8 (malloc'd): invalid bytes and NULs become U+FFFD. With
 * hold_tail, a last character whose bytes are not all there yet is left out (the next token
 * may complete it), so each streamed text is a prefix of the next. */
char *steer_utf8_text(const char *bytes, size_t len, bool hold_tail);

#endif
