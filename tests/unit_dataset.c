/* unit_dataset.c: the dashboard prompt source (engine/dataset.h) with the real GPT-2
 * tokenizer, against a naive reference written here that holds every document, encodes it
 * whole with tok_encode and deduplicates by comparing ids: all three formats (fixtures under
 * tests/data/datasets/, a .jsonl.gz and other files written by the tests), BOS, short skip
 * and pack, duplicates, the seeded sample, malformed lines (file:line, strict), 1 MB lines,
 * NUL bytes and random garbage, prefix tokenization, progress and options. Scratch files
 * live in a mkdtemp directory under /tmp that each test removes. Needs no database. */
#include <jansson.h>  // defines: json_loadb, json_array_get
#include <stdint.h>   // defines: int32_t, uint64_t
#include <stdlib.h>   // defines: malloc, free, qsort, mkdtemp
#include <sys/stat.h> // defines: mkdir
#include <unistd.h>   // defines: unlink, rmdir
#include <zlib.h>     // defines: gzopen, gzwrite

#include "engine/dataset.h"   // defines: dataset_prompts, dataset_encode_prefix
#include "engine/tokenizer.h" // defines: tok_load_dir, tok_encode
#include "tests/t.h"

#define GPT2_DIR "tests/data/gpt2-tokenizer"
#define DS_DIR "tests/data/datasets/"
#define EOS 50256

static tokenizer *ds_tok(void)
{
    char err[512];
    tokenizer *t = tok_load_dir(GPT2_DIR, err, sizeof err);
    if (!t) t_fail(__FILE__, __LINE__, "tok_load_dir: %s", err);
    return t;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

static void spit(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(data, 1, len, f) == len);
    fclose(f);
}

static void tmpdir(char *dir) /* char[32] */
{
    strcpy(dir, "/tmp/saed-ds-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

/* Removes the files named (relative to dir) and dir. */
static void rmtmp(const char *dir, const char *const *names, int n)
{
    char p[256];
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* ---- the naive reference ---- */

typedef struct ndoc {
    uint64_t rec;
    const char *text; /* into the file's bytes (text formats) */
    size_t len;
    int32_t *ids;     /* tokens format: the row; else encoded here */
    int n;
} ndoc;

typedef struct nwin {
    uint64_t rec;
    int32_t *ids;
    int n_docs;
} nwin;

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'))) return 0;
    return 1;
}

/* Splits bytes into lines as dataset.h says; one ndoc per line (text), per valid object
 * (jsonl with field), or per valid row (tokens, ids < vocab). */
static int naive_docs(const char *buf, size_t len, dataset_format fmt, const char *field, int vocab, ndoc **out,
                      uint64_t *rec0)
{
    ndoc *d = NULL;
    int nd = 0;
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - buf) : len, l = e - i;
        if (nl && l && buf[e - 1] == '\r') l--;
        uint64_t rec = (*rec0)++;
        const char *s = buf + i;
        i = nl ? e + 1 : len;
        d = realloc(d, (size_t)(nd + 1) * sizeof *d);
        ndoc *x = &d[nd];
        memset(x, 0, sizeof *x);
        x->rec = rec;
        if (fmt == DATASET_TEXT) {
            x->text = s;
            x->len = l;
            nd++;
            continue;
        }
        if (is_blank(s, l)) continue;
        json_t *j = json_loadb(s, l, JSON_ALLOW_NUL, NULL), *v = json_object_get(j, field);
        if (fmt == DATASET_JSONL && json_is_string(v)) {
            x->len = json_string_length(v);
            char *t = malloc(x->len + 1);
            memcpy(t, json_string_value(v), x->len + 1);
            x->text = t;
            x->n = -1; /* marks text owned here */
            nd++;
        } else if (fmt == DATASET_TOKENS && json_is_array(v)) {
            int ok = 1, n = (int)json_array_size(v);
            x->ids = malloc((size_t)(n + 1) * sizeof *x->ids);
            for (int k = 0; k < n; k++) {
                json_t *e2 = json_array_get(v, (size_t)k);
                if (!json_is_integer(e2) || json_integer_value(e2) < 0 || json_integer_value(e2) >= vocab) ok = 0;
                else x->ids[k] = (int32_t)json_integer_value(e2);
            }
            x->n = n;
            if (ok) nd++;
            else free(x->ids);
        }
        json_decref(j);
    }
    *out = d;
    return nd;
}

static void naive_docs_free(ndoc *d, int nd, dataset_format fmt)
{
    for (int i = 0; i < nd; i++) {
        if (fmt == DATASET_JSONL) free((char *)d[i].text);
        free(d[i].ids);
    }
    free(d);
}

/* SAEDashboard's windows (+ pack), deduplicated by comparing ids, first occurrence kept. */
static int naive_windows(const tokenizer *tok, ndoc *docs, int nd, int T, int bos, int pack, nwin **out)
{
    nwin *w = NULL;
    int nw = 0, need = T - bos, plen = 0, pdocs = 0;
    uint64_t prec = 0;
    int32_t *pbuf = malloc((size_t)T * sizeof *pbuf), *win = malloc((size_t)T * sizeof *win);
    char err[256];
    for (int i = 0; i < nd; i++) {
        int32_t *ids = docs[i].ids;
        int n = docs[i].n;
        if (!ids) n = tok_encode(tok, docs[i].text, docs[i].len, &ids, err, sizeof err);
        CHECK(n >= 0);
        int made = 0, nd_w = 1;
        uint64_t rec = docs[i].rec;
        if (n >= need) {
            if (bos) win[0] = EOS;
            memcpy(win + bos, ids, (size_t)need * sizeof *win);
            made = 1;
        } else if (pack && n > 0) {
            if (!plen) {
                prec = rec;
                pdocs = 0;
            }
            pdocs++;
            if (bos) pbuf[plen++] = EOS;
            for (int k = 0; k < n && plen < T; k++) pbuf[plen++] = ids[k];
            if (plen == T) {
                memcpy(win, pbuf, (size_t)T * sizeof *win);
                made = 1;
                rec = prec;
                nd_w = pdocs;
                plen = 0;
            }
        }
        if (ids != docs[i].ids) free(ids);
        if (!made) continue;
        int dup = 0;
        for (int k = 0; k < nw && !dup; k++) dup = !memcmp(w[k].ids, win, (size_t)T * sizeof *win);
        if (dup) continue;
        w = realloc(w, (size_t)(nw + 1) * sizeof *w);
        w[nw].rec = rec;
        w[nw].n_docs = nd_w;
        w[nw].ids = malloc((size_t)T * sizeof *win);
        memcpy(w[nw++].ids, win, (size_t)T * sizeof *win);
    }
    free(pbuf);
    free(win);
    /* packed windows are appended when they complete: dataset order is by record */
    for (int a = 1; a < nw; a++)
        for (int b = a; b > 0 && w[b - 1].rec > w[b].rec; b--) {
            nwin t = w[b];
            w[b] = w[b - 1];
            w[b - 1] = t;
        }
    *out = w;
    return nw;
}

static void naive_windows_free(nwin *w, int n)
{
    for (int i = 0; i < n; i++) free(w[i].ids);
    free(w);
}

/* The result holds exactly the naive windows (n_prompts ≥ all of them). */
static void check_all(const dataset_result *r, const nwin *w, int nw, int T)
{
    CHECK_INT(r->n, nw);
    CHECK_INT(r->stats.unique_windows, nw);
    for (int i = 0; i < r->n && i < nw; i++) {
        CHECK_INT(r->src[i].record, w[i].rec);
        CHECK_INT(r->src[i].n_docs, w[i].n_docs);
        int same = !memcmp(r->ids + (size_t)i * T, w[i].ids, (size_t)T * sizeof *r->ids);
        if (!same)
            t_fail(__FILE__, __LINE__, "window %d (record %llu) differs from the reference", i,
                   (unsigned long long)w[i].rec);
    }
}

/* Loads a text-format file or jsonl/tokens file and compares with the reference. */
static void check_file_h(const tokenizer *tok, const char *path, dataset_format fmt, const char *field, int T, int bos,
                         int pack, int hash_bits)
{
    size_t len;
    char *buf = slurp(path, &len);
    CHECK(buf != NULL);
    if (!buf) return;
    ndoc *docs;
    uint64_t rec0 = 0;
    int nd = naive_docs(buf, len, fmt,
                        field                   ? field
                        : fmt == DATASET_TOKENS ? "input_ids"
                                                : "text",
                        50257, &docs, &rec0);
    nwin *w;
    int nw = naive_windows(tok, docs, nd, T, fmt == DATASET_TOKENS ? 0 : bos, pack, &w);
    dataset_opts o;
    dataset_opts_default(&o);
    o.format = fmt;
    o.path = path;
    o.text_field = field;
    o.T = T;
    o.prepend_bos = bos;
    o.pack = pack;
    o.n_prompts = 100000;
    o.hash_bits = hash_bits;
    dataset_result r;
    char err[512];
    int rc = dataset_prompts(&o, tok, &r, err, sizeof err);
    if (rc) t_fail(__FILE__, __LINE__, "%s: %s", path, err);
    else check_all(&r, w, nw, T);
    if (!rc && hash_bits && nw > 4) CHECK(r.stats.hash_collisions > 0);
    if (!rc) CHECK_INT(r.stats.duplicates, r.stats.windows - (uint64_t)nw);
    dataset_result_free(&r);
    naive_windows_free(w, nw);
    naive_docs_free(docs, nd, fmt);
    free(buf);
}

static void check_file(const tokenizer *tok, const char *path, dataset_format fmt, const char *field, int T, int bos,
                       int pack)
{
    check_file_h(tok, path, fmt, field, T, bos, pack, 0);
}

/* ---- tests ---- */

TEST(dataset_text_hello_world)
{
    tokenizer *tok = ds_tok();
    if (!tok) return;
    dataset_opts o;
    dataset_opts_default(&o);
    o.path = DS_DIR "docs.txt";
    o.T = 3;
    o.n_prompts = 1000;
    dataset_result r;
    char err[512];
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK(r.n > 0);
    if (r.n > 0) { // "Hello world" is line 1: [BOS, Hello, ␣world]
        CHECK_INT(r.ids[0], EOS);
        CHECK_INT(r.ids[1], 15496);
        CHECK_INT(r.ids[2], 995);
        CHECK_INT(r.src[0].record, 0);
        CHECK_STR(r.src[0].file, DS_DIR "docs.txt");
        CHECK_INT(r.src[0].line, 1);
        CHECK_INT(r.src[0].n_docs, 1);
    }
    CHECK_INT(r.T, 3);
    CHECK_INT(r.stats.records, 16);
    CHECK_INT(r.stats.documents, 16);
    CHECK_INT(r.stats.short_skipped, 1);   // the empty line
    CHECK_INT(r.stats.duplicates, 2);      // lines 4 and 7 start as line 2 does: [BOS] The quick
    CHECK_INT(r.stats.windows, 15);
    CHECK_INT(r.stats.malformed, 0);
    CHECK_INT(r.stats.bytes, 589);
    CHECK_INT(r.n, (int)r.stats.unique_windows);
    dataset_result_free(&r);

    /* without BOS: "Hello world" → [15496, 995] exactly (line 1) */
    o.prepend_bos = 0;
    o.T = 2;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK(r.n > 0);
    if (r.n > 0) {
        CHECK_INT(r.ids[0], 15496);
        CHECK_INT(r.ids[1], 995);
        CHECK_INT(r.src[0].line, 1);
    }
    dataset_result_free(&r);
    tok_free(tok);
}

TEST(dataset_text_against_reference)
{
    tokenizer *tok = ds_tok();
    if (!tok) return;
    int Ts[] = {2, 3, 5, 8, 12, 16, 40};
    for (unsigned i = 0; i < sizeof Ts / sizeof *Ts; i++)
        for (int bos = 0; bos < 2; bos++)
            for (int pack = 0; pack < 2; pack++)
                check_file(tok, DS_DIR "docs.txt", DATASET_TEXT, NULL, Ts[i], bos, pack);
    tok_free(tok);
}

TEST(dataset_short_skip_and_pack)
{
    tokenizer *tok = ds_tok();
    if (!tok) return;
    char dir[32], p[64], err[512];
    tmpdir(dir);
    snprintf(p, sizeof p, "%s/short.txt", dir);
    const char *txt = "Hello world\nThe quick brown fox jumps over the lazy dog.\nShort one.\nHi.\nTiny.\n";
    spit(p, txt, strlen(txt));
    dataset_opts o;
    dataset_opts_default(&o);
    o.path = p;
    o.T = 6;
    o.n_prompts = 100;
    dataset_result r;
    /* skip: only the fox line (10 tokens) fills [BOS] + 5 */
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.n, 1);
    CHECK_INT(r.stats.short_skipped, 4);
    int32_t fox[6] = {EOS, 464, 2068, 7586, 21831, 18045}; // [BOS] The quick brown fox jumps
    if (r.n == 1) {
        CHECK(!memcmp(r.ids, fox, sizeof fox));
        CHECK_INT(r.src[0].line, 2);
    }
    dataset_result_free(&r);
    /* pack: [BOS Hello ␣world BOS Short ␣one] ends at "one" (the "." is cut), then
     * [BOS Hi . BOS T iny]; the fox line still makes its own window. */
    o.pack = 1;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.n, 3);
    CHECK_INT(r.stats.packed_windows, 2);
    CHECK_INT(r.stats.short_skipped, 0);
    if (r.n == 3) {
        int32_t p0[6] = {EOS, 15496, 995, EOS, 16438, 530};
        int32_t p2[6] = {EOS, 17250, 13, EOS, 51, 3541}; // Hi . T iny (the "." is cut)
        CHECK(!memcmp(r.ids, p0, sizeof p0));
        CHECK(!memcmp(r.ids + 6, fox, sizeof fox));
        CHECK_INT(r.src[0].record, 0);
        CHECK_INT(r.src[0].n_docs, 2);
        CHECK_INT(r.src[1].record, 1);
        CHECK_INT(r.src[2].record, 3);
        CHECK_INT(r.src[2].line, 4);
        CHECK_INT(r.src[2].n_docs, 2);
        int32_t *got = r.ids + 12;
        if (memcmp(got, p2, sizeof p2))
            t_fail(__FILE__, __LINE__, "pack window 2: %d %d %d %d %d %d", got[0], got[1], got[2], got[3], got[4],
                   got[5]);
    }
    dataset_result_free(&r);
    /* pack without BOS: documents simply concatenated */
    o.prepend_bos = 0;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    if (r.n >= 1) {
        int32_t q0[6] = {15496, 995, 16438, 530, 13, 17250}; // Hello ␣world Short ␣one . Hi
        CHECK(!memcmp(r.ids, q0, sizeof q0));
    }
    dataset_result_free(&r);
    const char *names[] = {"short.txt"};
    rmtmp(dir, names, 1);
    tok_free(tok);
}

TEST(dataset_duplicates_dropped)
{
    tokenizer *tok = ds_tok();
    if (!tok) return;
    dataset_opts o;
    dataset_opts_default(&o);
    o.path = DS_DIR "docs.txt";
    o.T = 8; // [BOS] + 7: lines 2, 4 and 7 all give [BOS] The quick brown fox jumps over the
    o.n_prompts = 1000;
    dataset_result r;
    char err[512];
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.stats.duplicates, 2);
    CHECK_INT(r.stats.hash_collisions, 0);
    int fox = 0;
    for (int i = 0; i < r.n; i++)
        if (r.ids[(size_t)i * 8 + 1] == 464 && r.ids[(size_t)i * 8 + 2] == 2068) {
            fox++;
            CHECK_INT(r.src[i].record, 1); // the first occurrence is kept
        }
    CHECK_INT(fox, 1);
    for (int i = 1; i < r.n; i++) CHECK(r.src[i - 1].record < r.src[i].record);
    dataset_result_free(&r);
    tok_free(tok);
}

/* A generated corpus: 300 distinct documents, some repeated. */
static void write_corpus(const char *path, int n)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    const char *w[] = {"apple", "river", "stone", "cloud", "green", "quiet", "seven", "paper", "light", "north"};
    for (int i = 0; i < n; i++) {
        fprintf(f, "Document %d is about the %s %s and the %s %s.\n", i, w[i % 10], w[(i / 10) % 10], w[(i * 7) % 10],
                w[(i * 3 + 1) % 10]);
        if (i % 25 == 0) fprintf(f, "Document %d is about the %s %s and the %s %s.\n", i, w[i % 10], w[(i / 10) % 10],
                                 w[(i * 7) % 10], w[(i * 3 + 1) % 10]);
    }
    fclose(f);
}

static int ds_cmp_key(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

TEST(dataset_seeded_sample)
{
    tokenizer *tok = ds_tok();
    if (!tok) return;
    char dir[32], p[64], err[512];
    tmpdir(dir);
    snprintf(p, sizeof p, "%s/corpus.txt", dir);
    write_corpus(p, 300);
    dataset_opts o;
    dataset_opts_default(&o);
    o.path = p;
    o.T = 8;
    o.n_prompts = 20;
    o.seed = 7;
    dataset_result a, b, c, big;
    CHECK_INT(dataset_prompts(&o, tok, &a, err, sizeof err), 0);
    CHECK_INT(dataset_prompts(&o, tok, &b, err, sizeof err), 0);
    CHECK_INT(a.n, 20);
    CHECK_INT(a.stats.windows, 312);
    CHECK_INT(a.stats.duplicates, 12);
    CHECK_INT(a.stats.unique_windows, 300);
    /* same seed, same prompts, bit for bit */
    CHECK(a.n == b.n && !memcmp(a.ids, b.ids, (size_t)a.n * 8 * sizeof *a.ids));
    for (int i = 0; i < a.n && i < b.n; i++) CHECK_INT(a.src[i].record, b.src[i].record);
    for (int i = 1; i < a.n; i++) CHECK(a.src[i - 1].record < a.src[i].record); // dataset order
    /* another seed picks another sample */
    o.seed = 8;
    CHECK_INT(dataset_prompts(&o, tok, &c, err, sizeof err), 0);
    CHECK_INT(c.n, 20);
    int same = 0;
    for (int i = 0; i < a.n; i++)
        for (int k = 0; k < c.n; k++) same += a.src[i].record == c.src[k].record;
    CHECK(same < 20);
    /* the sample is the 20 smallest (key, record) of the distinct windows, and a larger
     * n_prompts gives a superset */
    o.seed = 7;
    o.n_prompts = 1000;
    CHECK_INT(dataset_prompts(&o, tok, &big, err, sizeof err), 0);
    CHECK_INT(big.n, 300);
    uint64_t(*kr)[2] = malloc((size_t)big.n * sizeof *kr);
    for (int i = 0; i < big.n; i++) {
        kr[i][0] = dataset_sample_key(7, dataset_window_hash(big.ids + (size_t)i * 8, 8));
        kr[i][1] = big.src[i].record;
    }
    qsort(kr, (size_t)big.n, sizeof *kr, ds_cmp_key);
    uint64_t want[20];
    for (int i = 0; i < 20; i++) want[i] = kr[i][1];
    for (int i = 0; i < 20; i++) // sort by record
        for (int k = i; k > 0 && want[k - 1] > want[k]; k--) {
            uint64_t t = want[k];
            want[k] = want[k - 1];
            want[k - 1] = t;
        }
    for (int i = 0; i < a.n; i++) CHECK_INT(a.src[i].record, want[i]);
    free(kr);
    dataset_result_free(&a);
    dataset_result_free(&b);
    dataset_result_free(&c);
    dataset_result_free(&big);
    const char *names[] = {"corpus.txt"};
    rmtmp(dir, names, 1);
    tok_free(tok);
}

TEST(dataset_fewer_windows_than_prompts)
{
    tokenizer *tok = ds_tok();
    if (!tok) return;
    dataset_opts o;
    dataset_opts_default(&o);
    o.path = DS_DIR "docs.txt";
    o.T = 128; // no line is that long
    o.n_prompts = 24576;
    dataset_result r;
    char err[512];
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.n, 0);
    CHECK_INT(r.stats.short_skipped, 16);
    dataset_result_free(&r);
    o.T = 12;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK(r.n > 0 && r.n < 16);
    CHECK_INT(r.n, (int)r.stats.unique_windows);
    CHECK_INT(r.stats.windows, r.stats.unique_windows + r.stats.duplicates);
    CHECK_INT(r.stats.documents, r.stats.windows + r.stats.short_skipped);
    dataset_result_free(&r);
    tok_free(tok);
}

TEST(dataset_jsonl_and_gz)
{
    tokenizer *tok = ds_tok();
    if (!tok) return;
    check_file(tok, DS_DIR "docs.jsonl", DATASET_JSONL, NULL, 3, 1, 0);
    check_file(tok, DS_DIR "docs.jsonl", DATASET_JSONL, NULL, 6, 0, 1);
    check_file(tok, DS_DIR "docs.jsonl", DATASET_JSONL, "body", 4, 1, 1);
    char dir[32], p[64], tp[64], err[512];
    tmpdir(dir);
    snprintf(p, sizeof p, "%s/docs.jsonl.gz", dir);
    size_t len;
    char *buf = slurp(DS_DIR "docs.jsonl", &len);
    gzFile gz = gzopen(p, "wb");
    CHECK(gz != NULL && buf != NULL);
    if (gz && buf) CHECK_INT(gzwrite(gz, buf, (unsigned)len), (int)len);
    if (gz) gzclose(gz);
    dataset_opts o;
    dataset_opts_default(&o);
    o.format = DATASET_JSONL;
    o.path = DS_DIR "docs.jsonl";
    o.T = 4;
    o.n_prompts = 100;
    dataset_result a, b;
    CHECK_INT(dataset_prompts(&o, tok, &a, err, sizeof err), 0);
    o.path = p;
    CHECK_INT(dataset_prompts(&o, tok, &b, err, sizeof err), 0);
    CHECK_INT(a.n, 4); // 6 rows: "Hello world" is short, the last repeats the second
    CHECK_INT(a.stats.records, 7);
    CHECK_INT(a.stats.documents, 6);
    CHECK_INT(a.stats.duplicates, 1);
    CHECK(a.n == b.n && !memcmp(a.ids, b.ids, (size_t)a.n * 4 * sizeof *a.ids));
    CHECK(b.stats.bytes > 0 && b.stats.bytes < len); // compressed bytes
    if (a.n == 4 && b.n == 4) {
        CHECK_INT(a.src[3].record, 5);
        CHECK_INT(a.src[3].line, 6); // the blank line 4 is a record, not a document
        CHECK_INT(b.src[3].line, 6);
        CHECK_STR(b.src[3].file, p);
    }
    dataset_result_free(&a);
    dataset_result_free(&b);
    /* a gzip file cut short is an error, never a silent short read */
    size_t glen;
    char *gzb = slurp(p, &glen);
    snprintf(tp, sizeof tp, "%s/cut.jsonl.gz", dir);
    if (gzb) spit(tp, gzb, glen / 2);
    o.path = tp;
    CHECK_INT(dataset_prompts(&o, tok, &a, err, sizeof err), -1);
    CHECK_CONTAINS(err, "cut.jsonl.gz");
    dataset_result_free(&a);
    free(gzb);
    free(buf);
    const char *names[] = {"docs.jsonl.gz", "cut.jsonl.gz"};
    rmtmp(dir, names, 2);
    tok_free(tok);
}

TEST(dataset_malformed_lines)
{
    tokenizer *tok = ds_tok();
    if (!tok) return;
    dataset_opts o;
    dataset_opts_default(&o);
    o.format = DATASET_JSONL;
    o.path = DS_DIR "bad.jsonl";
    o.T = 4;
    o.n_prompts = 100;
    dataset_result r;
    char err[512];
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.stats.records, 8);
    CHECK_INT(r.stats.malformed, 5);
    CHECK_INT(r.stats.documents, 3);
    CHECK_INT(r.n, 3);
    CHECK_INT(r.stats.n_msgs, 5);
    if (r.stats.n_msgs == 5) {
        CHECK_CONTAINS(r.stats.msgs[0], DS_DIR "bad.jsonl:2: invalid JSON");
        CHECK_CONTAINS(r.stats.msgs[1], DS_DIR "bad.jsonl:3: no \"text\" field");
        CHECK_CONTAINS(r.stats.msgs[2], DS_DIR "bad.jsonl:4: \"text\" is not a string");
        CHECK_CONTAINS(r.stats.msgs[3], DS_DIR "bad.jsonl:5: not a JSON object");
        CHECK_CONTAINS(r.stats.msgs[4], DS_DIR "bad.jsonl:7: invalid JSON");
    }
    if (r.n == 3) {
        CHECK_INT(r.src[0].line, 1);
        CHECK_INT(r.src[1].line, 6);
        CHECK_INT(r.src[2].line, 8);
    }
    dataset_result_free(&r);
    check_file(tok, DS_DIR "bad.jsonl", DATASET_JSONL, NULL, 6, 1, 1);
    /* strict: the first one fails the load */
    o.strict = 1;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), -1);
    CHECK_CONTAINS(err, DS_DIR "bad.jsonl:2: invalid JSON");
    dataset_result_free(&r);
    /* messages are capped, the count is not */
    char dir[32], p[64];
    tmpdir(dir);
    snprintf(p, sizeof p, "%s/many.jsonl", dir);
    FILE *f = fopen(p, "w");
    for (int i = 0; f && i < 50; i++) fprintf(f, "{\"text\": %d}\n", i);
    if (f) fclose(f);
    o.strict = 0;
    o.path = p;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.stats.malformed, 50);
    CHECK_INT(r.stats.n_msgs, DATASET_MAX_MSGS);
    CHECK_INT(r.n, 0);
    dataset_result_free(&r);
    const char *names[] = {"many.jsonl"};
    rmtmp(dir, names, 1);
    tok_free(tok);
}

TEST(dataset_tokens_format)
{
    dataset_opts o;
    dataset_opts_default(&o);
    o.format = DATASET_TOKENS;
    o.path = DS_DIR "tokens.jsonl";
    o.T = 8;
    o.n_prompts = 100;
    o.vocab_size = 50257; // no tokenizer needed
    dataset_result r;
    char err[512];
    CHECK_INT(dataset_prompts(&o, NULL, &r, err, sizeof err), 0);
    CHECK_INT(r.stats.records, 11);
    CHECK_INT(r.stats.malformed, 5);
    CHECK_INT(r.stats.short_skipped, 2);
    CHECK_INT(r.stats.duplicates, 1); // line 10 repeats line 1's first 8 ids
    CHECK_INT(r.n, 3);
    if (r.stats.n_msgs == 5) {
        CHECK_CONTAINS(r.stats.msgs[0],
                       DS_DIR "tokens.jsonl:4: input_ids[2] = 50257 is outside the vocabulary [0, 50257)");
        CHECK_CONTAINS(r.stats.msgs[1], DS_DIR "tokens.jsonl:5: input_ids[2] is not an integer");
        CHECK_CONTAINS(r.stats.msgs[2], DS_DIR "tokens.jsonl:7: input_ids[0] = -1 is outside the vocabulary");
        CHECK_CONTAINS(r.stats.msgs[3], DS_DIR "tokens.jsonl:9: \"input_ids\" is not an array");
        CHECK_CONTAINS(r.stats.msgs[4], DS_DIR "tokens.jsonl:11: input_ids[3] is not an integer");
    }
    if (r.n == 3) { // row[:T] as is: no BOS added, an existing one kept
        int32_t r0[8] = {15496, 995, 11, 428, 318, 257, 1332, 13};
        int32_t r1[8] = {EOS, 464, 2068, 7586, 21831, 18045, 625, 262};
        int32_t r2[8] = {5, 6, 7, 8, 9, 10, 11, 12};
        CHECK(!memcmp(r.ids, r0, sizeof r0));
        CHECK(!memcmp(r.ids + 8, r1, sizeof r1));
        CHECK(!memcmp(r.ids + 16, r2, sizeof r2));
        CHECK_INT(r.src[2].line, 6);
    }
    dataset_result_free(&r);
    /* a smaller vocabulary rejects more rows; strict fails on the first */
    o.vocab_size = 1000;
    CHECK_INT(dataset_prompts(&o, NULL, &r, err, sizeof err), 0);
    CHECK_INT(r.n, 1);
    dataset_result_free(&r);
    o.strict = 1;
    CHECK_INT(dataset_prompts(&o, NULL, &r, err, sizeof err), -1);
    CHECK_CONTAINS(err, DS_DIR "tokens.jsonl:1: input_ids[0] = 15496 is outside the vocabulary [0, 1000)");
    dataset_result_free(&r);
    /* pack: short rows concatenated as they are */
    tokenizer *tok = ds_tok();
    if (tok) {
        check_file(tok, DS_DIR "tokens.jsonl", DATASET_TOKENS, NULL, 8, 1, 1);
        check_file(tok, DS_DIR "tokens.jsonl", DATASET_TOKENS, NULL, 3, 0, 1);
        check_file(tok, DS_DIR "tokens.jsonl", DATASET_TOKENS, NULL, 10, 0, 0);
        tok_free(tok);
    }
}

TEST(dataset_text_directory)
{
    tokenizer *tok = ds_tok();
    if (!tok) return;
    dataset_opts o;
    dataset_opts_default(&o);
    o.path = DS_DIR "txtdir";
    o.T = 4;
    o.n_prompts = 100;
    dataset_result r;
    char err[512];
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.stats.records, 3); // a.txt, b.txt, c.txt; not notes.md nor .hidden.txt
    CHECK_INT(r.n, 2);             // c.txt ("Third.") is short
    CHECK_INT(r.n_files, 3);
    if (r.n == 2) {
        CHECK_STR(r.src[0].file, DS_DIR "txtdir/a.txt");
        CHECK_STR(r.src[1].file, DS_DIR "txtdir/b.txt");
        CHECK_INT(r.src[1].record, 1);
        CHECK_INT(r.src[1].line, 1);
    }
    dataset_result_free(&r);
    /* each file is one document, newlines included, the same as encoding the file whole */
    o.T = 25; // the three files hold 29 tokens
    o.prepend_bos = 0;
    o.pack = 1;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.n, 1);
    const char *files[] = {DS_DIR "txtdir/a.txt", DS_DIR "txtdir/b.txt", DS_DIR "txtdir/c.txt"};
    int32_t want[25];
    int nw = 0;
    for (int i = 0; i < 3 && nw < 25; i++) {
        size_t len;
        char *b = slurp(files[i], &len);
        int32_t *ids;
        int n = b ? tok_encode(tok, b, len, &ids, err, sizeof err) : -1;
        for (int k = 0; k < n && nw < 25; k++) want[nw++] = ids[k];
        if (n >= 0) free(ids);
        free(b);
    }
    CHECK_INT(nw, 25);
    if (r.n == 1) {
        CHECK(!memcmp(r.ids, want, sizeof want));
        CHECK_INT(r.src[0].n_docs, 2); // a.txt and b.txt fill it; c.txt is left over
    }
    CHECK_INT(r.stats.short_skipped, 1);
    dataset_result_free(&r);
    /* a directory of JSON lines: *.jsonl and *.jsonl.gz in name order, lines across them */
    char dir[32], p[64];
    tmpdir(dir);
    snprintf(p, sizeof p, "%s/b.jsonl.gz", dir);
    gzFile gz = gzopen(p, "wb");
    if (gz) {
        gzputs(gz, "{\"text\": \"The second shard has this document in it.\"}\n");
        gzclose(gz);
    }
    snprintf(p, sizeof p, "%s/a.jsonl", dir);
    const char *a = "{\"text\": \"The first shard has this document in it.\"}\n{\"text\": \"And another one here.\"}\n";
    spit(p, a, strlen(a));
    snprintf(p, sizeof p, "%s/skip.txt", dir);
    spit(p, "x\n", 2);
    o.format = DATASET_JSONL;
    o.path = dir;
    o.T = 4;
    o.pack = 0;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.stats.records, 3);
    CHECK_INT(r.n, 3);
    if (r.n == 3) {
        CHECK_INT(r.src[2].record, 2);
        CHECK_INT(r.src[2].line, 1);
        CHECK_CONTAINS(r.src[2].file, "/b.jsonl.gz");
        CHECK_INT(r.ids[8], 464); // "The"
        CHECK_INT(r.ids[9], 1218); // " second"
    }
    dataset_result_free(&r);
    /* as text: skip.txt and an empty empty.txt are two documents */
    o.format = DATASET_TEXT;
    o.T = 2;
    o.prepend_bos = 1;
    snprintf(p, sizeof p, "%s/empty.txt", dir);
    spit(p, "", 0);
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.stats.records, 2);
    CHECK_INT(r.stats.short_skipped, 1);
    CHECK_INT(r.n, 1);
    if (r.n == 1) {
        CHECK_INT(r.ids[0], EOS);
        CHECK_INT(r.ids[1], 87); // "x"
        CHECK_CONTAINS(r.src[0].file, "/skip.txt");
    }
    dataset_result_free(&r);
    unlink(p);
    /* a directory without matching files is an error */
    snprintf(p, sizeof p, "%s/skip.txt", dir);
    unlink(p);
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), -1);
    CHECK_CONTAINS(err, "no *.txt files");
    dataset_result_free(&r);
    const char *names[] = {"a.jsonl", "b.jsonl.gz"};
    rmtmp(dir, names, 2);
    tok_free(tok);
}

TEST(dataset_long_lines)
{
    tokenizer *tok = ds_tok();
    if (!tok) return;
    char dir[32], p[64], jp[64], err[512];
    tmpdir(dir);
    snprintf(p, sizeof p, "%s/long.txt", dir);
    snprintf(jp, sizeof jp, "%s/long.jsonl", dir);
    size_t cap = (1 << 20) + 4096, len = 0;
    char *b = malloc(cap);
    len += (size_t)snprintf(b, cap, "short line first\n");
    size_t start = len;
    for (int i = 0; len < start + (1 << 20); i++)
        len += (size_t)snprintf(b + len, cap - len, "w%d ", i * 7919 % 100003);
    b[len++] = '\n';
    len += (size_t)snprintf(b + len, cap - len, "and a short line after it\n");
    spit(p, b, len);
    check_file(tok, p, DATASET_TEXT, NULL, 64, 1, 0);
    /* with lines capped at 4 KiB only the start of the long line is kept: same window */
    dataset_opts o;
    dataset_opts_default(&o);
    o.path = p;
    o.T = 64;
    o.n_prompts = 10;
    o.max_line = 4096;
    dataset_result r;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.n, 1);
    int32_t *ids;
    int n = tok_encode(tok, b + start, 8192, &ids, err, sizeof err);
    if (r.n == 1 && n > 63) CHECK(!memcmp(r.ids + 1, ids, 63 * sizeof *ids));
    if (n >= 0) free(ids);
    dataset_result_free(&r);
    /* the same line inside JSON: fine by default, malformed over max_line */
    FILE *f = fopen(jp, "w");
    if (f) {
        fprintf(f, "{\"text\": \"%.*s\"}\n{\"text\": \"A stitch in time saves nine, as they say.\"}\n", (int)(1 << 20),
                b + start);
        fclose(f);
    }
    check_file(tok, jp, DATASET_JSONL, NULL, 64, 1, 0);
    o.format = DATASET_JSONL;
    o.path = jp;
    o.T = 8;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.stats.malformed, 1);
    CHECK_CONTAINS(r.stats.msgs[0], "long.jsonl:1: line longer than 4096 bytes");
    CHECK_INT(r.n, 1);
    dataset_result_free(&r);
    /* one 256 KiB piece with no whitespace at all is encoded whole */
    memset(b, 'a', 1 << 18);
    b[1 << 18] = '\n';
    spit(p, b, (1 << 18) + 1);
    check_file(tok, p, DATASET_TEXT, NULL, 16, 1, 0);
    free(b);
    const char *names[] = {"long.txt", "long.jsonl"};
    rmtmp(dir, names, 2);
    tok_free(tok);
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

TEST(dataset_garbage_bytes)
{
    tokenizer *tok = ds_tok();
    if (!tok) return;
    char dir[32], p[64], err[512];
    tmpdir(dir);
    snprintf(p, sizeof p, "%s/garbage.txt", dir);
    /* NUL bytes, invalid UTF-8, CRLF, a lone CR, no final newline */
    const char fixed[] = "nul \0 inside\0 this line of text\r\n\xff\xfe\xc3 invalid UTF-8 bytes here\rand on\n"
                         "last line without a newline";
    spit(p, fixed, sizeof fixed - 1);
    for (int T = 2; T <= 6; T += 2) check_file(tok, p, DATASET_TEXT, NULL, T, 1, T == 4);
    spit(p, "\n\r\nempty lines first, then text\n", 32); // nothing kept yet when a line is empty
    check_file(tok, p, DATASET_TEXT, NULL, 3, 1, 0);
    spit(p, "", 0); // an empty file has no records
    check_file(tok, p, DATASET_TEXT, NULL, 3, 1, 0);
    /* random bytes: as text, the same windows as the reference; as JSON, every non-blank line
     * malformed, nothing else */
    uint64_t s = 42;
    size_t len = 1 << 16;
    char *b = malloc(len);
    for (size_t i = 0; i < len; i++) {
        uint64_t x = lcg(&s);
        b[i] = x % 40 == 0 ? '\n' : x % 13 == 0 ? ' ' : (char)(x >> 8);
    }
    spit(p, b, len);
    check_file(tok, p, DATASET_TEXT, NULL, 4, 1, 1);
    check_file(tok, p, DATASET_TEXT, NULL, 8, 0, 0);
    uint64_t nonblank = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(b + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - b) : len, l = e - i;
        if (nl && l && b[e - 1] == '\r') l--;
        nonblank += !is_blank(b + i, l);
        i = nl ? e + 1 : len;
    }
    dataset_opts o;
    dataset_opts_default(&o);
    o.format = DATASET_JSONL;
    o.path = p;
    o.T = 4;
    o.n_prompts = 10;
    dataset_result r;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.stats.malformed, nonblank);
    CHECK_INT(r.n, 0);
    CHECK_INT(r.stats.n_msgs, DATASET_MAX_MSGS);
    for (int i = 0; i < r.stats.n_msgs; i++) { // quoted garbage is made safe for JSON
        json_t *js = json_string(r.stats.msgs[i]);
        CHECK(js != NULL);
        json_decref(js);
        for (const char *c = r.stats.msgs[i]; *c; c++) CHECK((unsigned char)*c >= 0x20);
    }
    dataset_result_free(&r);
    o.format = DATASET_TOKENS;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.stats.malformed, nonblank);
    dataset_result_free(&r);
    o.format = DATASET_JSONL;
    /* jansson quotes the bytes near the error: control bytes come back as '?' */
    const char *ctl = "\x01\x02\n{\"text\": \"ok\"} \x7f\n";
    spit(p, ctl, strlen(ctl));
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.stats.n_msgs, 2);
    if (r.stats.n_msgs == 2) {
        CHECK_CONTAINS(r.stats.msgs[0], "garbage.txt:1: invalid JSON: '[' or '{' expected near '?'");
        CHECK_CONTAINS(r.stats.msgs[1], "garbage.txt:2: invalid JSON: end of file expected near '?'");
    }
    dataset_result_free(&r);
    o.strict = 1;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), -1);
    CHECK_CONTAINS(err, "garbage.txt:1: invalid JSON: '[' or '{' expected near '?'");
    json_t *js = json_string(err);
    CHECK(js != NULL);
    json_decref(js);
    o.strict = 0;
    dataset_result_free(&r);
    free(b);
    const char *names[] = {"garbage.txt"};
    rmtmp(dir, names, 1);
    tok_free(tok);
}

/* Prefix encoding gives tok_encode's first tokens: the 92 reference texts and random texts
 * built from the fragments the pre-tokenizer cares about. */
static void check_prefix(const tokenizer *tok, const char *text, size_t len)
{
    char err[256];
    int32_t *full, *pre;
    int nf = tok_encode(tok, text, len, &full, err, sizeof err);
    CHECK(nf >= 0);
    if (nf < 0) return;
    int needs[] = {0, 1, 2, 3, 5, 8, 13, 40, 200};
    for (unsigned k = 0; k < sizeof needs / sizeof *needs; k++) {
        int need = needs[k];
        int n = dataset_encode_prefix(tok, text, len, 1, need, &pre, err, sizeof err);
        CHECK(n >= 0);
        if (n < 0) continue;
        if (n < need) CHECK_INT(n, nf);
        int m = n < nf ? n : nf, upto = need < m ? need : m;
        if (memcmp(pre, full, (size_t)upto * sizeof *pre))
            t_fail(__FILE__, __LINE__, "prefix of %zu bytes, need %d: differs from tok_encode", len, need);
        free(pre);
    }
    free(full);
}

TEST(dataset_encode_prefix_exact)
{
    tokenizer *tok = ds_tok();
    if (!tok) return;
    size_t len;
    char *buf = slurp("tests/data/tokenizer_cases.jsonl", &len);
    CHECK(buf != NULL);
    int cases = 0;
    for (char *line = buf, *nl; buf && (nl = strchr(line, '\n')); line = nl + 1) {
        json_t *j = json_loadb(line, (size_t)(nl - line), JSON_ALLOW_NUL, NULL), *t = json_object_get(j, "text");
        if (json_is_string(t)) {
            check_prefix(tok, json_string_value(t), json_string_length(t));
            cases++;
        }
        json_decref(j);
    }
    CHECK_INT(cases, 92);
    free(buf);
    const char *frag[] = {" ",  "  ",  "\n",    "\n\n", "\t", "a",        "bc",           "The",  " world",
                          "'s", "'ll", "'",     "123",  "4",  "\xc3\xa9", "\xe2\x80\x94", "\xff", "!",
                          "?!", "x",   "Hello", " ",    "\r", "\xc2\xa0", "--",           "   "};
    int nfrag = (int)(sizeof frag / sizeof *frag);
    uint64_t s = 1;
    char text[4096];
    for (int it = 0; it < 400; it++) {
        size_t l = 0;
        int parts = 1 + (int)(lcg(&s) % 300);
        for (int k = 0; k < parts; k++) {
            const char *f = frag[lcg(&s) % (uint64_t)nfrag];
            size_t fl = strlen(f);
            if (l + fl >= sizeof text) break;
            memcpy(text + l, f, fl);
            l += fl;
        }
        check_prefix(tok, text, l);
    }
    /* a cut document (complete = 0): exact up to the last boundary */
    const char *t = "The quick brown fox jumps over the lazy dog";
    int32_t *a, *b;
    char err[256];
    int na = dataset_encode_prefix(tok, t, strlen(t) - 2, 0, 8, &a, err, sizeof err);
    int nb = tok_encode(tok, t, strlen(t), &b, err, sizeof err);
    CHECK(na >= 8 && nb == 9);
    if (na >= 8 && nb == 9) CHECK(!memcmp(a, b, 8 * sizeof *a));
    if (na >= 0) free(a);
    if (nb >= 0) free(b);
    tok_free(tok);
}

typedef struct prog { int calls, cancel_at, last_pass; uint64_t last_done, last_total; } prog;

static int on_progress(void *ctx, int pass, uint64_t done, uint64_t total)
{
    prog *p = ctx;
    p->calls++;
    p->last_pass = pass;
    p->last_done = done;
    p->last_total = total;
    return p->cancel_at && p->calls >= p->cancel_at;
}

TEST(dataset_progress_and_limits)
{
    tokenizer *tok = ds_tok();
    if (!tok) return;
    char dir[32], p[64], err[512];
    tmpdir(dir);
    snprintf(p, sizeof p, "%s/corpus.txt", dir);
    write_corpus(p, 30000); // ~1.6 MB: several progress calls
    dataset_opts o;
    dataset_opts_default(&o);
    o.path = p;
    o.T = 8;
    o.n_prompts = 5;
    prog pr = {0};
    o.progress = on_progress;
    o.progress_ctx = &pr;
    dataset_result r;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK(pr.calls >= 3);
    CHECK_INT(pr.last_pass, 2);
    CHECK_INT(r.stats.bytes, pr.last_total); // pass 1 read everything
    CHECK_INT(r.n, 5);
    dataset_result_free(&r);
    pr = (prog){.cancel_at = 1};
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), -1);
    CHECK_CONTAINS(err, "cancelled");
    dataset_result_free(&r);
    /* max_records: only the first records count */
    o.progress = NULL;
    o.max_records = 100;
    o.n_prompts = 1000;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.stats.records, 100);
    CHECK_INT(r.n, 96); // 4 of the first 100 lines repeat the line before
    CHECK(r.n > 0 && r.src[r.n - 1].record < 100);
    dataset_result_free(&r);
    const char *names[] = {"corpus.txt"};
    rmtmp(dir, names, 1);
    tok_free(tok);
}

TEST(dataset_option_errors)
{
    tokenizer *tok = ds_tok();
    if (!tok) return;
    dataset_opts o;
    dataset_result r;
    char err[512];
    dataset_format f;
    CHECK_INT(dataset_format_parse("jsonl", &f), 0);
    CHECK_INT(f, DATASET_JSONL);
    CHECK_INT(dataset_format_parse("csv", &f), -1);
    CHECK_STR(dataset_format_name(DATASET_TOKENS), "tokens");
    dataset_opts_default(&o);
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), -1);
    CHECK_CONTAINS(err, "dataset path is required");
    dataset_result_free(&r);
    o.path = DS_DIR "docs.txt";
    o.T = 0;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), -1);
    CHECK_CONTAINS(err, "n_tokens_in_prompt");
    dataset_result_free(&r);
    o.T = 1;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), -1);
    CHECK_CONTAINS(err, "at least 2 with prepend_bos");
    dataset_result_free(&r);
    o.T = 8;
    o.n_prompts = 0;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), -1);
    CHECK_CONTAINS(err, "n_prompts");
    dataset_result_free(&r);
    o.n_prompts = 10;
    CHECK_INT(dataset_prompts(&o, NULL, &r, err, sizeof err), -1);
    CHECK_CONTAINS(err, "needs a tokenizer");
    dataset_result_free(&r);
    o.bos_id = 60000;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), -1);
    CHECK_CONTAINS(err, "bos_id");
    dataset_result_free(&r);
    o.bos_id = -1;
    o.path = DS_DIR "missing.txt";
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), -1);
    CHECK_CONTAINS(err, "missing.txt");
    dataset_result_free(&r);
    /* T = 1 without BOS is a window of one token */
    o.path = DS_DIR "docs.txt";
    o.T = 1;
    o.prepend_bos = 0;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK(r.n > 0);
    dataset_result_free(&r);
    tok_free(tok);
}

/* A 2- or 4-bit hash makes most distinct windows collide: nothing may be merged or lost, and
 * the sample is still the smallest (key, record) with that hash. */
TEST(dataset_hash_collisions)
{
    tokenizer *tok = ds_tok();
    if (!tok) return;
    for (int T = 3; T <= 9; T += 3)
        for (int bos = 0; bos < 2; bos++)
            for (int pack = 0; pack < 2; pack++)
                check_file_h(tok, DS_DIR "docs.txt", DATASET_TEXT, NULL, T, bos, pack, 2);
    check_file_h(tok, DS_DIR "tokens.jsonl", DATASET_TOKENS, NULL, 4, 0, 1, 1);
    char dir[32], p[64], err[512];
    tmpdir(dir);
    snprintf(p, sizeof p, "%s/corpus.txt", dir);
    write_corpus(p, 300);
    dataset_opts o;
    dataset_opts_default(&o);
    o.path = p;
    o.T = 8;
    o.seed = 3;
    o.hash_bits = 4;
    o.n_prompts = 1000;
    dataset_result all, r;
    CHECK_INT(dataset_prompts(&o, tok, &all, err, sizeof err), 0);
    CHECK_INT(all.n, 300);
    CHECK_INT(all.stats.duplicates, 12);
    CHECK_INT(all.stats.hash_collisions, 300 - 16);
    o.n_prompts = 25;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), 0);
    CHECK_INT(r.n, 25);
    uint64_t(*kr)[2] = malloc((size_t)all.n * sizeof *kr);
    for (int i = 0; i < all.n; i++) {
        kr[i][0] = dataset_sample_key(3, dataset_window_hash(all.ids + (size_t)i * 8, 8) & 15);
        kr[i][1] = all.src[i].record;
    }
    qsort(kr, (size_t)all.n, sizeof *kr, ds_cmp_key);
    uint64_t want[25];
    for (int i = 0; i < 25; i++) want[i] = kr[i][1];
    for (int i = 0; i < 25; i++)
        for (int k = i; k > 0 && want[k - 1] > want[k]; k--) {
            uint64_t t = want[k];
            want[k] = want[k - 1];
            want[k - 1] = t;
        }
    for (int i = 0; i < r.n; i++) CHECK_INT(r.src[i].record, want[i]);
    free(kr);
    dataset_result_free(&all);
    dataset_result_free(&r);
    const char *names[] = {"corpus.txt"};
    rmtmp(dir, names, 1);
    tok_free(tok);
}

/* Rewrites the file when pass 1 ends. */
static int rewrite_after_pass1(void *ctx, int pass, uint64_t done, uint64_t total)
{
    if (pass == 1 && done == total) {
        FILE *f = fopen((const char *)ctx, "w");
        if (f) {
            fputs("Entirely different text now stands in this file.\nAnd so on, and so forth, again.\n", f);
            fclose(f);
        }
    }
    return 0;
}

TEST(dataset_changed_between_passes)
{
    tokenizer *tok = ds_tok();
    if (!tok) return;
    char dir[32], p[64], err[512];
    tmpdir(dir);
    snprintf(p, sizeof p, "%s/corpus.txt", dir);
    write_corpus(p, 50);
    dataset_opts o;
    dataset_opts_default(&o);
    o.path = p;
    o.T = 8;
    o.n_prompts = 10;
    o.progress = rewrite_after_pass1;
    o.progress_ctx = p;
    dataset_result r;
    CHECK_INT(dataset_prompts(&o, tok, &r, err, sizeof err), -1);
    CHECK_CONTAINS(err, "changed while it was being read");
    dataset_result_free(&r);
    const char *names[] = {"corpus.txt"};
    rmtmp(dir, names, 1);
    tok_free(tok);
}
