/* mkgpt2.c: writes a deterministic random GPT-2 checkpoint in HuggingFace layout.
 *   mkgpt2 --out DIR [--d 64] [--layers 2] [--heads 4] [--ctx 128] [--vocab 50257] [--seed 1]
 *          [--no-prefix]
 * Example (a gpt2-small-shaped model): mkgpt2 --out /tmp/g --d 768 --layers 12 --heads 12 --ctx 1024 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tools/fixture.h"

int main(int argc, char **argv)
{
    fixture_gpt2 f = {.d_model = 64, .n_layer = 2, .n_head = 4, .n_ctx = 128, .vocab = 50257, .seed = 1, .prefixed = 1};
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-prefix")) { f.prefixed = 0; continue; }
        if (!v) { fprintf(stderr, "mkgpt2: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--d")) f.d_model = atoi(v);
        else if (!strcmp(a, "--layers")) f.n_layer = atoi(v);
        else if (!strcmp(a, "--heads")) f.n_head = atoi(v);
        else if (!strcmp(a, "--ctx")) f.n_ctx = atoi(v);
        else if (!strcmp(a, "--vocab")) f.vocab = atoi(v);
        else if (!strcmp(a, "--seed")) f.seed = strtoull(v, NULL, 10);
        else { fprintf(stderr, "mkgpt2: unknown option %s\n", a); return 2; }
        i++;
    }
    if (!out || f.d_model < 1 || f.n_layer < 1 || f.n_head < 1 || f.d_model % f.n_head || f.n_ctx < 1 || f.vocab < 1) {
        fprintf(stderr, "usage: mkgpt2 --out DIR [--d N] [--layers N] [--heads N (divides d)] [--ctx N] [--vocab N] [--seed N] [--no-prefix]\n");
        return 2;
    }
    mkdir(out, 0755);
    char err[512];
    if (fixture_gpt2_write(out, &f, err, sizeof err)) {
        fprintf(stderr, "mkgpt2: %s\n", err);
        return 1;
    }
    printf("%s: gpt2 d=%d layers=%d heads=%d ctx=%d vocab=%d seed=%llu\n", out, f.d_model, f.n_layer, f.n_head, f.n_ctx,
           f.vocab, (unsigned long long)f.seed);
    return 0;
}
