/* main.c: the saed binary's sub-commands. Each parses its own arguments, then the shared
 * options (server/config.c), and returns an exit status: 0 ok, 1 failure, 2 usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/migrate.h"
#include "gpu/backend.h"
#include "server/cmd_engine.h"
#include "server/config.h"
#include "server/log.h"
#include "server/registry.h"
#include "server/serve.h"

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
            "  import-model --id ID --path DIR [--display-name NAME]\n"
            "                        register a HuggingFace-layout model directory\n"
            "  tokenize --model DIR [--tokenizer DIR] [--text T]\n"
            "                        GPT-2 BPE token ids and strings of T (stdin when omitted)\n"
            "  forward --model DIR (--text T | --ids JSON) [--prepend-bos] [--hook NAME]...\n"
            "          [--processing none|center_writing_weights|fold_value_biases|tl] [--tokenizer DIR]\n"
            "                        run the model; print hook values, last logits and argmax as JSON\n"
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
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    int ac = argc - 2;
    char **av = argv + 2;
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) return cmd_version();
    if (!strcmp(cmd, "config-docs")) {
        config_print_markdown(stdout);
        return 0;
    }
    for (int i = 0; i < ac; i++)
        if (!strcmp(av[i], "--help") || !strcmp(av[i], "-h")) {
            usage(stdout);
            return 0;
        }
    const char *id = NULL, *path = NULL, *display = NULL;
    int missing = 0;
    if (!strcmp(cmd, "tokenize") || !strcmp(cmd, "forward")) {
        cmd_forward_args fa = {0};
        fa.model_dir = take_flag(&ac, av, "--model", &missing);
        fa.tokenizer_dir = take_flag(&ac, av, "--tokenizer", &missing);
        fa.text = take_flag(&ac, av, "--text", &missing);
        fa.ids_json = take_flag(&ac, av, "--ids", &missing);
        fa.processing = take_flag(&ac, av, "--processing", &missing);
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
        if (missing) {
            fprintf(stderr, "saed import-model: a flag is missing its value\n");
            return 2;
        }
    } else if (strcmp(cmd, "serve") && strcmp(cmd, "migrate")) {
        fprintf(stderr, "saed: unknown command '%s' (see saed --help)\n", cmd);
        return 2;
    }
    saed_config cfg;
    if (load_config(&cfg, ac, av)) return 2;
    int rc;
    if (!strcmp(cmd, "serve")) rc = serve_main(&cfg);
    else if (!strcmp(cmd, "migrate")) rc = cmd_migrate(&cfg);
    else rc = cmd_import_model(&cfg, id, path, display);
    config_free(&cfg);
    return rc;
}
