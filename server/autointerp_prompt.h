/* autointerp_prompt.h: the chat messages AutoInterp sends and the parsing of the replies, for
 * the explainers (oai_token-act-pair, np_max-act-logits, Delphi's default explainer) and the
 * scorers (the JSON simulator, Delphi's fuzz and detection classifiers, Neuronpedia's
 * recall_alt). Structure, few-shot counts, formats and parse rules follow
 * ../shared/reference/autointerp.md; the wording and the few-shot examples are saed's own.
 * Pure: messages in, text out, no I/O. */
#ifndef SAED_AUTOINTERP_PROMPT_H
#define SAED_AUTOINTERP_PROMPT_H

#include <jansson.h>
#include <stddef.h>

/* One activation record: a text window's tokens and one feature's values on them. */
typedef struct ai_rec {
    int n;
    char **tok;     /* (n) owned */
    double *val;    /* (n) */
    double max;     /* max of val (0 when all <= 0) */
    int argmax;
} ai_rec;

typedef struct ai_recs {
    int n;
    ai_rec *r;
} ai_recs;

/* [{tokens:[str], values:[num]}] (Neuronpedia's NPActivation) into out. 0, or -1 with err
 * naming the element ("activations[2].values: ..."). */
int ai_recs_from_json(json_t *arr, const char *what, ai_recs *out, char *err, size_t errlen);
void ai_recs_free(ai_recs *rs);
/* The record's text, tokens joined (owned). */
char *ai_rec_text(const ai_rec *r);

#define AI_OAI_FEWSHOTS 3
#define AI_LOGITS_FEWSHOTS 4
#define AI_DELPHI_FEWSHOTS 3
#define AI_SIM_FEWSHOTS 2
#define AI_CLASSIFY_FEWSHOTS 2
#define AI_CLASSIFY_BATCH 5
#define AI_DELPHI_THRESHOLD 0.3

/* Explainer messages. oai: values floor-normalised to 0..10 over the records shown together;
 * logits: pos_str is the feature's top positive logits (array of strings, may be NULL);
 * delphi: values ceil-normalised against global_max. */
json_t *ai_prompt_oai(const ai_rec *r, int n);
json_t *ai_prompt_logits(const ai_rec *r, int n, json_t *pos_str);
json_t *ai_prompt_delphi(const ai_rec *r, int n, double global_max);

/* The explanation in a reply (trimmed, final '.' dropped) into out: 0, or -1 when the reply
 * holds none (empty; np_max-act-logits naming its "method N"; Delphi without [EXPLANATION]:). */
enum ai_explainer { AI_EXPLAIN_OAI, AI_EXPLAIN_LOGITS, AI_EXPLAIN_DELPHI };
int ai_parse_explanation(enum ai_explainer m, const char *reply, char *out, size_t n);

/* JSON simulator: predict 0..10 per token of r given the explanation. */
json_t *ai_prompt_simulate(const char *expl, const ai_rec *r);
/* Predictions for n tokens into pred. Returns 1 when the reply parsed with n activations, 0
 * when every prediction was set to 0 (invalid JSON, no activations, wrong length); a single
 * non-numeric or out-of-[0,10] value becomes 0. */
int ai_parse_simulation(const char *reply, int n, double *pred);

/* Delphi classifier over k examples (fuzz: hl[i][t] marks the highlighted tokens of example i;
 * detection: hl NULL). */
json_t *ai_prompt_classify(const char *expl, const ai_rec *const *ex, unsigned char *const *hl, int k, int fuzz);
/* The first [...] list of k 0/1 values into pred: 0, or -1 (the batch is excluded). */
int ai_parse_classify(const char *reply, int k, int *pred);

/* recall_alt: one record as {"activations":[{token, activation}], "explanation"}; the reply
 * {"match": bool, ...}. *match 0/1; 0, or -1 when the reply has no boolean "match". */
json_t *ai_prompt_recall(const char *expl, const ai_rec *r);
int ai_parse_recall(const char *reply, int *match);

#endif
