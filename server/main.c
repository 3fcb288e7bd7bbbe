/* main.c: the saed binary's sub-commands. Each parses its own arguments, then the shared
 * options (server/config.c), and returns an exit status: 0 ok, 1 failure, 2 usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/migrate.h"
#include "gpu/backend.h"
#include "gpu/cpu_kernels.h"
#include "server/cmd_autointerp.h"
#include "server/cmd_dashboards.h"
#include "server/cmd_engine.h"
#include "server/cmd_hub.h"
#include "server/config.h"
#include "server/engines.h"
#include "server/explanations.h"
#include "server/export_db.h"
#include "server/log.h"
#include "server/registry.h"
#include "server/serve.h"
#include "server/worker.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#ifndef SAED_VERSION
#define SAED_VERSION "0.0.0-dev"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "saed %s: the SAE daemon, Neuronpedia-compatible feature dashboards for SAELens SAEs.\n\n"
            "Usage: saed COMMAND [options]\n\n"
            "Commands:\n"
            "  serve                 run the HTTP API (options below)\n"
            "  migrate               apply pending database migrations, then exit\n"
            "  worker                run SAED_WORKERS job workers without HTTP (any host reaching the database)\n"
            "  import-model --id ID --path DIR [--display-name NAME]\n"
            "                        register a HuggingFace-layout model directory\n"
            "  tokenize --model DIR [--tokenizer DIR] [--text T]\n"
            "                        GPT-2 BPE token ids and strings of T (stdin when omitted)\n"
            "  forward --model DIR (--text T | --ids JSON) [--prepend-bos] [--hook NAME]...\n"
            "          [--processing none|center_writing_weights|fold_value_biases|fold_ln|tl] [--tokenizer DIR]\n"
            "          [--device auto|cpu|cuda|cuda:N] [--gpu-precision fp32|tf32|bf16]\n"
            "                        run the model; print hook values, last logits and argmax as JSON\n"
            "  encode --model DIR --sae DIR (--text T | --ids JSON) [--prepend-bos] [--fold-dec-norm]\n"
            "         [--tokenizer DIR] [--device D] [--gpu-precision P]\n"
            "                        print each token's active SAE features as JSON\n"
            "  import-sae --model ID --path DIR [--id ID] [--set-name NAME] [--hf-repo-id R] [--hf-folder-id F]\n"
            "             [--description TEXT]\n"
            "                        register a SAELens SAE folder for a registered model\n"
            "  export-sae --model ID --sae ID --out DIR [--format saelens-v6|saelens-v5]\n"
            "                        write a registered SAE back in SAELens layout + pretrained_saes.yaml\n"
            "  pull --repo R [--revision REV] [--path P] [--include GLOB]...\n"
            "                        download a Hugging Face Hub snapshot into the Hub cache (SAED_HF_CACHE),\n"
            "                        pinned to the commit the Hub answers with; prints its folder as JSON\n"
            "  push-sae --model ID --sae ID --repo ORG/NAME [--path P] [--revision BRANCH] [--private] [--create-pr]\n"
            "           [--dashboard-url URL] [--saelens-pr OWNER/SAELens [--saelens-base OWNER/REPO]\n"
            "           [--saelens-branch B] [--saelens-path P]]\n"
            "                        push a registered SAE's SAELens export to a Hub repo with a model card\n"
            "                        section and its pretrained_saes.yaml entry (needs HF_TOKEN); --saelens-pr\n"
            "                        also opens a pull request with the entry on SAELens (needs GITHUB_TOKEN)\n"
            "  export --model ID --sae ID --out DIR [--format neuronpedia|saedashboard] [--features-per-batch N]\n"
            "                        write a registered SAE's stored dashboards (Neuronpedia bulk-import\n"
            "                        files, or SAEDashboard batches of N features, default 128)\n"
            "  import-explanations FILE\n"
            "                        load a Neuronpedia explanation batch file (JSON lines, optionally gzip'd,\n"
            "                        e.g. explanations/batch-0.jsonl.gz); re-importing it changes nothing\n"
            "  autointerp --job FILE  queue an AutoInterp job (FILE: the JSON body of POST /api/autointerp-jobs,\n"
            "                        - for stdin) and run it in this process; exit 0 when it completed\n"
            "  dashboards --model DIR --sae DIR --dataset PATH --out DIR [options; --help]\n"
            "                        generate dashboards in-process and write the exports\n"
            "  version               print the version and the compute backends available\n"
            "  config-docs           print the options as a Markdown table (README)\n"
            "  help, --help          this text\n\n",
            SAED_VERSION);
    config_print_help(f);
}

/* Removes "--name value" or "--name=value" from argv; returns the value or NULL. */
static const char *take_flag(int *argc, char **argv, const char *name, int *missing_value)
{
    size_t nl = strlen(name);
    for (int i = 0; i < *argc; i++) {
        const char *v = NULL;
        int used = 0;
        if (!strcmp(argv[i], name)) {
            if (i + 1 >= *argc) {
                *missing_value = 1;
                return NULL;
            }
            v = argv[i + 1];
            used = 2;
        } else if (!strncmp(argv[i], name, nl) && argv[i][nl] == '=') {
            v = argv[i] + nl + 1;
            used = 1;
        }
        if (used) {
            memmove(&argv[i], &argv[i + used], (size_t)(*argc - i - used) * sizeof *argv);
            *argc -= used;
            return v;
        }
    }
    return NULL;
}

static int load_config(saed_config *cfg, int argc, char **argv)
{
    char err[1024];
    if (config_load(cfg, argc, argv, err, sizeof err)) {
        fprintf(stderr, "saed: invalid configuration: %s\n", err);
        return -1;
    }
    log_min_level = cfg->log_level;
    if (!strcmp(cfg->access_log, "off")) {
        log_set_access_stream(NULL);
    } else if (strcmp(cfg->access_log, "-")) {
        FILE *f = fopen(cfg->access_log, "a");
        if (!f) {
            fprintf(stderr, "saed: invalid configuration: SAED_ACCESS_LOG (--access-log): cannot open %s\n", cfg->access_log);
            return -1;
        }
        log_set_access_stream(f);
    }
    return 0;
}

static int cmd_migrate(saed_config *cfg)
{
    char err[1024];
    migration_set set;
    if (migrate_load(cfg->migrations_dir, &set, err, sizeof err)) {
        fprintf(stderr, "saed migrate: %s\n", err);
        return 1;
    }
    db_conn *c = db_connect(cfg->database_url, err, sizeof err);
    if (!c) {
        fprintf(stderr, "saed migrate: cannot connect to the database (DATABASE_URL): %s\n", err);
        migrate_free(&set);
        return 1;
    }
    int applied = 0, rc = migrate_apply(c, &set, &applied, err, sizeof err);
    if (rc) fprintf(stderr, "saed migrate: %s\n", err);
    else printf("applied %d migration(s); schema at version %d\n", applied, migrate_head(&set));
    db_close(c);
    migrate_free(&set);
    return rc ? 1 : 0;
}

static int cmd_import_model(saed_config *cfg, const char *id, const char *path, const char *display)
{
    char err[1024];
    if (!id || !path) {
        fprintf(stderr, "saed import-model: --id and --path are required\n");
        return 2;
    }
    db_conn *c = db_connect(cfg->database_url, err, sizeof err);
    if (!c) {
        fprintf(stderr, "saed import-model: cannot connect to the database (DATABASE_URL): %s\n", err);
        return 1;
    }
    char *json = NULL;
    svc_err e;
    int rc = registry_model_create(c, cfg->data_roots, cfg->n_data_roots, id, path, display, &json, &e);
    if (rc) fprintf(stderr, "saed import-model: %s\n", e.msg);
    else printf("%s\n", json);
    free(json);
    db_close(c);
    return rc == 0 ? 0 : (e.kind == SVC_CONFLICT ? 3 : 1);
}

static int cmd_import_sae(saed_config *cfg, const sae_reg *in)
{
    char err[1024];
    if (!in->model_id || !in->path) {
        fprintf(stderr, "saed import-sae: --model and --path are required\n");
        return 2;
    }
    db_conn *c = db_connect(cfg->database_url, err, sizeof err);
    if (!c) {
        fprintf(stderr, "saed import-sae: cannot connect to the database (DATABASE_URL): %s\n", err);
        return 1;
    }
    char *json = NULL;
    svc_err e;
    int rc = registry_sae_create(c, cfg->data_roots, cfg->n_data_roots, in, &json, &e);
    if (rc) fprintf(stderr, "saed import-sae: %s\n", e.msg);
    else printf("%s\n", json);
    free(json);
    db_close(c);
    return rc == 0 ? 0 : (e.kind == SVC_CONFLICT ? 3 : 1);
}

static int cmd_export_sae(saed_config *cfg, const char *model, const char *sae_id, const char *out, const char *fmt)
{
    char err[1024];
    int format = !fmt || !strcmp(fmt, "saelens-v6") ? 6 : !strcmp(fmt, "saelens-v5") ? 5 : 0;
    if (!model || !sae_id || !out || !format) {
        fprintf(stderr, "saed export-sae: --model, --sae and --out are required; --format is saelens-v6 or saelens-v5\n");
        return 2;
    }
    db_conn *c = db_connect(cfg->database_url, err, sizeof err);
    if (!c) {
        fprintf(stderr, "saed export-sae: cannot connect to the database (DATABASE_URL): %s\n", err);
        return 1;
    }
    svc_err e;
    int rc = registry_sae_export(c, model, sae_id, format, out, &e);
    if (rc) fprintf(stderr, "saed export-sae: %s\n", e.msg);
    else printf("exported %s/%s to %s (SAELens v%d)\n", model, sae_id, out, format);
    db_close(c);
    return rc ? 1 : 0;
}

/* `saed export`: the same files as GET /api/export/{modelId}/{saeId}, unarchived. */
static int cmd_export(saed_config *cfg, const char *model, const char *sae_id, const char *out, const char *fmt,
                      const char *batch)
{
    char err[1024], *end = NULL;
    export_db_format f;
    long b = batch ? strtol(batch, &end, 10) : 0;
    if (!model || !sae_id || !out || export_db_format_parse(fmt, &f) ||
        (batch && (!*batch || *end || b < 1 || b > EXPORT_DB_SD_BATCH_MAX))) {
        fprintf(stderr, "saed export: --model, --sae and --out are required; --format is neuronpedia or saedashboard;"
                        " --features-per-batch is 1-%d\n", EXPORT_DB_SD_BATCH_MAX);
        return 2;
    }
    db_conn *c = db_connect(cfg->database_url, err, sizeof err);
    if (!c) {
        fprintf(stderr, "saed export: cannot connect to the database (DATABASE_URL): %s\n", err);
        return 1;
    }
    svc_err e;
    int rc = export_db_write(c, model, sae_id, f, (int)b, out, &e);
    if (rc) fprintf(stderr, "saed export: %s\n", e.msg);
    else printf("exported the dashboards of %s/%s to %s (%s)\n", model, sae_id, out, fmt ? fmt : "neuronpedia");
    db_close(c);
    return rc ? 1 : 0;
}

/* `saed import-explanations FILE`: the same code as POST /api/explanation/import. */
static int cmd_import_explanations(saed_config *cfg, const char *file)
{
    char err[1024];
    if (!file) {
        fprintf(stderr, "saed import-explanations: FILE is required (saed import-explanations FILE [options])\n");
        return 2;
    }
    db_conn *c = db_connect(cfg->database_url, err, sizeof err);
    if (!c) {
        fprintf(stderr, "saed import-explanations: cannot connect to the database (DATABASE_URL): %s\n", err);
        return 1;
    }
    expl_import_stats st;
    svc_err e;
    int rc = expl_import_path(c, file, &st, &e);
    if (rc) fprintf(stderr, "saed import-explanations: %s\n", e.msg);
    else printf("imported %s: %lld explanation(s) on %lld line(s): %lld new, %lld updated, %lld unchanged\n", file, st.rows,
                st.lines, st.inserted, st.updated, st.unchanged);
    db_close(c);
    return rc ? 1 : 0;
}

/* `saed worker`: job workers without HTTP, on any host that reaches the database. */
static int cmd_worker(saed_config *cfg)
{
    char err[512], host[256], prefix[300];
    if (cfg->workers < 1) {
        fprintf(stderr, "saed worker: SAED_WORKERS (--workers) must be at least 1\n");
        return 2;
    }
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    snprintf(prefix, sizeof prefix, "%s:%d", host, (int)getpid());
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by the workers: only sigwait sees them */
    /* The worker threads share loaded models and SAEs, as in `saed serve`. */
    saed_backend *be = backend_cpu_open();
    engines *eng = be ? engines_new(be, (size_t)cfg->engine_cache) : NULL;
    worker_pool *p = eng ? workers_start(cfg, prefix, cfg->workers, eng, err, sizeof err) : NULL;
    if (!p) {
        fprintf(stderr, "saed worker: %s\n", eng ? err : "out of memory");
        engines_free(eng);
        backend_close(be);
        return 1;
    }
    log_info("%d job worker(s) running as %s", cfg->workers, prefix);
    int sig = 0;
    sigwait(&set, &sig);
    log_info("signal %d: stopping workers (running jobs go back to the queue)", sig);
    workers_stop(p);
    engines_free(eng);
    backend_close(be);
    log_info("stopped");
    return 0;
}

static int cmd_version(void)
{
    char err[512];
    printf("saed %s\n", SAED_VERSION);
    saed_backend *b = backend_open("cuda", err, sizeof err);
    if (b) printf("backend cuda: %s\n", b->device);
    else printf("backend cuda: unavailable (%s)\n", err);
    backend_close(b);
    b = backend_cpu_open();
    printf("backend cpu: %s\n", b->device);
    backend_close(b);
    return 0;
}

int main(int argc, char **argv)
{
    backend_blas_env(argv);
    char kerr[256];
    if (cpu_kernels_check(kerr, sizeof kerr)) { /* a forced kernel set this processor lacks */
        fprintf(stderr, "saed: %s\n", kerr);
        return 2;
    }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    int ac = argc - 2;
    char **av = argv + 2;
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) return cmd_version();
    if (!strcmp(cmd, "dashboards")) return cmd_dashboards(ac, av);
    if (!strcmp(cmd, "pull")) return cmd_pull(ac, av);
    if (!strcmp(cmd, "push-sae")) return cmd_push_sae(ac, av);
    if (!strcmp(cmd, "config-docs")) {
        config_print_markdown(stdout);
        return 0;
    }
    for (int i = 0; i < ac; i++)
        if (!strcmp(av[i], "--help") || !strcmp(av[i], "-h")) {
            usage(stdout);
            return 0;
        }
    const char *id = NULL, *path = NULL, *display = NULL, *fmt = NULL, *batch = NULL;
    sae_reg sr = {0};
    int missing = 0;
    if (!strcmp(cmd, "encode")) {
        cmd_encode_args ea = {0};
        ea.model_dir = take_flag(&ac, av, "--model", &missing);
        ea.sae_dir = take_flag(&ac, av, "--sae", &missing);
        ea.tokenizer_dir = take_flag(&ac, av, "--tokenizer", &missing);
        ea.text = take_flag(&ac, av, "--text", &missing);
        ea.ids_json = take_flag(&ac, av, "--ids", &missing);
        ea.device = take_flag(&ac, av, "--device", &missing);
        ea.precision = take_flag(&ac, av, "--gpu-precision", &missing);
        for (int i = 0; i < ac; i++) {
            int *sw = !strcmp(av[i], "--prepend-bos") ? &ea.prepend_bos : !strcmp(av[i], "--fold-dec-norm") ? &ea.fold_dec_norm : NULL;
            if (!sw) continue;
            *sw = 1;
            memmove(&av[i], &av[i + 1], (size_t)(ac - i - 1) * sizeof *av);
            ac--;
            i--;
        }
        if (missing || ac) {
            fprintf(stderr, "saed encode: %s (see saed --help)\n", missing ? "a flag is missing its value" : "unexpected argument");
            return 2;
        }
        return cmd_encode(&ea);
    }
    if (!strcmp(cmd, "tokenize") || !strcmp(cmd, "forward")) {
        cmd_forward_args fa = {0};
        fa.model_dir = take_flag(&ac, av, "--model", &missing);
        fa.tokenizer_dir = take_flag(&ac, av, "--tokenizer", &missing);
        fa.text = take_flag(&ac, av, "--text", &missing);
        fa.ids_json = take_flag(&ac, av, "--ids", &missing);
        fa.processing = take_flag(&ac, av, "--processing", &missing);
        fa.device = take_flag(&ac, av, "--device", &missing);
        fa.precision = take_flag(&ac, av, "--gpu-precision", &missing);
        const char *h;
        while (fa.nhooks < CMD_MAX_HOOKS && (h = take_flag(&ac, av, "--hook", &missing))) fa.hooks[fa.nhooks++] = h;
        for (int i = 0; i < ac; i++)
            if (!strcmp(av[i], "--prepend-bos")) {
                fa.prepend_bos = 1;
                memmove(&av[i], &av[i + 1], (size_t)(ac - i - 1) * sizeof *av);
                ac--;
                i--;
            }
        if (missing || ac) {
            fprintf(stderr, "saed %s: %s (see saed --help)\n", cmd, missing ? "a flag is missing its value" : "unexpected argument");
            return 2;
        }
        if (!strcmp(cmd, "tokenize")) return cmd_tokenize(fa.model_dir, fa.tokenizer_dir, fa.text);
        return cmd_forward(&fa);
    }
    if (!strcmp(cmd, "import-model")) {
        id = take_flag(&ac, av, "--id", &missing);
        path = take_flag(&ac, av, "--path", &missing);
        display = take_flag(&ac, av, "--display-name", &missing);
    } else if (!strcmp(cmd, "import-sae")) {
        sr.model_id = take_flag(&ac, av, "--model", &missing);
        sr.path = take_flag(&ac, av, "--path", &missing);
        sr.id = take_flag(&ac, av, "--id", &missing);
        sr.set_name = take_flag(&ac, av, "--set-name", &missing);
        sr.hf_repo_id = take_flag(&ac, av, "--hf-repo-id", &missing);
        sr.hf_folder_id = take_flag(&ac, av, "--hf-folder-id", &missing);
        sr.description = take_flag(&ac, av, "--description", &missing);
    } else if (!strcmp(cmd, "export-sae")) {
        sr.model_id = take_flag(&ac, av, "--model", &missing);
        sr.id = take_flag(&ac, av, "--sae", &missing);
        sr.path = take_flag(&ac, av, "--out", &missing);
        fmt = take_flag(&ac, av, "--format", &missing);
    } else if (!strcmp(cmd, "export")) {
        sr.model_id = take_flag(&ac, av, "--model", &missing);
        sr.id = take_flag(&ac, av, "--sae", &missing);
        sr.path = take_flag(&ac, av, "--out", &missing);
        fmt = take_flag(&ac, av, "--format", &missing);
        batch = take_flag(&ac, av, "--features-per-batch", &missing);
    } else if (!strcmp(cmd, "import-explanations")) {
        if (ac > 0 && av[0][0] != '-') { /* FILE comes first */
            path = av[0];
            memmove(&av[0], &av[1], (size_t)(ac - 1) * sizeof *av);
            ac--;
        }
    } else if (!strcmp(cmd, "autointerp")) {
        path = take_flag(&ac, av, "--job", &missing);
    } else if (strcmp(cmd, "serve") && strcmp(cmd, "migrate") && strcmp(cmd, "worker")) {
        fprintf(stderr, "saed: unknown command '%s' (see saed --help)\n", cmd);
        return 2;
    }
    if (missing) {
        fprintf(stderr, "saed %s: a flag is missing its value\n", cmd);
        return 2;
    }
    saed_config cfg;
    if (load_config(&cfg, ac, av)) return 2;
    int rc;
    if (!strcmp(cmd, "serve")) rc = serve_main(&cfg);
    else if (!strcmp(cmd, "migrate")) rc = cmd_migrate(&cfg);
    else if (!strcmp(cmd, "worker")) rc = cmd_worker(&cfg);
    else if (!strcmp(cmd, "import-sae")) rc = cmd_import_sae(&cfg, &sr);
    else if (!strcmp(cmd, "export-sae")) rc = cmd_export_sae(&cfg, sr.model_id, sr.id, sr.path, fmt);
    else if (!strcmp(cmd, "export")) rc = cmd_export(&cfg, sr.model_id, sr.id, sr.path, fmt, batch);
    else if (!strcmp(cmd, "import-explanations")) rc = cmd_import_explanations(&cfg, path);
    else if (!strcmp(cmd, "autointerp")) rc = cmd_autointerp(&cfg, path);
    else rc = cmd_import_model(&cfg, id, path, display);
    config_free(&cfg);
    return rc;
}
