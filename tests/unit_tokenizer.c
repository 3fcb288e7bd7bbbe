/* unit_tokenizer.c: the GPT-2 tokenizer against the 92 reference encodings of encoder.py
 * (tests/data/tokenizer_cases.jsonl), decode round trips, token display strings, the three
 * file layouts giving the same tokenizer, errors naming the file, encoder.py's merge rounds on
 * hand-made vocabularies, long pieces against a naive encoder.py-style BPE written here, the
 * Unicode classes, and concurrent encoding. Needs no database. */
#include <jansson.h>  // defines: json_loads, json_dump_file
#include <pthread.h>  // defines: pthread_create
#include <stdlib.h>   // defines: malloc, free
#include <sys/stat.h> // defines: mkdir
#include <unistd.h>   // defines: unlink

#include "engine/tokenizer.h" // defines: tok_load_dir, tok_encode
#include "engine/unicode.h"   // defines: uni_class, uni_utf8_next
#include "tests/t.h"

#define GPT2_DIR "tests/data/gpt2-tokenizer"
#define CASES "tests/data/tokenizer_cases.jsonl"

typedef struct tcase {
    char *text;
    size_t len;
    int32_t *ids;
    int n;
} tcase;

static void free_cases(tcase *c, int n)
{
    for (int i = 0; i < n; i++) {
        free(c[i].text);
        free(c[i].ids);
    }
    free(c);
}

/* The reference cases; -1 (with a failed check) when the file cannot be read. */
static int load_cases(tcase **out)
{
    FILE *f = fopen(CASES, "r");
    CHECK(f != NULL);
    if (!f) return -1;
    tcase *c = NULL;
    int n = 0;
    char line[65536];
    while (fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *j = json_loads(line, JSON_ALLOW_NUL, &je); // one case holds U+0000
        json_t *text = json_object_get(j, "text"), *ids = json_object_get(j, "ids");
        CHECK(json_is_string(text) && json_is_array(ids));
        if (!json_is_string(text) || !json_is_array(ids)) {
            json_decref(j);
            continue;
        }
        c = realloc(c, (size_t)(n + 1) * sizeof *c);
        c[n].len = json_string_length(text);
        c[n].text = malloc(c[n].len + 1);
        memcpy(c[n].text, json_string_value(text), c[n].len + 1);
        c[n].n = (int)json_array_size(ids);
        c[n].ids = malloc((size_t)(c[n].n + 1) * sizeof *c[n].ids);
        for (int k = 0; k < c[n].n; k++) c[n].ids[k] = (int32_t)json_integer_value(json_array_get(ids, (size_t)k));
        n++;
        json_decref(j);
    }
    fclose(f);
    *out = c;
    return n;
}

static void fmt_ids(char *o, size_t cap, const int32_t *ids, int n)
{
    size_t k = 0;
    o[0] = 0;
    for (int i = 0; i < n && k + 16 < cap; i++) k += (size_t)snprintf(o + k, cap - k, "%s%d", i ? "," : "", ids[i]);
}

/* Encodes every case; reports the first mismatch with both id lists. Returns mismatches. */
static int check_cases(const tokenizer *t, const tcase *c, int n, const char *who)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int32_t *ids = NULL;
        char err[256];
        int m = tok_encode(t, c[i].text, c[i].len, &ids, err, sizeof err);
        int same = m == c[i].n && (m <= 0 || !memcmp(ids, c[i].ids, (size_t)m * sizeof *ids));
        if (!same && bad++ == 0) {
            char got[4096], want[4096];
            fmt_ids(got, sizeof got, ids, m);
            fmt_ids(want, sizeof want, c[i].ids, c[i].n);
            t_fail(__FILE__, __LINE__, "%s: case %d \"%.200s\": got [%s] (%d ids), want [%s] (%d ids)%s%s", who, i,
                   c[i].text, got, m, want, c[i].n, m < 0 ? ": " : "", m < 0 ? err : "");
        }
        free(ids);
    }
    return bad;
}

TEST(tokenizer_reference_cases)
{
    char err[512];
    tokenizer *t = tok_load_dir(GPT2_DIR, err, sizeof err);
    CHECK(t != NULL);
    if (!t) {
        t_fail(__FILE__, __LINE__, "%s", err);
        return;
    }
    CHECK_INT(tok_vocab_size(t), 50257);
    CHECK_INT(tok_eos_id(t), TOK_GPT2_EOS);
    tcase *c;
    int n = load_cases(&c);
    CHECK_INT(n, 92);
    CHECK_INT(check_cases(t, c, n, "encoder.json + vocab.bpe"), 0);
    /* A few spelled out, so a broken cases file cannot make this pass vacuously. */
    int32_t *ids;
    CHECK_INT(tok_encode(t, "Hello\n\nworld", 12, &ids, err, sizeof err), 4);
    CHECK_INT(ids[0], 15496);
    CHECK_INT(ids[1], 198);
    CHECK_INT(ids[2], 198);
    CHECK_INT(ids[3], 6894);
    free(ids);
    /* " " + U+0085 before a letter: \s+(?!\S) takes the space, U+0085 (White_Space) stands alone. */
    CHECK_INT(tok_encode(t, "x \xC2\x85y", 5, &ids, err, sizeof err), 5);
    CHECK_INT(ids[1], 220);
    CHECK_INT(ids[2], 126);
    CHECK_INT(ids[3], 227);
    free(ids);
    CHECK_INT(tok_encode(t, "", 0, &ids, err, sizeof err), 0);
    free(ids);
    free_cases(c, n);
    tok_free(t);
}

TEST(tokenizer_decode_roundtrip)
{
    char err[512];
    tokenizer *t = tok_load_dir(GPT2_DIR, err, sizeof err);
    CHECK(t != NULL);
    if (!t) return;
    tcase *c;
    int n = load_cases(&c);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        size_t len = 99;
        char *back = tok_decode(t, c[i].ids, c[i].n, &len);
        int32_t *ids;
        int m = tok_encode(t, c[i].text, c[i].len, &ids, err, sizeof err);
        char *back2 = tok_decode(t, ids, m, NULL);
        if (!back || !back2 || len != c[i].len || memcmp(back, c[i].text, len) || memcmp(back2, c[i].text, len)) {
            if (!bad++) t_fail(__FILE__, __LINE__, "case %d \"%s\": decode gave \"%s\"", i, c[i].text, back);
        }
        free(back);
        free(back2);
        free(ids);
    }
    CHECK_INT(bad, 0);
    /* Invalid UTF-8 goes through as bytes, each one a non-letter "character". */
    const char *raw[] = {"a\xff" "b", " \xE6\x97", "x\xC0\xAFy", "\xED\xA0\x80!", "\xF4\x90\x80\x80 z", "\x80\x80\x80"};
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        int32_t *ids;
        size_t len = strlen(raw[i]), blen;
        int m = tok_encode(t, raw[i], len, &ids, err, sizeof err);
        CHECK(m > 0);
        char *back = tok_decode(t, ids, m, &blen);
        CHECK(blen == len && !memcmp(back, raw[i], len));
        free(back);
        free(ids);
    }
    int32_t *ids;
    CHECK_INT(tok_encode(t, "a\xff" "b", 3, &ids, err, sizeof err), 3);
    CHECK_INT(ids[0], 64);
    CHECK_INT(ids[1], 187); // byte 0xFF's symbol
    CHECK_INT(ids[2], 65);
    free(ids);
    /* Ids outside the vocabulary decode to nothing. */
    int32_t odd[] = {15496, -5, 50257, 995};
    char *s = tok_decode(t, odd, 4, NULL);
    CHECK_STR(s, "Hello world");
    free(s);
    free_cases(c, n);
    tok_free(t);
}

/* An independent strict UTF-8 check (RFC 3629). */
static int valid_utf8(const unsigned char *s)
{
    while (*s) {
        int n = *s < 0x80 ? 1 : (*s >= 0xC2 && *s <= 0xDF) ? 2 : (*s >= 0xE0 && *s <= 0xEF) ? 3
                : (*s >= 0xF0 && *s <= 0xF4) ? 4 : 0;
        if (!n) return 0;
        uint32_t cp = n == 1 ? *s : (uint32_t)(*s & (0x7F >> n));
        for (int i = 1; i < n; i++) {
            if ((s[i] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i] & 0x3F);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        s += n;
    }
    return 1;
}

TEST(tokenizer_token_str_partial_utf8)
{
    char err[512];
    tokenizer *t = tok_load_dir(GPT2_DIR, err, sizeof err);
    CHECK(t != NULL);
    if (!t) return;
    int32_t *ids;
    /* "日" = E6 97 A5 is two tokens: "E6 97" and "A5", neither a whole character. */
    CHECK_INT(tok_encode(t, "\xE6\x97\xA5", 3, &ids, err, sizeof err), 2);
    CHECK_INT(ids[0], 33768);
    CHECK_INT(ids[1], 98);
    char *a = tok_token_str(t, ids[0]), *b = tok_token_str(t, ids[1]);
    CHECK_STR(a, "\xEF\xBF\xBD\xEF\xBF\xBD"); // one U+FFFD per invalid byte
    CHECK_STR(b, "\xEF\xBF\xBD");
    free(a);
    free(b);
    free(ids);
    /* The byte-symbol token of 0xC3 alone (the lead byte of "é"). */
    CHECK_INT(tok_encode(t, "\xC3", 1, &ids, err, sizeof err), 1);
    a = tok_token_str(t, ids[0]);
    CHECK_STR(a, "\xEF\xBF\xBD");
    free(a);
    free(ids);
    const struct { int id; const char *s; } whole[] = {
        {2634, "\xC3\xA9"}, {995, " world"}, {198, "\n"}, {50256, "<|endoftext|>"}, {0, "!"}, {220, " "}};
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++) {
        a = tok_token_str(t, whole[i].id);
        CHECK_STR(a, whole[i].s);
        free(a);
    }
    CHECK(tok_token_str(t, -1) == NULL);
    CHECK(tok_token_str(t, 50257) == NULL);
    /* Every token renders as valid UTF-8; the partial ones carry U+FFFD. */
    int invalid = 0, replaced = 0;
    for (int id = 0; id < tok_vocab_size(t); id++) {
        a = tok_token_str(t, id);
        if (!a || !valid_utf8((const unsigned char *)a)) invalid++;
        if (a && strstr(a, "\xEF\xBF\xBD")) replaced++;
        free(a);
    }
    CHECK_INT(invalid, 0);
    CHECK(replaced > 128); // at least the 128 byte tokens 0x80..0xFF
    tok_free(t);
}

/* ---- files written for the loader and error tests ---- */
static void write_file(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(s, f);
    fclose(f);
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    CHECK(a && b);
    char buf[65536];
    size_t n;
    while (a && b && (n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    if (a) fclose(a);
    if (b) fclose(b);
}

/* GPT-2's byte -> symbol rule (encoder.py's bytes_to_unicode), as UTF-8. */
static void byte_symbol(int b, char out[4])
{
    int cp = b, k = 0;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
        cp = 256;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) cp++;
    }
    if (cp < 0x80) out[k++] = (char)cp;
    else {
        out[k++] = (char)(0xC0 | cp >> 6);
        out[k++] = (char)(0x80 | (cp & 0x3F));
    }
    out[k] = 0;
}

/* A vocabulary of the 256 byte symbols (ids in bytes_to_unicode order, as GPT-2's) plus extra. */
static json_t *byte_vocab(const char **extra, int n_extra)
{
    json_t *v = json_object();
    int id = 0;
    char s[4];
    for (int b = 33; b <= 126; b++) byte_symbol(b, s), json_object_set_new(v, s, json_integer(id++));
    for (int b = 161; b <= 172; b++) byte_symbol(b, s), json_object_set_new(v, s, json_integer(id++));
    for (int b = 174; b <= 255; b++) byte_symbol(b, s), json_object_set_new(v, s, json_integer(id++));
    for (int b = 0; b < 256; b++) {
        byte_symbol(b, s);
        if (!json_object_get(v, s)) json_object_set_new(v, s, json_integer(id++));
    }
    for (int i = 0; i < n_extra; i++) json_object_set_new(v, extra[i], json_integer(id++));
    return v;
}

static void rm_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_INT(system(cmd), 0);
}

/* GPT-2's tokenizer.json as HF writes it, merges as "a b" strings or as [a, b] pairs. */
static void write_hf_json(const char *path, int pairs, int sequence)
{
    json_error_t je;
    json_t *vocab = json_load_file(GPT2_DIR "/encoder.json", 0, &je), *merges = json_array();
    FILE *f = fopen(GPT2_DIR "/vocab.bpe", "r");
    char line[1024];
    for (int ln = 0; f && fgets(line, sizeof line, f); ln++) {
        line[strcspn(line, "\n")] = 0;
        char *sp = strchr(line, ' ');
        if (ln == 0 || !sp) continue;
        if (pairs) {
            *sp = 0;
            json_array_append_new(merges, json_pack("[ss]", line, sp + 1));
        } else json_array_append_new(merges, json_string(line));
    }
    if (f) fclose(f);
    json_t *bl = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1,
                           "use_regex", 1);
    json_t *pre = sequence ? json_pack("{s:s, s:[o]}", "type", "Sequence", "pretokenizers", bl) : bl;
    json_t *root = json_pack(
        "{s:s, s:[{s:i, s:s, s:b}], s:n, s:o, s:{s:s, s:n, s:n, s:s, s:s, s:b, s:b, s:o, s:o}}", "version", "1.0",
        "added_tokens", "id", 50256, "content", "<|endoftext|>", "special", 1, "normalizer", "pre_tokenizer", pre,
        "model", "type", "BPE", "dropout", "unk_token", "continuing_subword_prefix", "", "end_of_word_suffix", "",
        "fuse_unk", 0, "byte_fallback", 0, "vocab", vocab, "merges", merges);
    CHECK(root != NULL);
    CHECK_INT(json_dump_file(root, path, JSON_COMPACT), 0);
    json_decref(root);
}

TEST(tokenizer_loaders_agree)
{
    char dir[] = "/tmp/saed-tok-XXXXXX", p[4][700], err[512];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(p[0], sizeof p[0], "%s/vocab.json", dir);
    snprintf(p[1], sizeof p[1], "%s/merges.txt", dir);
    copy_file(GPT2_DIR "/encoder.json", p[0]);
    copy_file(GPT2_DIR "/vocab.bpe", p[1]);
    snprintf(p[2], sizeof p[2], "%s/strings", dir);
    snprintf(p[3], sizeof p[3], "%s/pairs", dir);
    CHECK_INT(mkdir(p[2], 0700), 0);
    CHECK_INT(mkdir(p[3], 0700), 0);
    strcat(p[2], "/tokenizer.json");
    strcat(p[3], "/tokenizer.json");
    write_hf_json(p[2], 0, 0);
    write_hf_json(p[3], 1, 1);

    const char *who[] = {"encoder.json + vocab.bpe (dir)", "vocab.json + merges.txt", "vocab.json + merges.txt (dir)",
                         "tokenizer.json, \"a b\" merges", "tokenizer.json, [a, b] merges, Sequence (dir)"};
    tokenizer *t[5];
    t[0] = tok_load_dir(GPT2_DIR, err, sizeof err);
    t[1] = tok_load_files(p[0], p[1], err, sizeof err);
    t[2] = tok_load_dir(dir, err, sizeof err);
    t[3] = tok_load_hf_json(p[2], err, sizeof err);
    *strrchr(p[3], '/') = 0;
    t[4] = tok_load_dir(p[3], err, sizeof err);
    tcase *c;
    int n = load_cases(&c);
    for (int k = 0; k < 5; k++) {
        if (!t[k]) {
            t_fail(__FILE__, __LINE__, "%s did not load: %s", who[k], err);
            continue;
        }
        CHECK_INT(tok_vocab_size(t[k]), 50257);
        CHECK_INT(tok_eos_id(t[k]), 50256);
        CHECK_INT(check_cases(t[k], c, n, who[k]), 0);
        if (!k || !t[0]) continue;
        int differ = 0; // every token's bytes
        for (int32_t id = 0; id < 50257; id++) {
            size_t la, lb;
            char *a = tok_decode(t[0], &id, 1, &la), *b = tok_decode(t[k], &id, 1, &lb);
            differ += la != lb || memcmp(a, b, la);
            free(a);
            free(b);
        }
        CHECK_INT(differ, 0);
    }
    for (int k = 0; k < 5; k++) tok_free(t[k]);
    free_cases(c, n);
    rm_tree(dir);
}

/* Writes vocab.json (byte symbols + extra) and merges.txt into dir; loads them. */
static tokenizer *tiny(const char *dir, const char **extra, int n_extra, const char *merges, char *err, size_t errlen)
{
    char v[600], m[600];
    snprintf(v, sizeof v, "%s/vocab.json", dir);
    snprintf(m, sizeof m, "%s/merges.txt", dir);
    json_t *vocab = byte_vocab(extra, n_extra);
    json_dump_file(vocab, v, 0);
    json_decref(vocab);
    write_file(m, merges);
    return tok_load_files(v, m, err, errlen);
}

static void expect_err(tokenizer *t, const char *err, const char *a, const char *b)
{
    CHECK(t == NULL);
    tok_free(t);
    CHECK_CONTAINS(err, a);
    if (b) CHECK_CONTAINS(err, b);
}

TEST(tokenizer_errors_name_the_file)
{
    char dir[] = "/tmp/saed-tok-XXXXXX", p[700], q[700], err[512];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(p, sizeof p, "%s/nope.json", dir);
    snprintf(q, sizeof q, "%s/merges.txt", dir);
    write_file(q, "#version: 0.2\n");
    err[0] = 0;
    expect_err(tok_load_files(p, q, err, sizeof err), err, p, "not found");
    expect_err(tok_load_hf_json(p, err, sizeof err), err, p, "not found");
    expect_err(tok_load_dir(dir, err, sizeof err), err, "vocab.json: not found", "comes with merges.txt");
    snprintf(q, sizeof q, "%s/empty", dir);
    CHECK_INT(mkdir(q, 0700), 0);
    expect_err(tok_load_dir(q, err, sizeof err), err, q, "no tokenizer");
    snprintf(q, sizeof q, "%s/merges.txt", dir);

    snprintf(p, sizeof p, "%s/vocab.json", dir);
    write_file(p, "[\"a\", \"b\"]");
    expect_err(tok_load_files(p, q, err, sizeof err), err, p, "not a JSON object");
    expect_err(tok_load_dir(dir, err, sizeof err), err, p, "not a JSON object");
    write_file(p, "{\"a\": 0,");
    expect_err(tok_load_files(p, q, err, sizeof err), err, p, "invalid JSON");
    write_file(p, "{\"a\": \"zero\"}");
    expect_err(tok_load_files(p, q, err, sizeof err), err, p, "\"a\" is not an integer");
    write_file(p, "{\"a\": 0, \"b\": 0}");
    expect_err(tok_load_files(p, q, err, sizeof err), err, p, "used by both");
    write_file(p, "{\"a\": 0, \"b\": 1}");
    expect_err(tok_load_files(p, q, err, sizeof err), err, p, "byte-level symbol");
    snprintf(q, sizeof q, "%s/missing-merges.txt", dir);
    expect_err(tok_load_files(p, q, err, sizeof err), err, q, "not found");

    const char *extra[] = {"ab", "abc"};
    snprintf(q, sizeof q, "%s/merges.txt", dir);
    expect_err(tiny(dir, extra, 2, "#version: 0.2\na b\nab\n", err, sizeof err), err, q, ":3: expected two tokens");
    expect_err(tiny(dir, extra, 2, "#version: 0.2\na b\nab c d\n", err, sizeof err), err, ":3:", "two tokens");
    expect_err(tiny(dir, extra, 2, "a b\nab zz\n", err, sizeof err), err, ":2:", "unknown token \"zz\"");
    expect_err(tiny(dir, extra, 2, "a b\nb c\n", err, sizeof err), err, ":2:", "\"bc\", which is not in the vocabulary");
    tokenizer *ok = tiny(dir, extra, 2, "#version: 0.2\r\na b\r\nab c\r\n", err, sizeof err); // CRLF is fine
    CHECK(ok != NULL);
    tok_free(ok);

    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    write_file(p, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}, \"unk_token\": \"[UNK]\"}}");
    expect_err(tok_load_hf_json(p, err, sizeof err), err, p, "\"WordPiece\" is not supported");
    expect_err(tok_load_dir(dir, err, sizeof err), err, p, "WordPiece");
    write_file(p, "{\"pre_tokenizer\": {\"type\": \"Metaspace\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
                  "\"merges\": []}}");
    expect_err(tok_load_hf_json(p, err, sizeof err), err, p, "pre_tokenizer \"Metaspace\"");
    write_file(p, "{\"normalizer\": {\"type\": \"NFC\"}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": "
                  "{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
    expect_err(tok_load_hf_json(p, err, sizeof err), err, p, "normalizer \"NFC\"");
    write_file(p, "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true}, \"model\": "
                  "{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
    expect_err(tok_load_hf_json(p, err, sizeof err), err, p, "add_prefix_space");
    write_file(p, "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": [], "
                  "\"merges\": []}}");
    expect_err(tok_load_hf_json(p, err, sizeof err), err, p, "model.vocab is not a JSON object");
    rm_tree(dir);
}

/* Ids of "aaaa..."-style encodings in the tiny vocabularies: byte 'a' is id 64, extras 256+. */
static int encode_eq(const tokenizer *t, const char *text, const int32_t *want, int n)
{
    char err[256];
    int32_t *ids;
    int m = tok_encode(t, text, strlen(text), &ids, err, sizeof err);
    int ok = m == n && !memcmp(ids, want, (size_t)n * sizeof *ids);
    if (!ok) {
        char g[4096], w[4096];
        fmt_ids(g, sizeof g, ids, m);
        fmt_ids(w, sizeof w, want, n);
        t_fail(__FILE__, __LINE__, "\"%.60s\" (%zu bytes): got [%s], want [%s]", text, strlen(text), g, w);
    }
    free(ids);
    return ok;
}

TEST(tokenizer_merge_rounds_like_encoder_py)
{
    char dir[] = "/tmp/saed-tok-XXXXXX", err[512], text[256];
    int32_t want[128];
    CHECK(mkdtemp(dir) != NULL);
    /* Overlaps: "aaaaa" -> round "a a": aa aa a -> round "aa aa": aaaa a. */
    const char *ex1[] = {"aa", "aaaa"};
    tokenizer *t = tiny(dir, ex1, 2, "a a\naa aa\n", err, sizeof err);
    CHECK(t != NULL);
    if (t) {
        encode_eq(t, "aaaaa", (int32_t[]){257, 64}, 2);
        encode_eq(t, "aaa", (int32_t[]){256, 64}, 2);
        for (int len = 99; len <= 101; len++) { // the heap path (pieces over 48 bytes)
            memset(text, 'a', (size_t)len);
            text[len] = 0;
            int n = 0;
            for (int i = 0; i < len / 4; i++) want[n++] = 257;
            if (len % 4 >= 2) want[n++] = 256;
            if (len % 2) want[n++] = 64;
            encode_eq(t, text, want, n);
        }
    }
    tok_free(t);
    /* encoder.py merges every occurrence of the lowest pair before looking again, even when a
     * merge makes a pair of lower rank: "abcabc" -> a bc a bc -> abc abc, never abca bc. */
    const char *ex2[] = {"bc", "abc", "abca"};
    t = tiny(dir, ex2, 3, "abc a\nb c\na bc\n", err, sizeof err);
    CHECK(t != NULL);
    if (t) {
        encode_eq(t, "abcabc", (int32_t[]){257, 257}, 2);
        encode_eq(t, "abca", (int32_t[]){258}, 1);
        text[0] = 0;
        for (int i = 0; i < 20; i++) strcat(text, "abc"), want[i] = 257; // heap path
        encode_eq(t, text, want, 20);
    }
    tok_free(t);
    /* A repeated merge line takes its last rank, as encoder.py's dict(zip(merges, ranks)). */
    const char *ex3[] = {"ab", "bc"};
    t = tiny(dir, ex3, 2, "a b\nb c\na b\n", err, sizeof err);
    CHECK(t != NULL);
    if (t) encode_eq(t, "abc", (int32_t[]){64, 257}, 2);
    tok_free(t);
    rm_tree(dir);
}

/* GPT-2's vocabulary hides some piece boundaries (no merge would cross them); a vocabulary
 * whose merges would glue across every boundary shows them. 0x0A is id 198, ' ' 220, 'a' 64. */
TEST(tokenizer_pretokenizer_boundaries)
{
    char dir[] = "/tmp/saed-tok-XXXXXX", err[512];
    CHECK(mkdtemp(dir) != NULL);
    const char *ex[] = {"Ġa", "Ċa", "ĠĠ", "a'", "'s", "aĠ"};
    tokenizer *t = tiny(dir, ex, 6, "Ġ Ġ\nĠ a\nĊ a\na '\n' s\na Ġ\n", err, sizeof err);
    CHECK(t != NULL);
    if (t) {
        encode_eq(t, " a", (int32_t[]){256}, 1);          // " ?\p{L}+"
        encode_eq(t, "\na", (int32_t[]){198, 64}, 2);     // only U+0020 leads a letter run
        encode_eq(t, "\n a", (int32_t[]){198, 256}, 2);   // \s+(?!\S) leaves the last space
        encode_eq(t, "  a", (int32_t[]){220, 256}, 2);     // ... even from a run of spaces
        encode_eq(t, "   ", (int32_t[]){258, 220}, 2);     // a run at the end stays whole
        encode_eq(t, "a a", (int32_t[]){64, 256}, 2);      // letters end at the space
        encode_eq(t, "a's", (int32_t[]){64, 260}, 2);      // contraction, not "a'" + "s"
        encode_eq(t, "a'S", (int32_t[]){64, 6, 50}, 3);    // case-sensitive: "'" then "S"
        encode_eq(t, "\n\n a", (int32_t[]){198, 198, 256}, 3);
    }
    tok_free(t);
    rm_tree(dir);
}

/* ---- a naive BPE exactly as encoder.py writes it, over byte-symbol strings ---- */
typedef struct naive {
    char **pairs; // "a b", sorted
    int *rank;
    int n;
    json_t *enc;
} naive;

static int cmp_pair(const void *a, const void *b) { return strcmp(**(char *const *const *)a, **(char *const *const *)b); }

static int naive_rank(const naive *nv, const char *a, const char *b)
{
    char key[512];
    snprintf(key, sizeof key, "%s %s", a, b);
    int lo = 0, hi = nv->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2, c = strcmp(nv->pairs[mid], key);
        if (!c) return nv->rank[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

/* encoder.py's bpe(): returns the ids of one piece. */
static int naive_bpe(const naive *nv, const unsigned char *s, int len, int32_t *out)
{
    char **w = malloc((size_t)len * sizeof *w);
    int n = len;
    for (int i = 0; i < len; i++) {
        w[i] = malloc(4);
        byte_symbol(s[i], w[i]);
    }
    for (;;) {
        int best = -1, bi = -1;
        for (int i = 0; i + 1 < n; i++) {
            int r = naive_rank(nv, w[i], w[i + 1]);
            if (r >= 0 && (best < 0 || r < best)) best = r, bi = i;
        }
        if (best < 0) break;
        char *first = strdup(w[bi]), *second = strdup(w[bi + 1]);
        int k = 0;
        for (int i = 0; i < n;) {
            if (i + 1 < n && !strcmp(w[i], first) && !strcmp(w[i + 1], second)) {
                char *m = malloc(strlen(w[i]) + strlen(w[i + 1]) + 1);
                strcpy(m, w[i]);
                strcat(m, w[i + 1]);
                free(w[i]);
                free(w[i + 1]);
                w[k++] = m;
                i += 2;
            } else w[k++] = w[i++];
        }
        n = k;
        free(first);
        free(second);
    }
    for (int i = 0; i < n; i++) {
        json_t *id = json_object_get(nv->enc, w[i]);
        out[i] = id ? (int32_t)json_integer_value(id) : -1;
        free(w[i]);
    }
    free(w);
    return n;
}

TEST(tokenizer_long_pieces_match_naive_bpe)
{
    char err[512];
    tokenizer *t = tok_load_dir(GPT2_DIR, err, sizeof err);
    CHECK(t != NULL);
    naive nv = {0};
    json_error_t je;
    nv.enc = json_load_file(GPT2_DIR "/encoder.json", 0, &je);
    FILE *f = fopen(GPT2_DIR "/vocab.bpe", "r");
    CHECK(f && nv.enc);
    if (!t || !f || !nv.enc) goto out;
    char line[1024];
    char **lines = malloc(50001 * sizeof *lines);
    for (int ln = 0; fgets(line, sizeof line, f); ln++) {
        line[strcspn(line, "\n")] = 0;
        if (ln == 0 || !*line || nv.n >= 50001) continue;
        lines[nv.n++] = strdup(line);
    }
    fclose(f);
    /* sort (pair, rank) by pair */
    char ***idx = malloc((size_t)nv.n * sizeof *idx);
    for (int i = 0; i < nv.n; i++) idx[i] = &lines[i];
    qsort(idx, (size_t)nv.n, sizeof *idx, cmp_pair);
    nv.pairs = malloc((size_t)nv.n * sizeof *nv.pairs);
    nv.rank = malloc((size_t)nv.n * sizeof *nv.rank);
    for (int i = 0; i < nv.n; i++) nv.pairs[i] = *idx[i], nv.rank[i] = (int)(idx[i] - lines);
    free(idx);
    CHECK_INT(nv.n, 50000);

    /* Single pieces longer than the heap threshold: letters, digits, punctuation, spaces. */
    char text[700];
    uint32_t x = 12345;
    for (int kind = 0; kind < 6; kind++) {
        int len = 300 + 60 * kind;
        for (int i = 0; i < len; i++) {
            x = x * 1103515245u + 12345u;
            int r = (int)(x >> 16);
            text[i] = kind == 0 ? "etaoinshrdlucmfwyp"[r % 18] : kind == 1 ? "supercalifragilistic"[i % 20]
                    : kind == 2 ? (char)('0' + r % 10) : kind == 3 ? "-=*#.,!?"[r % 8] : kind == 4 ? "=-"[i % 2] : ' ';
        }
        text[len] = 0;
        int32_t want[700], *ids;
        int n = naive_bpe(&nv, (const unsigned char *)text, len, want);
        int m = tok_encode(t, text, (size_t)len, &ids, err, sizeof err);
        if (m != n || memcmp(ids, want, (size_t)n * sizeof *ids))
            t_fail(__FILE__, __LINE__, "kind %d (%d bytes, \"%.40s...\"): %d ids, naive encoder.py BPE %d", kind, len,
                   text, m, n);
        free(ids);
    }
    for (int i = 0; i < nv.n; i++) free(lines[i]);
    free(lines);
    free(nv.pairs);
    free(nv.rank);
out:
    json_decref(nv.enc);
    tok_free(t);
}

TEST(tokenizer_unicode_classes)
{
    for (uint32_t c = 0; c < 128; c++) CHECK_INT(uni_ascii_class[c], uni_class_slow(c));
    const struct { uint32_t cp; int cls; } k[] = {
        {' ', UNI_SPACE}, {0x1C, UNI_OTHER}, {0x85, UNI_SPACE}, {0xA0, UNI_SPACE}, {0x1680, UNI_SPACE},
        {0x2028, UNI_SPACE}, {0x3000, UNI_SPACE}, {0x200B, UNI_OTHER}, {0xFEFF, UNI_OTHER}, {0xE9, UNI_LETTER},
        {0x17F, UNI_LETTER}, {0xFB01, UNI_LETTER}, {0xB5, UNI_LETTER}, {0x4E2D, UNI_LETTER}, {0xAC00, UNI_LETTER},
        {0xD7A3, UNI_LETTER}, {0x20000, UNI_LETTER}, {0xB2, UNI_NUMBER}, {0xBD, UNI_NUMBER}, {0x216B, UNI_NUMBER},
        {0x0660, UNI_NUMBER}, {0x0301, UNI_OTHER}, {0x1F600, UNI_OTHER}, {0x2014, UNI_OTHER}, {UNI_INVALID, UNI_OTHER}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (uni_class(k[i].cp) != k[i].cls)
            t_fail(__FILE__, __LINE__, "class of U+%04X: %d, want %d", k[i].cp, uni_class(k[i].cp), k[i].cls);
    const struct { const char *s; size_t n, len; uint32_t cp; } u[] = {
        {"\xF0\x9F\x98\x80", 4, 4, 0x1F600}, {"\xC3\xA9", 2, 2, 0xE9}, {"\xC0\xAF", 2, 1, UNI_INVALID},
        {"\xE0\x80\xAF", 3, 1, UNI_INVALID}, {"\xED\xA0\x80", 3, 1, UNI_INVALID}, {"\xF4\x90\x80\x80", 4, 1, UNI_INVALID},
        {"\xE6\x97", 2, 1, UNI_INVALID}, {"\x97", 1, 1, UNI_INVALID}, {"\xEF\xBB\xBF", 3, 3, 0xFEFF}};
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        uint32_t cp = 0;
        size_t len = uni_utf8_next((const unsigned char *)u[i].s, u[i].n, &cp);
        CHECK_INT(len, u[i].len);
        CHECK_INT(cp, u[i].cp);
    }
}

typedef struct job {
    const tokenizer *t;
    const tcase *c;
    int n, bad;
} job;

static void *encode_all(void *arg)
{
    job *j = arg;
    for (int rep = 0; rep < 20; rep++)
        for (int i = 0; i < j->n; i++) {
            int32_t *ids;
            char err[128];
            int m = tok_encode(j->t, j->c[i].text, j->c[i].len, &ids, err, sizeof err);
            j->bad += m != j->c[i].n || (m > 0 && memcmp(ids, j->c[i].ids, (size_t)m * sizeof *ids));
            free(ids);
        }
    return NULL;
}

TEST(tokenizer_concurrent_encode)
{
    char err[512];
    tokenizer *t = tok_load_dir(GPT2_DIR, err, sizeof err);
    CHECK(t != NULL);
    if (!t) return;
    tcase *c;
    int n = load_cases(&c);
    pthread_t th[4];
    job j[4];
    for (int k = 0; k < 4; k++) {
        j[k] = (job){t, c, n, 0};
        CHECK_INT(pthread_create(&th[k], NULL, encode_all, &j[k]), 0);
    }
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        CHECK_INT(j[k].bad, 0);
    }
    free_cases(c, n);
    tok_free(t);
}
