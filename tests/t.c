/* t.c: the runner behind t.h. Usage: saed-tests [substring] runs the tests whose name contains
 * the substring (all by default). */
#include "tests/t.h"

#include <stdarg.h>
#include <stdlib.h>
#include <time.h>

#define T_MAX 512
static struct { const char *name; t_fn fn; } tests[T_MAX];
static int n_tests, cur_failures, cur_skipped;
static char skip_reason[512];

void t_register(const char *name, t_fn fn)
{
    if (n_tests < T_MAX) {
        tests[n_tests].name = name;
        tests[n_tests].fn = fn;
        n_tests++;
    }
}

void t_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stdout, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    cur_failures++;
}

void t_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(skip_reason, sizeof skip_reason, fmt, ap);
    va_end(ap);
    cur_skipped = 1;
}

int t_failed_now(void) { return cur_failures; }

static void run(int i, int *passed, int *failed, int *skipped)
{
    cur_failures = cur_skipped = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    printf("... %s\n", tests[i].name);
    fflush(stdout);
    tests[i].fn();
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    if (cur_failures) {
        printf("FAIL %s (%d check(s) failed, %.0f ms)\n", tests[i].name, cur_failures, ms);
        (*failed)++;
    } else if (cur_skipped) {
        printf("skip %s: %s\n", tests[i].name, skip_reason);
        (*skipped)++;
    } else {
        printf("ok   %s (%.0f ms)\n", tests[i].name, ms);
        (*passed)++;
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0, skipped = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n_tests; i++) {
            int is_final = !strncmp(tests[i].name, "final_", 6);
            if (is_final != pass) continue;
            if (filter && !strstr(tests[i].name, filter)) continue;
            run(i, &passed, &failed, &skipped);
        }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
