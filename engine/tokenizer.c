/* tokenizer.c: see tokenizer.h. GPT-2 byte-level BPE as OpenAI's encoder.py defines it:
 * pre-tokenize with a hand-written matcher equivalent to GPT-2's regex, map each UTF-8 byte
 * to its byte-symbol token, then apply merges lowest rank first. Loads the three file layouts
 * (vocab.json + merges.txt, npm's encoder.json + vocab.bpe, HF tokenizer.json).
 * Not done here: special tokens inside text (always plain text), normalizers, other
 * pre-tokenizers (a tokenizer.json asking for them is refused, not approximated), BPE dropout.
 * Loading uses jansson; encoding allocates only its per-call scratch, so one tokenizer may be
 * shared by any number of threads. */
#define _GNU_SOURCE // qsort_r
#include "engine/tokenizer.h"

#include <ctype.h>    // defines: isspace, isalnum
#include <errno.h>    // defines: errno
#include <jansson.h>  // defines: json_load_file, json_object_foreach
#include <limits.h>   // defines: INT_MAX
#include <stdio.h>    // defines: snprintf, fopen
#include <stdlib.h>   // defines: malloc, realloc, free
#include <string.h>   // defines: memcpy, strlen, strerror
#include <sys/stat.h> // defines: stat

#include "engine/tok_split.h" // defines: tok_split_llama3_end
#include "engine/unicode.h"   // defines: uni_utf8_next, uni_class

#define TOK_MAX_ID (1 << 24)  // ids are packed into 32-bit halves of the merge key; generous
#define TOK_NO_RANK INT32_MAX // "this pair has no merge"
#define TOK_HEAP_MIN 48       // pieces longer than this use the heap (O(n log n)) path

typedef struct tok_merge {
    uint64_t key; // left id << 32 | right id; TOK_EMPTY when the slot is free
    int32_t rank; // position in the merges list: lower merges first
    int32_t id;   // the merged token
} tok_merge;
#define TOK_EMPTY UINT64_MAX

enum { TOK_SPLIT_GPT2, TOK_SPLIT_LLAMA3, TOK_SPLIT_QWEN2, TOK_SPLIT_NONE };

typedef struct tok_added {
    uint32_t off, len; // content: added_blob[off .. off+len)
    int32_t id;
    unsigned char lstrip, rstrip, single_word;
} tok_added;

struct tokenizer {
    int n_ids;            // max id + 1 (ids without a token decode to nothing)
    int eos;              // id of "<|endoftext|>" or -1 (tokenizer_config.json's eos_token first)
    int bos, pad;         // -1 when none
    int adds_bos;         // HF's encode adds bos itself (TemplateProcessing, add_bos_token)
    int sp;               // SentencePiece-style: text spaces are "\u2581" in the vocab, <0xNN> bytes
    int split;            // TOK_SPLIT_*: the byte-level pre-tokenizer
    int ignore_merges;    // a piece that is itself a vocab token is emitted whole
    int nfc;              // NFC normalizer: text must be NFC-stable as far as tok_nfc_ok knows
    int prepend;          // sp: Prepend("\u2581") normalizer
    int byte_fallback;    // sp: characters not in the vocab become <0xNN> tokens
    int fuse_unk, unk;    // sp: unk token id (-1), consecutive unks fused
    int strip_lead;       // decoder Strip(" ", 1, 0): one leading space dropped
    uint32_t *lk;         // vocab lookup by token bytes: id + 1 per slot, 0 free
    uint64_t lkmask;
    unsigned char *special; // (n_ids): 1 for added tokens marked special
    tok_added *added;     // sorted by first byte, then longest first
    int n_added;
    int added_at[257];    // added[added_at[b] .. added_at[b+1]) start with byte b
    char *added_blob;
    int32_t byte_id[256]; // the byte-symbol token of each byte
    uint32_t *off;        // (n_ids + 1): token i's bytes are blob[off[i] .. off[i+1])
    char *blob;
    tok_merge *merges;    // open addressing, (mmask + 1) slots, at most half full
    uint64_t mmask;
    int mshift;           // 64 - log2(slots), for the multiplicative hash
};

/* ---- GPT-2's byte symbols ----------------------------------------------------------------
 * Each byte is shown as one printable code point: bytes that are printable Latin-1 (except
 * U+00AD soft hyphen) stand for themselves; the other 68 get U+0100, U+0101, ... in byte
 * order. Vocab files spell tokens with these code points. */
static void tok_byte_symbols(uint32_t sym[256])
{
    uint32_t next = 0x100;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        sym[b] = printable ? (uint32_t)b : next++;
    }
}

/* UTF-8 of a byte symbol (all are below U+0800). */
static size_t tok_put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    o[0] = (char)(0xC0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* The raw bytes a vocab string stands for, written to out (room for strlen(s) bytes: a symbol
 * is never shorter than its byte). A code point that is not a byte symbol (added tokens such
 * as "<|endoftext|>" only use symbols, but other vocabularies may not) stays as its UTF-8. */
static size_t tok_symbols_to_bytes(const int16_t *byte_of, const char *s, size_t n, char *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = uni_utf8_next(u + i, n - i, &cp);
        if (cp < 0x144 && byte_of[cp] >= 0) out[o++] = (char)byte_of[cp];
        else { memcpy(out + o, s + i, l); o += l; }
        i += l;
    }
    return o;
}

/* ---- hashing -------------------------------------------------------------------------------- */
static uint64_t tok_hash_str(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static inline uint64_t tok_mix(uint64_t key, int shift) { return (key * 0x9E3779B97F4A7C15ull) >> shift; }

static inline const tok_merge *tok_merge_find(const tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (uint64_t h = tok_mix(key, t->mshift);; h = (h + 1) & t->mmask) {
        const tok_merge *m = &t->merges[h];
        if (m->key == key) return m;
        if (m->key == TOK_EMPTY) return NULL;
    }
}

/* ---- loading -------------------------------------------------------------------------------
 * All three layouts come down to: a JSON object token -> id, then merges "a b" in rank order.
 * The loader keeps a string -> id hash over the vocab's own spelling only while loading. */
typedef struct tok_vslot {
    const char *s; // NULL: free; points into the JSON document
    size_t n;
    int32_t id;
} tok_vslot;

typedef struct tok_loader {
    tokenizer *t;
    tok_vslot *vh;
    uint64_t vmask;
    int n_merges_max;
    char *cat; // scratch for "a" + "b"
    size_t cat_cap;
} tok_loader;

static int tok_vocab_find(const tok_loader *L, const char *s, size_t n)
{
    for (uint64_t h = tok_hash_str(s, n) & L->vmask;; h = (h + 1) & L->vmask) {
        const tok_vslot *v = &L->vh[h];
        if (!v->s) return -1;
        if (v->n == n && !memcmp(v->s, s, n)) return v->id;
    }
}

static int tok_not_found(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st)) {
        snprintf(err, errlen, "%s: not found", path);
        return 1;
    }
    return 0;
}

static json_t *tok_load_json(const char *path, char *err, size_t errlen)
{
    if (tok_not_found(path, err, errlen)) return NULL;
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) snprintf(err, errlen, "%s: invalid JSON at line %d: %s", path, je.line, je.text);
    return root;
}

static void tok_loader_free(tok_loader *L)
{
    free(L->vh);
    free(L->cat);
    tok_free(L->t);
    memset(L, 0, sizeof *L);
}

/* Builds ids, token bytes and the string -> id hash from the vocab object and, for
 * tokenizer.json, its added_tokens (raw text, used where the vocab has no such id). */
/* SentencePiece spelling -> bytes: "<0xNN>" is byte NN (*byte set, else -1), U+2581 is a space. */
static size_t tok_sp_to_bytes(const char *s, size_t n, char *out, int *byte)
{
    *byte = -1;
    if (n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>') {
        int v = 0, ok = 1;
        for (int k = 3; k < 5; k++) {
            char c = s[k];
            if (c >= '0' && c <= '9') v = v * 16 + (c - '0');
            else if (c >= 'A' && c <= 'F') v = v * 16 + (c - 'A' + 10);
            else ok = 0;
        }
        if (ok) {
            *byte = v;
            out[0] = (char)v;
            return 1;
        }
    }
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (i + 3 <= n && !memcmp(s + i, "\xE2\x96\x81", 3)) {
            out[o++] = ' ';
            i += 3;
        } else out[o++] = s[i++];
    }
    return o;
}

static int tok_lookup(const tokenizer *t, const void *s, size_t n)
{
    if (!t->lk) return -1;
    for (uint64_t h = tok_hash_str(s, n) & t->lkmask;; h = (h + 1) & t->lkmask) {
        uint32_t v = t->lk[h];
        if (!v) return -1;
        uint32_t a = t->off[v - 1], b = t->off[v];
        if (b - a == n && !memcmp(t->blob + a, s, n)) return (int)v - 1;
    }
}

static int tok_set_vocab_sp(tok_loader *L, json_t *vocab, json_t *added, int n_merges_max, int sp, const char *file,
                            const char *what, char *err, size_t errlen);
static int tok_set_vocab(tok_loader *L, json_t *vocab, json_t *added, int n_merges_max, const char *file,
                         const char *what, char *err, size_t errlen)
{
    return tok_set_vocab_sp(L, vocab, added, n_merges_max, 0, file, what, err, errlen);
}

static int tok_set_vocab_sp(tok_loader *L, json_t *vocab, json_t *added, int n_merges_max, int sp, const char *file,
                            const char *what, char *err, size_t errlen)
{
    if (!json_is_object(vocab)) {
        snprintf(err, errlen, "%s: %s is not a JSON object (token -> id)", file, what);
        return -1;
    }
    size_t n = json_object_size(vocab);
    if (n == 0) {
        snprintf(err, errlen, "%s: %s is empty", file, what);
        return -1;
    }
    int max_id = -1;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= TOK_MAX_ID) {
            snprintf(err, errlen, "%s: %s: the id of \"%.80s\" is not an integer in [0, %d)", file, what, key,
                     TOK_MAX_ID);
            return -1;
        }
        if (json_integer_value(val) > max_id) max_id = (int)json_integer_value(val);
    }
    size_t n_added = json_is_array(added) ? json_array_size(added) : 0;
    for (size_t i = 0; i < n_added; i++) {
        json_t *a = json_array_get(added, i), *id = json_object_get(a, "id");
        if (!json_is_string(json_object_get(a, "content")) || !json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= TOK_MAX_ID) {
            snprintf(err, errlen, "%s: added_tokens[%zu] needs a string \"content\" and an integer \"id\" in [0, %d)",
                     file, i, TOK_MAX_ID);
            return -1;
        }
        if (json_integer_value(id) > max_id) max_id = (int)json_integer_value(id);
    }

    tokenizer *t = L->t = calloc(1, sizeof *t);
    if (!t) goto oom;
    t->n_ids = max_id + 1;
    t->eos = t->bos = t->pad = t->unk = -1;
    t->sp = sp;
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)n) cap <<= 1;
    L->vh = calloc(cap, sizeof *L->vh);
    L->vmask = cap - 1;
    const char **name = calloc((size_t)t->n_ids, sizeof *name); // vocab spelling per id
    int *raw = calloc((size_t)t->n_ids, sizeof *raw);           // 1: name is raw text (added token)
    t->off = calloc((size_t)t->n_ids + 1, sizeof *t->off);
    if (!L->vh || !name || !raw || !t->off) {
        free(name);
        free(raw);
        goto oom;
    }
    json_object_foreach(vocab, key, val) {
        int id = (int)json_integer_value(val);
        if (name[id]) {
            snprintf(err, errlen, "%s: %s: id %d is used by both \"%.80s\" and \"%.80s\"", file, what, id, name[id],
                     key);
            free(name);
            free(raw);
            return -1;
        }
        name[id] = key;
        size_t kn = strlen(key);
        uint64_t h = tok_hash_str(key, kn) & L->vmask;
        while (L->vh[h].s) h = (h + 1) & L->vmask;
        L->vh[h] = (tok_vslot){key, kn, id};
    }
    for (size_t i = 0; i < n_added; i++) {
        json_t *a = json_array_get(added, i);
        int id = (int)json_integer_value(json_object_get(a, "id"));
        if (!name[id]) {
            name[id] = json_string_value(json_object_get(a, "content"));
            raw[id] = 1;
        }
    }

    int16_t byte_of[0x144];
    uint32_t sym[256];
    tok_byte_symbols(sym);
    memset(byte_of, 0xFF, sizeof byte_of);
    for (int b = 0; b < 256; b++) byte_of[sym[b]] = (int16_t)b;
    size_t total = 0;
    for (int id = 0; id < t->n_ids; id++) total += name[id] ? strlen(name[id]) : 0;
    t->blob = malloc(total + 1);
    if (!t->blob) {
        free(name);
        free(raw);
        goto oom;
    }
    uint32_t o = 0;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    for (int id = 0; id < t->n_ids; id++) {
        t->off[id] = o;
        if (!name[id]) continue;
        size_t kn = strlen(name[id]);
        if (raw[id]) {
            memcpy(t->blob + o, name[id], kn);
            o += (uint32_t)kn;
        } else if (sp) {
            int byte;
            o += (uint32_t)tok_sp_to_bytes(name[id], kn, t->blob + o, &byte);
            if (byte >= 0 && t->byte_id[byte] < 0) t->byte_id[byte] = id;
            if (byte >= 0) raw[id] = 2; // not looked up by its bytes
        } else {
            o += (uint32_t)tok_symbols_to_bytes(byte_of, name[id], kn, t->blob + o);
        }
        if (!strcmp(name[id], "<|endoftext|>") && t->eos < 0) t->eos = id;
    }
    t->off[t->n_ids] = o;
    free(name);
    /* Lookup by bytes over the model's own vocabulary (not added-only ids, not byte tokens);
     * the lowest id wins a tie. */
    uint64_t lcap = 16;
    while (lcap < 2 * (uint64_t)t->n_ids) lcap <<= 1;
    t->lk = calloc(lcap, sizeof *t->lk);
    if (!t->lk) {
        free(raw);
        goto oom;
    }
    t->lkmask = lcap - 1;
    for (int id = 0; id < t->n_ids; id++) {
        uint32_t a = t->off[id], b = t->off[id + 1];
        if (raw[id] || b == a || tok_lookup(t, t->blob + a, b - a) >= 0) continue;
        uint64_t h = tok_hash_str(t->blob + a, b - a) & t->lkmask;
        while (t->lk[h]) h = (h + 1) & t->lkmask;
        t->lk[h] = (uint32_t)id + 1;
    }
    free(raw);

    for (int b = 0; b < 256 && !sp; b++) {
        char s[4];
        size_t sn = tok_put_utf8(s, sym[b]);
        t->byte_id[b] = tok_vocab_find(L, s, sn);
        if (t->byte_id[b] < 0) {
            snprintf(err, errlen, "%s: %s lacks the byte-level symbol \"%.*s\" of byte 0x%02X (not a GPT-2 style "
                     "byte-level BPE vocabulary)", file, what, (int)sn, s, b);
            return -1;
        }
    }

    cap = 16;
    while (cap < 2 * (uint64_t)(n_merges_max > 0 ? n_merges_max : 1)) cap <<= 1;
    t->merges = malloc(cap * sizeof *t->merges);
    if (!t->merges) goto oom;
    for (uint64_t i = 0; i < cap; i++) t->merges[i].key = TOK_EMPTY;
    t->mmask = cap - 1;
    t->mshift = 64 - __builtin_ctzll(cap);
    L->n_merges_max = n_merges_max;
    return 0;
oom:
    snprintf(err, errlen, "%s: out of memory", file);
    return -1;
}

/* Adds merge number `rank`; `where` says where it came from for errors ("merges.txt:12"). */
static int tok_add_merge(tok_loader *L, const char *a, size_t an, const char *b, size_t bn, int rank,
                         const char *where, char *err, size_t errlen)
{
    tokenizer *t = L->t;
    int ia = tok_vocab_find(L, a, an), ib = tok_vocab_find(L, b, bn);
    if (ia < 0 || ib < 0) {
        snprintf(err, errlen, "%s: merge \"%.*s %.*s\" refers to unknown token \"%.*s\"", where, (int)an, a, (int)bn,
                 b, ia < 0 ? (int)an : (int)bn, ia < 0 ? a : b);
        return -1;
    }
    if (an + bn > L->cat_cap) {
        free(L->cat);
        L->cat_cap = 2 * (an + bn);
        if (!(L->cat = malloc(L->cat_cap))) {
            snprintf(err, errlen, "%s: out of memory", where);
            return -1;
        }
    }
    memcpy(L->cat, a, an);
    memcpy(L->cat + an, b, bn);
    int im = tok_vocab_find(L, L->cat, an + bn);
    if (im < 0) {
        snprintf(err, errlen, "%s: merge \"%.*s %.*s\" makes \"%.*s\", which is not in the vocabulary", where,
                 (int)an, a, (int)bn, b, (int)(an + bn), L->cat);
        return -1;
    }
    if (rank >= L->n_merges_max) {
        snprintf(err, errlen, "%s: more merges than counted", where); // keeps the table half empty
        return -1;
    }
    uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
    uint64_t h = tok_mix(key, t->mshift);
    while (t->merges[h].key != TOK_EMPTY && t->merges[h].key != key) h = (h + 1) & t->mmask;
    // A repeated pair keeps its last rank, as encoder.py's dict(zip(merges, range(...))) does.
    t->merges[h] = (tok_merge){key, rank, im};
    return 0;
}

static tokenizer *tok_loader_finish(tok_loader *L)
{
    tokenizer *t = L->t;
    L->t = NULL;
    tok_loader_free(L);
    return t;
}

/* merges.txt / vocab.bpe: an optional "#version" first line, then "a b" per line. */
static int tok_read_merges(tok_loader *L, const char *path, char *buf, size_t n, char *err, size_t errlen)
{
    int rank = 0, line = 0;
    char where[4200];
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && buf[e] != '\n') e++;
        size_t le = e;
        if (le > i && buf[le - 1] == '\r') le--;
        line++;
        const char *s = buf + i;
        size_t sn = le - i;
        i = e + 1;
        if (sn == 0 || (line == 1 && sn >= 8 && !memcmp(s, "#version", 8))) continue;
        const char *sp = memchr(s, ' ', sn);
        snprintf(where, sizeof where, "%s:%d", path, line);
        if (!sp || sp == s || sp == s + sn - 1 || memchr(sp + 1, ' ', (size_t)(s + sn - sp - 1))) {
            snprintf(err, errlen, "%s: expected two tokens separated by one space, got \"%.*s\"", where,
                     (int)(sn > 80 ? 80 : sn), s);
            return -1;
        }
        if (tok_add_merge(L, s, (size_t)(sp - s), sp + 1, (size_t)(s + sn - sp - 1), rank++, where, err, errlen))
            return -1;
    }
    return 0;
}

static char *tok_read_file(const char *path, size_t *n, char *err, size_t errlen)
{
    if (tok_not_found(path, err, errlen)) return NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap) break;
        char *nb = realloc(buf, cap *= 2);
        if (!nb) {
            free(buf);
            buf = NULL;
        } else buf = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        snprintf(err, errlen, "%s: %s", path, buf ? "read error" : "out of memory");
        free(buf);
        return NULL;
    }
    *n = len;
    return buf;
}

tokenizer *tok_load_files(const char *vocab_json, const char *merges_txt, char *err, size_t errlen)
{
    json_t *vocab = tok_load_json(vocab_json, err, errlen);
    if (!vocab) return NULL;
    size_t n = 0;
    char *buf = tok_read_file(merges_txt, &n, err, errlen);
    tokenizer *t = NULL;
    tok_loader L = {0};
    if (buf) {
        int lines = 1;
        for (size_t i = 0; i < n; i++) lines += buf[i] == '\n';
        if (!tok_set_vocab(&L, vocab, NULL, lines, vocab_json, "the vocabulary", err, errlen) &&
            !tok_read_merges(&L, merges_txt, buf, n, err, errlen))
            t = tok_loader_finish(&L);
    }
    tok_loader_free(&L);
    json_decref(vocab);
    free(buf);
    return t;
}

/* ---- tokenizer.json pipelines ----------------------------------------------------------------
 * Taken only when a file asks for exactly what is implemented here:
 *  - byte-level BPE: pre_tokenizer ByteLevel (GPT-2's regex, or use_regex false = none) or
 *    Sequence[Split(Llama-3's or Qwen2's exact regex, Isolated), ByteLevel(use_regex false)];
 *    normalizer null, or NFC with the Qwen2 pattern (see tok_nfc_ok); model.ignore_merges.
 *  - SentencePiece-style BPE: normalizer Sequence[Prepend("\u2581"), Replace(" ", "\u2581")]
 *    (Llama-2, Mistral, TinyLlama) or Replace(" ", "\u2581") alone (Gemma), pre_tokenizer null
 *    or Split(" ", MergedWithPrevious) (a no-op once spaces are gone), byte_fallback, unk.
 * Everything else is refused naming the field. */
typedef struct tok_pipe {
    int sp, split, nfc, prepend, ignore_merges, byte_fallback, fuse_unk, strip_lead;
    const char *unk;
    const char *tp_bos; // TemplateProcessing: the special token its "single" template starts with
} tok_pipe;

static int tok_is_str(json_t *o, const char *key, const char *want)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v && !strcmp(v, want);
}

static const char *tok_type(json_t *o)
{
    const char *ty = json_string_value(json_object_get(o, "type"));
    return ty ? ty : "?";
}

/* Replace(" " -> "\u2581") with a String pattern. */
static int tok_is_space_replace(json_t *n)
{
    return tok_is_str(n, "type", "Replace") && tok_is_str(json_object_get(n, "pattern"), "String", " ") &&
           tok_is_str(n, "content", "\xE2\x96\x81");
}

static int tok_parse_normalizer(json_t *norm, tok_pipe *P, const char *path, char *err, size_t errlen)
{
    if (!norm || json_is_null(norm)) return 0;
    if (tok_is_str(norm, "type", "NFC")) {
        P->nfc = 1;
        return 0;
    }
    if (tok_is_space_replace(norm)) {
        P->sp = 1;
        return 0;
    }
    if (tok_is_str(norm, "type", "Sequence")) {
        json_t *seq = json_object_get(norm, "normalizers");
        size_t n = json_array_size(seq);
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(seq, i);
            if (i == 0 && n == 2 && tok_is_str(e, "type", "Prepend") && tok_is_str(e, "prepend", "\xE2\x96\x81"))
                P->prepend = 1;
            else if (i == n - 1 && tok_is_space_replace(e)) P->sp = 1;
            else {
                snprintf(err, errlen, "%s: normalizer.normalizers[%zu] \"%s\" is not supported (saed takes "
                         "Sequence[Prepend(\"\u2581\"), Replace(\" \", \"\u2581\")])", path, i, tok_type(e));
                return -1;
            }
        }
        if (P->sp) return 0;
        snprintf(err, errlen, "%s: normalizer Sequence is not supported (saed takes Sequence[Prepend(\"\u2581\"), "
                 "Replace(\" \", \"\u2581\")])", path);
        return -1;
    }
    snprintf(err, errlen, "%s: normalizer \"%s\" is not supported (saed takes none, NFC with Qwen2's Split, "
             "Replace(\" \", \"\u2581\") or Sequence[Prepend, Replace])", path, tok_type(norm));
    return -1;
}

static int tok_parse_bytelevel(json_t *pre, const char *field, const char *path, char *err, size_t errlen)
{
    if (json_is_true(json_object_get(pre, "add_prefix_space"))) {
        snprintf(err, errlen, "%s: %s: ByteLevel add_prefix_space=true is not supported (GPT-2 uses false)", path,
                 field);
        return -1;
    }
    return 0;
}

static int tok_parse_pre(json_t *pre, tok_pipe *P, const char *path, char *err, size_t errlen)
{
    if (!pre || json_is_null(pre)) {
        P->split = TOK_SPLIT_NONE;
        return 0;
    }
    const char *ty = tok_type(pre);
    if (!strcmp(ty, "Sequence")) {
        json_t *seq = json_object_get(pre, "pretokenizers");
        if (json_array_size(seq) == 1) return tok_parse_pre(json_array_get(seq, 0), P, path, err, errlen);
        json_t *a = json_array_get(seq, 0), *b = json_array_get(seq, 1);
        if (json_array_size(seq) == 2 && tok_is_str(a, "type", "Split")) {
            const char *re = json_string_value(json_object_get(json_object_get(a, "pattern"), "Regex"));
            if (!re || (strcmp(re, tok_split_llama3_pattern) && strcmp(re, tok_split_qwen2_pattern))) {
                snprintf(err, errlen, "%s: pre_tokenizer.pretokenizers[0].pattern: Split pattern \"%.120s\" is not "
                         "supported (saed knows Llama-3's and Qwen2's)", path, re ? re : "(not a Regex)");
                return -1;
            }
            if (!tok_is_str(a, "behavior", "Isolated") || json_is_true(json_object_get(a, "invert"))) {
                snprintf(err, errlen, "%s: pre_tokenizer.pretokenizers[0].behavior: only Isolated (invert false) is "
                         "supported", path);
                return -1;
            }
            if (!tok_is_str(b, "type", "ByteLevel") || !json_is_false(json_object_get(b, "use_regex"))) {
                snprintf(err, errlen, "%s: pre_tokenizer.pretokenizers[1]: need ByteLevel with use_regex false after "
                         "Split, got \"%s\"", path, tok_type(b));
                return -1;
            }
            if (tok_parse_bytelevel(b, "pre_tokenizer.pretokenizers[1]", path, err, errlen)) return -1;
            P->split = strcmp(re, tok_split_llama3_pattern) ? TOK_SPLIT_QWEN2 : TOK_SPLIT_LLAMA3;
            return 0;
        }
        snprintf(err, errlen, "%s: pre_tokenizer \"Sequence\" of these %zu is not supported (need "
                 "[Split, ByteLevel])", path, json_array_size(seq));
        return -1;
    }
    if (!strcmp(ty, "ByteLevel")) {
        if (tok_parse_bytelevel(pre, "pre_tokenizer", path, err, errlen)) return -1;
        P->split = json_is_false(json_object_get(pre, "use_regex")) ? TOK_SPLIT_NONE : TOK_SPLIT_GPT2;
        return 0;
    }
    if (!strcmp(ty, "Split") && P->sp && tok_is_str(json_object_get(pre, "pattern"), "String", " ") &&
        tok_is_str(pre, "behavior", "MergedWithPrevious") && !json_is_true(json_object_get(pre, "invert"))) {
        P->split = TOK_SPLIT_NONE; // the normalizer left no " " to split on
        return 0;
    }
    snprintf(err, errlen, "%s: pre_tokenizer \"%s\" is not supported (need ByteLevel, Sequence[Split, ByteLevel], "
             "or none)", path, ty);
    return -1;
}

static int tok_parse_decoder(json_t *dec, tok_pipe *P, const char *path, char *err, size_t errlen)
{
    if (!dec || json_is_null(dec)) return 0;
    if (!P->sp) {
        if (tok_is_str(dec, "type", "ByteLevel")) return 0;
        snprintf(err, errlen, "%s: decoder \"%s\" is not supported for byte-level BPE (need ByteLevel)", path,
                 tok_type(dec));
        return -1;
    }
    json_t *seq = json_object_get(dec, "decoders");
    size_t n = json_array_size(seq);
    if (!tok_is_str(dec, "type", "Sequence")) {
        snprintf(err, errlen, "%s: decoder \"%s\" is not supported (need Sequence[Replace, ByteFallback, Fuse, "
                 "Strip])", path, tok_type(dec));
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(seq, i);
        if (i == 0 && tok_is_str(e, "type", "Replace") &&
            tok_is_str(json_object_get(e, "pattern"), "String", "\xE2\x96\x81") && tok_is_str(e, "content", " "))
            continue;
        if (tok_is_str(e, "type", "ByteFallback") || tok_is_str(e, "type", "Fuse")) continue;
        if (i == n - 1 && tok_is_str(e, "type", "Strip") && tok_is_str(e, "content", " ") &&
            json_integer_value(json_object_get(e, "start")) == 1 && json_integer_value(json_object_get(e, "stop")) == 0) {
            P->strip_lead = 1;
            continue;
        }
        snprintf(err, errlen, "%s: decoder.decoders[%zu] \"%s\" is not supported", path, i, tok_type(e));
        return -1;
    }
    return 0;
}

static int tok_parse_post(json_t *pp, tok_pipe *P, const char *path, char *err, size_t errlen)
{
    if (!pp || json_is_null(pp) || tok_is_str(pp, "type", "ByteLevel")) return 0;
    if (tok_is_str(pp, "type", "TemplateProcessing")) {
        json_t *single = json_object_get(pp, "single"), *first = json_array_get(single, 0);
        json_t *st = json_object_get(first, "SpecialToken");
        if (st) P->tp_bos = json_string_value(json_object_get(st, "id"));
        json_t *last = json_array_get(single, json_array_size(single) - 1);
        if (json_array_size(single) > 1 && json_object_get(last, "SpecialToken")) {
            snprintf(err, errlen, "%s: post_processor.single: a template that appends a special token is not "
                     "supported", path);
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen, "%s: post_processor \"%s\" is not supported (need ByteLevel or TemplateProcessing)", path,
             tok_type(pp));
    return -1;
}

static int tok_check_hf_pipeline(json_t *root, tok_pipe *P, const char *path, char *err, size_t errlen)
{
    memset(P, 0, sizeof *P);
    if (tok_parse_normalizer(json_object_get(root, "normalizer"), P, path, err, errlen) ||
        tok_parse_pre(json_object_get(root, "pre_tokenizer"), P, path, err, errlen))
        return -1;
    if (P->sp && P->split != TOK_SPLIT_NONE) {
        snprintf(err, errlen, "%s: pre_tokenizer: a byte-level pre-tokenizer after the \u2581 normalizer is not "
                 "supported", path);
        return -1;
    }
    if (P->nfc && P->split != TOK_SPLIT_QWEN2) {
        snprintf(err, errlen, "%s: normalizer \"NFC\" is supported only with Qwen2's Split pre-tokenizer", path);
        return -1;
    }
    if (!P->sp && json_is_null(json_object_get(root, "pre_tokenizer"))) {
        snprintf(err, errlen, "%s: pre_tokenizer is null and the normalizer is not SentencePiece-style (not "
                 "supported)", path);
        return -1;
    }
    json_t *model = json_object_get(root, "model");
    const char *opts[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const char *v = json_string_value(json_object_get(model, opts[i]));
        if (v && *v) {
            snprintf(err, errlen, "%s: model.%s is not supported", path, opts[i]);
            return -1;
        }
    }
    json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout)) {
        snprintf(err, errlen, "%s: model.dropout is not supported", path);
        return -1;
    }
    P->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    P->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    P->fuse_unk = json_is_true(json_object_get(model, "fuse_unk"));
    P->unk = json_string_value(json_object_get(model, "unk_token"));
    if (P->byte_fallback && !P->sp) {
        snprintf(err, errlen, "%s: model.byte_fallback with a byte-level pre-tokenizer is not supported", path);
        return -1;
    }
    return tok_parse_decoder(json_object_get(root, "decoder"), P, path, err, errlen) ||
                   tok_parse_post(json_object_get(root, "post_processor"), P, path, err, errlen)
               ? -1
               : 0;
}

/* The id of a token named by content: an added token first, then the vocab's own spelling. */
static int tok_id_of(tok_loader *L, json_t *added, const char *content)
{
    if (!content) return -1;
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *a = json_array_get(added, i);
        if (tok_is_str(a, "content", content)) return (int)json_integer_value(json_object_get(a, "id"));
    }
    return tok_vocab_find(L, content, strlen(content));
}

/* tokenizer_config.json's bos_token etc.: a string, an AddedToken object {"content"}, or null. */
static const char *tok_cfg_token(json_t *cfg, const char *key)
{
    json_t *v = json_object_get(cfg, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_string_value(v);
}

static int tok_added_cmp(const void *a, const void *b, void *blob)
{
    const tok_added *x = a, *y = b;
    unsigned char cx = (unsigned char)((char *)blob)[x->off], cy = (unsigned char)((char *)blob)[y->off];
    if (cx != cy) return cx < cy ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int tok_set_added(tokenizer *t, json_t *added, const char *path, char *err, size_t errlen)
{
    size_t n = json_array_size(added), total = 0;
    for (size_t i = 0; i < n; i++) total += strlen(json_string_value(json_object_get(json_array_get(added, i), "content")));
    t->special = calloc((size_t)t->n_ids, 1);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    t->added_blob = malloc(total + 1);
    if (!t->special || !t->added || !t->added_blob) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    uint32_t o = 0;
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_array_get(added, i);
        const char *c = json_string_value(json_object_get(a, "content"));
        size_t cn = strlen(c);
        int id = (int)json_integer_value(json_object_get(a, "id"));
        if (json_is_true(json_object_get(a, "special"))) t->special[id] = 1;
        if (!cn) continue;
        memcpy(t->added_blob + o, c, cn);
        t->added[k++] = (tok_added){o, (uint32_t)cn, id, json_is_true(json_object_get(a, "lstrip")),
                                    json_is_true(json_object_get(a, "rstrip")),
                                    json_is_true(json_object_get(a, "single_word"))};
        o += (uint32_t)cn;
    }
    t->n_added = k;
    qsort_r(t->added, (size_t)k, sizeof *t->added, tok_added_cmp, t->added_blob);
    int j = 0;
    for (int b = 0; b <= 256; b++) {
        while (j < k && (unsigned char)t->added_blob[t->added[j].off] < b) j++;
        t->added_at[b] = j;
    }
    return 0;
}

tokenizer *tok_load_hf_json(const char *tokenizer_json, char *err, size_t errlen)
{
    const char *path = tokenizer_json;
    json_t *root = tok_load_json(path, err, errlen), *cfg = NULL;
    if (!root) return NULL;
    tokenizer *t = NULL;
    tok_loader L = {0};
    tok_pipe P;
    json_t *model = json_object_get(root, "model"), *merges = json_object_get(model, "merges");
    json_t *added = json_object_get(root, "added_tokens");
    const char *type = json_string_value(json_object_get(model, "type"));
    if (!json_is_object(model)) {
        snprintf(err, errlen, "%s: no \"model\" object", path);
        goto out;
    }
    if (type ? strcmp(type, "BPE") : !merges) { // old files omit the type; BPE is the one with merges
        snprintf(err, errlen, "%s: model.type \"%s\" is not supported (need BPE)", path, type ? type : "?");
        goto out;
    }
    if (!json_is_array(merges)) {
        snprintf(err, errlen, "%s: model.merges is not an array", path);
        goto out;
    }
    if (tok_check_hf_pipeline(root, &P, path, err, errlen)) goto out;
    size_t nm = json_array_size(merges);
    if (nm >= INT_MAX) nm = INT_MAX - 1;
    if (tok_set_vocab_sp(&L, json_object_get(model, "vocab"), added, (int)nm, P.sp, path, "model.vocab", err,
                         errlen))
        goto out;
    char where[4200];
    for (size_t i = 0; i < nm; i++) {
        json_t *m = json_array_get(merges, i);
        const char *a = NULL, *b = NULL, *sp = NULL;
        size_t an = 0, bn = 0;
        snprintf(where, sizeof where, "%s: model.merges[%zu]", path, i);
        if (json_is_string(m)) { // "a b"
            a = json_string_value(m);
            sp = strchr(a, ' ');
            if (sp && sp != a && sp[1] && !strchr(sp + 1, ' ')) {
                an = (size_t)(sp - a);
                b = sp + 1;
                bn = strlen(b);
            }
        } else if (json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) { // ["a", "b"]
            a = json_string_value(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            an = strlen(a);
            bn = strlen(b);
        }
        if (!b || !an || !bn) {
            snprintf(err, errlen, "%s: expected \"a b\" or [\"a\", \"b\"]", where);
            goto out;
        }
        if (tok_add_merge(&L, a, an, b, bn, (int)i, where, err, errlen)) goto out;
    }
    tokenizer *nt = L.t;
    nt->split = P.split;
    nt->nfc = P.nfc;
    nt->prepend = P.prepend;
    nt->ignore_merges = P.ignore_merges;
    nt->byte_fallback = P.byte_fallback;
    nt->fuse_unk = P.fuse_unk;
    nt->strip_lead = P.strip_lead;
    nt->unk = tok_id_of(&L, added, P.unk);
    if (tok_set_added(nt, added, path, err, errlen)) goto out;

    /* tokenizer_config.json beside tokenizer.json, when there is one. */
    char cpath[4200];
    const char *slash = strrchr(path, '/');
    snprintf(cpath, sizeof cpath, "%.*stokenizer_config.json", slash ? (int)(slash - path + 1) : 0, path);
    struct stat st;
    if (!stat(cpath, &st)) { // model_max_length can exceed 64 bits: integers read as reals
        json_error_t je;
        if (!(cfg = json_load_file(cpath, JSON_DECODE_INT_AS_REAL, &je))) {
            snprintf(err, errlen, "%s: invalid JSON at line %d: %s", cpath, je.line, je.text);
            goto out;
        }
    }
    int tp_bos = tok_id_of(&L, added, P.tp_bos);
    const char *bos = tok_cfg_token(cfg, "bos_token"), *eos = tok_cfg_token(cfg, "eos_token"),
               *pad = tok_cfg_token(cfg, "pad_token");
    const char *names[3] = {bos, eos, pad}, *keys[3] = {"bos_token", "eos_token", "pad_token"};
    int ids[3];
    for (int k = 0; k < 3; k++) {
        ids[k] = tok_id_of(&L, added, names[k]);
        if (names[k] && ids[k] < 0) {
            snprintf(err, errlen, "%s: %s \"%.80s\" is not a token of %s", cpath, keys[k], names[k], path);
            goto out;
        }
    }
    nt->bos = ids[0] >= 0 ? ids[0] : tp_bos;
    if (ids[1] >= 0) nt->eos = ids[1];
    nt->pad = ids[2];
    if (P.tp_bos && tp_bos < 0) {
        snprintf(err, errlen, "%s: post_processor.single: special token \"%.80s\" is not a token", path, P.tp_bos);
        goto out;
    }
    nt->adds_bos = tp_bos >= 0 || json_is_true(json_object_get(cfg, "add_bos_token"));
    if (nt->adds_bos && nt->bos < 0) nt->adds_bos = 0;
    if (json_is_true(json_object_get(cfg, "add_eos_token"))) {
        snprintf(err, errlen, "%s: add_eos_token true is not supported", cpath);
        goto out;
    }
    t = tok_loader_finish(&L);
out:
    tok_loader_free(&L);
    json_decref(root);
    json_decref(cfg);
    return t;
}

static int tok_exists(const char *dir, const char *name, char *path, size_t n)
{
    struct stat st;
    snprintf(path, n, "%s/%s", dir, name);
    return !stat(path, &st);
}

tokenizer *tok_load_dir(const char *dir, char *err, size_t errlen)
{
    char a[4096], b[4096];
    /* tokenizer.json first: it states its pipeline, so a non-GPT-2 one is refused instead of
     * being read as GPT-2 through its vocab.json + merges.txt. */
    if (tok_exists(dir, "tokenizer.json", a, sizeof a)) return tok_load_hf_json(a, err, errlen);
    int v = tok_exists(dir, "vocab.json", a, sizeof a), m = tok_exists(dir, "merges.txt", b, sizeof b);
    if (v && m) return tok_load_files(a, b, err, errlen);
    if (v || m) {
        snprintf(err, errlen, "%s/%s: not found (it comes with %s)", dir, v ? "merges.txt" : "vocab.json",
                 v ? "vocab.json" : "merges.txt");
        return NULL;
    }
    v = tok_exists(dir, "encoder.json", a, sizeof a);
    m = tok_exists(dir, "vocab.bpe", b, sizeof b);
    if (v && m) return tok_load_files(a, b, err, errlen);
    if (v || m) {
        snprintf(err, errlen, "%s/%s: not found (it comes with %s)", dir, v ? "vocab.bpe" : "encoder.json",
                 v ? "encoder.json" : "vocab.bpe");
        return NULL;
    }
    snprintf(err, errlen, "%s: no tokenizer (looked for tokenizer.json, vocab.json + merges.txt, encoder.json + "
             "vocab.bpe)", dir);
    return NULL;
}

void tok_free(tokenizer *t)
{
    if (!t) return;
    free(t->off);
    free(t->blob);
    free(t->merges);
    free(t->lk);
    free(t->special);
    free(t->added);
    free(t->added_blob);
    free(t);
}

int tok_vocab_size(const tokenizer *t) { return t->n_ids; }
int tok_eos_id(const tokenizer *t) { return t->eos; }

/* ---- pre-tokenization -----------------------------------------------------------------------
 * GPT-2's pattern, tried left to right at each position, first alternative that matches wins:
 *   's|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
 * Every character is exactly one of letter, number, space, other (invalid bytes: other), so
 * some alternative always matches and pieces tile the text. */
static inline int tok_char(const unsigned char *s, size_t n, size_t i, size_t *len)
{
    if (s[i] < 0x80) {
        *len = 1;
        return uni_ascii_class[s[i]];
    }
    uint32_t cp;
    *len = uni_utf8_next(s + i, n - i, &cp);
    return uni_class(cp);
}

/* End of the piece that starts at i. */
static size_t tok_piece_end(const unsigned char *s, size_t n, size_t i)
{
    if (s[i] == '\'' && i + 1 < n) { // contractions: ASCII apostrophe, lowercase only
        unsigned char a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
    size_t len;
    int c = tok_char(s, n, i, &len);
    size_t j = i + len;
    if (s[i] == ' ' && j < n) { // " ?X+": only U+0020 may lead a letter/number/other run
        size_t l2;
        int c2 = tok_char(s, n, j, &l2);
        if (c2 != UNI_SPACE) {
            c = c2;
            j += l2;
        }
    }
    if (c != UNI_SPACE) {
        size_t l;
        while (j < n && tok_char(s, n, j, &l) == c) j += l;
        return j;
    }
    /* \s+(?!\S): a run that ends the text is taken whole; one followed by a non-space gives
     * back its last character (which the next piece starts with, as " ?\p{L}+" or \s+), unless
     * the run is that one character, which then matches \s+. */
    size_t last = i, l;
    while (j < n && tok_char(s, n, j, &l) == UNI_SPACE) {
        last = j;
        j += l;
    }
    if (j == n) return j;
    return last > i ? last : j;
}

/* ---- BPE -------------------------------------------------------------------------------------
 * encoder.py works in rounds: take the lowest-ranked adjacent pair, merge all its occurrences
 * left to right (an occurrence overlapping the previous one is skipped), repeat. Both paths do
 * exactly that. Pieces are short (words), so a linear scan for the minimum wins; long ones
 * (runs of spaces, dashes, base64) use a heap of (rank, position) to stay O(n log n), holding
 * back the pairs a round creates until the round is over. */
typedef struct tok_sym {
    int32_t id;   // -1 once merged into its left neighbour
    int32_t prev, next;
    int32_t rank; // rank of the pair (this, next), TOK_NO_RANK if none
    int32_t made; // the token that pair makes
} tok_sym;

typedef struct tok_scratch {
    tok_sym *sym;   // (cap)
    uint64_t *heap; // (3 * cap): rank << 32 | position; n - 1 first pairs + 2 per merge
    uint64_t *pend; // (2 * cap): pairs made during the current round
    size_t cap;
    int32_t *ids; // output
    size_t n_ids, ids_cap;
} tok_scratch;

static inline void tok_pair(const tokenizer *t, tok_sym *s, int32_t i)
{
    int32_t nx = s[i].next;
    const tok_merge *m = nx >= 0 ? tok_merge_find(t, s[i].id, s[nx].id) : NULL;
    s[i].rank = m ? m->rank : TOK_NO_RANK;
    s[i].made = m ? m->id : -1;
}

static void tok_heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > v) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = v;
}

static uint64_t tok_heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0], v = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

/* Merges s[i] with its right neighbour and refreshes the two pairs that changed. */
static inline void tok_merge_at(const tokenizer *t, tok_sym *s, int32_t i)
{
    int32_t j = s[i].next;
    s[i].id = s[i].made;
    s[i].next = s[j].next;
    if (s[j].next >= 0) s[s[j].next].prev = i;
    s[j].id = -1;
    tok_pair(t, s, i);
    if (s[i].prev >= 0) tok_pair(t, s, s[i].prev);
}

static int tok_emit(tok_scratch *w, int32_t id)
{
    if (w->n_ids == w->ids_cap) {
        size_t nc = w->ids_cap ? 2 * w->ids_cap : 256;
        int32_t *p = realloc(w->ids, nc * sizeof *p);
        if (!p) return -1;
        w->ids = p;
        w->ids_cap = nc;
    }
    w->ids[w->n_ids++] = id;
    return 0;
}

static inline uint64_t tok_entry(const tok_sym *s, int32_t i) { return (uint64_t)s[i].rank << 32 | (uint32_t)i; }

static void tok_bpe_heap(const tokenizer *t, tok_sym *s, int32_t m, tok_scratch *w)
{
    size_t hn = 0, pn = 0;
    int32_t round = -1;
    for (int32_t i = 0; i < m; i++)
        if (s[i].rank != TOK_NO_RANK) tok_heap_push(w->heap, &hn, tok_entry(s, i));
    while (hn || pn) {
        if (pn && (!hn || (int32_t)(w->heap[0] >> 32) != round)) { // round over: its new pairs join
            for (size_t k = 0; k < pn; k++) tok_heap_push(w->heap, &hn, w->pend[k]);
            pn = 0;
        }
        uint64_t top = tok_heap_pop(w->heap, &hn);
        int32_t i = (int32_t)(uint32_t)top, r = (int32_t)(top >> 32);
        /* Stale entries: the symbol was merged away, or its pair changed (a rank names one
         * pair, and a changed pair never has the old rank, so equal rank means unchanged). */
        if (s[i].id < 0 || s[i].rank != r) continue;
        round = r;
        tok_merge_at(t, s, i);
        if (s[i].rank != TOK_NO_RANK) w->pend[pn++] = tok_entry(s, i);
        if (s[i].prev >= 0 && s[s[i].prev].rank != TOK_NO_RANK) w->pend[pn++] = tok_entry(s, s[i].prev);
    }
}

static int tok_reserve(tok_scratch *w, size_t n)
{
    if (n <= w->cap) return 0;
    size_t nc = n > 2 * w->cap ? n : 2 * w->cap;
    free(w->sym);
    free(w->heap);
    free(w->pend);
    w->sym = malloc(nc * sizeof *w->sym);
    w->heap = malloc(3 * nc * sizeof *w->heap);
    w->pend = malloc(2 * nc * sizeof *w->pend);
    w->cap = w->sym && w->heap && w->pend ? nc : 0;
    return w->cap ? 0 : -1;
}

/* Merges w->sym[0 .. m) (ids set) and emits the result. */
static int tok_bpe_run(const tokenizer *t, int32_t m, tok_scratch *w)
{
    tok_sym *s = w->sym;
    if (m == 0) return 0;
    for (int32_t i = 0; i < m; i++) {
        s[i].prev = i - 1;
        s[i].next = i + 1 < m ? i + 1 : -1;
    }
    for (int32_t i = 0; i < m; i++) tok_pair(t, s, i);

    if (m > TOK_HEAP_MIN) tok_bpe_heap(t, s, m, w);
    else
        for (;;) {
            int32_t r = TOK_NO_RANK;
            for (int32_t i = 0; i >= 0; i = s[i].next)
                if (s[i].rank < r) r = s[i].rank;
            if (r == TOK_NO_RANK) break;
            /* One round. A merge never makes a pair of rank r, and the pair it changes on the
             * right is the overlapping occurrence that encoder.py skips too. */
            for (int32_t i = 0; i >= 0; i = s[i].next)
                if (s[i].rank == r) tok_merge_at(t, s, i);
        }
    for (int32_t i = 0; i >= 0; i = s[i].next)
        if (tok_emit(w, s[i].id)) return -1;
    return 0;
}

static int tok_bpe(const tokenizer *t, const unsigned char *p, size_t n, tok_scratch *w)
{
    if (n == 1) return tok_emit(w, t->byte_id[p[0]]);
    if (t->ignore_merges) {
        int id = tok_lookup(t, p, n);
        if (id >= 0) return tok_emit(w, id);
    }
    if (tok_reserve(w, n)) return -1;
    for (size_t i = 0; i < n; i++) w->sym[i].id = t->byte_id[p[i]];
    return tok_bpe_run(t, (int32_t)n, w);
}

/* SentencePiece-style: spaces (and "\u2581" in the text) are the vocab's "\u2581", which the
 * blob holds as ' '; one word per segment; each character is its token, else its <0xNN> byte
 * tokens (byte_fallback), else unk. */
static int tok_sp_seg(const tokenizer *t, const unsigned char *p, size_t n, tok_scratch *w)
{
    if (!n) return 0;
    unsigned char *b = malloc(n + 1);
    if (!b || tok_reserve(w, n + 1)) {
        free(b);
        return -1;
    }
    size_t m = 0;
    if (t->prepend) b[m++] = ' ';
    for (size_t i = 0; i < n;) {
        if (i + 3 <= n && p[i] == 0xE2 && p[i + 1] == 0x96 && p[i + 2] == 0x81) {
            b[m++] = ' ';
            i += 3;
        } else b[m++] = p[i++];
    }
    int32_t k = 0;
    for (size_t i = 0; i < m;) {
        uint32_t cp;
        size_t l = uni_utf8_next(b + i, m - i, &cp);
        int id = tok_lookup(t, b + i, l), ok = 1;
        if (id >= 0) w->sym[k++].id = id;
        else {
            if (t->byte_fallback)
                for (size_t j = 0; j < l; j++) ok &= t->byte_id[b[i + j]] >= 0;
            if (t->byte_fallback && ok)
                for (size_t j = 0; j < l; j++) w->sym[k++].id = t->byte_id[b[i + j]];
            else if (t->unk >= 0 && !(t->fuse_unk && k > 0 && w->sym[k - 1].id == t->unk)) w->sym[k++].id = t->unk;
        }
        i += l;
    }
    free(b);
    return tok_bpe_run(t, k, w);
}

/* NFC without tables: the code points listed here are NFC_Quick_Check=Yes and cannot combine
 * with a previous character (so any text made of them is NFC already); anything else is
 * refused rather than guessed. Covers ASCII, Latin-1 and Latin Extended-A/B, Greek and
 * Cyrillic letters, general punctuation, CJK, kana, Hangul syllables, emoji. */
static int tok_nfc_ok(const unsigned char *s, size_t n, char *err, size_t errlen)
{
    static const uint32_t ok[][2] = {
        {0x0000, 0x02FF},   {0x0375, 0x037D},   {0x037F, 0x0386},   {0x0388, 0x03FF},   {0x0400, 0x0482},
        {0x048A, 0x04FF},   {0x0660, 0x0669},   {0x0966, 0x096F},   {0x2002, 0x206F},   {0x2122, 0x2122},
        {0x2150, 0x218F},   {0x2600, 0x27BF},   {0x3000, 0x3098},   {0x309B, 0x30FF},   {0x3200, 0x32FF},
        {0x4E00, 0x9FFF},   {0xAC00, 0xD7A3},   {0xFE00, 0xFE0F},   {0xFF01, 0xFF5E},   {0x13000, 0x1342F},
        {0x1D400, 0x1D7FF}, {0x1F000, 0x1FAFF},
    };
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += uni_utf8_next(s + i, n - i, &cp);
        if (cp == UNI_INVALID) continue;
        int good = 0;
        for (size_t k = 0; k < sizeof ok / sizeof ok[0] && !good; k++) good = cp >= ok[k][0] && cp <= ok[k][1];
        if (!good) {
            snprintf(err, errlen, "text has U+%04X, which the tokenizer's NFC normalizer might change; saed does not "
                     "implement NFC and accepts only characters that are NFC-stable on their own (ASCII, Latin, "
                     "Greek, Cyrillic, CJK, kana, Hangul syllables, emoji, ...)", (unsigned)cp);
            return -1;
        }
    }
    return 0;
}

/* One stretch of text through normalizer, pre-tokenizer and model. -1: out of memory, -2: refused
 * (err set). */
static int tok_encode_seg(const tokenizer *t, const unsigned char *s, size_t len, tok_scratch *w, char *err,
                          size_t errlen)
{
    if (t->sp) return tok_sp_seg(t, s, len, w);
    if (t->nfc && tok_nfc_ok(s, len, err, errlen)) return -2;
    int rc = 0;
    for (size_t i = 0; i < len && !rc;) {
        size_t e = t->split == TOK_SPLIT_GPT2     ? tok_piece_end(s, len, i)
                   : t->split == TOK_SPLIT_LLAMA3 ? tok_split_llama3_end(s, len, i, 3)
                   : t->split == TOK_SPLIT_QWEN2  ? tok_split_llama3_end(s, len, i, 1)
                                                  : len;
        rc = tok_bpe(t, s + i, e - i, w);
        i = e;
    }
    return rc;
}

/* Added token matching at s[i]: the longest whose content starts there (single_word: not inside
 * a word). Returns its index or -1. */
static int tok_added_at(const tokenizer *t, const unsigned char *s, size_t len, size_t i)
{
    for (int k = t->added_at[s[i]]; k < t->added_at[s[i] + 1]; k++) {
        const tok_added *a = &t->added[k];
        if (a->len > len - i || memcmp(t->added_blob + a->off, s + i, a->len)) continue;
        if (a->single_word) {
            size_t l;
            int before = i > 0 && (isalnum(s[i - 1]) || s[i - 1] == '_' || s[i - 1] >= 0x80);
            int after = i + a->len < len && tok_char(s, len, i + a->len, &l) != UNI_SPACE &&
                        (isalnum(s[i + a->len]) || s[i + a->len] == '_' || s[i + a->len] >= 0x80);
            if (before || after) continue;
        }
        return k;
    }
    return -1;
}

static int tok_encode_impl(const tokenizer *t, const char *text, size_t len, int special, int32_t **ids, char *err,
                           size_t errlen)
{
    *ids = NULL;
    if (len >= (size_t)INT_MAX) {
        snprintf(err, errlen, "text too long to encode (%zu bytes)", len);
        return -1;
    }
    tok_scratch w = {0};
    const unsigned char *s = (const unsigned char *)text;
    w.ids_cap = len / 3 + 16; // English runs about 4.5 bytes per token
    w.ids = malloc(w.ids_cap * sizeof *w.ids);
    int rc = w.ids ? 0 : -1;
    size_t seg = 0;
    for (size_t i = 0; special && i < len && !rc;) {
        int k = t->n_added ? tok_added_at(t, s, len, i) : -1;
        if (k < 0) {
            i++;
            continue;
        }
        const tok_added *a = &t->added[k];
        size_t end = i;
        while (a->lstrip && end > seg && isspace(s[end - 1])) end--;
        rc = tok_encode_seg(t, s + seg, end - seg, &w, err, errlen);
        if (!rc) rc = tok_emit(&w, a->id);
        i += a->len;
        while (a->rstrip && i < len && isspace(s[i])) i++;
        seg = i;
    }
    if (!rc) rc = tok_encode_seg(t, s + seg, len - seg, &w, err, errlen);
    free(w.sym);
    free(w.heap);
    free(w.pend);
    if (rc) {
        free(w.ids);
        if (rc == -1) snprintf(err, errlen, "out of memory encoding %zu bytes", len);
        return -1;
    }
    *ids = w.ids;
    return (int)w.n_ids;
}

int tok_encode(const tokenizer *t, const char *text, size_t len, int32_t **ids, char *err, size_t errlen)
{
    return tok_encode_impl(t, text, len, 0, ids, err, errlen);
}

int tok_encode_special(const tokenizer *t, const char *text, size_t len, int32_t **ids, char *err, size_t errlen)
{
    return tok_encode_impl(t, text, len, 1, ids, err, errlen);
}

int tok_bos_id(const tokenizer *t) { return t->bos; }
int tok_pad_id(const tokenizer *t) { return t->pad; }
int tok_adds_bos(const tokenizer *t) { return t->adds_bos; }
int tok_is_special(const tokenizer *t, int32_t id)
{
    return t->special && id >= 0 && id < t->n_ids && t->special[id];
}

/* ---- decoding -------------------------------------------------------------------------------
 * Ids outside [0, vocab size) decode to nothing. */
char *tok_decode(const tokenizer *t, const int32_t *ids, int n, size_t *len)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < t->n_ids) total += t->off[ids[i] + 1] - t->off[ids[i]];
    char *out = malloc(total + 1), *o = out;
    if (!out) return NULL;
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < t->n_ids) {
            uint32_t a = t->off[ids[i]], b = t->off[ids[i] + 1];
            memcpy(o, t->blob + a, b - a);
            o += b - a;
        }
    *o = 0;
    if (t->strip_lead && out[0] == ' ') { // decoder Strip(" ", 1, 0)
        memmove(out, out + 1, total);
        total--;
    }
    if (len) *len = total;
    return out;
}

/* NULL for an id outside [0, vocab size); "" for an id the vocabulary leaves unused. */
char *tok_token_str(const tokenizer *t, int32_t id)
{
    if (id < 0 || id >= t->n_ids) return NULL;
    const unsigned char *p = (const unsigned char *)t->blob + t->off[id];
    size_t n = t->off[id + 1] - t->off[id];
    char *out = malloc(3 * n + 1), *o = out; // each byte becomes at most U+FFFD's 3 bytes
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = uni_utf8_next(p + i, n - i, &cp);
        if (cp == UNI_INVALID) {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
        } else {
            memcpy(o, p + i, l);
            o += l;
        }
        i += l;
    }
    *o = 0;
    return out;
}
