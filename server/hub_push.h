/* hub_push.h: a registered SAE pushed to a Hugging Face Hub model repo, as huggingface_hub's
 * upload_folder does it: the repo created when missing (POST /api/repos/create), each file's
 * upload mode asked for (preupload), LFS files sent through the LFS batch API (upload, then
 * verify) and everything committed in one NDJSON commit (optionally as a pull request). The
 * commit holds the SAELens export under the SAE's folder (cfg.json, sae_weights.safetensors,
 * sparsity.safetensors when dashboards measured the density), the repo's README.md model card
 * with this SAE's section, and pretrained_saes.yaml with its entry; both files are merged with
 * what the repo already has, so several SAEs of one release share a repo, a card and a release. */
#ifndef SAED_HUB_PUSH_H
#define SAED_HUB_PUSH_H

#include "db/db.h"
#include "server/gh_pr.h"
#include "server/hub_client.h"
#include "server/registry.h"

typedef struct hub_push_req {
    const char *model_id, *sae_id;
    const char *repo;           /* org/name */
    const char *path;           /* the SAE's folder in the repo; NULL: the SAE id */
    const char *revision;       /* branch to commit to; NULL: main */
    const char *dashboard_url;  /* base URL of the dashboards for the card's links; NULL: none */
    int is_private, create_pr;
    const gh_pr_req *saelens;   /* also propose the entry to SAELens as a GitHub PR (gh_pr.h); NULL: no */
    const hub_conn *gh;         /* GitHub's connection, with saelens */
    const char *saelens_base;   /* SAED_SAELENS_REPO, with saelens */
} hub_push_req;

/* *json_out (malloc'd): {repoId, revision, path, release, commitOid, commitUrl, pullRequestUrl,
 * saelensPullRequestUrl, saelensPr?, files: [{path, size, lfs}]}. Hub refusals come back as
 * SVC_UPSTREAM (or SVC_NOT_FOUND for an unknown SAE, SVC_INVALID for bad fields), with -1.
 * Returns 1 when the Hub push succeeded and only the SAELens pull request failed: *json_out
 * holds the Hub's result and e the PR step's failure. */
int hub_push_sae(db_conn *c, const hub_conn *h, const hub_push_req *q, char **json_out, svc_err *e);

#endif
