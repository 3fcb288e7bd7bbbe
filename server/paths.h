/* paths.h: confinement of user-supplied file paths to SAED_DATA_ROOTS. */
#ifndef SAED_PATHS_H
#define SAED_PATHS_H

#include <stddef.h>

/* Resolves path (symlinks followed) and checks that it lies under one of roots (already
 * resolved). Returns 0 with the resolved path in out, or -1: nonexistent and outside are
 * deliberately indistinguishable to the caller. */
int paths_confine(char *const *roots, int nroots, const char *path, char *out, size_t outlen);

/* Each named file that exists in dir (already confined) must itself be a regular file under
 * the roots: a symlink inside a data root may not lead out of it, and a FIFO or device would
 * block or mislead the readers. -1 with err naming the file. */
int paths_confine_files(char *const *roots, int nroots, const char *dir, const char *const *names, char *err,
                        size_t errlen);

#endif
