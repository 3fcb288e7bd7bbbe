/* targz.h: a .tar.gz (ustar + gzip via zlib) of the regular files and subdirectories of one
 * directory, written to a file descriptor; used to stream SAE and dashboard exports over HTTP. */
#ifndef SAED_TARGZ_H
#define SAED_TARGZ_H

#include <stddef.h>

/* Entries are named prefix/<path> (directories get entries of their own, so an empty one
 * survives). 0, or -1 with err. The fd is left open. */
int targz_dir(const char *dir, const char *prefix, int fd, char *err, size_t errlen);

#endif
