/* gh_pr.h: an SAE's pretrained_saes.yaml entry proposed to SAELens as a GitHub pull request,
 * over GitHub's REST API (hub_request, with GITHUB_TOKEN as the bearer token):
 *   1. the base repo's branch head: GET /repos/{base}/git/ref/heads/{baseBranch}
 *   2. a branch saed/{release} on the fork at that commit: POST /repos/{fork}/git/refs. A fork
 *      shares its parent's objects, so the branch starts at upstream's newest file however far
 *      behind the fork's own branch is and the pull request's diff is the entry alone; when the
 *      fork's network lacks the commit (422), the fork's own baseBranch head is used. A branch
 *      that exists (422) is reused: the SAEs of one release go into one branch and one PR.
 *   3. the file on that branch: GET /repos/{fork}/contents/{path}?ref={branch} (base64 content
 *      and the blob sha; over 1 MB GitHub leaves content empty, and the raw media type brings
 *      the bytes), merged with saes_yaml_merge (every other byte kept)
 *   4. the commit: PUT /repos/{fork}/contents/{path} {message, content, sha, branch}; a stale
 *      sha (409) reads the file again once; an unchanged file is not committed
 *   5. the pull request: POST /repos/{base}/pulls {title, head: "forkowner:branch", base, body};
 *      one already open for the branch (422) is found (GET /repos/{base}/pulls?head=...) and
 *      reported instead.
 * 5xx and 429 are retried (SAED_HUB_TRIES); 401, 403, 404 and 422 fail the step they happen
 * in, with GitHub's message. Knows nothing of the Hub push that precedes it (hub_push.c). */
#ifndef SAED_GH_PR_H
#define SAED_GH_PR_H

#include <jansson.h>

#include "server/config.h"
#include "server/hub_client.h"
#include "server/registry.h"

typedef struct gh_pr_req {
    const char *fork;           /* owner/name: the fork the token can push to */
    const char *base;           /* owner/name the PR goes to; NULL: SAED_SAELENS_REPO */
    const char *base_branch;    /* NULL: main */
    const char *path;           /* NULL: sae_lens/pretrained_saes.yaml */
} gh_pr_req;

/* GitHub's connection from SAED_GITHUB_API and GITHUB_TOKEN (its Accept and API version headers). */
void gh_conn_from_config(hub_conn *g, const saed_config *cfg);

/* The request's fields and the token checked before anything is pushed: 0, or -1 with e
 * (SVC_INVALID: invalid_field, github_token_missing). default_base: SAED_SAELENS_REPO. */
int gh_pr_check(const hub_conn *g, const gh_pr_req *q, const char *default_base, svc_err *e);

/* The flow above for entry (one release as the export writes it, see saes_yaml.h), named
 * release_default unless SAELens' file has the entry's repo under another name; about: a
 * line for the PR's body (the Hub repo's address). *out (owned): {fork, base, baseBranch,
 * branch, path, release, commitSha (null when unchanged), pullRequestUrl (null when nothing
 * to propose), pullRequestNumber, existingPullRequest}. On failure -1, e says which step and
 * GitHub's answer (github_unauthorized, github_forbidden, github_not_found, github_conflict,
 * github_unprocessable, github_unavailable, github_error; saelens_yaml_conflict,
 * saelens_yaml_unusable for a file this cannot edit). */
int gh_saelens_pr(const hub_conn *g, const gh_pr_req *q, const char *default_base, const json_t *entry,
                  const char *release_default, const char *about, json_t **out, svc_err *e);

#endif
