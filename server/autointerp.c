/* autointerp.c: see autointerp.h. Scoring requests are made one after another: the job's
 * concurrency is across features (job_autointerp.c). */
#include "server/autointerp.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/autointerp_score.h"

static const struct {
    const char *name, *type;
    enum ai_explainer m;
} explainers[] = {
    {"oai_token-act-pair", "oai_token-act-pair", AI_EXPLAIN_OAI},
    {"np_max-act-logits", "np_max-act-logits", AI_EXPLAIN_LOGITS},
    {"eleuther_acts_top20", "eleuther_acts_top20", AI_EXPLAIN_DELPHI},
    {"eleuther_delphi", "eleuther_acts_top20", AI_EXPLAIN_DELPHI},
};

static const struct {
    const char *name, *type;
    enum ai_scorer s;
} scorers[] = {
    {"simulation", "oai_simulation", AI_SCORE_SIMULATION}, {"oai_simulation", "oai_simulation", AI_SCORE_SIMULATION},
    {"fuzz", "eleuther_fuzz", AI_SCORE_FUZZ},              {"eleuther_fuzz", "eleuther_fuzz", AI_SCORE_FUZZ},
    {"detection", "eleuther_recall", AI_SCORE_DETECTION},  {"eleuther_recall", "eleuther_recall", AI_SCORE_DETECTION},
    {"recall_alt", "recall_alt", AI_SCORE_RECALL},
};

int ai_explainer_parse(const char *name, enum ai_explainer *m, const char **type_name)
{
    for (size_t i = 0; name && i < sizeof explainers / sizeof explainers[0]; i++)
        if (!strcmp(name, explainers[i].name)) {
            *m = explainers[i].m;
            *type_name = explainers[i].type;
            return 0;
        }
    return -1;
}

int ai_scorer_parse(const char *name, enum ai_scorer *s, const char **type_name)
{
    for (size_t i = 0; name && i < sizeof scorers / sizeof scorers[0]; i++)
        if (!strcmp(name, scorers[i].name)) {
            *s = scorers[i].s;
            *type_name = scorers[i].type;
            return 0;
        }
    return -1;
}

json_t *ai_json_score(double v) { return isfinite(v) ? json_real(v) : json_null(); }

int ai_explain(llm_client *c, enum ai_explainer m, const ai_rec *r, int n, json_t *pos_str, double temperature, char *out,
               size_t outlen, char *err, size_t errlen)
{
    double gmax = 0;
    for (int i = 0; i < n; i++)
        if (r[i].max > gmax) gmax = r[i].max;
    json_t *msgs = m == AI_EXPLAIN_OAI ? ai_prompt_oai(r, n) : m == AI_EXPLAIN_LOGITS ? ai_prompt_logits(r, n, pos_str)
                                                                                        : ai_prompt_delphi(r, n, gmax);
    llm_params p = {.temperature = temperature, .max_tokens = m == AI_EXPLAIN_OAI ? 60 : m == AI_EXPLAIN_LOGITS ? 500 : 3000};
    char *reply;
    int rc = llm_chat(c, msgs, &p, &reply, err, errlen);
    json_decref(msgs);
    if (rc != LLM_OK) return rc;
    if (ai_parse_explanation(m, reply, out, outlen)) {
        snprintf(err, errlen, "the reply held no explanation: %.120s", reply);
        rc = LLM_FAILED;
    }
    free(reply);
    return rc;
}

static int activating(const ai_rec *r)
{
    double s = 0;
    for (int k = 0; k < r->n; k++) s += r->val[k];
    return s > 0;
}

static json_t *dbl_array(const double *v, int n)
{
    json_t *a = json_array();
    for (int k = 0; k < n; k++) json_array_append_new(a, json_real(v[k]));
    return a;
}

static json_t *tok_array(const ai_rec *r)
{
    json_t *a = json_array();
    for (int k = 0; k < r->n; k++) json_array_append_new(a, json_string(r->tok[k]));
    return a;
}

/* OAI's pooled correlation: one simulation per record, r over all tokens at once. */
static int score_simulation(llm_client *c, const char *expl, const ai_rec *r, int n, double *score, json_t **details,
                            char *err, size_t errlen)
{
    int total = 0;
    for (int i = 0; i < n; i++) total += r[i].n;
    double *x = malloc(sizeof *x * (size_t)total), *y = malloc(sizeof *y * (size_t)total);
    json_t *sims = json_array();
    int off = 0, rc = LLM_OK;
    for (int i = 0; i < n && rc == LLM_OK; i++) {
        json_t *msgs = ai_prompt_simulate(expl, &r[i]);
        llm_params p = {.temperature = 0, .max_tokens = 30 * r[i].n + 200, .json_mode = 1};
        char *reply = NULL;
        rc = llm_chat(c, msgs, &p, &reply, err, errlen);
        json_decref(msgs);
        if (rc != LLM_OK) break;
        double *pred = y + off;
        int valid = ai_parse_simulation(reply, r[i].n, pred);
        free(reply);
        memcpy(x + off, r[i].val, sizeof *x * (size_t)r[i].n);
        double ri = ai_pearson(r[i].val, pred, r[i].n);
        json_array_append_new(sims, json_pack("{s:{s:o,s:o},s:o,s:o,s:b}", "simulation", "tokens", tok_array(&r[i]),
                                              "expected_activations", dbl_array(pred, r[i].n), "true_activations",
                                              dbl_array(r[i].val, r[i].n), "ev_correlation_score", ai_json_score(ri),
                                              "parsed", valid));
        off += r[i].n;
    }
    *score = rc == LLM_OK ? ai_pearson(x, y, total) : NAN;
    free(x);
    free(y);
    *details = json_pack("{s:o}", "simulations", sims);
    return rc;
}

/* A small deterministic generator (xorshift64*), so a re-run shuffles and highlights alike. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static int score_classify(llm_client *c, int fuzz, const char *expl, const ai_rec *r, int n, double *score, json_t **details,
                          char *err, size_t errlen)
{
    uint64_t seed = 42;
    int *order = malloc(sizeof *order * (size_t)n);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rnd(&seed) % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    /* Fuzz: activating records highlight tokens >= 0.3 max; negatives highlight as many random
     * tokens as activating records light on average (Delphi's n_incorrect). */
    unsigned char **hl = calloc((size_t)n, sizeof *hl);
    int lit = 0, npos = 0;
    for (int i = 0; i < n; i++) {
        hl[i] = calloc((size_t)r[i].n, 1);
        if (!activating(&r[i])) continue;
        npos++;
        for (int k = 0; k < r[i].n; k++)
            if (r[i].val[k] >= AI_DELPHI_THRESHOLD * r[i].max && r[i].val[k] > 0) hl[i][k] = 1, lit++;
    }
    int n_incorrect = npos ? (lit + npos - 1) / npos : 1;
    for (int i = 0; i < n; i++) {
        if (activating(&r[i])) continue;
        for (int j = 0; j < n_incorrect && j < r[i].n; j++) hl[i][rnd(&seed) % (uint64_t)r[i].n] = 1;
    }
    ai_confusion m = {0};
    json_t *bd = json_array();
    int rc = LLM_OK;
    for (int b = 0; b < n && rc == LLM_OK; b += AI_CLASSIFY_BATCH) {
        int k = n - b < AI_CLASSIFY_BATCH ? n - b : AI_CLASSIFY_BATCH;
        const ai_rec *ex[AI_CLASSIFY_BATCH];
        unsigned char *h[AI_CLASSIFY_BATCH];
        for (int j = 0; j < k; j++) ex[j] = &r[order[b + j]], h[j] = hl[order[b + j]];
        json_t *msgs = ai_prompt_classify(expl, ex, h, k, fuzz);
        llm_params p = {.temperature = 0, .max_tokens = 50};
        char *reply = NULL;
        rc = llm_chat(c, msgs, &p, &reply, err, errlen);
        json_decref(msgs);
        if (rc != LLM_OK) break;
        int pred[AI_CLASSIFY_BATCH], ok = ai_parse_classify(reply, k, pred) == 0;
        free(reply);
        for (int j = 0; j < k; j++) {
            int act = activating(ex[j]);
            if (ok) ai_confusion_add(&m, act, pred[j]);
            char *text = ai_rec_text(ex[j]);
            json_array_append_new(bd, json_pack("{s:s,s:b,s:o,s:o}", "text", text, "groundTruth", act, "prediction",
                                                ok ? json_boolean(pred[j]) : json_null(), "correct",
                                                ok ? json_boolean(pred[j] == act) : json_null()));
            free(text);
        }
    }
    for (int i = 0; i < n; i++) free(hl[i]);
    free(hl);
    free(order);
    *score = rc == LLM_OK ? ai_balanced_accuracy(&m) : NAN;
    *details = json_pack("{s:o,s:{s:i,s:i,s:i,s:i}}", "breakdown", bd, "confusion", "tp", m.tp, "fn", m.fn, "tn", m.tn,
                         "fp", m.fp);
    return rc;
}

/* recall_alt: one call per record; activating records should match, negatives should not. */
static int score_recall(llm_client *c, const char *expl, const ai_rec *r, int n, double *score, json_t **details, char *err,
                        size_t errlen)
{
    ai_confusion m = {0};
    json_t *bd = json_array();
    int rc = LLM_OK;
    for (int i = 0; i < n && rc == LLM_OK; i++) {
        json_t *msgs = ai_prompt_recall(expl, &r[i]);
        llm_params p = {.temperature = 0, .max_tokens = 5000, .json_mode = 1};
        char *reply = NULL;
        rc = llm_chat(c, msgs, &p, &reply, err, errlen);
        json_decref(msgs);
        if (rc != LLM_OK) break;
        int match = 0, ok = ai_parse_recall(reply, &match) == 0, act = activating(&r[i]);
        free(reply);
        if (ok) ai_confusion_add(&m, act, match);
        char *text = ai_rec_text(&r[i]);
        json_array_append_new(bd, json_pack("{s:s,s:b,s:o}", "text", text, "activating", act, "match",
                                            ok ? json_boolean(match) : json_null()));
        free(text);
    }
    *score = rc == LLM_OK ? ai_accuracy(&m) : NAN;
    *details = json_pack("{s:o}", "breakdown", bd);
    return rc;
}

int ai_score(llm_client *c, enum ai_scorer s, const char *expl, const ai_rec *r, int n, double *score, json_t **details,
             char *err, size_t errlen)
{
    *score = NAN;
    *details = NULL;
    switch (s) {
    case AI_SCORE_SIMULATION: return score_simulation(c, expl, r, n, score, details, err, errlen);
    case AI_SCORE_FUZZ: return score_classify(c, 1, expl, r, n, score, details, err, errlen);
    case AI_SCORE_DETECTION: return score_classify(c, 0, expl, r, n, score, details, err, errlen);
    default: return score_recall(c, expl, r, n, score, details, err, errlen);
    }
}
