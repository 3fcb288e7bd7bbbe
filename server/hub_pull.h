/* hub_pull.h: one snapshot of a Hub repo into the local cache (hub_cache.h), as
 * huggingface_hub's snapshot_download makes it: the revision is resolved once to the commit
 * the Hub answers with and every file is fetched at that commit; LFS files are checked against
 * their sha256; a sharded checkpoint's index brings in every shard it names; files already
 * cached are not fetched again, and a cut download resumes where it stopped. Only a complete
 * snapshot is reported: the caller registers nothing before hub_pull returns 0. Used by the
 * `hub_pull` job (job_pull.c) and `saed pull`. */
#ifndef SAED_HUB_PULL_H
#define SAED_HUB_PULL_H

#include <stdint.h>

#include "server/hub_client.h"

typedef struct hub_pull_req {
    const char *repo;
    const char *revision;            /* branch, tag or commit; NULL: main */
    const char *subpath;             /* a folder of the repo (an SAE's path); NULL: the whole repo */
    const char *const *include;      /* fnmatch globs over repo paths ("*" crosses "/"); NULL-terminated or NULL */
    int model_files;                 /* no include given: only what a model folder needs (*.json,
                                      * *.safetensors, *.txt, *.model, *.jinja), not other frameworks' weights */
} hub_pull_req;

typedef struct hub_pulled {
    char commit[64];
    char dir[4096];                  /* the snapshot folder (with subpath) */
    int nfiles;
    int64_t bytes;                   /* of the selected files */
    int64_t downloaded;              /* of them, fetched by this pull (the rest was cached) */
} hub_pulled;

/* done/total in bytes over the selected files; non-zero stops the pull (HUB_STOPPED). */
typedef int (*hub_pull_progress)(void *ud, int64_t done, int64_t total);

int hub_pull(const hub_conn *h, const char *cache, const hub_pull_req *q, hub_pull_progress fn, void *ud,
             hub_pulled *out, hub_err *e);

/* Whether p is a safe relative repo path (no "..", no leading "/", no empty segment). */
int hub_path_valid(const char *p);

#endif
