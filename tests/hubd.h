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

#endif
