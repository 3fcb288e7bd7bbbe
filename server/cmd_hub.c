/* cmd_hub.c: see cmd_hub.h. Same code as the API: `saed pull` runs hub_pull (the pull jobs'
 * download) in-process without a database, `saed push-sae` runs hub_push_sae on the registry
 * (and its SAELens pull request with --saelens-pr). */
#include "server/cmd_hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/config.h"
#include "server/hub_cache.h"
#include "server/hub_pull.h"
#include "server/hub_push.h"
#include "server/job_pull.h"

#define MAX_INCLUDE 64

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct bar {
    double t0, last;
    int64_t first;
    int tty, started;
} bar;

static int show(void *ud, int64_t done, int64_t total)
{
    bar *b = ud;
    double t = now_s();
    if (!b->started) {
        b->started = 1;
        b->first = done;
        b->t0 = t;
    }
    if (t - b->last < (b->tty ? 0.2 : 5.0) && done < total) return 0;
    b->last = t;
    double rate = t > b->t0 ? (double)(done - b->first) / (t - b->t0) : 0, eta = rate > 0 ? (double)(total - done) / rate : 0;
    fprintf(stderr, "%s%.1f / %.1f MB  %.2f MB/s  ETA %.0f s%s", b->tty ? "\r" : "", done / 1e6, total / 1e6, rate / 1e6, eta,
            b->tty ? "   " : "\n");
    return 0;
}

/* Removes "--name value" / "--name=value" from argv; the value or NULL. */
static const char *flag(int *argc, char **argv, const char *name, int *missing)
{
    size_t nl = strlen(name);
    for (int i = 0; i < *argc; i++) {
        int used = 0;
        const char *v = NULL;
        if (!strcmp(argv[i], name)) {
            if (i + 1 >= *argc) return (*missing = 1, NULL);
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

static int swtch(int *argc, char **argv, const char *name)
{
    for (int i = 0; i < *argc; i++)
        if (!strcmp(argv[i], name)) {
            memmove(&argv[i], &argv[i + 1], (size_t)(*argc - i - 1) * sizeof *argv);
            (*argc)--;
            return 1;
        }
    return 0;
}

int cmd_pull(int argc, char **argv)
{
    int missing = 0;
    hub_pull_req q = {0};
    const char *inc[MAX_INCLUDE + 1] = {0}, *g;
    int ni = 0;
    q.repo = flag(&argc, argv, "--repo", &missing);
    q.revision = flag(&argc, argv, "--revision", &missing);
    q.subpath = flag(&argc, argv, "--path", &missing);
    while (ni < MAX_INCLUDE && (g = flag(&argc, argv, "--include", &missing))) inc[ni++] = g;
    q.include = inc;
    if (missing || !q.repo) {
        fprintf(stderr, "saed pull: --repo R is required (saed pull --repo R [--revision REV] [--path P] [--include GLOB]...)\n");
        return 2;
    }
    saed_config cfg;
    char err[1024];
    if (config_load(&cfg, argc, argv, err, sizeof err)) {
        fprintf(stderr, "saed pull: invalid configuration: %s\n", err);
        return 2;
    }
    int rc = 1;
    hub_conn h;
    hub_conn_from_config(&h, &cfg);
    bar b = {.tty = isatty(2)};
    hub_pulled got;
    hub_err e;
    if (hub_mkdirs(cfg.hf_cache)) {
        fprintf(stderr, "saed pull: SAED_HF_CACHE %s cannot be created\n", cfg.hf_cache);
    } else if (hub_pull(&h, cfg.hf_cache, &q, show, &b, &got, &e)) {
        fprintf(stderr, "%ssaed pull: %s\n", b.tty && b.started ? "\n" : "", e.msg);
    } else {
        if (b.tty && b.started) fputc('\n', stderr);
        printf("{\"repo\":\"%s\",\"commit\":\"%s\",\"path\":\"%s\",\"files\":%d,\"bytes\":%lld,\"bytesDownloaded\":%lld}\n",
               q.repo, got.commit, got.dir, got.nfiles, (long long)got.bytes, (long long)got.downloaded);
        rc = 0;
    }
    config_free(&cfg);
    return rc;
}

int cmd_push_sae(int argc, char **argv)
{
    int missing = 0;
    hub_push_req q = {0};
    q.model_id = flag(&argc, argv, "--model", &missing);
    q.sae_id = flag(&argc, argv, "--sae", &missing);
    q.repo = flag(&argc, argv, "--repo", &missing);
    q.path = flag(&argc, argv, "--path", &missing);
    q.revision = flag(&argc, argv, "--revision", &missing);
    q.dashboard_url = flag(&argc, argv, "--dashboard-url", &missing);
    q.is_private = swtch(&argc, argv, "--private");
    q.create_pr = swtch(&argc, argv, "--create-pr");
    gh_pr_req pr = {0};
    pr.fork = flag(&argc, argv, "--saelens-pr", &missing);
    pr.base = flag(&argc, argv, "--saelens-base", &missing);
    pr.base_branch = flag(&argc, argv, "--saelens-branch", &missing);
    pr.path = flag(&argc, argv, "--saelens-path", &missing);
    if (missing || !q.model_id || !q.sae_id || !q.repo || (!pr.fork && (pr.base || pr.base_branch || pr.path))) {
        fprintf(stderr, "saed push-sae: --model ID --sae ID --repo R are required "
                        "([--path P] [--revision REV] [--private] [--create-pr] [--dashboard-url URL] "
                        "[--saelens-pr OWNER/SAELens [--saelens-base OWNER/REPO] [--saelens-branch B] [--saelens-path P]])\n");
        return 2;
    }
    saed_config cfg;
    char err[1024];
    if (config_load(&cfg, argc, argv, err, sizeof err)) {
        fprintf(stderr, "saed push-sae: invalid configuration: %s\n", err);
        return 2;
    }
    int rc = 1;
    db_conn *c = db_connect(cfg.database_url, err, sizeof err);
    if (!c) {
        fprintf(stderr, "saed push-sae: cannot connect to the database (DATABASE_URL): %s\n", err);
    } else {
        hub_conn h, gh;
        hub_conn_from_config(&h, &cfg);
        gh_conn_from_config(&gh, &cfg);
        if (pr.fork) {
            q.saelens = &pr;
            q.gh = &gh;
            q.saelens_base = cfg.saelens_repo;
        }
        char *json = NULL;
        svc_err e;
        int prc = hub_push_sae(c, &h, &q, &json, &e);
        if (prc > 0) {
            /* The Hub push is done: its result on stdout, the pull request's failure on stderr. */
            printf("%s\n", json);
            fprintf(stderr, "saed push-sae: %s\n", e.msg);
        } else if (prc) {
            fprintf(stderr, "saed push-sae: %s\n", e.msg);
        } else {
            printf("%s\n", json);
            rc = 0;
        }
        free(json);
        db_close(c);
    }
    config_free(&cfg);
    return rc;
}
