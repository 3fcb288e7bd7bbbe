/* fuzz_safetensors.c: fuzz target for the safetensors header validator (st_check_buffer), the
 * code that sees untrusted bytes first. Built two ways: with clang -fsanitize=fuzzer,address
 * (`make fuzz`) it is a libFuzzer binary; with -DFUZZ_REPLAY_MAIN (`make fuzz-replay`, and part
 * of `make all`) it is a plain program that replays corpus files, so tests/run.sh runs the
 * corpus on every `make test` without a fuzzer.
 *
 * Replay: fuzz-safetensors [DIR...] (default tests/fuzz/corpus/safetensors) runs every regular
 * file; a file named ok-* must validate and bad-* must be rejected, others only must not crash.
 * Prints "N passed, N failed"; exits 1 on a failure. Does not fuzz the index (sharded) reader,
 * which works on files rather than buffers. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    st_check_buffer(data, size, "fuzz", err, sizeof err);
    return 0;
}

#ifdef FUZZ_REPLAY_MAIN
#include <dirent.h>    // defines: opendir, readdir
#include <sys/stat.h>  // defines: stat

/* Reads a whole file into an exact-size buffer, so that ASan catches any read past its end. */
static uint8_t *st_fuzz_read(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *buf = NULL;
    long n = fseek(f, 0, SEEK_END) ? -1 : ftell(f);
    if (n >= 0 && !fseek(f, 0, SEEK_SET) && (buf = malloc(n ? (size_t)n : 1)) &&
        fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static int st_fuzz_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    static char *def[] = {"tests/fuzz/corpus/safetensors"};
    char **dirs = argc > 1 ? argv + 1 : def;
    int ndirs = argc > 1 ? argc - 1 : 1, passed = 0, failed = 0;
    for (int d = 0; d < ndirs; d++) {
        DIR *dh = opendir(dirs[d]);
        if (!dh) {
            printf("%s: cannot open directory\n", dirs[d]);
            failed++;
            continue;
        }
        /* sorted, so that a crash report names the same file on every machine */
        char **names = NULL;
        size_t n = 0, cap = 0;
        for (struct dirent *e; (e = readdir(dh));) {
            if (e->d_name[0] == '.') continue;
            if (n == cap && !(names = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names))) abort();
            if (!(names[n++] = strdup(e->d_name))) abort();
        }
        closedir(dh);
        qsort(names, n, sizeof *names, st_fuzz_cmp);
        for (size_t i = 0; i < n; i++) {
            char path[4096];
            struct stat sb;
            snprintf(path, sizeof path, "%s/%s", dirs[d], names[i]);
            if (stat(path, &sb) || !S_ISREG(sb.st_mode)) continue;
            size_t size;
            uint8_t *buf = st_fuzz_read(path, &size);
            if (!buf) {
                printf("%s: cannot read\n", path);
                failed++;
                continue;
            }
            LLVMFuzzerTestOneInput(buf, size);
            char err[512] = "";
            int rc = st_check_buffer(buf, size, names[i], err, sizeof err);
            int want_ok = !strncmp(names[i], "ok-", 3), want_bad = !strncmp(names[i], "bad-", 4);
            if ((want_ok && rc) || (want_bad && !rc)) {
                printf("FAIL %s: expected %s, got %s\n", path, want_ok ? "valid" : "rejected", rc ? err : "valid");
                failed++;
            } else {
                passed++;
            }
            free(buf);
        }
        for (size_t i = 0; i < n; i++) free(names[i]);
        free(names);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
#endif
