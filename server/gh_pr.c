/* gh_pr.c: see gh_pr.h. */
#define _GNU_SOURCE
#include "server/gh_pr.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base64.h"
#include "server/hub_pull.h"
#include "server/log.h"
#include "server/saes_yaml.h"

static const char *const gh_headers[] = {"Accept: application/vnd.github+json", "X-GitHub-Api-Version: 2022-11-28", NULL};
static const char *const gh_raw_headers[] = {"Accept: application/vnd.github.raw+json", "X-GitHub-Api-Version: 2022-11-28", NULL};

void gh_conn_from_config(hub_conn *g, const saed_config *cfg)
{
    *g = (hub_conn){.endpoint = cfg->github_api, .token = cfg->github_token, .tries = cfg->hub_tries, .backoff_ms = 250,
                    .service = "GitHub", .headers = gh_headers};
}

/* owner/name with GitHub's characters. */
static int gh_repo_valid(const char *s)
{
    const char *sl = s ? strchr(s, '/') : NULL;
    if (!sl || sl == s || !sl[1] || strchr(sl + 1, '/') || strlen(s) > 200 || strstr(s, "..")) return 0;
    for (const char *c = s; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("-_./", *c)) return 0;
    return 1;
}

/* A branch name git accepts (the subset saed needs: no spaces, ~^:?*[\, "..", "@{", "//"). */
static int gh_branch_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (!n || n > 200 || s[0] == '/' || s[n - 1] == '/' || s[n - 1] == '.' || strstr(s, "..") || strstr(s, "@{") ||
        strstr(s, "//"))
        return 0;
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= ' ' || strchr("~^:?*[\\", *c)) return 0;
    return 1;
}

int gh_pr_check(const hub_conn *g, const gh_pr_req *q, const char *default_base, svc_err *e)
{
    const char *base = q->base ? q->base : default_base;
    if (!gh_repo_valid(q->fork))
        return svc_fail(e, SVC_INVALID, "invalid_field", "saelensPr.fork: '%s' is not a GitHub repo (owner/name)", q->fork ? q->fork : "");
    if (!gh_repo_valid(base))
        return svc_fail(e, SVC_INVALID, "invalid_field", "saelensPr.base: '%s' is not a GitHub repo (owner/name)", base ? base : "");
    if (q->base_branch && !gh_branch_valid(q->base_branch))
        return svc_fail(e, SVC_INVALID, "invalid_field", "saelensPr.baseBranch: '%s' is not a branch name", q->base_branch);
    if (q->path && !hub_path_valid(q->path))
        return svc_fail(e, SVC_INVALID, "invalid_field", "saelensPr.path: '%s' is not a file of the repo (relative, no '..')", q->path);
    if (!g->token || !*g->token)
        return svc_fail(e, SVC_INVALID, "github_token_missing",
                        "a SAELens pull request needs GITHUB_TOKEN (push rights on the fork) in saed's configuration");
    return 0;
}

typedef struct gh {
    const hub_conn *g;
    const char *fork, *base, *bbranch, *path;
    char owner[128], branch[300], step[400];
    char *path_esc;
} gh;

/* path with each segment escaped, "/" kept. */
static char *esc_path(const char *p)
{
    char *out = NULL, *seg = strdup(p), *save = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    int first = 1;
    for (char *s = seg ? strtok_r(seg, "/", &save) : NULL; s; s = strtok_r(NULL, "/", &save)) {
        char *x = hub_escape(s);
        fprintf(f, "%s%s", first ? "" : "/", x ? x : "");
        free(x);
        first = 0;
    }
    fclose(f);
    free(seg);
    return out;
}

/* GitHub's answer turned into the step's error; returns -1. */
static int gh_fail(gh *s, long status, const json_t *j, const char *what, svc_err *e)
{
    const char *msg = json_string_value(json_object_get(j, "message"));
    const char *detail = json_string_value(json_object_get(json_array_get(json_object_get(j, "errors"), 0), "message"));
    char says[400] = "";
    if (msg) snprintf(says, sizeof says, "; GitHub says: %s%s%s", msg, detail ? ": " : "", detail ? detail : "");
    switch (status) {
    case 401:
        return svc_fail(e, SVC_UPSTREAM, "github_unauthorized", "GitHub, %s: 401, GITHUB_TOKEN was not accepted (bad or expired token)%s",
                        s->step, says);
    case 403:
        return svc_fail(e, SVC_UPSTREAM, "github_forbidden",
                        "GitHub, %s: 403, GITHUB_TOKEN lacks the rights (contents: write on the fork %s, pull requests on %s)%s",
                        s->step, s->fork, s->base, says);
    case 404:
        return svc_fail(e, SVC_UPSTREAM, "github_not_found", "GitHub, %s: 404, %s not found (or not visible to GITHUB_TOKEN)%s", s->step,
                        what, says);
    case 409: return svc_fail(e, SVC_UPSTREAM, "github_conflict", "GitHub, %s: 409 conflict%s", s->step, says);
    case 422: return svc_fail(e, SVC_UPSTREAM, "github_unprocessable", "GitHub, %s: 422%s", s->step, says);
    default:
        if (status >= 500 || status == 429)
            return svc_fail(e, SVC_UPSTREAM, "github_unavailable", "GitHub, %s: answered %ld after every retry%s", s->step, status, says);
        return svc_fail(e, SVC_UPSTREAM, "github_error", "GitHub, %s: answered %ld%s", s->step, status, says);
    }
}

/* One request; the status (0: no answer, e set), the JSON answer in *j (owned; NULL when not
 * JSON) and the body in *raw when raw is not NULL. */
static long call(gh *s, const hub_conn *g, const char *method, const char *url, const json_t *body, json_t **j, char **raw,
                 svc_err *e)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    hub_resp r;
    hub_err he;
    *j = NULL;
    if (raw) *raw = NULL;
    int rc = hub_request(g, method, url, text ? "application/json" : NULL, text, text ? strlen(text) : 0, &r, &he);
    free(text);
    if (rc) {
        hub_resp_free(&r);
        svc_fail(e, SVC_UPSTREAM, "github_unavailable", "GitHub, %s: %s", s->step, he.msg);
        return 0;
    }
    *j = json_loadb(r.body, r.len, 0, NULL);
    if (raw) {
        *raw = r.body;
        r.body = NULL;
    }
    hub_resp_free(&r);
    return r.status;
}

/* The sha a ref points at ("" and -1 on failure). */
static int ref_sha(gh *s, const char *repo, char sha[64], svc_err *e)
{
    char *url = NULL, *b = esc_path(s->bbranch);
    json_t *j = NULL;
    snprintf(s->step, sizeof s->step, "reading branch %s of %s", s->bbranch, repo);
    if (asprintf(&url, "%s/repos/%s/git/ref/heads/%s", s->g->endpoint, repo, b) < 0) url = NULL;
    free(b);
    long st = url ? call(s, s->g, "GET", url, NULL, &j, NULL, e) : 0;
    free(url);
    const char *v = json_string_value(json_object_get(json_object_get(j, "object"), "sha"));
    int rc = st == 200 && v ? 0 : -1;
    if (rc == 0) snprintf(sha, 64, "%s", v);
    else if (st) {
        char what[400];
        snprintf(what, sizeof what, "repo %s or its branch %s", repo, s->bbranch);
        gh_fail(s, st, j, what, e);
    }
    json_decref(j);
    return rc;
}

/* POST git/refs: 1 created, 0 already there, 2 the commit is unknown to the fork, -1 failure. */
static int make_branch(gh *s, const char *sha, svc_err *e)
{
    char *url = NULL, ref[320];
    snprintf(ref, sizeof ref, "refs/heads/%s", s->branch);
    snprintf(s->step, sizeof s->step, "creating branch %s on the fork %s", s->branch, s->fork);
    if (asprintf(&url, "%s/repos/%s/git/refs", s->g->endpoint, s->fork) < 0) url = NULL;
    json_t *body = json_pack("{s:s,s:s}", "ref", ref, "sha", sha), *j = NULL;
    long st = url ? call(s, s->g, "POST", url, body, &j, NULL, e) : 0;
    json_decref(body);
    free(url);
    const char *m = json_string_value(json_object_get(j, "message"));
    int rc = st == 201 ? 1 : st == 422 && m && strstr(m, "already exists") ? 0 : st == 422 ? 2 : -1;
    if (rc < 0 && st) {
        char what[300];
        snprintf(what, sizeof what, "the fork %s", s->fork);
        gh_fail(s, st, j, what, e);
    }
    json_decref(j);
    return rc;
}

/* The file on the branch: its text (owned) and blob sha; NULL on failure. */
static char *read_file(gh *s, char sha[64], svc_err *e)
{
    char *url = NULL, *bq = hub_escape(s->branch), *raw = NULL;
    json_t *j = NULL;
    snprintf(s->step, sizeof s->step, "reading %s on branch %s of %s", s->path, s->branch, s->fork);
    if (asprintf(&url, "%s/repos/%s/contents/%s?ref=%s", s->g->endpoint, s->fork, s->path_esc, bq) < 0) url = NULL;
    free(bq);
    long st = url ? call(s, s->g, "GET", url, NULL, &j, NULL, e) : 0;
    char *text = NULL;
    int raw_read = 0;
    const char *v = json_string_value(json_object_get(j, "sha")), *enc = json_string_value(json_object_get(j, "encoding"));
    const char *ct = json_string_value(json_object_get(j, "content"));
    if (st == 200 && v && json_is_object(j)) {
        snprintf(sha, 64, "%s", v);
        if (enc && !strcmp(enc, "base64") && ct && *ct) {
            /* GitHub breaks its base64 into lines. */
            size_t n = strlen(ct), k = 0, got = 0;
            char *clean = malloc(n + 1);
            for (size_t i = 0; clean && i < n; i++)
                if (!isspace((unsigned char)ct[i])) clean[k++] = ct[i];
            unsigned char *d = clean ? base64_decode(clean, k, &got) : NULL;
            free(clean);
            if (d) {
                d[got] = '\0';
                text = (char *)d;
            }
        } else if (json_integer_value(json_object_get(j, "size")) == 0) {
            text = strdup("");
        } else {
            /* Over 1 MB the object has no content: the raw media type brings the bytes. */
            hub_conn rawc = *s->g;
            rawc.headers = gh_raw_headers;
            json_t *jr = NULL;
            long rs = call(s, &rawc, "GET", url, NULL, &jr, &raw, e);
            raw_read = 1;
            if (rs == 200) {
                text = raw;
                raw = NULL;
            } else if (rs) {
                gh_fail(s, rs, jr, "the file", e);
            }
            json_decref(jr);
            free(raw);
            if (!text) {
                free(url);
                json_decref(j);
                return NULL;
            }
        }
        /* (A raw answer may be newer than the object's sha; the write's sha check catches that.) */
        if (!text) svc_fail(e, SVC_UPSTREAM, "github_error", "GitHub, %s: the answer's content could not be decoded", s->step);
        else if (!raw_read && strlen(text) != (size_t)json_integer_value(json_object_get(j, "size")) && json_object_get(j, "size")) {
            free(text);
            text = NULL;
            svc_fail(e, SVC_UPSTREAM, "github_error", "GitHub, %s: the file is not text (a NUL byte) or came back cut", s->step);
        }
    } else if (st) {
        char what[1400];
        snprintf(what, sizeof what, "the file %s on branch %s of %s", s->path, s->branch, s->fork);
        gh_fail(s, st, j, what, e);
    }
    free(url);
    json_decref(j);
    return text;
}

/* PUT contents: 0 with the commit's sha, 1 on a stale blob sha (409), -1 failure. */
static int commit_file(gh *s, const char *text, const char *blob, const char *message, char csha[64], svc_err *e)
{
    char *url = NULL, *b64 = base64_encode(text, strlen(text));
    snprintf(s->step, sizeof s->step, "committing %s to branch %s of %s", s->path, s->branch, s->fork);
    if (asprintf(&url, "%s/repos/%s/contents/%s", s->g->endpoint, s->fork, s->path_esc) < 0) url = NULL;
    json_t *body = json_pack("{s:s,s:s,s:s,s:s}", "message", message, "content", b64 ? b64 : "", "sha", blob, "branch", s->branch), *j = NULL;
    free(b64);
    long st = url && body ? call(s, s->g, "PUT", url, body, &j, NULL, e) : 0;
    json_decref(body);
    free(url);
    const char *v = json_string_value(json_object_get(json_object_get(j, "commit"), "sha"));
    int rc = (st == 200 || st == 201) && v ? 0 : st == 409 ? 1 : -1;
    if (rc == 0) snprintf(csha, 64, "%s", v);
    else if (rc < 0 && st) gh_fail(s, st, j, "the fork's file or branch", e);
    json_decref(j);
    return rc;
}

/* The open PR of head "owner:branch" on base: its html_url and number (0 when none, -1 failure). */
static int find_pr(gh *s, json_t **pr, svc_err *e)
{
    char *url = NULL, head[500];
    snprintf(head, sizeof head, "%s:%s", s->owner, s->branch);
    char *hq = hub_escape(head);
    snprintf(s->step, sizeof s->step, "finding the open pull request of %s on %s", head, s->base);
    if (asprintf(&url, "%s/repos/%s/pulls?head=%s&state=open", s->g->endpoint, s->base, hq ? hq : "") < 0) url = NULL;
    free(hq);
    json_t *j = NULL;
    long st = url ? call(s, s->g, "GET", url, NULL, &j, NULL, e) : 0;
    free(url);
    int rc = -1;
    if (st == 200 && json_is_array(j)) {
        json_t *p = json_array_get(j, 0);
        *pr = p ? json_incref(p) : NULL;
        rc = p ? 1 : 0;
    } else if (st) {
        gh_fail(s, st, j, "the base repo", e);
    }
    json_decref(j);
    return rc;
}

/* POST pulls: the PR (owned), or NULL; one already open for the branch is looked up. */
static json_t *open_pr(gh *s, const char *title, const char *body, int *existing, svc_err *e)
{
    char *url = NULL, head[500];
    snprintf(head, sizeof head, "%s:%s", s->owner, s->branch);
    snprintf(s->step, sizeof s->step, "opening the pull request %s -> %s:%s", head, s->base, s->bbranch);
    if (asprintf(&url, "%s/repos/%s/pulls", s->g->endpoint, s->base) < 0) url = NULL;
    json_t *req = json_pack("{s:s,s:s,s:s,s:s,s:b}", "title", title, "head", head, "base", s->bbranch, "body", body,
                            "maintainer_can_modify", 1), *j = NULL;
    long st = url ? call(s, s->g, "POST", url, req, &j, NULL, e) : 0;
    json_decref(req);
    free(url);
    *existing = 0;
    if (st == 201 && json_is_string(json_object_get(j, "html_url"))) return j;
    char said[600] = "";
    const char *m = json_string_value(json_object_get(json_array_get(json_object_get(j, "errors"), 0), "message"));
    snprintf(said, sizeof said, "%s", m ? m : "");
    if (st == 422 && strstr(said, "already exists")) {
        json_t *pr = NULL;
        json_decref(j);
        if (find_pr(s, &pr, e) == 1) {
            *existing = 1;
            return pr;
        }
        return NULL;
    }
    if (st) gh_fail(s, st, j, "the base repo", e);
    json_decref(j);
    return NULL;
}

/* The entry as the PR's body shows it. */
static char *entry_yaml(const json_t *entry, const char *release)
{
    char *y = NULL, rel[320], err[200];
    return saes_yaml_merge("", entry, release, &y, rel, sizeof rel, err, sizeof err) == SY_OK ? y : NULL;
}

int gh_saelens_pr(const hub_conn *g, const gh_pr_req *q, const char *default_base, const json_t *entry,
                  const char *release_default, const char *about, json_t **out, svc_err *e)
{
    *out = NULL;
    gh s = {.g = g, .fork = q->fork, .base = q->base ? q->base : default_base, .bbranch = q->base_branch ? q->base_branch : "main",
            .path = q->path ? q->path : "sae_lens/pretrained_saes.yaml"};
    snprintf(s.owner, sizeof s.owner, "%.*s", (int)(strchr(s.fork, '/') - s.fork), s.fork);
    /* One branch per release: its SAEs' entries go into one pull request. */
    snprintf(s.branch, sizeof s.branch, "saed/%s", release_default);
    for (char *c = s.branch + 5; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("-_.", *c)) *c = '-';
    s.path_esc = esc_path(s.path);
    char base_sha[64], blob[64], csha[64] = "", release[300] = "";
    char *text = NULL, *merged = NULL;
    int rc = ref_sha(&s, s.base, base_sha, e);
    int made = rc == 0 ? make_branch(&s, base_sha, e) : -1;
    if (made == 2) {
        /* The fork's network lacks upstream's commit (not a fork of it, or a mirror): branch
         * from the fork's own baseBranch. */
        log_info("GitHub: %s lacks %s's commit %s; branching from its own %s", s.fork, s.base, base_sha, s.bbranch);
        made = ref_sha(&s, s.fork, base_sha, e) == 0 ? make_branch(&s, base_sha, e) : -1;
        if (made == 2) made = svc_fail(e, SVC_UPSTREAM, "github_unprocessable", "GitHub, %s: 422, the commit %s is unknown to the fork",
                                       s.step, base_sha);
    }
    const json_t *sae = json_array_get(json_object_get(entry, "saes"), 0);
    const char *sae_path = json_string_value(json_object_get(sae, "path"));
    char message[700];
    int unchanged = 0;
    for (int attempt = 0; made >= 0 && attempt < 2; attempt++) {
        free(text);
        free(merged);
        merged = NULL;
        text = read_file(&s, blob, e);
        if (!text) break;
        char err[400];
        int m = saes_yaml_merge(text, entry, release_default, &merged, release, sizeof release, err, sizeof err);
        if (m != SY_OK) {
            svc_fail(e, m == SY_CONFLICT ? SVC_CONFLICT : SVC_UPSTREAM, m == SY_CONFLICT ? "saelens_yaml_conflict" : "saelens_yaml_unusable",
                     "%s of %s (branch %s): %s", s.path, s.fork, s.branch, err);
            break;
        }
        if (!strcmp(merged, text)) {
            unchanged = 1;
            break;
        }
        snprintf(message, sizeof message, "pretrained_saes.yaml: %s, SAE %s (saed)", release, sae_path ? sae_path : "");
        int c = commit_file(&s, merged, blob, message, csha, e);
        if (c == 0) break;
        if (c < 0 || attempt == 1) {
            if (c > 0) svc_fail(e, SVC_UPSTREAM, "github_conflict", "GitHub, %s: 409, the file changed while saed wrote it, twice", s.step);
            csha[0] = '\0';
            unchanged = -1;
            break;
        }
        log_info("GitHub: %s changed on %s meanwhile; reading it again", s.path, s.branch);
    }
    int ok = made >= 0 && merged && unchanged >= 0 && (unchanged || csha[0]);
    json_t *pr = NULL;
    int existing = 0;
    if (ok) {
        char title[600], *body = NULL, *y = entry_yaml(entry, release);
        snprintf(title, sizeof title, "Add %s (%s) to pretrained_saes.yaml", release, sae_path ? sae_path : "");
        if (asprintf(&body,
                     "Adds the SAE `%s` of release `%s` to `%s`, as saed proposes it after pushing the SAE to the "
                     "Hugging Face Hub (%s). Every other line of the file is unchanged.\n\n```yaml\n%s```\n",
                     sae_path ? sae_path : "", release, s.path, about ? about : "", y ? y : "") < 0)
            body = NULL;
        free(y);
        if (unchanged) {
            /* Nothing new to commit: the open PR, if there is one. */
            int f = find_pr(&s, &pr, e);
            ok = f >= 0;
            existing = f == 1;
        } else {
            pr = body ? open_pr(&s, title, body, &existing, e) : NULL;
            ok = pr != NULL;
        }
        free(body);
    }
    if (ok) {
        *out = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s?,s:O?,s:O?,s:b}", "fork", s.fork, "base", s.base, "baseBranch", s.bbranch,
                         "branch", s.branch, "path", s.path, "release", release, "commitSha", csha[0] ? csha : NULL,
                         "pullRequestUrl", json_object_get(pr, "html_url"), "pullRequestNumber", json_object_get(pr, "number"),
                         "existingPullRequest", existing);
        for (const char *const *k = (const char *const[]){"commitSha", "pullRequestUrl", "pullRequestNumber", NULL}; *k; k++)
            if (!json_object_get(*out, *k)) json_object_set_new(*out, *k, json_null());
        log_info("GitHub: %s/%s on %s:%s, pull request %s", release, sae_path ? sae_path : "", s.fork, s.branch,
                 json_string_value(json_object_get(pr, "html_url")) ? json_string_value(json_object_get(pr, "html_url")) : "(none)");
    }
    json_decref(pr);
    free(text);
    free(merged);
    free(s.path_esc);
    return ok ? 0 : -1;
}
