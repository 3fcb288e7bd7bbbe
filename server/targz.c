/* targz.c: see targz.h. Only what an export needs: regular files; the directory part goes to
 * ustar's 155-byte prefix field and the file name to the 100-byte name field; sizes of 8 GiB and
 * more use the base-256 size encoding that GNU tar and bsdtar read. */
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

static int put_header(gzFile gz, const char *prefix, const char *name, unsigned long long size, time_t mtime)
{
    unsigned char h[512];
    memset(h, 0, sizeof h);
    memcpy(h, name, strlen(name));           /* < 100, checked by the caller */
    memcpy(h + 345, prefix, strlen(prefix)); /* < 155, checked by the caller */
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    if (size < (1ULL << 33)) {
        snprintf((char *)h + 124, 12, "%011llo", size);
    } else {
        h[124] = 0x80; /* base-256: the remaining 11 bytes hold the size big-endian */
        for (int i = 0; i < 11; i++) h[135 - i] = (unsigned char)(size >> (8 * i));
    }
    snprintf((char *)h + 136, 12, "%011llo", (unsigned long long)mtime);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8); /* the checksum counts its own field as spaces */
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    return gzwrite(gz, h, 512) == 512 ? 0 : -1;
}

int targz_dir(const char *dir, const char *prefix, int fd, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp);
    int dupfd = dup(fd);
    gzFile gz = dupfd >= 0 ? gzdopen(dupfd, "wb6") : NULL;
    int rc = gz ? 0 : -1;
    if (!gz) snprintf(err, errlen, "gzip: cannot open the output");
    /* Per call: several HTTP threads may export at once. */
    char *buf = malloc(1 << 16);
    if (!buf) rc = -1;
    for (int i = 0; i < n && rc == 0; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) || !S_ISREG(st.st_mode)) continue;
        if (strlen(names[i]) >= 100 || strlen(prefix) >= 155) {
            snprintf(err, errlen, "%s/%s: name too long for tar", prefix, names[i]);
            rc = -1;
            break;
        }
        FILE *f = fopen(path, "rb");
        if (!f || put_header(gz, prefix, names[i], (unsigned long long)st.st_size, st.st_mtime)) {
            snprintf(err, errlen, "%s: %s", path, f ? "write error" : strerror(errno));
            if (f) fclose(f);
            rc = -1;
            break;
        }
        size_t k;
        unsigned long long total = 0;
        while ((k = fread(buf, 1, 1 << 16, f)) > 0 && rc == 0) {
            if (gzwrite(gz, buf, (unsigned)k) != (int)k) rc = -1;
            total += k;
        }
        fclose(f);
        if (total % 512) {
            static const char zero[512];
            if (gzwrite(gz, zero, (unsigned)(512 - total % 512)) <= 0) rc = -1;
        }
        if (rc) snprintf(err, errlen, "%s: write error", path);
    }
    if (gz) {
        static const char end[1024];
        if (rc == 0 && gzwrite(gz, end, sizeof end) != (int)sizeof end) rc = -1;
        if (gzclose(gz) != Z_OK && rc == 0) {
            snprintf(err, errlen, "gzip: write error");
            rc = -1;
        }
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(buf);
    return rc;
}
