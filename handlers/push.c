/* push.c: POST /api/saes/{modelId}/{id}/push: a registered SAE to a Hugging Face Hub repo
 * (server/hub_push.c), on the compute pool since it exports and uploads the whole SAE. */
#include <stdlib.h>
#include <string.h>

#include "handlers/handlers.h"
#include "server/hub_push.h"
#include "server/job_pull.h"

static void push_task(http_req *r, void *ud);

void h_saes_push(http_req *r)
{
    json_t *b = http_json(r);
    json_error_t je;
    hub_push_req *q = calloc(1, sizeof *q);
    if (!q) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    int priv = 0, pr = 0;
    /* The strings point into the request body, which lives as long as the request. */
    if (!json_is_object(b) ||
        json_unpack_ex(b, &je, 0, "{s?s,s?s,s?s,s?s,s?b,s?b}", "repo", &q->repo, "path", &q->path, "revision", &q->revision,
                       "dashboardUrl", &q->dashboard_url, "private", &priv, "createPr", &pr)) {
        http_reply_error(r, 400, "invalid_field", "%s", json_is_object(b) ? je.text : "request body must be a JSON object");
        free(q);
        return;
    }
    if (!q->repo) {
        http_reply_error(r, 400, "invalid_field", "repo: required string (org/name)");
        free(q);
        return;
    }
    q->model_id = http_param(r, "modelId");
    q->sae_id = http_param(r, "id");
    q->is_private = priv;
    q->create_pr = pr;
    if (http_defer(r, push_task, q)) free(q);
}

static void push_task(http_req *r, void *ud)
{
    hub_push_req *q = ud;
    db_conn *c = http_db(r);
    if (!c) {
        free(q);
        return;
    }
    hub_conn h;
    hub_conn_from_config(&h, http_app(r)->cfg);
    char *json = NULL;
    svc_err e;
    if (hub_push_sae(c, &h, q, &json, &e)) reply_svc(r, &e);
    else reply_json_text(r, 200, json);
    free(json);
    free(q);
}
