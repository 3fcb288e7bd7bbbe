/* ghd.h: a stand-in for GitHub's REST API, run inside the test process on loopback (GitHub
 * cannot be reached from the test machines). It answers the calls saed's SAELens pull request
 * makes (server/gh_pr.c) the way GitHub does, as far as saed reads the answers:
 *
 *   Every request: "Authorization: Bearer T" must name a known token, else 401 {"message":
 *   "Bad credentials"}; a request without a User-Agent header is refused with 403 (GitHub
 *   rejects those outright). Error bodies are {"message"} (GitHub adds a documentation link)
 *   and, for 422, "errors": [{"resource", "code", "message"}].
 *
 *   GET  /repos/{owner}/{repo}/git/ref/heads/{branch}
 *        The branch's ref: {"ref": "refs/heads/B", "object": {"type": "commit", "sha"}}; an
 *        unknown repo or branch is 404 {"message": "Not Found"}.
 *   POST /repos/{owner}/{repo}/git/refs  {"ref": "refs/heads/B", "sha"}
 *        Creates a branch. Needs push rights on the repo (the token's user owns it), else 403
 *        "Resource not accessible by personal access token"; 201 with the ref as above. A ref
 *        that exists is 422 "Reference already exists"; a sha the repo's fork network does not
 *        hold is 422 "Object does not exist". Forks share their parent's objects, so a fork's
 *        branch may be created at any commit of the parent.
 *   GET  /repos/{owner}/{repo}/contents/{path}?ref=B
 *        A file at a branch: {"type": "file", "name", "path", "size", "sha" (the blob id),
 *        "encoding": "base64", "content"} with the base64 broken into lines of 60 characters
 *        plus "\n". Over 1 MiB the content is "" and the encoding "none"; the same request with
 *        "Accept: application/vnd.github.raw+json" answers the file's bytes. A missing repo,
 *        branch or file is 404.
 *   PUT  /repos/{owner}/{repo}/contents/{path}  {"message", "content" (base64), "sha", "branch"}
 *        Commits the file on the branch (push rights needed). Replacing a file needs the sha of
 *        the blob it replaces: none given is 422 ("sha" wasn't supplied), another blob's sha 409
 *        (the file moved on). 200 (201 for a new file) {"content": {"sha", ...}, "commit":
 *        {"sha", "html_url", "message"}}. An unknown branch is 404.
 *   POST /repos/{owner}/{repo}/pulls  {"title", "head": "forkowner:branch", "base", "body"}
 *        Opens a pull request from a branch of a repo in the same network: 201 {"number",
 *        "html_url", "state": "open", "title", "head": {"ref", "label"}, "base": {"ref"}}. An open
 *        PR for the same head and base is 422 with errors[0].message "A pull request already
 *        exists for owner:branch."; a head with no commit the base lacks, 422 "No commits
 *        between ..."; an unknown head, 422 too.
 *   GET  /repos/{owner}/{repo}/pulls?head=owner:branch&state=open
 *        The open pull requests of that head, as an array of the objects above.
 *
 * The stand-in tracks the files of each commit whole, names blobs and commits by the first 40
 * hex digits of a sha256 where GitHub uses git's sha1 (clients treat both as opaque names),
 * and lets a test fail the next N requests with 503 and merge a PR into its base. */
#ifndef SAED_TESTS_GHD_H
#define SAED_TESTS_GHD_H

#include <stddef.h>

typedef struct ghd ghd;

ghd *ghd_start(void);
void ghd_stop(ghd *g);
/* "http://127.0.0.1:PORT" */
const char *ghd_endpoint(const ghd *g);

/* token belongs to user login (who may push to the repos login owns). */
void ghd_token(ghd *g, const char *token, const char *login);
/* A repo with branch main holding one file (path, text); a fork of parent (in its network,
 * main at the parent's main) when parent is not NULL (path and text then unused). */
void ghd_repo(ghd *g, const char *repo, const char *parent, const char *path, const char *text);
/* The repo sees only its own branches' commits, as a mirror that is no fork would: a ref at
 * another commit of the network is 422 "Object does not exist". */
void ghd_isolate(ghd *g, const char *repo);
/* A new commit on a branch that sets path to text (the upstream moving on). */
void ghd_commit(ghd *g, const char *repo, const char *branch, const char *path, const char *text);
/* A copy of the file at a branch (malloc'd), or NULL. */
char *ghd_file(ghd *g, const char *repo, const char *branch, const char *path);
/* Pull request number n of repo: its head label, title, body, state ("open"/"closed"); 0 when
 * there is none. Strings are copied into the caller's buffers of 512 bytes. */
int ghd_pr(ghd *g, const char *repo, int n, char *head, char *title, char *body_prefix, char *state);
/* Merges PR n of repo: the base branch takes the head's files; the PR is closed. */
void ghd_merge(ghd *g, const char *repo, int n);
void ghd_fail(ghd *g, int n);                 /* the next n requests answer 503 */
/* Right after the next read of path on repo's branch, a commit appends add to it (a
 * concurrent edit: the reader's write then carries a stale sha). */
void ghd_race(ghd *g, const char *repo, const char *branch, const char *path, const char *add);
/* Requests whose "METHOD path" starts with prefix; requests that lacked GitHub's Accept or
 * X-GitHub-Api-Version header. */
int ghd_count(ghd *g, const char *prefix);
int ghd_bad_headers(ghd *g);

#endif
