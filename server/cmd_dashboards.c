/* cmd_dashboards.c: see cmd_dashboards.h. Flags mirror POST /api/dashboard-jobs' fields. */
#include "engine/tok_prompt.h"
#include "server/cmd_dashboards.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/dash_export.h"
#include "engine/dash_fit.h"
#include "engine/dash_run.h"
#include "engine/dataset.h"
#include "engine/tokenizer.h"
#include "server/device.h"

typedef struct progress {
    int tty, last_decile;
    double t0;
    const char *phase;
} progress;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A bar on a terminal, one line per 10% otherwise (logs stay readable). */
static int on_progress(void *ud, const char *phase, int64_t done, int64_t total)
{
    progress *p = ud;
    if (p->phase != phase) {
        if (p->tty && p->phase) fputc('\n', stderr);
        p->phase = phase;
        p->last_decile = -1;
        p->t0 = now_s();
    }
    double frac = total > 0 ? (double)done / total : 1;
    double el = now_s() - p->t0, eta = frac > 0 ? el / frac - el : 0;
    if (p->tty) {
        int w = 30, fill = (int)(frac * w);
        fprintf(stderr, "\r%-10s [%.*s%*s] %3.0f%% %lld/%lld  eta %.0fs ", phase, fill, "##############################",
                w - fill, "", frac * 100, (long long)done, (long long)total, eta);
    } else if ((int)(frac * 10) > p->last_decile) {
        p->last_decile = (int)(frac * 10);
        fprintf(stderr, "%s: %3.0f%% (%lld/%lld), %.1fs elapsed\n", phase, frac * 100, (long long)done, (long long)total, el);
    }
    return 0;
}

static int dataset_progress(void *ctx, int pass, uint64_t done, uint64_t total)
{
    return on_progress(ctx, pass == 1 ? "dataset" : "prompts", (int64_t)done, (int64_t)total);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: saed dashboards --model DIR --sae DIR --dataset PATH --out DIR\n"
            "  [--format text|jsonl|tokens] [--text-field F] [--n-prompts 24576] [--n-tokens-in-prompt 128]\n"
            "  [--prepend-bos | --no-prepend-bos] [--pack] [--seed 0] [--feature-range START:END] [--top-k 20]\n"
            "  [--n-intervals 5] [--per-interval 5] [--histogram-bins 50] [--logit-k 10] [--batch-prompts 32]\n"
            "  [--export neuronpedia|saedashboard|both] [--model-id ID] [--source-id ID] [--set-name NAME] [--tokenizer DIR]\n"
            "  [--device auto|cpu|cuda|cuda:N] [--gpu-precision fp32|tf32|bf16]   (defaults: SAED_DEVICE, SAED_GPU_PRECISION)\n");
}

static int int_arg(const char *name, const char *v, int lo, int hi, int *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || !*v || x < lo || x > hi) {
        fprintf(stderr, "saed dashboards: %s %s: expected an integer in [%d, %d]\n", name, v, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int cmd_dashboards(int argc, char **argv)
{
    const char *model_dir = NULL, *sae_dir = NULL, *ds_path = NULL, *out = NULL, *fmt = "text", *field = NULL;
    const char *exp = "both", *model_id = NULL, *source_id = NULL, *set_name = NULL, *tok_dir = NULL;
    const char *device = NULL, *precision = NULL;
    int n_prompts = 24576, T = 128, prepend = -1, pack = 0, seed = 0, f0 = 0, f1 = 0, batch = 32;
    dash_run_opts ro;
    dash_run_opts_default(&ro);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--prepend-bos")) { prepend = 1; continue; }
        if (!strcmp(a, "--no-prepend-bos")) { prepend = 0; continue; }
        if (!strcmp(a, "--pack")) { pack = 1; continue; }
        if (!strcmp(a, "--help")) { usage(); return 0; }
        if (!v) { fprintf(stderr, "saed dashboards: %s needs a value\n", a); usage(); return 2; }
        i++;
        int bad = 0;
        if (!strcmp(a, "--model")) model_dir = v;
        else if (!strcmp(a, "--sae")) sae_dir = v;
        else if (!strcmp(a, "--dataset")) ds_path = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--format")) fmt = v;
        else if (!strcmp(a, "--text-field")) field = v;
        else if (!strcmp(a, "--export")) exp = v;
        else if (!strcmp(a, "--model-id")) model_id = v;
        else if (!strcmp(a, "--source-id")) source_id = v;
        else if (!strcmp(a, "--set-name")) set_name = v;
        else if (!strcmp(a, "--tokenizer")) tok_dir = v;
        else if (!strcmp(a, "--device")) device = v;
        else if (!strcmp(a, "--gpu-precision")) precision = v;
        else if (!strcmp(a, "--n-prompts")) bad = int_arg(a, v, 1, 1 << 24, &n_prompts);
        else if (!strcmp(a, "--n-tokens-in-prompt")) bad = int_arg(a, v, 2, 1 << 16, &T);
        else if (!strcmp(a, "--seed")) bad = int_arg(a, v, 0, 0x7fffffff, &seed);
        else if (!strcmp(a, "--top-k")) bad = int_arg(a, v, 1, 1000, &ro.stats.top_k);
        else if (!strcmp(a, "--n-intervals")) bad = int_arg(a, v, 1, 100, &ro.stats.n_intervals);
        else if (!strcmp(a, "--per-interval")) bad = int_arg(a, v, 0, 1000, &ro.stats.per_interval);
        else if (!strcmp(a, "--histogram-bins")) bad = int_arg(a, v, 1, 10000, &ro.stats.hist_bins);
        else if (!strcmp(a, "--logit-k")) bad = int_arg(a, v, 1, 1000, &ro.weights.logit_k);
        else if (!strcmp(a, "--batch-prompts")) bad = int_arg(a, v, 1, 4096, &batch);
        else if (!strcmp(a, "--feature-range")) {
            if (sscanf(v, "%d:%d", &f0, &f1) != 2 || f0 < 0 || f1 <= f0) {
                fprintf(stderr, "saed dashboards: --feature-range %s: expected START:END with 0 <= START < END\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "saed dashboards: unknown option %s\n", a);
            usage();
            return 2;
        }
        if (bad) return 2;
    }
    if (!model_dir || !sae_dir || !ds_path || !out) {
        fprintf(stderr, "saed dashboards: --model, --sae, --dataset and --out are required\n");
        usage();
        return 2;
    }
    int want_np = !strcmp(exp, "neuronpedia") || !strcmp(exp, "both");
    int want_sd = !strcmp(exp, "saedashboard") || !strcmp(exp, "both");
    dataset_opts dopt;
    dataset_opts_default(&dopt);
    if (dataset_format_parse(fmt, &dopt.format)) {
        fprintf(stderr, "saed dashboards: --format %s: expected text, jsonl or tokens\n", fmt);
        return 2;
    }
    if (!want_np && !want_sd) {
        fprintf(stderr, "saed dashboards: --export %s: expected neuronpedia, saedashboard or both\n", exp);
        return 2;
    }
    char err[1024];
    int rc = 1;
    progress pg = {.tty = isatty(2)};
    saed_backend *be = device_open(device_spec_arg(device), device_precision_arg(precision), 0, err, sizeof err);
    if (!be) {
        fprintf(stderr, "saed dashboards: %s\n", err);
        return 1;
    }
    fprintf(stderr, "device: %s\n", be->device);
    tokenizer *tok = tok_load_dir(tok_dir ? tok_dir : model_dir, err, sizeof err);
    model *m = NULL;
    sae *s = NULL;
    dataset_result ds = {0};
    dash_run_result res = {0};
    if (!tok) {
        fprintf(stderr, "saed dashboards: tokenizer: %s\n", err);
        goto done;
    }
    if (!(m = model_load(model_dir, be, err, sizeof err))) {
        fprintf(stderr, "saed dashboards: %s\n", err);
        goto done;
    }
    /* Decoder norms folded as SAEDashboard does, where SAELens allows it. */
    sae_cfg sc;
    if (sae_cfg_load(sae_dir, &sc, err, sizeof err)) {
        fprintf(stderr, "saed dashboards: %s\n", err);
        goto done;
    }
    sae_load_opts lo = sae_dashboard_load_opts(&sc);
    int sae_prepend = sc.prepend_bos;
    sae_cfg_free(&sc);
    if (!(s = sae_load(sae_dir, be, &lo, err, sizeof err))) {
        fprintf(stderr, "saed dashboards: %s\n", err);
        goto done;
    }
    const sae_cfg *cfg = sae_config(s);
    hook_point hp;
    if (sae_cfg_check_model(cfg, model_config(m), &hp, err, sizeof err)) {
        fprintf(stderr, "saed dashboards: %s\n", err);
        goto done;
    }
    dopt.path = ds_path;
    dopt.text_field = field;
    dopt.T = T;
    dopt.prepend_bos = prepend < 0 ? sae_prepend : prepend;
    dopt.pack = pack;
    dopt.n_prompts = n_prompts;
    dopt.seed = (uint64_t)seed;
    dopt.vocab_size = model_config(m)->vocab_size;
    dopt.progress = dataset_progress;
    dopt.progress_ctx = &pg;
    if (dataset_prompts(&dopt, tok, &ds, err, sizeof err)) {
        fprintf(stderr, "\nsaed dashboards: dataset: %s\n", err);
        goto done;
    }
    if (pg.tty) fputc('\n', stderr);
    fprintf(stderr, "dataset: %llu records, %llu windows (%llu duplicates, %llu short skipped, %llu malformed); %d prompts of %d tokens\n",
            (unsigned long long)ds.stats.records, (unsigned long long)ds.stats.windows,
            (unsigned long long)ds.stats.duplicates, (unsigned long long)ds.stats.short_skipped,
            (unsigned long long)ds.stats.malformed, ds.n, T);
    for (int i = 0; i < ds.stats.n_msgs; i++) fprintf(stderr, "  %s\n", ds.stats.msgs[i]);
    if (ds.n == 0) {
        fprintf(stderr, "saed dashboards: the dataset gave no window of %d tokens\n", T);
        goto done;
    }
    ro.f0 = f0;
    ro.f1 = f1;
    ro.batch_prompts = batch;
    ro.bos_id = dopt.prepend_bos ? (tok ? tok_prompt_bos(tok) : TOK_GPT2_EOS) : -1;
    if (tok) {
        int32_t special[3];
        int nspecial = tok_mask_ids(tok, special);
        for (int i = 0; i < nspecial; i++) ro.mask_ids[i] = special[i];
    }
    ro.stats.seed = (uint64_t)seed;
    ro.progress = on_progress;
    ro.ud = &pg;
    pg.phase = NULL;
    double t0 = now_s();
    int used = batch, r = dash_run_fit(m, s, ds.ids, ds.n, T, &ro, &res, &used, err, sizeof err);
    if (used != batch) fprintf(stderr, "batches of %d prompts instead of %d, to fit %s's memory\n", used, batch, be->device);
    if (pg.tty) fputc('\n', stderr);
    if (r) {
        fprintf(stderr, "saed dashboards: %s\n", r > 0 ? "cancelled" : err);
        goto done;
    }
    double secs = now_s() - t0;
    fprintf(stderr, "dashboards: %d features, %lld tokens in %.1fs (%.0f tokens/s; statistics %.1fs, weights %.1fs)\n",
            res.f1 - res.f0, (long long)res.tokens, secs, res.tokens / (secs > 0 ? secs : 1), res.seconds_stats,
            res.seconds_weights);
    char mid[256], sid[256], set[128];
    const char *slash = strrchr(model_dir, '/');
    snprintf(mid, sizeof mid, "%s", model_id ? model_id : (slash && slash[1] ? slash + 1 : model_dir));
    snprintf(set, sizeof set, "%s", set_name ? set_name : "saed");
    snprintf(sid, sizeof sid, "%s", source_id ? source_id : "");
    if (!source_id) snprintf(sid, sizeof sid, "%d-%s", hp.layer < 0 ? 0 : hp.layer, set);
    dash_export_meta meta = {
        .model_id = mid, .source_id = sid, .set_name = set, .layer = hp.layer < 0 ? 0 : hp.layer,
        .hook_name = cfg->hook_name, .dataset = ds_path, .n_prompts = ds.n, .n_tokens_in_prompt = T,
        .prepend_bos = dopt.prepend_bos, .bos_id = ro.bos_id, .d_sae = cfg->d_sae, .creator_name = "saed",
        .release_id = sid, .release_title = "saed dashboards", .prompts = ds.ids, .tok = tok,
        .model_layers = model_config(m)->n_layer, .d_model = model_config(m)->d_model, .run = &ro,
    };
    mkdir(out, 0755);
    char sub[4200];
    if (want_sd) {
        snprintf(sub, sizeof sub, "%s/saedashboard", out);
        mkdir(sub, 0755);
        if (dash_export_saedashboard(sub, &meta, &res, err, sizeof err)) {
            fprintf(stderr, "saed dashboards: %s\n", err);
            goto done;
        }
        fprintf(stderr, "wrote %s\n", sub);
    }
    if (want_np) {
        snprintf(sub, sizeof sub, "%s/neuronpedia", out);
        mkdir(sub, 0755);
        if (dash_export_neuronpedia(sub, &meta, &res, err, sizeof err)) {
            fprintf(stderr, "saed dashboards: %s\n", err);
            goto done;
        }
        fprintf(stderr, "wrote %s\n", sub);
    }
    rc = 0;
done:
    dash_run_result_free(&res);
    dataset_result_free(&ds);
    sae_free(s);
    model_free(m);
    tok_free(tok);
    backend_close(be);
    return rc;
}
