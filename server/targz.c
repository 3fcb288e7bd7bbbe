/* targz.c: see targz.h. Only what an export needs: regular files and directories (symbolic
 * links and other entries are skipped), walked in name order so the same tree gives the same
 * entry order. The directory part of a path goes to ustar's 155-byte prefix field and the last
 * component to the 100-byte name field; sizes of 8 GiB and more use the base-256 size encoding
 * that GNU tar and bsdtar read. */
#include "server/targz.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int put_header(gzFile gz, const char *prefix, const char *name, char type, unsigned long long size, time_t mtime)
{
    unsigned char h[512];
    memset(h, 0, sizeof h);
    memcpy(h, name, strlen(name));           /* < 100, checked by the caller */
    memcpy(h + 345, prefix, strlen(prefix)); /* < 155, checked by the caller */
    snprintf((char *)h + 100, 8, "%07o", type == '5' ? 0755 : 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    if (size < (1ULL << 33)) {
        snprintf((char *)h + 124, 12, "%011llo", size);
    } else {
        h[124] = 0x80; /* base-256: the remaining 11 bytes hold the size big-endian */
        for (int i = 0; i < 11; i++) h[135 - i] = (unsigned char)(size >> (8 * i));
    }
    snprintf((char *)h + 136, 12, "%011llo", (unsigned long long)mtime);
    h[156] = (unsigned char)type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8); /* the checksum counts its own field as spaces */
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    return gzwrite(gz, h, 512) == 512 ? 0 : -1;
}

/* The sorted names of dir's entries, dot files left out, into *out (*n of them). 0 or -1. */
static int list_dir(const char *dir, char ***out, int *n, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    *out = NULL;
    *n = 0;
    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    int cap = 0, ok = 1;
    struct dirent *e;
    while (ok && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (*n == cap) {
            char **g = realloc(names, sizeof *names * (size_t)(cap ? 2 * cap : 64));
            if (!(ok = g != NULL)) break;
            names = g;
            cap = cap ? 2 * cap : 64;
        }
        if ((ok = (names[*n] = strdup(e->d_name)) != NULL)) (*n)++;
    }
    closedir(d);
    if (!ok) {
        for (int i = 0; i < *n; i++) free(names[i]);
        free(names);
        *n = 0;
        snprintf(err, errlen, "%s: out of memory", dir);
        return -1;
    }
    if (*n) qsort(names, (size_t)*n, sizeof *names, cmp);
    *out = names;
    return 0;
}

static int add_file(gzFile gz, const char *path, const char *prefix, const char *name, const struct stat *st, char *buf,
                    char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f || put_header(gz, prefix, name, '0', (unsigned long long)st->st_size, st->st_mtime)) {
        snprintf(err, errlen, "%s: %s", path, f ? "write error" : strerror(errno));
        if (f) fclose(f);
        return -1;
    }
    size_t k;
    unsigned long long total = 0;
    int rc = 0;
    while (rc == 0 && (k = fread(buf, 1, 1 << 16, f)) > 0) {
        if (gzwrite(gz, buf, (unsigned)k) != (int)k) rc = -1;
        total += k;
    }
    fclose(f);
    /* A file that changed size while being read would corrupt the archive. */
    if (rc == 0 && total != (unsigned long long)st->st_size) {
        snprintf(err, errlen, "%s: changed while being archived", path);
        return -1;
    }
    if (rc == 0 && total % 512) {
        static const char zero[512];
        if (gzwrite(gz, zero, (unsigned)(512 - total % 512)) <= 0) rc = -1;
    }
    if (rc) snprintf(err, errlen, "%s: write error", path);
    return rc;
}

/* The entries of dir under prefix/, subdirectories (and their own entries) included. */
static int add_tree(gzFile gz, const char *dir, const char *prefix, char *buf, char *err, size_t errlen)
{
    int n = 0, rc = 0;
    char **names;
    if (list_dir(dir, &names, &n, err, errlen)) return -1;
    for (int i = 0; i < n && rc == 0; i++) {
        char path[4096], sub[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (lstat(path, &st) || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) continue;
        int isdir = S_ISDIR(st.st_mode);
        if (strlen(names[i]) + (size_t)isdir >= 100 || strlen(prefix) >= 155) {
            snprintf(err, errlen, "%s/%s: name too long for tar", prefix, names[i]);
            rc = -1;
        } else if (isdir) {
            snprintf(sub, sizeof sub, "%s/", names[i]);
            if (put_header(gz, prefix, sub, '5', 0, st.st_mtime)) {
                snprintf(err, errlen, "%s: write error", path);
                rc = -1;
            } else {
                snprintf(sub, sizeof sub, "%s/%s", prefix, names[i]);
                rc = add_tree(gz, path, sub, buf, err, errlen);
            }
        } else {
            rc = add_file(gz, path, prefix, names[i], &st, buf, err, errlen);
        }
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int targz_dir(const char *dir, const char *prefix, int fd, char *err, size_t errlen)
{
    int dupfd = dup(fd);
    gzFile gz = dupfd >= 0 ? gzdopen(dupfd, "wb6") : NULL;
    if (!gz) {
        if (dupfd >= 0) close(dupfd);
        snprintf(err, errlen, "gzip: cannot open the output");
        return -1;
    }
    /* Per call: several HTTP threads may export at once. */
    char *buf = malloc(1 << 16);
    int rc = buf ? add_tree(gz, dir, prefix, buf, err, errlen) : -1;
    if (!buf) snprintf(err, errlen, "out of memory");
    static const char end[1024];
    if (rc == 0 && gzwrite(gz, end, sizeof end) != (int)sizeof end) {
        snprintf(err, errlen, "gzip: write error");
        rc = -1;
    }
    if (gzclose(gz) != Z_OK && rc == 0) {
        snprintf(err, errlen, "gzip: write error");
        rc = -1;
    }
    free(buf);
    return rc;
}
