/* hub_cache.h: the local cache in the Hugging Face Hub's own layout, so that huggingface_hub,
 * transformers and SAELens find saed's downloads and saed theirs:
 *   CACHE/models--ORG--NAME/blobs/ETAG            file contents, named by the LFS sha256 or the git blob id
 *   CACHE/models--ORG--NAME/blobs/ETAG.incomplete a download in progress (resumed from its length)
 *   CACHE/models--ORG--NAME/refs/REVISION         the commit a branch or tag pointed at
 *   CACHE/models--ORG--NAME/snapshots/COMMIT/PATH relative symlink to ../../blobs/ETAG
 * A blob appears under its name only once complete and verified (rename), and a snapshot file
 * only once its blob exists. */
#ifndef SAED_HUB_CACHE_H
#define SAED_HUB_CACHE_H

#include <stddef.h>

/* CACHE/models--ORG--NAME. */
void hub_cache_repo_dir(const char *cache, const char *repo, char *out, size_t n);
/* CACHE/models--ORG--NAME/blobs/ETAG (suffix ".incomplete" or ""). */
void hub_cache_blob(const char *cache, const char *repo, const char *etag, const char *suffix, char *out, size_t n);
/* CACHE/models--ORG--NAME/snapshots/COMMIT[/sub]. */
void hub_cache_snapshot(const char *cache, const char *repo, const char *commit, const char *sub, char *out, size_t n);
/* Makes dir and its parents; 0 or -1 (errno). */
int hub_mkdirs(const char *dir);
/* snapshots/COMMIT/relpath -> ../../blobs/ETAG (replacing a link already there). 0 or -1. */
int hub_cache_link(const char *cache, const char *repo, const char *commit, const char *relpath, const char *etag,
                   char *err, size_t errlen);
/* refs/REF holds COMMIT (skipped when ref is the commit itself). 0 or -1. */
int hub_cache_write_ref(const char *cache, const char *repo, const char *ref, const char *commit);

#endif
