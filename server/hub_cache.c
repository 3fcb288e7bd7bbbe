/* hub_cache.c: see hub_cache.h. */
#include "server/hub_cache.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void hub_cache_repo_dir(const char *cache, const char *repo, char *out, size_t n)
{
    /* "org/name" -> "models--org--name", as huggingface_hub names the folder. */
    int k = snprintf(out, n, "%s/models--", cache);
    for (const char *p = repo; *p && k + 3 < (int)n; p++) {
        if (*p == '/') {
            out[k++] = '-';
            out[k++] = '-';
        } else {
            out[k++] = *p;
        }
    }
    out[k < (int)n ? k : (int)n - 1] = '\0';
}

void hub_cache_blob(const char *cache, const char *repo, const char *etag, const char *suffix, char *out, size_t n)
{
    char d[4096];
    hub_cache_repo_dir(cache, repo, d, sizeof d);
    snprintf(out, n, "%s/blobs/%s%s", d, etag, suffix);
}

void hub_cache_snapshot(const char *cache, const char *repo, const char *commit, const char *sub, char *out, size_t n)
{
    char d[4096];
    hub_cache_repo_dir(cache, repo, d, sizeof d);
    snprintf(out, n, "%s/snapshots/%s%s%s", d, commit, sub && *sub ? "/" : "", sub && *sub ? sub : "");
}

int hub_mkdirs(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0755) && errno != EEXIST) return -1;
        *s = '/';
    }
    return mkdir(p, 0755) && errno != EEXIST ? -1 : 0;
}

int hub_cache_link(const char *cache, const char *repo, const char *commit, const char *relpath, const char *etag,
                   char *err, size_t errlen)
{
    char link[4096], dir[4096], target[4096];
    hub_cache_snapshot(cache, repo, commit, relpath, link, sizeof link);
    snprintf(dir, sizeof dir, "%s", link);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    if (hub_mkdirs(dir)) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    /* ../../blobs/ETAG from snapshots/COMMIT, one more ../ per folder in relpath. */
    int k = snprintf(target, sizeof target, "../../");
    for (const char *p = relpath; *p; p++)
        if (*p == '/') k += snprintf(target + k, sizeof target - (size_t)k, "../");
    snprintf(target + k, sizeof target - (size_t)k, "blobs/%s", etag);
    unlink(link);
    if (symlink(target, link)) {
        snprintf(err, errlen, "%s: %s", link, strerror(errno));
        return -1;
    }
    return 0;
}

int hub_cache_write_ref(const char *cache, const char *repo, const char *ref, const char *commit)
{
    if (!strcmp(ref, commit)) return 0;
    char d[4096], path[4300], tmp[4400];
    hub_cache_repo_dir(cache, repo, d, sizeof d);
    snprintf(path, sizeof path, "%s/refs/%s", d, ref);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    char dir[4300];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    if (hub_mkdirs(dir)) return -1;
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fputs(commit, f);
    if (fclose(f)) return -1;
    return rename(tmp, path);
}
