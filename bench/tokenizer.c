/* bench/tokenizer.c: encode speed of the GPT-2 tokenizer on English-like text: the repo's
 * README.md plus the longer English texts of tests/data/tokenizer_cases.jsonl, repeated to a
 * few MB, encoded in one call several times; prints the best MB/s and tokens/s, single thread.
 * Not a test: it checks only that decode gives the text back.
 * Usage: bench-tokenizer [TOKENIZER_DIR [MB]]   (run from the repo root; `make bench-tokenizer`) */
#include <jansson.h> // defines: json_loads
#include <stdio.h>   // defines: printf, fopen
#include <stdlib.h>  // defines: malloc, atof
#include <string.h>  // defines: memcpy, memcmp

#include "bench/common.h"
#include "engine/tokenizer.h" // defines: tok_load_dir, tok_encode

static size_t append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        while (*len + n + 1 > *cap) *cap = *cap ? 2 * *cap : 1 << 16;
        *buf = realloc(*buf, *cap);
        if (!*buf) exit(1);
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    return n;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/data/gpt2-tokenizer";
    double mb = argc > 2 ? atof(argv[2]) : 4.0;
    char err[512];
    double t0 = bench_now();
    tokenizer *t = tok_load_dir(dir, err, sizeof err);
    if (!t) {
        fprintf(stderr, "bench-tokenizer: %s\n", err);
        return 1;
    }
    printf("load: %.0f ms (%d tokens)\n", (bench_now() - t0) * 1e3, tok_vocab_size(t));

    /* The unit of text: README.md + the English paragraphs of the test cases. */
    char *unit = NULL, line[65536];
    size_t ulen = 0, ucap = 0;
    FILE *f = fopen("README.md", "r");
    if (f) {
        size_t n;
        while ((n = fread(line, 1, sizeof line, f)) > 0) append(&unit, &ulen, &ucap, line, n);
        fclose(f);
    }
    f = fopen("tests/data/tokenizer_cases.jsonl", "r");
    while (f && fgets(line, sizeof line, f)) {
        json_t *c = json_loads(line, 0, NULL);
        const char *s = json_string_value(json_object_get(c, "text"));
        if (s && strlen(s) >= 40) { // the short cases are mostly non-English edge cases
            append(&unit, &ulen, &ucap, s, strlen(s));
            append(&unit, &ulen, &ucap, "\n\n", 2);
        }
        json_decref(c);
    }
    if (f) fclose(f);
    if (!ulen) {
        fprintf(stderr, "bench-tokenizer: no README.md or tests/data/tokenizer_cases.jsonl (run from the repo root)\n");
        return 1;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    while ((double)len < mb * 1e6) append(&text, &len, &cap, unit, ulen);

    double best = 1e30;
    int n = 0;
    for (int rep = 0; rep < 5; rep++) {
        int32_t *ids;
        double a = bench_now();
        n = tok_encode(t, text, len, &ids, err, sizeof err);
        double dt = bench_now() - a;
        if (n < 0) {
            fprintf(stderr, "bench-tokenizer: %s\n", err);
            return 1;
        }
        if (dt < best) best = dt;
        if (rep == 0) {
            size_t dl;
            char *back = tok_decode(t, ids, n, &dl);
            if (!back || dl != len || memcmp(back, text, len)) {
                fprintf(stderr, "bench-tokenizer: decode(encode(text)) != text\n");
                return 1;
            }
            free(back);
        }
        free(ids);
    }
    printf("encode: %.2f MB in %.1f ms (best of 5): %.1f MB/s, %.2f M tokens/s, %.2f bytes/token\n",
           (double)len / 1e6, best * 1e3, (double)len / 1e6 / best, n / 1e6 / best, (double)len / n);
    free(unit);
    free(text);
    tok_free(t);
    return 0;
}
