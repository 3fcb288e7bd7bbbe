/* paths.c: see paths.h. */
#include "server/paths.h"

#include <stdlib.h>
#include <string.h>

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
