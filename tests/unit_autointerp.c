/* unit_autointerp.c: AutoInterp's pure parts with hand-computed values: the 0-10 rules, pooled
 * Pearson r, balanced accuracy, the prompts' structure (few-shot counts, record formatting,
 * the sparse block, << >> marking) and the reply parsers' rules. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server/autointerp.h"
#include "server/autointerp_prompt.h"
#include "server/autointerp_score.h"
#include "tests/t.h"

TEST(unit_autointerp_normalise)
{
    CHECK_INT(ai_norm_floor(0.35, 1.0), 3);
    CHECK_INT(ai_norm_floor(1.0, 1.0), 10);
    CHECK_INT(ai_norm_floor(0.099, 1.0), 0);
    CHECK_INT(ai_norm_floor(-1, 1.0), 0);
    CHECK_INT(ai_norm_floor(5, 0), 0);
    CHECK_INT(ai_norm_ceil(0.01, 1.0), 1);
    CHECK_INT(ai_norm_ceil(0, 1.0), 0);
    CHECK_INT(ai_norm_ceil(2, 1.0), 10);
    CHECK_INT(ai_norm_ceil(0.35, 1.0), 4);
}

TEST(unit_autointerp_scores)
{
    /* x = 1..4, y = 2,4,5,9: sxy 11, sxx 5, syy 26 -> 11/sqrt(130) */
    double x[] = {1, 2, 3, 4}, y[] = {2, 4, 5, 9}, c[] = {3, 3, 3, 3};
    CHECK_NEAR(ai_pearson(x, y, 4), 0.9647638212377322, 1e-12);
    CHECK(isnan(ai_pearson(x, c, 4)));
    CHECK(isnan(ai_pearson(x, y, 1)));
    ai_confusion m = {0};
    int act[] = {1, 1, 1, 1, 1, 0, 0, 0, 0, 0}, pred[] = {1, 1, 1, 1, 0, 0, 0, 0, 1, 1};
    for (int i = 0; i < 10; i++) ai_confusion_add(&m, act[i], pred[i]);
    CHECK_INT(m.tp, 4);
    CHECK_INT(m.fp, 2);
    CHECK_NEAR(ai_balanced_accuracy(&m), 0.5 * (0.8 + 0.6), 1e-12);
    CHECK_NEAR(ai_accuracy(&m), 0.7, 1e-12);
    ai_confusion one = {.tp = 3};
    CHECK(isnan(ai_balanced_accuracy(&one)));
    json_t *n = ai_json_score(NAN);
    CHECK(json_is_null(n));
    json_decref(n);
}

static void recs(const char *json, ai_recs *rs)
{
    char err[200];
    json_t *j = json_loads(json, 0, NULL);
    CHECK_INT(ai_recs_from_json(j, "activations", rs, err, sizeof err), 0);
    json_decref(j);
}

static const char *content(json_t *m, size_t i) { return json_string_value(json_object_get(json_array_get(m, i), "content")); }

TEST(unit_autointerp_prompts)
{
    ai_recs rs;
    recs("[{\"tokens\":[\"a\",\" b\",\" c\"],\"values\":[0,0.5,2]},{\"tokens\":[\"x\",\"\\ty\"],\"values\":[0,1]}]", &rs);
    json_t *m = ai_prompt_oai(rs.r, rs.n);
    CHECK_INT(json_array_size(m), 1 + 2 * AI_OAI_FEWSHOTS + 1);
    const char *u = content(m, json_array_size(m) - 1);
    /* max 2 over both records: 0.5 -> 2, 2 -> 10, 1 -> 5; a tab inside a token is escaped */
    CHECK_CONTAINS(u, "\n\nNeuron 4\nActivations:\n<start>\na\t0\n b\t2\n c\t10\n<end>\n<start>\nx\t0\n\\ty\t5\n<end>\n");
    CHECK_CONTAINS(u, "Explanation of neuron 4 behavior: the main thing this neuron does is find");
    CHECK(strstr(u, "zeros filtered out") == NULL);   /* 3 of 5 non-zero */
    CHECK_STR(json_string_value(json_object_get(json_array_get(m, 2), "role")), "assistant");
    json_decref(m);
    ai_recs_free(&rs);
    /* 1 of 6 non-zero (< 20%): the zero-filtered block follows */
    recs("[{\"tokens\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\"],\"values\":[0,0,3,0,0,0]}]", &rs);
    m = ai_prompt_oai(rs.r, rs.n);
    CHECK_CONTAINS(content(m, json_array_size(m) - 1), "Same activations, but with all zeros filtered out:\n<start>\nc\t10\n<end>\n");
    json_decref(m);
    /* logits: argmax token, the next one, logits with SentencePiece's marker as a space */
    json_t *pos = json_pack("[s,s]", "\xe2\x96\x81" "dog", "cat");
    m = ai_prompt_logits(rs.r, rs.n, pos);
    CHECK_INT(json_array_size(m), 1 + 2 * AI_LOGITS_FEWSHOTS + 1);
    u = content(m, json_array_size(m) - 1);
    CHECK_CONTAINS(u, "Neuron 5\n\n<MAX_ACTIVATING_TOKENS>\nc\n</MAX_ACTIVATING_TOKENS>");
    CHECK_CONTAINS(u, "<TOKENS_AFTER_MAX_ACTIVATING_TOKEN>\nd\n</");
    CHECK_CONTAINS(u, "<TOP_POSITIVE_LOGITS>\n dog\ncat\n</TOP_POSITIVE_LOGITS>");
    CHECK_CONTAINS(u, "<TOP_ACTIVATING_TEXTS>\nabcdef\n</");
    json_decref(pos);
    json_decref(m);
    ai_recs_free(&rs);
    /* Delphi: runs above 0.3 max in << >>, ceil-normalised values against the global max */
    recs("[{\"tokens\":[\"a\",\" b\",\" c\",\" d\"],\"values\":[0,1,0.9,0.2]}]", &rs);
    m = ai_prompt_delphi(rs.r, rs.n, 2.0);
    CHECK_INT(json_array_size(m), 1 + 2 * AI_DELPHI_FEWSHOTS + 1);
    CHECK_STR(content(m, json_array_size(m) - 1), "\nExample 1: a<< b c>> d\nActivations: (\" b\" : 5), (\" c\" : 5)\n");
    json_decref(m);
    /* simulator: few-shots, then the record with null activations */
    m = ai_prompt_simulate("birds", &rs.r[0]);
    CHECK_INT(json_array_size(m), 1 + 2 * AI_SIM_FEWSHOTS + 1);
    CHECK_STR(content(m, json_array_size(m) - 1),
              "{\"to_find\":\"birds\",\"document\":\"a b c d\",\"activations\":[{\"token\":\"a\",\"activation\":null},"
              "{\"token\":\" b\",\"activation\":null},{\"token\":\" c\",\"activation\":null},{\"token\":\" d\",\"activation\":null}]}");
    json_decref(m);
    ai_recs_free(&rs);
}

TEST(unit_autointerp_parse)
{
    char out[200];
    CHECK_INT(ai_parse_explanation(AI_EXPLAIN_OAI, " cats and dogs.", out, sizeof out), 0);
    CHECK_STR(out, "cats and dogs");
    CHECK_INT(ai_parse_explanation(AI_EXPLAIN_OAI, "the main thing this neuron does is find cats.", out, sizeof out), 0);
    CHECK_STR(out, "cats");
    CHECK_INT(ai_parse_explanation(AI_EXPLAIN_OAI, "  . ", out, sizeof out), -1);
    CHECK_INT(ai_parse_explanation(AI_EXPLAIN_LOGITS, "Method 1: same token.\nExplanation: wrong\nExplanation: fruits.", out, sizeof out), 0);
    CHECK_STR(out, "fruits");
    CHECK_INT(ai_parse_explanation(AI_EXPLAIN_LOGITS, "Explanation: method 2", out, sizeof out), -1);
    CHECK_INT(ai_parse_explanation(AI_EXPLAIN_DELPHI, "thinking...\n[EXPLANATION]: idioms\n", out, sizeof out), 0);
    CHECK_STR(out, "idioms");
    CHECK_INT(ai_parse_explanation(AI_EXPLAIN_DELPHI, "idioms", out, sizeof out), -1);
    double p[3];
    CHECK_INT(ai_parse_simulation("{\"activations\":[{\"token\":\"a\",\"activation\":3},{\"token\":\"b\",\"activation\":11},"
                                  "{\"token\":\"c\",\"activation\":\"7\"}]}", 3, p), 1);
    CHECK_NEAR(p[0], 3, 0);
    CHECK_NEAR(p[1], 0, 0);   /* out of [0, 10] */
    CHECK_NEAR(p[2], 0, 0);   /* not a number */
    p[0] = 5;
    CHECK_INT(ai_parse_simulation("{\"activations\":[{\"token\":\"a\",\"activation\":3}]}", 3, p), 0);
    CHECK_NEAR(p[0], 0, 0);   /* wrong length: all zeros */
    CHECK_INT(ai_parse_simulation("{not json", 3, p), 0);
    int k[5];
    CHECK_INT(ai_parse_classify("Answer: [1, 0, 1] and [0]", 3, k), 0);
    CHECK_INT(k[0] * 100 + k[1] * 10 + k[2], 101);
    CHECK_INT(ai_parse_classify("[1, 0, 1]", 5, k), -1);
    CHECK_INT(ai_parse_classify("[1, 2, 1]", 3, k), -1);
    CHECK_INT(ai_parse_classify("none", 3, k), -1);
    int match = -1;
    CHECK_INT(ai_parse_recall("{\"match\":true,\"reason\":\"x\"}", &match), 0);
    CHECK_INT(match, 1);
    CHECK_INT(ai_parse_recall("{\"match\":\"yes\"}", &match), -1);
}
