/* cli_engine.c: `saed tokenize`, `saed forward` and `saed encode` as an operator runs them. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/srv.h"
#include "tests/t.h"

#define TINY "tests/data/models/tiny-a"

TEST(cli_tokenize_and_forward)
{
    static char out[4 << 20], err[4096];
    CHECK_INT(saed_run((const char *const[]){"tokenize", "--model", TINY, "--text", "Hello\n\nworld", NULL}, out,
                       sizeof out, err, sizeof err), 0);
    CHECK_CONTAINS(out, "\"ids\":[15496,198,198,6894]");
    CHECK_CONTAINS(out, "\"tokens\":[\"Hello\",\"\\n\",\"\\n\",\"world\"]");

    CHECK_INT(saed_run((const char *const[]){"forward", "--model", TINY, "--text", "The quick brown fox jumps over the lazy dog.",
                                             "--prepend-bos", "--hook", "blocks.1.hook_resid_pre", "--hook",
                                             "blocks.0.attn.hook_pattern", "--processing", "center_writing_weights", NULL},
                       out, sizeof out, err, sizeof err), 0);
    json_t *j = json_loads(out, 0, NULL);
    CHECK(j != NULL);
    json_t *ids = json_object_get(j, "ids"), *am = json_object_get(j, "argmax");
    CHECK_INT(json_array_size(ids), 11);
    CHECK_INT(json_integer_value(json_array_get(ids, 0)), 50256);
    /* Reference argmax of fox_bos (tests/data/gpt2/forward_cases.jsonl). */
    static const int ref[] = {42474, 7810, 31684, 10174, 10174, 49313, 49313, 39357, 49313, 43725, 3255};
    for (int i = 0; i < 11; i++) CHECK_INT(json_integer_value(json_array_get(am, (size_t)i)), ref[i]);
    CHECK_INT(json_array_size(json_object_get(j, "logits_last")), 50257);
    json_t *h = json_object_get(json_object_get(j, "hooks"), "blocks.1.hook_resid_pre");
    CHECK_INT(json_array_size(h), 11);
    CHECK_INT(json_array_size(json_array_get(h, 0)), 64);
    double s = 0; /* centered: each row sums to ~0 */
    for (size_t i = 0; i < 64; i++) s += json_number_value(json_array_get(json_array_get(h, 3), i));
    CHECK_NEAR(s, 0.0, 1e-4);
    json_t *p = json_object_get(json_object_get(j, "hooks"), "blocks.0.attn.hook_pattern");
    CHECK_INT(json_array_size(p), 4);                          /* heads */
    CHECK_INT(json_array_size(json_array_get(p, 0)), 11);      /* queries */
    CHECK_NEAR(json_number_value(json_array_get(json_array_get(json_array_get(p, 2), 0), 0)), 1.0, 1e-6);
    json_decref(j);

    CHECK_INT(saed_run((const char *const[]){"forward", "--model", TINY, "--ids", "[50256, 464]", NULL}, out, sizeof out,
                       err, sizeof err), 0);
    CHECK_CONTAINS(out, "\"ids\":[50256,464]");
}

TEST(cli_forward_errors_name_the_problem)
{
    static char out[1 << 16], err[4096];
    CHECK_INT(saed_run((const char *const[]){"forward", "--model", TINY, "--ids", "[1]", "--hook", "blocks.7.hook_resid_pre", NULL},
                       out, sizeof out, err, sizeof err), 1);
    CHECK_CONTAINS(err, "layer 7 out of range");
    CHECK_INT(saed_run((const char *const[]){"forward", "--model", TINY, "--ids", "[1]", "--hook", "blocks.0.hook_foo", NULL},
                       out, sizeof out, err, sizeof err), 1);
    CHECK_CONTAINS(err, "unknown hook 'hook_foo'");
    CHECK_INT(saed_run((const char *const[]){"forward", "--model", "/nonexistent", "--ids", "[1]", NULL}, out, sizeof out,
                       err, sizeof err), 1);
    CHECK_CONTAINS(err, "/nonexistent/config.json");
    CHECK_INT(saed_run((const char *const[]){"forward", "--model", TINY, "--ids", "[1, 99999999]", NULL}, out, sizeof out,
                       err, sizeof err), 1);
    CHECK_CONTAINS(err, "outside the vocabulary");
    CHECK_INT(saed_run((const char *const[]){"forward", "--model", TINY, "--ids", "[1,", NULL}, out, sizeof out, err,
                       sizeof err), 1);
    CHECK_CONTAINS(err, "--ids");
    CHECK_INT(saed_run((const char *const[]){"forward", "--model", TINY, "--ids", "[1]", "--processing", "fold", NULL},
                       out, sizeof out, err, sizeof err), 2);
    CHECK_CONTAINS(err, "--processing 'fold'");
    CHECK_INT(saed_run((const char *const[]){"forward", "--model", TINY, NULL}, out, sizeof out, err, sizeof err), 2);
    CHECK_INT(saed_run((const char *const[]){"tokenize", "--model", "tests/data", "--text", "x", NULL}, out, sizeof out,
                       err, sizeof err), 1);
    CHECK_CONTAINS(err, "tokenizer");
}

/* The SAELens reference case for one SAE, sequence and input mode. */
static json_t *sae_case(const char *sae, const char *name, const char *mode)
{
    FILE *f = fopen("tests/data/sae/sae_cases.jsonl", "r");
    char *line = NULL;
    size_t cap = 0;
    json_t *found = NULL;
    while (f && !found && getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        if (!strcmp(json_string_value(json_object_get(j, "sae")), sae) &&
            !strcmp(json_string_value(json_object_get(j, "case")), name) &&
            !strcmp(json_string_value(json_object_get(j, "input_mode")), mode))
            found = j;
        else
            json_decref(j);
    }
    free(line);
    if (f) fclose(f);
    return found;
}

/* saed encode's acts for one token (by value, descending) against the case's [[index, value], …]
 * (by index): the same features with the same values. */
static void check_acts(json_t *got, json_t *want, int t)
{
    CHECK_INT(json_array_size(got), json_array_size(want));
    for (size_t j = 0; j < json_array_size(got); j++) {
        json_t *g = json_array_get(got, j), *w = NULL;
        long long i = json_integer_value(json_array_get(g, 0));
        for (size_t k = 0; k < json_array_size(want) && !w; k++)
            if (json_integer_value(json_array_get(json_array_get(want, k), 0)) == i) w = json_array_get(want, k);
        if (!w) t_fail(__FILE__, __LINE__, "token %d: feature %lld is not in the reference", t, i);
        else CHECK_NEAR(json_number_value(json_array_get(g, 1)), json_number_value(json_array_get(w, 1)), 1e-4);
        if (j) CHECK(json_number_value(json_array_get(g, 1)) <= json_number_value(json_array_get(json_array_get(got, j - 1), 1)));
    }
}

TEST(cli_encode_matches_saelens)
{
    static char out[1 << 20], err[4096];
    json_t *cs = sae_case("tiny-a-res-topk", "fox_bos", "raw");
    CHECK(cs != NULL);
    if (!cs) return;
    /* --ids as the case has them, then the same sequence from --text with --prepend-bos. */
    char *ids = json_dumps(json_object_get(cs, "ids"), JSON_COMPACT);
    for (int pass = 0; pass < 2; pass++) {
        int rc = pass == 0 ? saed_run((const char *const[]){"encode", "--model", TINY, "--sae", "tests/data/sae/tiny-a-res-topk",
                                                            "--ids", ids, NULL}, out, sizeof out, err, sizeof err)
                           : saed_run((const char *const[]){"encode", "--model", TINY, "--sae", "tests/data/sae/tiny-a-res-topk",
                                                            "--text", "The quick brown fox jumps over the lazy dog.",
                                                            "--prepend-bos", NULL}, out, sizeof out, err, sizeof err);
        CHECK_INT(rc, 0);
        json_t *j = json_loads(out, 0, NULL);
        CHECK(j != NULL);
        CHECK(json_equal(json_object_get(j, "ids"), json_object_get(cs, "ids")));
        json_t *acts = json_object_get(j, "acts"), *l0 = json_object_get(j, "l0");
        CHECK_INT(json_array_size(acts), 11);
        for (size_t t = 0; t < json_array_size(acts); t++) {
            check_acts(json_array_get(acts, t), json_array_get(json_object_get(cs, "acts"), t), (int)t);
            CHECK_INT(json_integer_value(json_array_get(l0, t)), json_integer_value(json_array_get(json_object_get(cs, "l0"), t)));
        }
        json_decref(j);
    }
    free(ids);
    json_decref(cs);

    /* The legacy cfg of the standard SAE, centered by its cfg: the centered reference. */
    char dir[] = "/tmp/saed-cli-sae-XXXXXX", p[256], real[4096];
    CHECK(mkdtemp(dir) != NULL);
    cs = sae_case("tiny-a-res-standard", "ioi_bos", "centered");
    CHECK(cs != NULL);
    snprintf(p, sizeof p, "%s/cfg.json", dir);
    FILE *f = fopen(p, "w");
    fputs("{\"architecture\":\"standard\",\"d_in\":64,\"d_sae\":512,\"hook_point\":\"blocks.1.hook_resid_pre\","
          "\"activation_fn\":\"relu\",\"model_from_pretrained_kwargs\":{\"center_writing_weights\":true}}", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/sae_weights.safetensors", dir);
    CHECK(realpath("tests/data/sae/tiny-a-res-standard/sae_weights.safetensors", real) != NULL);
    CHECK_INT(symlink(real, p), 0);
    ids = cs ? json_dumps(json_object_get(cs, "ids"), JSON_COMPACT) : NULL;
    CHECK_INT(saed_run((const char *const[]){"encode", "--model", TINY, "--sae", dir, "--ids", ids ? ids : "[1]", NULL}, out,
                       sizeof out, err, sizeof err), 0);
    json_t *j = json_loads(out, 0, NULL);
    json_t *acts = json_object_get(j, "acts");
    CHECK_INT(json_array_size(acts), 15);
    for (size_t t = 0; cs && t < json_array_size(acts); t++) {
        /* Standard SAEs may differ on values below 1e-5 (|pre| reaches 3e-5 here). */
        json_t *got = json_array_get(acts, t), *want = json_array_get(json_object_get(cs, "acts"), t);
        json_t *g = json_array(), *w = json_array();
        for (size_t k = 0; k < json_array_size(got); k++)
            if (json_number_value(json_array_get(json_array_get(got, k), 1)) >= 1e-5) json_array_append(g, json_array_get(got, k));
        for (size_t k = 0; k < json_array_size(want); k++)
            if (json_number_value(json_array_get(json_array_get(want, k), 1)) >= 1e-5) json_array_append(w, json_array_get(want, k));
        check_acts(g, w, (int)t);
        json_decref(g);
        json_decref(w);
    }
    json_decref(j);
    free(ids);
    json_decref(cs);

    /* --fold-dec-norm: the decoder rows are unit already, so the same activations. */
    CHECK_INT(saed_run((const char *const[]){"encode", "--model", TINY, "--sae", "tests/data/sae/tiny-a-res-jumprelu",
                                             "--ids", "[50256, 464]", "--fold-dec-norm", NULL}, out, sizeof out, err, sizeof err), 0);
    CHECK_CONTAINS(out, "\"ids\":[50256,464]");
    CHECK_CONTAINS(out, "\"l0\":[");
    unlink(p);
    snprintf(p, sizeof p, "%s/cfg.json", dir);
    unlink(p);
    rmdir(dir);
}

TEST(cli_encode_errors_name_the_problem)
{
    static char out[1 << 16], err[4096];
    const char *topk = "tests/data/sae/tiny-a-res-topk";
    CHECK_INT(saed_run((const char *const[]){"encode", "--model", TINY, "--ids", "[1]", NULL}, out, sizeof out, err, sizeof err), 2);
    CHECK_CONTAINS(err, "--sae DIR");
    CHECK_INT(saed_run((const char *const[]){"encode", "--model", TINY, "--sae", topk, NULL}, out, sizeof out, err, sizeof err), 2);
    CHECK_INT(saed_run((const char *const[]){"encode", "--model", TINY, "--sae", topk, "--ids", "[1]", "--bogus", NULL}, out,
                       sizeof out, err, sizeof err), 2);
    CHECK_CONTAINS(err, "unexpected argument");
    CHECK_INT(saed_run((const char *const[]){"encode", "--model", TINY, "--sae", "/nonexistent-sae", "--ids", "[1]", NULL}, out,
                       sizeof out, err, sizeof err), 1);
    CHECK_CONTAINS(err, "/nonexistent-sae/cfg.json");
    CHECK_INT(saed_run((const char *const[]){"encode", "--model", TINY, "--sae", topk, "--ids", "[1]", "--fold-dec-norm", NULL},
                       out, sizeof out, err, sizeof err), 1);
    CHECK_CONTAINS(err, "fold_dec_norm is not defined for topk without rescale_acts_by_decoder_norm");
    CHECK_INT(saed_run((const char *const[]){"encode", "--model", TINY, "--sae", topk, "--ids", "[1, 99999999]", NULL}, out,
                       sizeof out, err, sizeof err), 1);
    CHECK_CONTAINS(err, "outside the vocabulary");

    /* A cfg whose hook does not fit the model: d_in against the width, the layer against it. */
    char dir[] = "/tmp/saed-cli-sae-XXXXXX", p[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(p, sizeof p, "%s/cfg.json", dir);
    static const char *const cfgs[][2] = {
        {"{\"d_in\":64,\"d_sae\":512,\"hook_name\":\"blocks.0.mlp.hook_post\"}", "SAE d_in 64 does not match the width 256"},
        {"{\"d_in\":64,\"d_sae\":512,\"hook_name\":\"blocks.5.hook_resid_pre\"}", "layer 5 out of range"},
        {"{\"d_in\":64,\"d_sae\":512,\"hook_name\":\"blocks.0.hook_foo\"}", "field 'hook_name'"},
        {"{\"d_in\":64,\"d_sae\":512,\"hook_name\":\"blocks.0.hook_resid_pre\",\"architecture\":\"crosscoder\"}",
         "field 'architecture': unknown architecture 'crosscoder'"},
        {"{\"d_in\":64,\"d_sae\":512,\"hook_name\":\"blocks.0.hook_resid_pre\"}", "sae_weights.safetensors"},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
        FILE *f = fopen(p, "w");
        fputs(cfgs[i][0], f);
        fclose(f);
        CHECK_INT(saed_run((const char *const[]){"encode", "--model", TINY, "--sae", dir, "--ids", "[1]", NULL}, out, sizeof out,
                           err, sizeof err), 1);
        CHECK_CONTAINS(err, cfgs[i][1]);
    }
    unlink(p);
    rmdir(dir);
}

TEST(cli_dashboards_writes_both_exports)
{
    char dir[] = "/tmp/saed-dash-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char corpus[300], out_dir[300], cmd[600];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", dir);
    snprintf(out_dir, sizeof out_dir, "%s/out", dir);
    FILE *f = fopen(corpus, "w");
    unsigned s = 5;
    for (int d = 0; f && d < 80; d++) {
        for (int w = 0; w < 40; w++) fprintf(f, " word%u", ((s = s * 1103515245u + 12345u) >> 16) % 300);
        fputc('\n', f);
    }
    if (f) fclose(f);
    static char out[1 << 16], err[1 << 16];
    CHECK_INT(saed_run((const char *const[]){"dashboards", "--model", TINY, "--sae", "tests/data/sae/tiny-a-res-jumprelu",
                                             "--dataset", corpus, "--out", out_dir, "--n-prompts", "48", "--n-tokens-in-prompt",
                                             "24", "--model-id", "tiny-a", "--set-name", "jr", "--feature-range", "0:256", NULL},
                       out, sizeof out, err, sizeof err), 0);
    CHECK_CONTAINS(err, "48 prompts of 24 tokens");
    CHECK_CONTAINS(err, "statistics: 100%");
    CHECK_CONTAINS(err, "dashboards: 256 features");
    const char *files[] = {"saedashboard/run_settings.json", "saedashboard/batch-0.json", "saedashboard/batch-1.json",
                           "neuronpedia/source.jsonl", "neuronpedia/features/batch-0.jsonl.gz",
                           "neuronpedia/activations/batch-0.jsonl.gz"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", out_dir, files[i]);
        if (access(p, R_OK)) t_fail(__FILE__, __LINE__, "missing %s", files[i]);
    }
    snprintf(cmd, sizeof cmd, "%s/saedashboard/batch-1.json", out_dir);
    json_t *b = json_load_file(cmd, 0, NULL);
    CHECK(b != NULL);
    CHECK_INT(json_integer_value(json_object_get(b, "layer")), 1);
    CHECK_STR(json_string_value(json_object_get(b, "sae_set")), "jr");
    CHECK_INT(json_array_size(json_object_get(b, "features")), 128);
    CHECK_INT(json_integer_value(json_object_get(json_array_get(json_object_get(b, "features"), 0), "feature_index")), 128);
    json_decref(b);
    /* Usage errors name the flag. */
    CHECK_INT(saed_run((const char *const[]){"dashboards", "--model", TINY, NULL}, out, sizeof out, err, sizeof err), 2);
    CHECK_CONTAINS(err, "--sae, --dataset and --out are required");
    CHECK_INT(saed_run((const char *const[]){"dashboards", "--model", TINY, "--sae", "x", "--dataset", corpus, "--out",
                                             out_dir, "--feature-range", "9:3", NULL}, out, sizeof out, err, sizeof err), 2);
    CHECK_CONTAINS(err, "--feature-range 9:3");
    CHECK_INT(saed_run((const char *const[]){"dashboards", "--model", TINY, "--sae", "tests/data/sae/tiny-a-res-jumprelu",
                                             "--dataset", "/nonexistent.txt", "--out", out_dir, NULL}, out, sizeof out, err, sizeof err), 1);
    CHECK_CONTAINS(err, "/nonexistent.txt");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_INT(system(cmd), 0);
}
