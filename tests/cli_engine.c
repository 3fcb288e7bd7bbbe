/* cli_engine.c: `saed tokenize` and `saed forward` as an operator runs them. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

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
