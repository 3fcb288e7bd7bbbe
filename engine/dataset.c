/* dataset.c: the prompt source of dataset.h. Two streaming passes over the files: pass 1
 * tokenizes the start of every document, makes its window and keeps (sample key, record) per
 * window; the sort of those picks the sample; pass 2 re-reads up to the last chosen record and
 * materializes only the chosen windows, confirming duplicates by comparing ids. Semantics,
 * memory and error handling are written in dataset.h. Does not check paths against
 * SAED_DATA_ROOTS and holds no dataset text beyond the current line. */
#include <dirent.h>   // defines: opendir, readdir
#include <errno.h>    // defines: errno
#include <jansson.h>  // defines: json_loadb, json_object_get
#include <stdarg.h>   // defines: va_list
#include <stdio.h>    // defines: snprintf
#include <stdlib.h>   // defines: malloc, realloc, qsort
#include <string.h>   // defines: memchr, memcmp, strcmp
#include <sys/stat.h> // defines: stat, S_ISDIR
#include <zlib.h>     // defines: gzopen, gzread, gzoffset

#include "engine/tok_prompt.h"
#include "engine/dataset.h"
#include "engine/unicode.h" // defines: uni_utf8_next

#define DS_CHUNK ((size_t)64 << 10)     /* raw read size */
#define DS_REPORT ((uint64_t)1 << 20)   /* progress about every MiB */
#define DS_MAX_T (1 << 20)
#define DS_MAX_LINE ((size_t)1 << 30)   /* tok_encode takes < INT_MAX bytes */

/* ---- hashing and sampling keys ---- */

static inline uint64_t ds_mix64(uint64_t z) // splitmix64's finalizer: a bijection
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Each step is a bijection of the state for given ids, so two windows of the same length that
 * differ in one pair of ids never collide. */
uint64_t dataset_window_hash(const int32_t *ids, int n)
{
    uint64_t h = ds_mix64(0x243F6A8885A308D3ull ^ (uint64_t)(uint32_t)n);
    int i = 0;
    for (; i + 1 < n; i += 2) h = ds_mix64(h ^ ((uint64_t)(uint32_t)ids[i] | (uint64_t)(uint32_t)ids[i + 1] << 32));
    if (i < n) h = ds_mix64(h ^ (uint32_t)ids[i]);
    return h;
}

/* key = mix(hash ^ salt) is a bijection of the hash: equal keys ⇔ equal hashes. */
static inline uint64_t ds_salt(uint64_t seed) { return ds_mix64(seed + 0x9E3779B97F4A7C15ull); }

uint64_t dataset_sample_key(uint64_t seed, uint64_t hash) { return ds_mix64(hash ^ ds_salt(seed)); }

/* ---- options ---- */

static const char *const ds_format_names[] = {"text", "jsonl", "tokens"};

void dataset_opts_default(dataset_opts *o)
{
    memset(o, 0, sizeof *o);
    o->format = DATASET_TEXT;
    o->T = 128;
    o->prepend_bos = 1;
    o->bos_id = -1;
    o->n_prompts = 24576;
}

int dataset_format_parse(const char *s, dataset_format *f)
{
    for (int i = 0; s && i < 3; i++)
        if (!strcmp(s, ds_format_names[i])) {
            *f = (dataset_format)i;
            return 0;
        }
    return -1;
}

const char *dataset_format_name(dataset_format f) { return (unsigned)f < 3 ? ds_format_names[f] : "?"; }

/* ---- prefix tokenization ---- */

static inline int ds_ws(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static inline int ds_print(unsigned char c) { return c > 0x20 && c < 0x7f; }

/* Why a cut at i (text[i] ASCII whitespace, text[i-1] printable ASCII) is exact: no
 * alternative of GPT-2's pattern spans a non-space followed by a space (" ?X+" only LEADS with
 * a space, \s+ holds only spaces), so a piece ends at i; and every piece before i is decided
 * by the characters before i — the runs stop at i on a space as they stop at the end of the
 * cut text, and a run of spaces before i-1 is followed by a non-space in both. Pieces are
 * BPE'd independently, hence tokens(text[:i]) is a prefix of tokens(text). */
int dataset_encode_prefix(const tokenizer *tok, const char *text, size_t len, int complete, int need,
                          int32_t **ids, char *err, size_t errlen)
{
    const unsigned char *s = (const unsigned char *)text;
    *ids = NULL;
    if (need < 0) need = 0;
    size_t lo = 0, k = (size_t)need * 8 + 64; // English runs ~4.5 bytes per token
    for (;;) {
        if (k >= len) {
            if (complete) return tok_encode(tok, text, len, ids, err, errlen);
            k = len; // a cut document: its end is no boundary
        }
        size_t cut = 0;
        for (size_t i = k < len ? k : len - 1; len && i > lo; i--)
            if (ds_ws(s[i]) && ds_print(s[i - 1])) {
                cut = i;
                break;
            }
        if (cut) {
            int n = tok_encode(tok, text, cut, ids, err, errlen);
            if (n < 0 || n >= need) return n;
            free(*ids);
            *ids = NULL;
        }
        if (k == len) return tok_encode(tok, text, len, ids, err, errlen); // no boundary left
        lo = k;
        k = k > len / 4 ? len : k * 4;
    }
}

/* ---- file list ---- */

static int ds_cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int ds_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n > m && !strcmp(s + n - m, suf);
}

static int ds_push_file(dataset_result *out, const char *path)
{
    char **f = realloc(out->files, (size_t)(out->n_files + 1) * sizeof *f);
    if (!f) return -1;
    out->files = f;
    if (!(f[out->n_files] = strdup(path))) return -1;
    out->n_files++;
    return 0;
}

/* out->files: the path itself, or the matching files of a directory in name order. */
static int ds_list(const dataset_opts *o, dataset_result *out, int *is_dir, uint64_t *total, char *err, size_t errlen)
{
    struct stat st;
    if (stat(o->path, &st)) {
        snprintf(err, errlen, "cannot read dataset %s: %s", o->path, strerror(errno));
        return -1;
    }
    *is_dir = S_ISDIR(st.st_mode);
    *total = 0;
    if (!*is_dir) {
        *total = (uint64_t)st.st_size;
        if (ds_push_file(out, o->path)) goto oom;
        return 0;
    }
    DIR *dir = opendir(o->path);
    if (!dir) {
        snprintf(err, errlen, "cannot read dataset directory %s: %s", o->path, strerror(errno));
        return -1;
    }
    size_t pl = strlen(o->path);
    int slash = pl && o->path[pl - 1] == '/';
    struct dirent *e;
    while ((e = readdir(dir))) {
        const char *nm = e->d_name;
        int match =
            o->format == DATASET_TEXT ? ds_suffix(nm, ".txt") : ds_suffix(nm, ".jsonl") || ds_suffix(nm, ".jsonl.gz");
        if (nm[0] == '.' || !match) continue;
        size_t n = pl + strlen(nm) + 2;
        char *p = malloc(n);
        if (!p) {
            closedir(dir);
            goto oom;
        }
        snprintf(p, n, "%s%s%s", o->path, slash ? "" : "/", nm);
        if (stat(p, &st) || !S_ISREG(st.st_mode)) { // dangling links, fifos, subdirectories
            free(p);
            continue;
        }
        int fail = ds_push_file(out, p);
        free(p);
        if (fail) {
            closedir(dir);
            goto oom;
        }
        *total += (uint64_t)st.st_size;
    }
    closedir(dir);
    if (!out->n_files) {
        snprintf(err, errlen, "dataset directory %s holds no %s files", o->path,
                 o->format == DATASET_TEXT ? "*.txt" : "*.jsonl or *.jsonl.gz");
        return -1;
    }
    qsort(out->files, (size_t)out->n_files, sizeof *out->files, ds_cmp_str);
    return 0;
oom:
    snprintf(err, errlen, "out of memory listing %s", o->path);
    return -1;
}

/* ---- streaming records ---- */

typedef struct ds_reader {
    gzFile gz;
    const char *path;
    char *in;                 /* (DS_CHUNK) raw bytes */
    size_t in_pos, in_end;
    int eof, whole_done;
    char *line;               /* the record's first len ≤ max_line bytes */
    size_t len, cap;
    uint64_t full;            /* the record's real length */
    int cut;                  /* full > len */
    uint64_t lineno;          /* 1-based line of the record */
} ds_reader;

typedef struct ds_sel { uint64_t rec; int64_t g; } ds_sel;         /* a member of a chosen group */
typedef struct ds_cand { uint64_t key, rec; } ds_cand;             /* 16 bytes per window */
typedef struct ds_win {                                            /* a materialized window */
    int64_t g, next;          /* its group; next distinct window of the group (-1) */
    dataset_source src;
    int file;
    size_t off;               /* ids at wbuf + off */
} ds_win;

typedef struct ds {
    const dataset_opts *o;
    const tokenizer *tok;
    dataset_result *out;
    char *err;
    size_t errlen;
    const char *field;
    int T, need, bos, vocab, is_dir;
    int32_t bos_id;
    size_t max_line;
    uint64_t salt, hmask, total, base, next_report;
    int pass, file;
    ds_reader r;
    int32_t *ids;             /* the current document's first n tokens (all of a short one) */
    int n;
    int32_t *win;             /* (T) scratch window */
    int32_t *pack;            /* (T) pack buffer */
    int pack_len, pack_docs, pack_file, pack_active;
    uint64_t pack_rec, pack_line;
    int64_t pack_g;
    /* pass 1 */
    ds_cand *c;
    size_t nc, cap_c;
    /* pass 2 */
    ds_sel *s;
    size_t ns, si;
    int64_t n_groups;
    int64_t *head;            /* (n_groups) first distinct window of each group, -1 */
    uint64_t *gkey;           /* (n_groups) */
    ds_win *w;
    size_t nw, cap_w;
    int32_t *wbuf;
    size_t wbuf_n, wbuf_cap;
} ds;

static int ds_fail(ds *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ds_fail(ds *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, d->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int ds_progress(ds *d, int force)
{
    uint64_t done = d->base + (d->r.gz ? (uint64_t)gzoffset(d->r.gz) : 0);
    if (!force && done < d->next_report) return 0;
    d->next_report = done + DS_REPORT;
    if (d->pass == 1) d->out->stats.bytes = done;
    if (d->o->progress && d->o->progress(d->o->progress_ctx, d->pass, done, d->total))
        return ds_fail(d, "dataset load cancelled");
    return 0;
}

static int ds_open(ds *d, const char *path)
{
    ds_reader *r = &d->r;
    r->path = path;
    r->in_pos = r->in_end = 0;
    r->eof = r->whole_done = 0;
    r->lineno = 0;
    errno = 0;
    if (!(r->gz = gzopen(path, "rb")))
        return ds_fail(d, "cannot open %s: %s", path, errno ? strerror(errno) : "out of memory");
    gzbuffer(r->gz, 256 << 10);
    return 0;
}

static void ds_close(ds *d)
{
    if (d->r.gz) gzclose(d->r.gz);
    d->r.gz = NULL;
}

/* 1 bytes read, 0 end of file, -1 error. A gzip stream that stops early is an error. */
static int ds_fill(ds *d)
{
    ds_reader *r = &d->r;
    int n = gzread(r->gz, r->in, (unsigned)DS_CHUNK);
    int zerr;
    const char *msg = gzerror(r->gz, &zerr);
    if (n < 0 || (n == 0 && zerr != Z_OK))
        return ds_fail(d, "%s: read error: %s", r->path, zerr == Z_ERRNO ? strerror(errno) : msg);
    r->in_pos = 0;
    r->in_end = (size_t)n;
    if (ds_progress(d, 0)) return -1;
    return n > 0;
}

static int ds_keep(ds_reader *r, const char *p, size_t n, size_t max)
{
    r->full += n;
    if (!n || r->len >= max) return 0;
    if (n > max - r->len) n = max - r->len;
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n) cap = cap > max / 2 ? max : cap * 2;
        char *l = realloc(r->line, cap);
        if (!l) return -1;
        r->line = l;
        r->cap = cap;
    }
    memcpy(r->line + r->len, p, n);
    r->len += n;
    return 0;
}

/* Next record: a line ("\n" and a "\r" before it dropped) or, with whole, the rest of the
 * file. 1 record, 0 none left, -1 error. */
static int ds_next(ds *d, int whole)
{
    ds_reader *r = &d->r;
    r->len = 0;
    r->full = 0;
    int any = 0, nl_found = 0;
    unsigned char last = 0;
    if (whole && r->whole_done) return 0;
    for (;;) {
        if (r->in_pos == r->in_end) {
            if (r->eof) break;
            int rc = ds_fill(d);
            if (rc < 0) return -1;
            if (!rc) {
                r->eof = 1;
                break;
            }
        }
        const char *p = r->in + r->in_pos;
        size_t avail = r->in_end - r->in_pos;
        const char *nl = whole ? NULL : memchr(p, '\n', avail);
        size_t take = nl ? (size_t)(nl - p) : avail;
        if (take) last = (unsigned char)p[take - 1];
        if (ds_keep(r, p, take, d->max_line)) return ds_fail(d, "out of memory reading %s", r->path);
        r->in_pos += take + (nl != NULL);
        any = 1;
        if (nl) {
            nl_found = 1;
            break;
        }
    }
    if (!any && !whole) return 0;
    r->whole_done = whole;
    r->lineno++;
    if (nl_found && r->full && last == '\r') {
        r->full--;
        if (r->len > r->full) r->len = (size_t)r->full;
    }
    r->cut = r->full > r->len;
    return 1;
}

/* ---- documents ---- */

/* Messages quote the input (jansson's "near '...'"): control bytes and invalid or cut UTF-8
 * become '?', so that a message can always go into JSON. */
static void ds_clean(char *m)
{
    size_t n = strlen(m);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = uni_utf8_next((const unsigned char *)m + i, n - i, &cp);
        if (cp == UNI_INVALID || cp < 0x20 || cp == 0x7f) m[i] = '?';
        i += l;
    }
}

/* A malformed record: counted and kept (first few), returns 2; or, strict, the error: -1. */
static int ds_malformed(ds *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ds_malformed(ds *d, const char *fmt, ...)
{
    if (d->pass != 1) return 2; // reported once, in pass 1
    char msg[DATASET_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (d->o->strict) {
        ds_fail(d, "%s:%llu: %s", d->r.path, (unsigned long long)d->r.lineno, msg);
        ds_clean(d->err);
        return -1;
    }
    dataset_stats *st = &d->out->stats;
    st->malformed++;
    if (st->n_msgs < DATASET_MAX_MSGS) {
        char *m = st->msgs[st->n_msgs++];
        snprintf(m, DATASET_MSG_LEN, "%s:%llu: %s", d->r.path, (unsigned long long)d->r.lineno, msg);
        ds_clean(m);
    }
    return 2;
}

static int ds_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!ds_ws((unsigned char)s[i])) return 0;
    return 1;
}

static int ds_token_row(ds *d, json_t *a)
{
    size_t n = json_array_size(a);
    if (n > (size_t)d->T) n = (size_t)d->T; // only row[:T] is ever used...
    d->ids = malloc((n + 1) * sizeof *d->ids);
    if (!d->ids) return ds_fail(d, "out of memory");
    for (size_t i = 0; i < json_array_size(a); i++) { // ...but the whole row is checked
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v)) return ds_malformed(d, "%s[%zu] is not an integer", d->field, i);
        json_int_t x = json_integer_value(v);
        if (x < 0 || (d->vocab > 0 && x >= d->vocab) || x > INT32_MAX) {
            if (d->vocab > 0)
                return ds_malformed(d, "%s[%zu] = %lld is outside the vocabulary [0, %d)", d->field, i, (long long)x,
                                    d->vocab);
            return ds_malformed(d, "%s[%zu] = %lld is not a token id", d->field, i, (long long)x);
        }
        if (i < n) d->ids[i] = (int32_t)x;
    }
    d->n = (int)n;
    return 1;
}

/* The current record as a document: 1 (tokens in d->ids, d->n), 0 blank, 2 malformed
 * (already reported), -1 error. */
static int ds_doc(ds *d)
{
    ds_reader *r = &d->r;
    free(d->ids);
    d->ids = NULL;
    d->n = 0;
    if (d->o->format == DATASET_TEXT) {
        int n = dataset_encode_prefix(d->tok, r->line, r->len, !r->cut, d->need, &d->ids, d->err, d->errlen);
        if (n < 0) return -1;
        d->n = n;
        return 1;
    }
    if (r->cut) return ds_malformed(d, "line longer than %zu bytes", d->max_line);
    if (ds_blank(r->line, r->len)) return 0;
    json_error_t je;
    json_t *j = json_loadb(r->len ? r->line : "", r->len, JSON_ALLOW_NUL, &je);
    int rc;
    if (!j) {
        rc = ds_malformed(d, "invalid JSON: %s (column %d)", je.text, je.column);
    } else if (!json_is_object(j)) {
        rc = ds_malformed(d, "not a JSON object");
    } else {
        json_t *v = json_object_get(j, d->field);
        if (!v) {
            rc = ds_malformed(d, "no \"%s\" field", d->field);
        } else if (d->o->format == DATASET_JSONL) {
            if (!json_is_string(v)) {
                rc = ds_malformed(d, "\"%s\" is not a string", d->field);
            } else {
                int n = dataset_encode_prefix(d->tok, json_string_value(v), json_string_length(v), 1, d->need, &d->ids,
                                              d->err, d->errlen);
                d->n = n < 0 ? 0 : n;
                rc = n < 0 ? -1 : 1;
            }
        } else if (!json_is_array(v)) {
            rc = ds_malformed(d, "\"%s\" is not an array of token ids", d->field);
        } else {
            rc = ds_token_row(d, v);
        }
    }
    json_decref(j);
    return rc;
}

/* The current full-length document's window into d->win. */
static void ds_full_window(ds *d)
{
    if (d->bos) d->win[0] = d->bos_id;
    memcpy(d->win + d->bos, d->ids, (size_t)d->need * sizeof *d->win);
}

/* Appends the current short document to the pack buffer; 1 when the buffer is a window. */
static int ds_pack_add(ds *d, uint64_t rec)
{
    if (!d->pack_len) {
        d->pack_rec = rec;
        d->pack_file = d->file;
        d->pack_line = d->r.lineno;
        d->pack_docs = 0;
    }
    d->pack_docs++;
    if (d->bos) d->pack[d->pack_len++] = d->bos_id; // pack_len < T here
    int k = d->T - d->pack_len < d->n ? d->T - d->pack_len : d->n;
    memcpy(d->pack + d->pack_len, d->ids, (size_t)k * sizeof *d->pack);
    d->pack_len += k;
    if (d->pack_len < d->T) return 0;
    d->pack_len = 0;
    return 1;
}

/* ---- pass 1: every window's (key, record) ---- */

static inline uint64_t ds_key(const ds *d, const int32_t *win)
{
    return ds_mix64((dataset_window_hash(win, d->T) & d->hmask) ^ d->salt);
}

static int ds_cand_push(ds *d, const int32_t *win, uint64_t rec)
{
    if (d->nc == d->cap_c) {
        size_t cap = d->cap_c ? d->cap_c + d->cap_c / 2 : 4096;
        ds_cand *c = realloc(d->c, cap * sizeof *c);
        if (!c) return ds_fail(d, "out of memory (%zu windows)", d->nc);
        d->c = c;
        d->cap_c = cap;
    }
    d->c[d->nc].key = ds_key(d, win);
    d->c[d->nc++].rec = rec;
    d->out->stats.windows++;
    return 0;
}

static int ds_rec1(ds *d, uint64_t rec)
{
    dataset_stats *st = &d->out->stats;
    st->records++;
    int rc = ds_doc(d);
    if (rc != 1) return rc < 0 ? -1 : 0;
    st->documents++;
    if (d->n >= d->need) {
        ds_full_window(d);
        return ds_cand_push(d, d->win, rec);
    }
    if (!d->o->pack || !d->n) {
        st->short_skipped++;
        return 0;
    }
    if (!ds_pack_add(d, rec)) return 0;
    st->packed_windows++;
    return ds_cand_push(d, d->pack, d->pack_rec);
}

/* ---- pass 2: materialize the chosen groups ---- */

static int ds_changed(ds *d)
{
    return ds_fail(d, "%s:%llu: the dataset changed while it was being read", d->r.path,
                   (unsigned long long)d->r.lineno);
}

static int ds_materialize(ds *d, int64_t g, const int32_t *win, uint64_t rec, int file, uint64_t line, int n_docs)
{
    if (ds_key(d, win) != d->gkey[g]) return ds_changed(d);
    for (int64_t j = d->head[g]; j >= 0; j = d->w[j].next)
        if (!memcmp(d->wbuf + d->w[j].off, win, (size_t)d->T * sizeof *win)) {
            ds_win *x = &d->w[j]; // an exact duplicate; the lower record stands for both
            if (rec < x->src.record) {
                x->src.record = rec;
                x->file = file;
                x->src.line = line;
                x->src.n_docs = n_docs;
            }
            return 0;
        }
    if (d->nw == d->cap_w) {
        size_t cap = d->cap_w ? 2 * d->cap_w : 256;
        ds_win *w = realloc(d->w, cap * sizeof *w);
        if (!w) return ds_fail(d, "out of memory");
        d->w = w;
        d->cap_w = cap;
    }
    if (d->wbuf_n + (size_t)d->T > d->wbuf_cap) {
        size_t cap = d->wbuf_cap ? 2 * d->wbuf_cap : (size_t)d->T * 256;
        int32_t *b = realloc(d->wbuf, cap * sizeof *b);
        if (!b) return ds_fail(d, "out of memory");
        d->wbuf = b;
        d->wbuf_cap = cap;
    }
    memcpy(d->wbuf + d->wbuf_n, win, (size_t)d->T * sizeof *win);
    d->w[d->nw] = (ds_win){.g = g, .next = d->head[g], .src = {.record = rec, .line = line, .n_docs = n_docs},
                           .file = file, .off = d->wbuf_n};
    d->head[g] = (int64_t)d->nw++;
    d->wbuf_n += (size_t)d->T;
    return 0;
}

static int ds_rec2(ds *d, uint64_t rec)
{
    int wanted = d->si < d->ns && d->s[d->si].rec == rec;
    if (!wanted && !d->pack_active) return 0; // not even parsed
    int64_t g = wanted ? d->s[d->si++].g : -1;
    int rc = ds_doc(d);
    if (rc < 0) return -1;
    if (rc != 1) return wanted ? ds_changed(d) : 0;
    if (d->n >= d->need) {
        if (!wanted) return 0;
        ds_full_window(d);
        return ds_materialize(d, g, d->win, rec, d->file, d->r.lineno, 1);
    }
    if (!d->o->pack || !d->n) return wanted ? ds_changed(d) : 0;
    if (wanted) { // a chosen packed window starts here
        if (d->pack_active) return ds_changed(d);
        d->pack_active = 1;
        d->pack_g = g;
        d->pack_len = 0;
    }
    if (!ds_pack_add(d, rec)) return 0;
    d->pack_active = 0;
    return ds_materialize(d, d->pack_g, d->pack, d->pack_rec, d->pack_file, d->pack_line, d->pack_docs);
}

/* ---- passes ---- */

static int ds_pass(ds *d, int pass)
{
    d->pass = pass;
    d->base = 0;
    d->next_report = DS_REPORT;
    d->pack_len = 0;
    d->pack_active = 0;
    uint64_t rec = 0, max = d->o->max_records;
    int whole = d->o->format == DATASET_TEXT && d->is_dir, stop = 0;
    for (d->file = 0; d->file < d->out->n_files && !stop; d->file++) {
        if (ds_open(d, d->out->files[d->file])) return -1;
        for (;;) {
            if ((max && rec >= max) || (pass == 2 && d->si >= d->ns && !d->pack_active)) {
                stop = 1;
                break;
            }
            int rc = ds_next(d, whole);
            if (rc < 0) goto fail;
            if (!rc) break;
            if ((pass == 1 ? ds_rec1(d, rec) : ds_rec2(d, rec)) < 0) goto fail;
            rec++;
        }
        if (ds_progress(d, 1)) goto fail;
        d->base += (uint64_t)gzoffset(d->r.gz);
        ds_close(d);
    }
    if (pass == 2 && (d->si < d->ns || d->pack_active))
        return ds_fail(d, "%s: the dataset changed while it was being read", d->out->files[d->out->n_files - 1]);
    return 0;
fail:
    ds_close(d);
    return -1;
}

static int ds_cmp_cand(const void *a, const void *b)
{
    const ds_cand *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->rec > y->rec) - (x->rec < y->rec);
}

static int ds_cmp_sel(const void *a, const void *b)
{
    const ds_sel *x = a, *y = b;
    return (x->rec > y->rec) - (x->rec < y->rec);
}

/* Groups (equal keys) in key order; the first n_prompts groups' members, by record. */
static int ds_choose(ds *d)
{
    dataset_stats *st = &d->out->stats;
    if (d->nc) qsort(d->c, d->nc, sizeof *d->c, ds_cmp_cand); // qsort(NULL, 0) is UB
    int64_t groups = 0;
    size_t members = 0;
    for (size_t i = 0; i < d->nc; i++) {
        if (i && d->c[i].key == d->c[i - 1].key) {
            if (groups <= d->o->n_prompts) members++;
            continue;
        }
        groups++;
        if (groups <= d->o->n_prompts) members++;
    }
    st->unique_windows = (uint64_t)groups;
    st->duplicates = d->nc - (size_t)groups;
    d->n_groups = groups < d->o->n_prompts ? groups : d->o->n_prompts;
    d->s = malloc((members + 1) * sizeof *d->s);
    d->head = malloc(((size_t)d->n_groups + 1) * sizeof *d->head);
    d->gkey = malloc(((size_t)d->n_groups + 1) * sizeof *d->gkey);
    if (!d->s || !d->head || !d->gkey) return ds_fail(d, "out of memory");
    int64_t g = -1;
    for (size_t i = 0; i < d->nc; i++) {
        if (!i || d->c[i].key != d->c[i - 1].key) {
            if (++g >= d->n_groups) break;
            d->head[g] = -1;
            d->gkey[g] = d->c[i].key;
        }
        d->s[d->ns++] = (ds_sel){d->c[i].rec, g};
    }
    free(d->c);
    d->c = NULL;
    if (d->ns) qsort(d->s, d->ns, sizeof *d->s, ds_cmp_sel);
    return 0;
}

static int ds_cmp_win_gr(const void *a, const void *b)
{
    const ds_win *x = a, *y = b;
    if (x->g != y->g) return x->g < y->g ? -1 : 1;
    return (x->src.record > y->src.record) - (x->src.record < y->src.record);
}

static int ds_cmp_win_rec(const void *a, const void *b)
{
    const ds_win *x = a, *y = b;
    return (x->src.record > y->src.record) - (x->src.record < y->src.record);
}

static int ds_output(ds *d)
{
    dataset_result *out = d->out;
    dataset_stats *st = &out->stats;
    /* Distinct windows of one group beyond the first are hash collisions: distinct after all. */
    st->hash_collisions = d->nw - (size_t)d->n_groups;
    st->unique_windows += st->hash_collisions;
    st->duplicates -= st->hash_collisions;
    size_t n = d->nw < (size_t)d->o->n_prompts ? d->nw : (size_t)d->o->n_prompts;
    if (n) {
        qsort(d->w, d->nw, sizeof *d->w, ds_cmp_win_gr); // (key, record): the sample order
        qsort(d->w, n, sizeof *d->w, ds_cmp_win_rec);    // output: dataset order
    }
    out->ids = malloc((n * (size_t)d->T + 1) * sizeof *out->ids);
    out->src = malloc((n + 1) * sizeof *out->src);
    if (!out->ids || !out->src) return ds_fail(d, "out of memory");
    for (size_t i = 0; i < n; i++) {
        memcpy(out->ids + i * (size_t)d->T, d->wbuf + d->w[i].off, (size_t)d->T * sizeof *out->ids);
        out->src[i] = d->w[i].src;
        out->src[i].file = out->files[d->w[i].file];
    }
    out->n = (int)n;
    return 0;
}

/* ---- entry ---- */

static int ds_setup(ds *d, const dataset_opts *o, const tokenizer *tok)
{
    if (!o->path || !o->path[0]) return ds_fail(d, "dataset path is required");
    if ((unsigned)o->format > DATASET_TOKENS) return ds_fail(d, "dataset format must be text, jsonl or tokens");
    if (o->T < 1 || o->T > DS_MAX_T)
        return ds_fail(d, "n_tokens_in_prompt must be in [1, %d] (got %d)", DS_MAX_T, o->T);
    if (o->n_prompts < 1) return ds_fail(d, "n_prompts must be at least 1 (got %d)", o->n_prompts);
    if (o->vocab_size < 0) return ds_fail(d, "vocab_size must not be negative");
    if (o->text_field && !o->text_field[0]) return ds_fail(d, "text_field must not be empty");
    if (o->max_line > DS_MAX_LINE) return ds_fail(d, "max_line must be at most %zu bytes", DS_MAX_LINE);
    int text = o->format != DATASET_TOKENS;
    if (text && !tok) return ds_fail(d, "the %s format needs a tokenizer", dataset_format_name(o->format));
    d->o = o;
    d->tok = tok;
    d->field = o->text_field ? o->text_field : text ? "text" : "input_ids";
    d->T = o->T;
    d->vocab = o->vocab_size ? o->vocab_size : tok ? tok_vocab_size(tok) : 0;
    d->bos = text && o->prepend_bos; // tokens rows are used as they are
    d->bos_id = o->bos_id;
    if (d->bos) {
        if (o->T < 2) return ds_fail(d, "n_tokens_in_prompt must be at least 2 with prepend_bos");
        if (d->bos_id < 0) d->bos_id = tok_prompt_bos(tok);
        if (d->bos_id < 0) return ds_fail(d, "bos_id: the tokenizer has no BOS or EOS token");
        if (d->vocab > 0 && d->bos_id >= d->vocab) return ds_fail(d, "bos_id %d is outside the vocabulary", d->bos_id);
    }
    d->need = d->T - d->bos;
    d->max_line = o->max_line ? o->max_line : DATASET_DEFAULT_MAX_LINE;
    d->salt = ds_salt(o->seed);
    if (o->hash_bits < 0 || o->hash_bits > 64) return ds_fail(d, "hash_bits must be in [0, 64]");
    d->hmask = o->hash_bits && o->hash_bits < 64 ? ((uint64_t)1 << o->hash_bits) - 1 : ~(uint64_t)0;
    d->r.in = malloc(DS_CHUNK);
    d->win = malloc((size_t)d->T * sizeof *d->win);
    d->pack = malloc((size_t)d->T * sizeof *d->pack);
    if (!d->r.in || !d->win || !d->pack) return ds_fail(d, "out of memory");
    return 0;
}

int dataset_prompts(const dataset_opts *o, const tokenizer *tok, dataset_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    ds d = {.out = out, .err = err, .errlen = errlen};
    int rc = -1;
    if (!o) {
        ds_fail(&d, "no dataset options");
        return -1;
    }
    out->T = o->T;
    if (ds_setup(&d, o, tok) || ds_list(o, out, &d.is_dir, &d.total, err, errlen)) goto done;
    if (ds_pass(&d, 1)) goto done;
    out->stats.short_skipped += (uint64_t)(d.pack_len ? d.pack_docs : 0); // an unfinished pack
    if (ds_choose(&d)) goto done;
    if (d.ns && ds_pass(&d, 2)) goto done;
    rc = ds_output(&d);
done:
    free(d.r.in);
    free(d.r.line);
    free(d.ids);
    free(d.win);
    free(d.pack);
    free(d.c);
    free(d.s);
    free(d.head);
    free(d.gkey);
    free(d.w);
    free(d.wbuf);
    return rc;
}

void dataset_result_free(dataset_result *r)
{
    if (!r) return;
    free(r->ids);
    free(r->src);
    for (int i = 0; i < r->n_files; i++) free(r->files[i]);
    free(r->files);
    memset(r, 0, sizeof *r);
}
