/* hubd.h: a stand-in for the Hugging Face Hub, run inside the test process on loopback (the
 * real Hub cannot be reached from the test machines). It speaks the Hub's HTTP protocol for the
 * calls saed makes, as huggingface_hub's client relies on them:
 *
 *   GET  /api/models/{repo}/revision/{rev}[?blobs=true]
 *        The repo at a revision: {"id", "sha": commit, "private", "gated", "siblings":
 *        [{"rfilename", "blobId", "size", "lfs": {"sha256", "size", "pointerSize"}?}]}. The
 *        revision is a branch name or a commit id and comes URL-escaped ("/" as %2F). An unknown
 *        repo is 401 when no token is sent (the Hub does not say whether a repo exists to an
 *        anonymous caller) and 404 with one, with X-Error-Code: RepoNotFound; an unknown
 *        revision is 404 with X-Error-Code: RevisionNotFound. Metadata of a gated repo is public.
 *   GET|HEAD /{repo}/resolve/{rev}/{path}
 *        A file at a revision. Every answer carries X-Repo-Commit (the commit the revision
 *        resolved to). A regular (git) file is served here: ETag is its blob id in quotes,
 *        Range "bytes=N-" gives 206 with Content-Range, N past the end 416. An LFS file is a
 *        302 to its storage URL (Location), with X-Linked-Etag (the sha256, quoted) and
 *        X-Linked-Size. A gated repo's files need a token that was granted access: no token
 *        401, another token 403, both with X-Error-Code: GatedRepo. A missing file is 404 with
 *        X-Error-Code: EntryNotFound.
 *   GET  /lfs-storage/{sha256}
 *        The storage (a CDN on the real Hub): the bytes, with Range as above; no token needed.
 *
 *   POST /api/repos/create  {"name", "organization", "private", "type"}
 *        Needs a write token (none 401, another 403); 200 {"url"}; an existing repo 409 with
 *        "You already created this model repo" (clients treat it as success when asked to).
 *   POST /api/models/{repo}/preupload/{rev}[?create_pr=1]  {"files": [{"path", "size", "sample"}]}
 *        "sample" is the file's first 512 bytes in base64; the answer says per file
 *        {"path", "uploadMode": "lfs"|"regular", "shouldIgnore"}: LFS for the repo's
 *        .gitattributes patterns (*.safetensors), files over 10 MB and binary samples.
 *   POST /{repo}.git/info/lfs/objects/batch  (Content-Type/Accept application/vnd.git-lfs+json)
 *        {"operation": "upload", "transfers": ["basic"], "objects": [{"oid", "size"}],
 *        "hash_algo": "sha256", "ref": {"name"}} -> {"objects": [{"oid", "size", "actions":
 *        {"upload": {"href", "header"}, "verify": {"href", "header"}}}]}; an object the Hub
 *        already stores comes back without actions (nothing to upload).
 *   PUT  {upload href}  the object's bytes (storage, presigned: no Hub token is sent there);
 *        content whose sha256 is not the oid is refused.
 *   POST {verify href}  {"oid", "size"} with the token: 200 once the object is stored.
 *   POST /api/models/{repo}/commit/{rev}[?create_pr=1]  (application/x-ndjson)
 *        Lines {"key": "header", "value": {"summary", "description"}}, then per file
 *        {"key": "file", "value": {"path", "content" (base64), "encoding": "base64"}} or
 *        {"key": "lfsFile", "value": {"path", "algo": "sha256", "oid", "size"}} (an oid not
 *        uploaded and verified is refused, 422). Answer {"commitUrl", "commitOid"} and, with
 *        create_pr=1, "pullRequestUrl": the commit then lands on refs/pr/N, not on the branch
 *        (the stand-in keeps it as repo "{repo}@pr/N" for tests to read).
 *
 * The stand-in names a regular file's blob by the first 40 hex digits of its sha256 where the
 * Hub uses git's sha1 of the blob; clients treat blob ids as opaque names either way.
 * Faults a test can ask for: the next N model-info answers are 503; the first LFS download of a
 * blob is cut (connection closed) after K bytes; a repo's LFS metadata can carry a wrong sha256. */
#ifndef SAED_TESTS_HUBD_H
#define SAED_TESTS_HUBD_H

#include <stddef.h>

typedef struct hubd hubd;

hubd *hubd_start(void);
void hubd_stop(hubd *h);
int hubd_port(const hubd *h);
/* "http://127.0.0.1:PORT" */
const char *hubd_endpoint(const hubd *h);

/* A repo whose main branch points at commit (40 hex). gated: files need token granted. */
void hubd_repo(hubd *h, const char *repo, const char *commit, int gated, const char *granted_token);
/* A file of the repo from a local file; lfs: stored in LFS. */
void hubd_file(hubd *h, const char *repo, const char *path, const char *local, int lfs);
/* The LFS metadata of that file claims another sha256 than its bytes have. */
void hubd_corrupt_sha(hubd *h, const char *repo, const char *path);

void hubd_fail_info(hubd *h, int n);          /* the next n model-info requests answer 503 */
void hubd_cut_first_lfs(hubd *h, long bytes); /* each blob's first storage download stops after bytes */

/* What the stand-in saw: the number of requests whose "METHOD path" starts with prefix, and
 * whether any storage request carried Range header value range. */
int hubd_count(hubd *h, const char *prefix);
int hubd_saw_range(hubd *h, const char *range);

/* The token that may create repos and push. */
void hubd_write_token(hubd *h, const char *token);
/* A copy of a file's bytes (NUL-terminated, malloc'd), or NULL; lfs and size when not NULL. */
char *hubd_text(hubd *h, const char *repo, const char *path, int *lfs, size_t *size);
/* LFS uploads that carried an Authorization header (the storage must not get the token). */
int hubd_uploads_with_auth(hubd *h);
const char *hubd_last_summary(hubd *h);

#endif
