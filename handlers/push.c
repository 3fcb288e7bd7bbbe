/* push.c: POST /api/saes/{modelId}/{id}/push: a registered SAE to a Hugging Face Hub repo
 * (server/hub_push.c), and optionally its pretrained_saes.yaml entry to SAELens as a GitHub
 * pull request (server/gh_pr.c), on the compute pool since it exports and uploads the whole SAE. */
#include <stdlib.h>
#include <string.h>

#include "handlers/handlers.h"
#include "server/hub_push.h"
#include "server/job_pull.h"

typedef struct push_job {
    hub_push_req q;
    gh_pr_req pr;
    hub_conn gh;
} push_job;

static void push_task(http_req *r, void *ud);

void h_saes_push(http_req *r)
{
    json_t *b = http_json(r), *spr = NULL;
    json_error_t je;
    push_job *pj = calloc(1, sizeof *pj);
    if (!pj) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    hub_push_req *q = &pj->q;
    int priv = 0, pr = 0;
    /* The strings point into the request body, which lives as long as the request. */
    if (!json_is_object(b) ||
        json_unpack_ex(b, &je, 0, "{s?s,s?s,s?s,s?s,s?b,s?b,s?o}", "repo", &q->repo, "path", &q->path, "revision", &q->revision,
                       "dashboardUrl", &q->dashboard_url, "private", &priv, "createPr", &pr, "saelensPr", &spr) ||
        (spr && !json_is_null(spr) &&
         json_unpack_ex(spr, &je, JSON_STRICT, "{s:s,s?s,s?s,s?s}", "fork", &pj->pr.fork, "base", &pj->pr.base, "baseBranch",
                        &pj->pr.base_branch, "path", &pj->pr.path))) {
        http_reply_error(r, 400, "invalid_field", "%s%s", spr && json_is_object(b) ? "saelensPr: " : "",
                         json_is_object(b) ? je.text : "request body must be a JSON object");
        free(pj);
        return;
    }
    if (!q->repo) {
        http_reply_error(r, 400, "invalid_field", "repo: required string (org/name)");
        free(pj);
        return;
    }
    q->model_id = http_param(r, "modelId");
    q->sae_id = http_param(r, "id");
    q->is_private = priv;
    q->create_pr = pr;
    if (spr && !json_is_null(spr)) q->saelens = &pj->pr;
    if (http_defer(r, push_task, pj)) free(pj);
}

static void push_task(http_req *r, void *ud)
{
    push_job *pj = ud;
    db_conn *c = http_db(r);
    if (!c) {
        free(pj);
        return;
    }
    const saed_config *cfg = http_app(r)->cfg;
    hub_conn h;
    hub_conn_from_config(&h, cfg);
    gh_conn_from_config(&pj->gh, cfg);
    pj->q.gh = &pj->gh;
    pj->q.saelens_base = cfg->saelens_repo;
    char *json = NULL;
    svc_err e;
    int rc = hub_push_sae(c, &h, &pj->q, &json, &e);
    if (rc == 0) {
        reply_json_text(r, 200, json);
    } else if (rc > 0) {
        /* Only the pull request failed: the error, and what the Hub push did. */
        json_t *done = json_loads(json, 0, NULL);
        reply_svc_with(r, &e, "hubPush", done);
        json_decref(done);
    } else {
        reply_svc(r, &e);
    }
    free(json);
    free(pj);
}
