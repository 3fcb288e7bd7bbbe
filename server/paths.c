/* paths.c: see paths.h. */
#include "server/paths.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int paths_confine(char *const *roots, int nroots, const char *path, char *out, size_t outlen)
{
    if (!path || !*path) return -1;
    char *rp = realpath(path, NULL);
    if (!rp) return -1;
    int rc = -1;
    for (int i = 0; i < nroots && rc; i++) {
        size_t rl = strlen(roots[i]);
        /* Component boundary: /data/models must not admit /data/models-other. */
        if (!strncmp(rp, roots[i], rl) && (rp[rl] == '\0' || rp[rl] == '/' || (rl == 1 && roots[i][0] == '/')))
            rc = 0;
    }
    if (rc == 0 && strlen(rp) < outlen) strcpy(out, rp);
    else rc = -1;
    free(rp);
    return rc;
}

int paths_confine_files(char *const *roots, int nroots, const char *dir, const char *const *names, char *err,
                        size_t errlen)
{
    for (int i = 0; names[i]; i++) {
        char path[4096], real[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (lstat(path, &st)) continue; /* absent: the readers report what is missing */
        if (paths_confine(roots, nroots, path, real, sizeof real) || stat(real, &st) || !S_ISREG(st.st_mode)) {
            snprintf(err, errlen, "%s must be a regular file under SAED_DATA_ROOTS", names[i]);
            return -1;
        }
    }
    return 0;
}
