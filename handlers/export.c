/* export.c: GET /api/export/{modelId}/{saeId}, the dashboards stored for an SAE as a .tar.gz
 * in Neuronpedia's bulk-import layout or SAEDashboard's (server/export_db.h, the same code as
 * `saed export`). The files are written to a scratch directory, archived, then removed. */
#include <stdio.h>
#include <stdlib.h>

#include "handlers/handlers.h"
#include "server/export_db.h"

typedef struct export_args {
    export_db_format format;
    int batch;
} export_args;

static void export_task(http_req *r, void *ud);

void h_export_dashboards(http_req *r)
{
    const char *fmt = http_query(r, "format"), *fpb = http_query(r, "featuresPerBatch");
    export_db_format f;
    if (export_db_format_parse(fmt, &f)) {
        http_reply_error(r, 400, "invalid_field", "format: expected neuronpedia or saedashboard, got '%s'", fmt);
        return;
    }
    long batch = 0;
    if (fpb) {
        char *end;
        batch = strtol(fpb, &end, 10);
        if (!*fpb || *end || batch < 1 || batch > EXPORT_DB_SD_BATCH_MAX) {
            http_reply_error(r, 400, "invalid_field", "featuresPerBatch: expected an integer in [1, %d]",
                             EXPORT_DB_SD_BATCH_MAX);
            return;
        }
    }
    /* Reads and compresses every stored row of the SAE: a compute task. */
    export_args *a = malloc(sizeof *a);
    if (!a) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    *a = (export_args){f, (int)batch};
    if (http_defer(r, export_task, a)) free(a);
}

static void export_task(http_req *r, void *ud)
{
    export_args a = *(export_args *)ud;
    free(ud);
    const char *model = http_param(r, "modelId"), *sae = http_param(r, "saeId");
    db_conn *c = http_db(r);
    if (!c) return;
    char dir[] = "/tmp/saed-dashboards-XXXXXX";
    if (!mkdtemp(dir)) {
        http_reply_error(r, 500, "internal", "cannot create a temporary directory");
        return;
    }
    svc_err e;
    if (export_db_write(c, model, sae, a.format, a.batch, dir, &e)) {
        export_db_rmtree(dir);
        reply_svc(r, &e);
        return;
    }
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s-%s", model, sae);
    reply_targz_dir(r, dir, prefix);
    export_db_rmtree(dir);
}
