/* autointerp_prompt.c: see autointerp_prompt.h. Token text is written as stored, except that
 * a tab or newline inside a token (which would break the token<TAB>value lines) is written as
 * the two characters \t or \n. */
#define _GNU_SOURCE
#include "server/autointerp_prompt.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/autointerp_score.h"

/* ---- records ---- */

int ai_recs_from_json(json_t *arr, const char *what, ai_recs *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        snprintf(err, errlen, "%s: expected a non-empty array of {tokens, values}", what);
        return -1;
    }
    out->r = calloc(json_array_size(arr), sizeof *out->r);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *a = json_array_get(arr, i), *t = json_object_get(a, "tokens"), *v = json_object_get(a, "values");
        if (!json_is_array(t) || !json_is_array(v) || json_array_size(t) != json_array_size(v) || json_array_size(t) == 0) {
            snprintf(err, errlen, "%s[%zu]: expected tokens and values, arrays of the same non-zero length", what, i);
            ai_recs_free(out);
            return -1;
        }
        ai_rec *r = &out->r[out->n++];
        r->n = (int)json_array_size(t);
        r->tok = calloc((size_t)r->n, sizeof *r->tok);
        r->val = calloc((size_t)r->n, sizeof *r->val);
        for (int k = 0; k < r->n; k++) {
            const char *s = json_string_value(json_array_get(t, k));
            json_t *x = json_array_get(v, k);
            if (!s || !json_is_number(x) || !isfinite(json_number_value(x))) {
                snprintf(err, errlen, "%s[%zu].%s[%d]: expected a %s", what, i, s ? "values" : "tokens", k,
                         s ? "finite number" : "string");
                ai_recs_free(out);
                return -1;
            }
            r->tok[k] = strdup(s);
            r->val[k] = json_number_value(x);
            if (r->val[k] > r->max) {
                r->max = r->val[k];
                r->argmax = k;
            }
        }
    }
    return 0;
}

void ai_recs_free(ai_recs *rs)
{
    for (int i = 0; i < rs->n; i++) {
        for (int k = 0; k < rs->r[i].n; k++) free(rs->r[i].tok[k]);
        free(rs->r[i].tok);
        free(rs->r[i].val);
    }
    free(rs->r);
    memset(rs, 0, sizeof *rs);
}

/* ---- a growing string ---- */

typedef struct sb {
    char *s;
    size_t n, cap;
} sb;

static void sb_put(sb *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_str(sb *b, const char *s) { sb_put(b, s, strlen(s)); }

static void __attribute__((format(printf, 2, 3))) sb_fmt(sb *b, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (k >= (int)sizeof buf) k = sizeof buf - 1;
    if (k > 0) sb_put(b, buf, (size_t)k);
}

/* A token on one line: tabs and newlines made visible. */
static void sb_tok(sb *b, const char *t)
{
    for (; *t; t++) {
        if (*t == '\t') sb_str(b, "\\t");
        else if (*t == '\n') sb_str(b, "\\n");
        else sb_put(b, t, 1);
    }
}

static char *sb_take(sb *b) { return b->s ? b->s : strdup(""); }

char *ai_rec_text(const ai_rec *r)
{
    sb b = {0};
    for (int k = 0; k < r->n; k++) sb_str(&b, r->tok[k]);
    return sb_take(&b);
}

static void msg(json_t *m, const char *role, const char *content)
{
    json_array_append_new(m, json_pack("{s:s,s:s}", "role", role, "content", content));
}

static void msg_sb(json_t *m, const char *role, sb *b)
{
    char *s = sb_take(b);
    msg(m, role, s);
    free(s);
    memset(b, 0, sizeof *b);
}

/* ---- oai_token-act-pair ---- */

static const char OAI_SYSTEM[] =
    "We are studying neurons in a neural network. Each neuron responds to some particular thing in a short "
    "document. Look at the parts of the document the neuron activates for and summarize in a single sentence what "
    "the neuron is looking for. Do not list examples of words.\n\n"
    "The activation format is token<tab>activation. Activation values range from 0 to 10. A neuron finding what "
    "it is looking for is represented by a non-zero activation value. The higher the activation value, the "
    "stronger the match.";
static const char OAI_PREFIX[] = "the main thing this neuron does is find";

/* saed's few-shot neurons: tokens and 0..10 values, one record each. */
typedef struct shot {
    const char *toks[12];
    int vals[12];
    const char *expl;
} shot;

static const shot oai_shots[AI_OAI_FEWSHOTS] = {
    {{"She", " was", " running", " and", " singing", " while", " he", " sat", NULL}, {0, 0, 9, 0, 8, 0, 0, 0},
     "present tense verbs ending in 'ing'"},
    {{"The", " patient", " had", " a", " fever", " and", " a", " sore", " throat", NULL}, {0, 1, 0, 0, 10, 0, 0, 6, 7},
     "words related to physical medical conditions"},
    {{"Our", " neighbors", " came", " together", " for", " the", " town", " fair", NULL}, {0, 4, 0, 7, 0, 0, 6, 5},
     "phrases related to community"},
};

/* <start>\ntok\tv\n...<end>\n for records with integer values v(i, k). */
static void oai_records(sb *b, const ai_rec *r, int n, double max, int zeros_only_nonzero)
{
    for (int i = 0; i < n; i++) {
        sb_str(b, "<start>\n");
        for (int k = 0; k < r[i].n; k++) {
            int v = ai_norm_floor(r[i].val[k], max);
            if (zeros_only_nonzero && v == 0) continue;
            sb_tok(b, r[i].tok[k]);
            sb_fmt(b, "\t%d\n", v);
        }
        sb_str(b, "<end>\n");
    }
}

static void oai_shot_record(sb *b, const shot *s)
{
    sb_str(b, "<start>\n");
    for (int k = 0; s->toks[k]; k++) {
        sb_tok(b, s->toks[k]);
        sb_fmt(b, "\t%d\n", s->vals[k]);
    }
    sb_str(b, "<end>\n");
}

json_t *ai_prompt_oai(const ai_rec *r, int n)
{
    json_t *m = json_array();
    msg(m, "system", OAI_SYSTEM);
    sb b = {0};
    for (int i = 0; i < AI_OAI_FEWSHOTS; i++) {
        sb_fmt(&b, "\n\nNeuron %d\nActivations:\n", i + 1);
        oai_shot_record(&b, &oai_shots[i]);
        sb_fmt(&b, "\nExplanation of neuron %d behavior: %s", i + 1, OAI_PREFIX);
        msg_sb(m, "user", &b);
        sb_fmt(&b, " %s.", oai_shots[i].expl);
        msg_sb(m, "assistant", &b);
    }
    /* The max over the records shown together (OAI's calculate_max_activation). */
    double max = 0;
    int total = 0, nonzero = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].max > max) max = r[i].max;
        total += r[i].n;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < r[i].n; k++) nonzero += ai_norm_floor(r[i].val[k], max) > 0;
    sb_fmt(&b, "\n\nNeuron %d\nActivations:\n", AI_OAI_FEWSHOTS + 1);
    oai_records(&b, r, n, max, 0);
    /* Sparse activations are repeated without the zeros, as OAI's explainer does below 20%. */
    if (total > 0 && nonzero * 5 < total) {
        sb_str(&b, "\nSame activations, but with all zeros filtered out:\n");
        oai_records(&b, r, n, max, 1);
    }
    sb_fmt(&b, "\nExplanation of neuron %d behavior: %s", AI_OAI_FEWSHOTS + 1, OAI_PREFIX);
    msg_sb(m, "user", &b);
    return m;
}

/* ---- np_max-act-logits ---- */

static const char LOGITS_SYSTEM[] =
    "You explain what a neuron in a language model does, in 1 to 6 words. You get four lists: the tokens where "
    "the neuron is most active (MAX_ACTIVATING_TOKENS), the tokens right after them "
    "(TOKENS_AFTER_MAX_ACTIVATING_TOKEN), the tokens the neuron most promotes as the next token "
    "(TOP_POSITIVE_LOGITS), and the texts around its strongest activations (TOP_ACTIVATING_TEXTS).\n"
    "Try these methods in order and stop at the first one that works:\n"
    "1. If the max activating tokens are mostly one token or one kind of token, explain with that token.\n"
    "2. If the tokens after the max activating tokens share a pattern, answer: say [the pattern].\n"
    "3. If the top positive logits share a theme, explain with it in 1 to 3 words.\n"
    "4. Otherwise explain with the theme of the top activating texts.\n"
    "Do not pad the explanation (no \"words related to\", \"concepts of\") and do not mention tokens or patterns. "
    "End your answer with the method you used, why, and the explanation.";

typedef struct logit_shot {
    const char *max_tok, *after, *logits, *texts, *answer;
} logit_shot;

static const logit_shot logit_shots[AI_LOGITS_FEWSHOTS] = {
    {"with\nwith\nwith", "w\nwh\nwa", "wolf\nwhale\nwater", "walked with wet\nwith wide\nwent with warm",
     "Method 2: the next tokens start with w.\nExplanation: say \"w\" words"},
    {"apple\nbanana\npear", "pie\nsplit\ntree", "mango\ncherry\nplum", "an apple pie\na banana split\nthe pear tree",
     "Method 1: the max activating tokens are fruits.\nExplanation: fruits"},
    {"cats\nbread\nsalt", "and\nand\nand", "dogs\nbutter\npepper", "cats and dogs\nbread and butter\nsalt and pepper",
     "Method 2: the next token is always and.\nExplanation: and"},
    {"2\nplus\n+", "2\ntwo\n2", "4\nfour\n=", "2 + 2\ntwo plus two\n2 plus 2",
     "Method 3: the top logits are the sum 4.\nExplanation: 4"},
};

static void trim_into(sb *b, const char *s)
{
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) n--;
    sb_put(b, s, n);
}

json_t *ai_prompt_logits(const ai_rec *r, int n, json_t *pos_str)
{
    json_t *m = json_array();
    msg(m, "system", LOGITS_SYSTEM);
    sb b = {0};
    for (int i = 0; i < AI_LOGITS_FEWSHOTS; i++) {
        const logit_shot *s = &logit_shots[i];
        sb_fmt(&b, "Neuron %d\n\n<MAX_ACTIVATING_TOKENS>\n%s\n</MAX_ACTIVATING_TOKENS>\n\n", i + 1, s->max_tok);
        sb_fmt(&b, "<TOKENS_AFTER_MAX_ACTIVATING_TOKEN>\n%s\n</TOKENS_AFTER_MAX_ACTIVATING_TOKEN>\n\n", s->after);
        sb_fmt(&b, "<TOP_POSITIVE_LOGITS>\n%s\n</TOP_POSITIVE_LOGITS>\n\n", s->logits);
        sb_fmt(&b, "<TOP_ACTIVATING_TEXTS>\n%s\n</TOP_ACTIVATING_TEXTS>\n\nExplanation of neuron %d behavior: ", s->texts, i + 1);
        msg_sb(m, "user", &b);
        msg(m, "assistant", s->answer);
    }
    int t = AI_LOGITS_FEWSHOTS + 1;
    sb_fmt(&b, "Neuron %d\n\n<MAX_ACTIVATING_TOKENS>\n", t);
    for (int i = 0; i < n; i++) {
        trim_into(&b, r[i].tok[r[i].argmax]);
        sb_str(&b, "\n");
    }
    sb_str(&b, "</MAX_ACTIVATING_TOKENS>\n\n<TOKENS_AFTER_MAX_ACTIVATING_TOKEN>\n");
    for (int i = 0; i < n; i++) {
        if (r[i].argmax + 1 < r[i].n) trim_into(&b, r[i].tok[r[i].argmax + 1]);
        sb_str(&b, "\n");
    }
    sb_str(&b, "</TOKENS_AFTER_MAX_ACTIVATING_TOKEN>\n\n<TOP_POSITIVE_LOGITS>\n");
    for (size_t i = 0; i < json_array_size(pos_str); i++) {
        /* SentencePiece's word marker reads as a space */
        const char *s = json_string_value(json_array_get(pos_str, i));
        sb l = {0};
        for (; s && *s; s++) {
            if (!strncmp(s, "\xe2\x96\x81", 3)) {
                sb_str(&l, " ");
                s += 2;
            } else sb_put(&l, s, 1);
        }
        sb_str(&b, l.s ? l.s : "");
        free(l.s);
        sb_str(&b, "\n");
    }
    sb_str(&b, "</TOP_POSITIVE_LOGITS>\n\n<TOP_ACTIVATING_TEXTS>\n");
    for (int i = 0; i < n; i++) {
        int lo = r[i].argmax - 24 < 0 ? 0 : r[i].argmax - 24, hi = r[i].argmax + 24 >= r[i].n ? r[i].n - 1 : r[i].argmax + 24;
        for (int k = lo; k <= hi; k++)
            for (const char *s = r[i].tok[k]; *s; s++) sb_str(&b, *s == '\n' ? "  " : (char[2]){*s, 0});
        sb_str(&b, "\n");
    }
    sb_fmt(&b, "</TOP_ACTIVATING_TEXTS>\n\nExplanation of neuron %d behavior: ", t);
    msg_sb(m, "user", &b);
    return m;
}

/* ---- Delphi default explainer ---- */

static const char DELPHI_SYSTEM[] =
    "You are a careful AI researcher studying a latent of a neural network. You will read text examples in which "
    "parts are marked between delimiters like <<this>>; the marked tokens are where the latent is active. An "
    "example may be followed by a line listing the marked tokens with how strongly the latent fired on them "
    "(0 to 10).\n"
    "Write a short description of what the marked tokens have in common, taking their context into account. Do "
    "not list the examples and do not mention the delimiters.\n"
    "The last line of your response must be the formatted explanation, using [EXPLANATION]:";

typedef struct delphi_shot {
    const char *examples, *answer;
} delphi_shot;

static const delphi_shot delphi_shots[AI_DELPHI_FEWSHOTS] = {
    {"Example 1: it was <<raining cats and dogs>> all night\nActivations: (\"raining\" : 8), (\" cats\" : 9)\n"
     "Example 2: he <<spilled the beans>> at dinner\nActivations: (\"spilled\" : 7), (\" beans\" : 10)\n",
     "The marked spans are idioms whose meaning is not literal.\n[EXPLANATION]: common idioms"},
    {"Example 1: this road is <<longer>> than that one\nActivations: (\" longer\" : 10)\n"
     "Example 2: she ran <<faster>> than me\nActivations: (\" faster\" : 9)\n",
     "The marked words are comparative adjectives ending in er.\n[EXPLANATION]: comparative adjectives ending in \"er\""},
    {"Example 1: a <<box>> of apples\nActivations: (\" box\" : 9)\n"
     "Example 2: the <<jar>> was full of honey\nActivations: (\" jar\" : 10)\n",
     "The marked nouns are containers.\n[EXPLANATION]: nouns for containers"},
};

json_t *ai_prompt_delphi(const ai_rec *r, int n, double global_max)
{
    json_t *m = json_array();
    msg(m, "system", DELPHI_SYSTEM);
    for (int i = 0; i < AI_DELPHI_FEWSHOTS; i++) {
        char *u = NULL;
        if (asprintf(&u, "\n%s\n", delphi_shots[i].examples) < 0) u = NULL;
        msg(m, "user", u ? u : "");
        free(u);
        msg(m, "assistant", delphi_shots[i].answer);
    }
    sb b = {0};
    sb_str(&b, "\n");
    for (int i = 0; i < n; i++) {
        double thr = AI_DELPHI_THRESHOLD * r[i].max;
        sb_fmt(&b, "Example %d: ", i + 1);
        for (int k = 0; k < r[i].n; k++) {
            int on = r[i].max > 0 && r[i].val[k] > thr, prev = k > 0 && r[i].max > 0 && r[i].val[k - 1] > thr;
            int next = k + 1 < r[i].n && r[i].max > 0 && r[i].val[k + 1] > thr;
            if (on && !prev) sb_str(&b, "<<");
            sb_str(&b, r[i].tok[k]);
            if (on && !next) sb_str(&b, ">>");
        }
        sb_str(&b, "\nActivations: ");
        int listed = 0;
        for (int k = 0; k < r[i].n && listed < 11; k++) {
            if (!(r[i].max > 0 && r[i].val[k] > thr)) continue;
            sb_str(&b, listed ? ", (\"" : "(\"");
            sb_tok(&b, r[i].tok[k]);
            sb_fmt(&b, "\" : %d)", ai_norm_ceil(r[i].val[k], global_max));
            listed++;
        }
        sb_str(&b, "\n");
    }
    msg_sb(m, "user", &b);
    return m;
}

/* ---- explanation parsing ---- */

static int finish(const char *s, size_t len, char *out, size_t n)
{
    while (len && isspace((unsigned char)*s)) s++, len--;
    while (len && (isspace((unsigned char)s[len - 1]) || s[len - 1] == '.')) len--;
    if (len == 0) return -1;
    if (len >= n) len = n - 1;
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

int ai_parse_explanation(enum ai_explainer m, const char *reply, char *out, size_t n)
{
    if (!reply) return -1;
    const char *s = reply;
    if (m == AI_EXPLAIN_OAI) {
        while (isspace((unsigned char)*s)) s++;
        if (!strncasecmp(s, OAI_PREFIX, strlen(OAI_PREFIX))) s += strlen(OAI_PREFIX);
        return finish(s, strlen(s), out, n);
    }
    if (m == AI_EXPLAIN_LOGITS) {
        for (const char *p = strstr(reply, "Explanation: "); p; p = strstr(p + 1, "Explanation: ")) s = p + 13;
        /* the model named its method instead of answering */
        for (const char *p = s; (p = strcasestr(p, "method ")); p++)
            if (isdigit((unsigned char)p[7])) return -1;
        const char *nl = strchr(s, '\n');
        return finish(s, nl ? (size_t)(nl - s) : strlen(s), out, n);
    }
    const char *p = strstr(reply, "[EXPLANATION]:");
    if (!p) return -1;
    s = p + 14;
    const char *nl = strchr(s, '\n');
    return finish(s, nl ? (size_t)(nl - s) : strlen(s), out, n);
}

/* ---- JSON simulator ---- */

static const char SIM_SYSTEM[] =
    "We are studying neurons in a neural network. Each neuron responds to some particular thing in a short "
    "document. You get an explanation of what a neuron looks for (to_find) and a document split into tokens. "
    "Predict how strongly the neuron fires on each token. You will print, in valid json, the same tokens "
    "verbatim in the same order, with the activation values filled in as integer values from 0 to 10 (most are "
    "0). Do not use negative numbers. Pay attention to each token's context in the document.";

typedef struct sim_shot {
    const char *expl;
    const char *toks[10];
    int vals[10];
} sim_shot;

static const sim_shot sim_shots[AI_SIM_FEWSHOTS] = {
    {"the word \"cat\" before the word \"laptop\"", {"The", " cat", " sat", " on", " my", " laptop", NULL}, {0, 10, 0, 0, 0, 0}},
    {"numbers of years", {"In", " 1999", " we", " moved", " to", " Paris", NULL}, {0, 10, 0, 0, 0, 0}},
};

static char *sim_json(const char *expl, const char *const *toks, const int *vals, int n)
{
    sb doc = {0};
    for (int k = 0; k < n; k++) sb_str(&doc, toks[k]);
    json_t *a = json_array();
    for (int k = 0; k < n; k++)
        json_array_append_new(a, json_pack("{s:s,s:o}", "token", toks[k], "activation", vals ? json_integer(vals[k]) : json_null()));
    json_t *o = json_pack("{s:s,s:s,s:o}", "to_find", expl, "document", doc.s ? doc.s : "", "activations", a);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    free(doc.s);
    return s;
}

json_t *ai_prompt_simulate(const char *expl, const ai_rec *r)
{
    json_t *m = json_array();
    msg(m, "system", SIM_SYSTEM);
    for (int i = 0; i < AI_SIM_FEWSHOTS; i++) {
        int n = 0;
        while (sim_shots[i].toks[n]) n++;
        char *u = sim_json(sim_shots[i].expl, sim_shots[i].toks, NULL, n), *a = sim_json(sim_shots[i].expl, sim_shots[i].toks, sim_shots[i].vals, n);
        msg(m, "user", u);
        msg(m, "assistant", a);
        free(u);
        free(a);
    }
    char *u = sim_json(expl, (const char *const *)r->tok, NULL, r->n);
    msg(m, "user", u);
    free(u);
    return m;
}

int ai_parse_simulation(const char *reply, int n, double *pred)
{
    for (int k = 0; k < n; k++) pred[k] = 0;
    json_t *o = reply ? json_loads(reply, 0, NULL) : NULL;
    json_t *a = json_object_get(o, "activations");
    int ok = json_is_array(a) && (int)json_array_size(a) == n;
    for (int k = 0; ok && k < n; k++) {
        json_t *e = json_array_get(a, k), *v = json_object_get(e, "activation");
        if (!json_object_get(e, "token") || !json_is_number(v)) continue;
        double x = json_number_value(v);
        pred[k] = (x >= 0 && x <= 10) ? x : 0;
    }
    json_decref(o);
    return ok;
}

/* ---- Delphi fuzz / detection ---- */

static const char CLASSIFY_SYSTEM[] =
    "You are an intelligent and meticulous linguistics researcher. You get an explanation of a latent of text "
    "and a list of text examples. For each example, return 1 if the explanation %s, or 0 if it does not. "
    "%sReturn your response as a valid Python list with one value per example, for example [1, 0, 0, 1, 0]. Do not "
    "return anything else besides a Python list.";

typedef struct cls_shot {
    const char *expl;
    const char *det[AI_CLASSIFY_BATCH], *fuzz[AI_CLASSIFY_BATCH];
    const char *det_answer, *fuzz_answer;
} cls_shot;

static const cls_shot cls_shots[AI_CLASSIFY_FEWSHOTS] = {
    {"words about the weather",
     {"it rained all day", "the stock price fell", "a cold wind blew", "she read a book", "snow covered the roofs"},
     {"it <<rained>> all day", "the <<stock>> price fell", "a cold <<wind>> blew", "she <<read>> a book", "<<snow>> covered the roofs"},
     "[1, 0, 1, 0, 1]", "[1, 0, 1, 0, 1]"},
    {"the number after \"page\"",
     {"see page 12 for details", "he turned the page", "on page 3 we learn", "a blank sheet", "page 40 is missing"},
     {"see page <<12>> for details", "he <<turned>> the page", "on page <<3>> we learn", "a <<blank>> sheet", "page <<40>> is missing"},
     "[1, 0, 1, 0, 1]", "[1, 0, 1, 0, 1]"},
};

json_t *ai_prompt_classify(const char *expl, const ai_rec *const *ex, unsigned char *const *hl, int k, int fuzz)
{
    json_t *m = json_array();
    char sys[sizeof CLASSIFY_SYSTEM + 400];
    snprintf(sys, sizeof sys, CLASSIFY_SYSTEM,
             fuzz ? "is correct for every token marked between << and >> in the example" : "describes the example",
             fuzz ? "Tokens are marked with << and >>; an example is correct only when all its marked tokens fit the "
                    "explanation. " : "");
    msg(m, "system", sys);
    sb b = {0};
    for (int i = 0; i < AI_CLASSIFY_FEWSHOTS; i++) {
        sb_fmt(&b, "Latent explanation: %s\n\nText examples:\n\n", cls_shots[i].expl);
        for (int j = 0; j < AI_CLASSIFY_BATCH; j++)
            sb_fmt(&b, "Example %d: %s\n", j, fuzz ? cls_shots[i].fuzz[j] : cls_shots[i].det[j]);
        msg_sb(m, "user", &b);
        msg(m, "assistant", fuzz ? cls_shots[i].fuzz_answer : cls_shots[i].det_answer);
    }
    sb_fmt(&b, "Latent explanation: %s\n\nText examples:\n\n", expl);
    for (int j = 0; j < k; j++) {
        sb_fmt(&b, "Example %d: ", j);
        for (int t = 0; t < ex[j]->n; t++) {
            int on = fuzz && hl[j][t], prev = fuzz && t > 0 && hl[j][t - 1], next = fuzz && t + 1 < ex[j]->n && hl[j][t + 1];
            if (on && !prev) sb_str(&b, "<<");
            sb_str(&b, ex[j]->tok[t]);
            if (on && !next) sb_str(&b, ">>");
        }
        sb_str(&b, "\n");
    }
    msg_sb(m, "user", &b);
    return m;
}

int ai_parse_classify(const char *reply, int k, int *pred)
{
    const char *a = reply ? strchr(reply, '[') : NULL, *z = a ? strchr(a, ']') : NULL;
    if (!z) return -1;
    char *text = strndup(a, (size_t)(z - a + 1));
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    int ok = json_is_array(j) && (int)json_array_size(j) == k;
    for (int i = 0; ok && i < k; i++) {
        json_t *v = json_array_get(j, i);
        if (!json_is_integer(v) || (json_integer_value(v) != 0 && json_integer_value(v) != 1)) ok = 0;
        else pred[i] = (int)json_integer_value(v);
    }
    json_decref(j);
    return ok ? 0 : -1;
}

/* ---- recall_alt ---- */

static const char RECALL_SYSTEM[] =
    "You check explanations of a neuron in a language model. You get the explanation and one text as a list of "
    "tokens with the neuron's activation on each (0 = silent; values are normalised to 0..10). Decide whether the "
    "neuron's activations on this text match the explanation: a text where the neuron is silent matches only if "
    "nothing in it fits the explanation. Reply in JSON: {\"match\": true or false, \"reason\": \"...\"}.";

json_t *ai_prompt_recall(const char *expl, const ai_rec *r)
{
    json_t *m = json_array();
    msg(m, "system", RECALL_SYSTEM);
    json_t *a = json_array();
    for (int k = 0; k < r->n; k++)
        json_array_append_new(a, json_pack("{s:s,s:f}", "token", r->tok[k], "activation",
                                           r->max > 0 ? round(r->val[k] * 10.0 / r->max * 1000) / 1000 : 0.0));
    json_t *o = json_pack("{s:o,s:s}", "activations", a, "explanation", expl);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    msg(m, "user", s);
    free(s);
    json_decref(o);
    return m;
}

int ai_parse_recall(const char *reply, int *match)
{
    json_t *o = reply ? json_loads(reply, 0, NULL) : NULL;
    json_t *v = json_object_get(o, "match");
    int ok = json_is_boolean(v);
    if (ok) *match = json_is_true(v);
    json_decref(o);
    return ok ? 0 : -1;
}
