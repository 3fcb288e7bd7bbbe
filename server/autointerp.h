/* autointerp.h: AutoInterp's steps over an LLM client: explain a feature from its records,
 * score an explanation (JSON simulation, Delphi fuzz/detection, Neuronpedia's recall_alt).
 * Shared by the autointerp job and the scoring routes. Knows no SQL and no HTTP server. */
#ifndef SAED_AUTOINTERP_H
#define SAED_AUTOINTERP_H

#include <jansson.h>

#include "server/autointerp_prompt.h"
#include "server/llm_client.h"

/* Explainer method names as Neuronpedia's typeName; "eleuther_delphi" is an alias of
 * eleuther_acts_top20. 0 with *m and *type_name, or -1 for an unknown name. */
int ai_explainer_parse(const char *name, enum ai_explainer *m, const char **type_name);

enum ai_scorer { AI_SCORE_SIMULATION, AI_SCORE_FUZZ, AI_SCORE_DETECTION, AI_SCORE_RECALL };
/* "simulation", "fuzz", "detection", "recall_alt" (also Neuronpedia's score type names
 * oai_simulation, eleuther_fuzz, eleuther_recall). *type_name = the stored score type name. */
int ai_scorer_parse(const char *name, enum ai_scorer *s, const char **type_name);

/* Explains records r[0..n) (strongest first); pos_str may be NULL. LLM_OK with the
 * explanation in out, LLM_FAILED (err says why: the reply held no explanation, or the LLM
 * failed), LLM_BUDGET, LLM_STOPPED. */
int ai_explain(llm_client *c, enum ai_explainer m, const ai_rec *r, int n, json_t *pos_str, double temperature, char *out,
               size_t outlen, char *err, size_t errlen);

/* Scores expl on records r[0..n): a record with sum(values) > 0 counts as activating, any
 * other as a negative. *score (NaN when undefined) and *details (owned): simulation
 * {simulations:[{simulation:{tokens, expected_activations}, true_activations,
 * ev_correlation_score}]} as Neuronpedia's scorer; fuzz/detection/recall_alt {breakdown:[...]}.
 * Returns LLM_OK, LLM_FAILED, LLM_BUDGET or LLM_STOPPED. */
int ai_score(llm_client *c, enum ai_scorer s, const char *expl, const ai_rec *r, int n, double *score, json_t **details,
             char *err, size_t errlen);

/* The JSON for a score that may be NaN: a real, or null. */
json_t *ai_json_score(double v);

#endif
