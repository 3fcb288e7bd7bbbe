/* unit_dash_run.c: the dashboard pipeline end to end on tiny-a and a golden SAE: the examples'
 * values equal an independent forward + encode of their prompts, results do not depend on the
 * batch size, a feature range equals the same slice of a full run, and cancellation stops it. */
#include <stdlib.h>
#include <string.h>

#include "engine/dash_run.h"
#include "tests/t.h"

#define TINY "tests/data/models/tiny-a"
#define SAE_STD "tests/data/sae/tiny-a-res-standard"

static int32_t *make_prompts(int n, int T)
{
    int32_t *p = malloc(sizeof(int32_t) * (size_t)n * T);
    uint32_t s = 7;
    for (int i = 0; i < n; i++) {
        p[(size_t)i * T] = 50256; /* BOS first, masked like SAEDashboard */
        for (int t = 1; t < T; t++) p[(size_t)i * T + t] = (int32_t)((s = s * 1664525u + 1013904223u) >> 8) % 2000;
    }
    return p;
}

static int dash_test_copy(void *ud, hook_point hp, float *act, int B, int T, int width)
{
    (void)hp;
    memcpy(ud, act, sizeof(float) * (size_t)B * T * width);
    return 0;
}

static int cancel_at_2(void *ud, const char *phase, int64_t done, int64_t total)
{
    (void)ud;
    (void)total;
    return !strcmp(phase, "statistics") && done >= 2;
}

TEST(dash_run_pipeline_on_tiny_a)
{
    char err[512];
    saed_backend *be = backend_cpu_open();
    model *m = model_load(TINY, be, err, sizeof err);
    sae_load_opts lo = {.fold_dec_norm = 1};
    sae *s = m ? sae_load(SAE_STD, be, &lo, err, sizeof err) : NULL;
    CHECK(s != NULL);
    if (!s) {
        t_fail(__FILE__, __LINE__, "%s", err);
        model_free(m);
        backend_close(be);
        return;
    }
    const int n = 40, T = 16;
    int32_t *prompts = make_prompts(n, T);
    dash_run_opts o;
    dash_run_opts_default(&o);
    o.bos_id = 50256;
    o.batch_prompts = 7;
    dash_run_result a, b, r;
    CHECK_INT(dash_run(m, s, prompts, n, T, &o, &a, err, sizeof err), 0);
    o.batch_prompts = 40;
    CHECK_INT(dash_run(m, s, prompts, n, T, &o, &b, err, sizeof err), 0);
    CHECK_INT(a.f1, 512);
    CHECK_INT(a.tokens, n * T);
    int fired = 0;
    for (int f = 0; f < 512; f++) {
        dash_feature *fa = &a.features[f], *fb = &b.features[f];
        CHECK(fa->max_value == fb->max_value && fa->n_nonzero == fb->n_nonzero && fa->n_examples == fb->n_examples);
        for (int e = 0; e < fa->n_examples && e < fb->n_examples; e++) {
            CHECK(fa->examples[e].prompt == fb->examples[e].prompt && fa->examples[e].pos == fb->examples[e].pos);
            CHECK(memcmp(a.example_values[f] + (size_t)e * T, b.example_values[f] + (size_t)e * T, sizeof(float) * T) == 0);
        }
        if (fa->n_nonzero == 0) continue;
        fired++;
        /* The first example is the maximum; its captured row holds it at its position; BOS
         * positions never qualify. */
        CHECK(fa->examples[0].group == -1);
        CHECK_NEAR(a.example_values[f][fa->examples[0].pos], fa->max_value, 1e-6);
        CHECK(fa->examples[0].pos != 0);
        CHECK(fa->n_logits == 10);
    }
    CHECK(fired > 50);

    /* The captured rows equal an independent forward + sparse encode of that prompt. */
    int f = -1;
    for (int i = 0; i < 512 && f < 0; i++)
        if (a.features[i].n_examples > 2) f = i;
    CHECK(f >= 0);
    if (f >= 0) {
        int e = 2, pr = (int)a.features[f].examples[e].prompt;
        float *x = malloc(sizeof(float) * T * 64);
        int ok = 1;
        {
            hook_req req = {{HOOK_RESID_PRE, 1}, dash_test_copy, x, 0};
            fwd_opts fo = {.hooks = &req, .nhooks = 1};
            ok = model_forward(m, prompts + (size_t)pr * T, 1, T, &fo, err, sizeof err) == 0;
        }
        CHECK(ok);
        sae_sparse sp = {0};
        CHECK_INT(sae_encode_sparse(s, x, T, &sp, err, sizeof err), 0);
        for (int t = 0; t < T; t++) {
            float want = 0;
            for (int j = 0; j < sp.count[t]; j++)
                if (sp.idx[sp.offset[t] + j] == f) want = sp.val[sp.offset[t] + j];
            CHECK_NEAR(a.example_values[f][(size_t)e * T + t], want, 1e-5);
        }
        sae_sparse_free(&sp);
        free(x);
    }

    /* A feature range is the same slice of the full run. */
    o.f0 = 100;
    o.f1 = 164;
    CHECK_INT(dash_run(m, s, prompts, n, T, &o, &r, err, sizeof err), 0);
    CHECK_INT(r.f0, 100);
    for (int i = 0; i < 64; i++) {
        CHECK(r.features[i].index == 100 + i);
        CHECK(r.features[i].max_value == a.features[100 + i].max_value);
        CHECK(r.features[i].frac_nonzero == a.features[100 + i].frac_nonzero);
    }
    dash_run_result_free(&r);
    o.f0 = 500;
    o.f1 = 600;
    CHECK_INT(dash_run(m, s, prompts, n, T, &o, &r, err, sizeof err), -1);
    CHECK_CONTAINS(err, "featureRange");
    /* Cancellation between batches. */
    o.f0 = o.f1 = 0;
    o.batch_prompts = 4;
    o.progress = cancel_at_2;
    CHECK_INT(dash_run(m, s, prompts, n, T, &o, &r, err, sizeof err), 1);
    dash_run_result_free(&a);
    dash_run_result_free(&b);
    free(prompts);
    sae_free(s);
    model_free(m);
    backend_close(be);
}


/* Pre-tokenized rows that already start with BOS, run with prepend_bos off: the tokenizer's
 * special ids (mask_ids) are masked wherever they stand, so the statistics equal the
 * prepend_bos run's; without the mask the BOS positions count. Also a BOS mid-row. */
TEST(dash_run_masks_special_ids_without_prepend_bos)
{
    char err[512];
    saed_backend *be = backend_cpu_open();
    model *m = model_load(TINY, be, err, sizeof err);
    sae_load_opts lo = {.fold_dec_norm = 1};
    sae *s = m ? sae_load(SAE_STD, be, &lo, err, sizeof err) : NULL;
    CHECK(s != NULL);
    if (!s) {
        model_free(m);
        backend_close(be);
        return;
    }
    const int n = 16, T = 16;
    int32_t *prompts = make_prompts(n, T);
    prompts[5 * T + 7] = 50256; /* an EOS inside a document */
    dash_run_opts o;
    dash_run_result a, b, c;
    dash_run_opts_default(&o);
    o.bos_id = 50256;
    CHECK_INT(dash_run(m, s, prompts, n, T, &o, &a, err, sizeof err), 0);
    dash_run_opts_default(&o);
    o.mask_ids[0] = 50256;
    CHECK_INT(dash_run(m, s, prompts, n, T, &o, &b, err, sizeof err), 0);
    dash_run_opts_default(&o);
    CHECK_INT(dash_run(m, s, prompts, n, T, &o, &c, err, sizeof err), 0);
    int same = 1, more = 0;
    for (int f = 0; f < 512; f++) {
        same &= a.features[f].n_nonzero == b.features[f].n_nonzero && a.features[f].max_value == b.features[f].max_value;
        more += c.features[f].n_nonzero > b.features[f].n_nonzero;
    }
    CHECK(same);
    CHECK(more > 0); /* the BOS positions fire some features when they are not masked */
    dash_run_result_free(&a);
    dash_run_result_free(&b);
    dash_run_result_free(&c);
    free(prompts);
    sae_free(s);
    model_free(m);
    backend_close(be);
}
