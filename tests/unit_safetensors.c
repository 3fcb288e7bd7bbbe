/* unit_safetensors.c: the safetensors reader and writer. Round trips through real files, exact
 * F16/BF16 conversion (every half value against an ldexp reference), the tiny-a checkpoint,
 * sharded checkpoints, and one malformed input per validation rule, each asserting the error
 * text. Files live in a mkdtemp directory under /tmp that each test removes. Does not cover
 * mmap failures or files changing while mapped. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <ftw.h>      // defines: nftw
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/safetensors.h"
#include "tests/t.h"

static int st_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void st_rm_tree(const char *dir) { nftw(dir, st_rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static void st_tmpdir(char *dir) /* dir: char[32] */
{
    strcpy(dir, "/tmp/saed-st-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

static void st_put(const char *dir, const char *name, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK_INT(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* A raw safetensors image: length prefix (hl, normally strlen(json)) + json + data_len bytes 0..255. */
static uint8_t *st_image(const char *json, uint64_t hl, size_t data_len, size_t *size)
{
    size_t jl = strlen(json);
    *size = 8 + jl + data_len;
    uint8_t *b = malloc(*size);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hl >> (8 * i));
    memcpy(b + 8, json, jl);
    for (size_t i = 0; i < data_len; i++) b[8 + jl + i] = (uint8_t)i;
    return b;
}

#define ST_HL UINT64_MAX /* st_expect_bad: the length prefix is the JSON's length */

/* Checks that the header is rejected with `want` in the error, in memory and as a file. */
static void st_expect_bad(const char *json, uint64_t hl, size_t data_len, const char *want)
{
    size_t n;
    uint8_t *b = st_image(json, hl == ST_HL ? strlen(json) : hl, data_len, &n);
    char err[512] = "";
    CHECK_INT(st_check_buffer(b, n, "mem", err, sizeof err), -1);
    CHECK_CONTAINS(err, want);
    CHECK(!strncmp(err, "mem: ", 5));

    char dir[32], path[64];
    st_tmpdir(dir);
    st_put(dir, "bad.safetensors", b, n);
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    err[0] = 0;
    st_file *f = st_open(path, err, sizeof err);
    CHECK(f == NULL);
    st_close(f);
    CHECK_CONTAINS(err, want);
    CHECK_CONTAINS(err, path);
    st_rm_tree(dir);
    free(b);
}

static void st_expect_ok(const char *json, size_t data_len)
{
    size_t n;
    uint8_t *b = st_image(json, strlen(json), data_len, &n);
    char err[512] = "";
    CHECK_INT(st_check_buffer(b, n, "mem", err, sizeof err), 0);
    CHECK_STR(err, "");
    free(b);
}

TEST(safetensors_dtype_table)
{
    CHECK_INT(st_dtype_size(ST_F64), 8);
    CHECK_INT(st_dtype_size(ST_F32), 4);
    CHECK_INT(st_dtype_size(ST_F16), 2);
    CHECK_INT(st_dtype_size(ST_BF16), 2);
    CHECK_INT(st_dtype_size(ST_I64), 8);
    CHECK_INT(st_dtype_size(ST_I32), 4);
    CHECK_INT(st_dtype_size(ST_I16), 2);
    CHECK_INT(st_dtype_size(ST_I8), 1);
    CHECK_INT(st_dtype_size(ST_U8), 1);
    CHECK_INT(st_dtype_size(ST_BOOL), 1);
    CHECK_INT(st_dtype_size((st_dtype)99), 0);
    CHECK_STR(st_dtype_name(ST_BF16), "BF16");
    CHECK_STR(st_dtype_name(ST_BOOL), "BOOL");
    CHECK_STR(st_dtype_name((st_dtype)-1), "unknown");
}

TEST(safetensors_f16_bf16_known_values)
{
    CHECK(st_f16_to_f32(0x3c00) == 1.0f);
    CHECK(st_f16_to_f32(0xc100) == -2.5f);
    CHECK(st_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(st_f16_to_f32(0x0001) == ldexpf(1, -24)); /* smallest subnormal, 5.96e-8 */
    CHECK(st_f16_to_f32(0x03ff) == ldexpf(1023, -24)); /* largest subnormal */
    CHECK(st_f16_to_f32(0x0400) == ldexpf(1, -14));    /* smallest normal */
    CHECK(st_f16_to_f32(0x3555) == 0.333251953125f);
    CHECK(isinf(st_f16_to_f32(0x7c00)) && st_f16_to_f32(0x7c00) > 0);
    CHECK(isinf(st_f16_to_f32(0xfc00)) && st_f16_to_f32(0xfc00) < 0);
    CHECK(isnan(st_f16_to_f32(0x7e00)));
    CHECK(isnan(st_f16_to_f32(0x7c01))); /* signalling-pattern NaN stays NaN, not inf */
    CHECK(st_f16_to_f32(0x8000) == 0.0f && signbit(st_f16_to_f32(0x8000)));

    CHECK(st_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(st_bf16_to_f32(0xc020) == -2.5f);
    CHECK(st_bf16_to_f32(0x477f) == 65280.0f); /* 65504 is not a bf16; its neighbour below */
    CHECK(st_bf16_to_f32(0x0001) == ldexpf(1, -133)); /* smallest bf16 subnormal */
    CHECK(st_bf16_to_f32(0x7f7f) == 3.38953139e38f);
    CHECK(isinf(st_bf16_to_f32(0x7f80)) && st_bf16_to_f32(0x7f80) > 0);
    CHECK(isinf(st_bf16_to_f32(0xff80)) && st_bf16_to_f32(0xff80) < 0);
    CHECK(isnan(st_bf16_to_f32(0x7fc0)));
    CHECK(st_bf16_to_f32(0x8000) == 0.0f && signbit(st_bf16_to_f32(0x8000)));
}

TEST(safetensors_f16_exhaustive)
{
    /* every half value against the textbook formula (-1)^s * m * 2^e, evaluated in double */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
        float got = st_f16_to_f32((uint16_t)h);
        if (e == 31) {
            if (m ? !isnan(got) : !(isinf(got) && (got < 0) == s)) bad++;
            continue;
        }
        double want = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
        if (s) want = -want;
        if ((double)got != want || !!signbit(got) != (s != 0)) {
            if (!bad) t_fail(__FILE__, __LINE__, "f16 0x%04x: got %.9g want %.9g", h, got, want);
            bad++;
        }
    }
    CHECK_INT(bad, 0);
}

TEST(safetensors_round_trip)
{
    char dir[32], path[64], err[512] = "";
    st_tmpdir(dir);
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);

    float f32[6] = {1.5f, -2.25f, 3e-8f, 1e30f, -0.0f, 7.0f};
    double f64[3] = {1.0 / 3, -1e300, 2.5};
    uint16_t f16[4] = {0x3c00, 0xc100, 0x7bff, 0x0001};
    uint16_t bf16[4] = {0x3f80, 0xc020, 0x7f80, 0x0001};
    int64_t i64[2] = {INT64_MIN, 1234567890123LL};
    int32_t i32[3] = {-1, 0, INT32_MAX};
    int16_t i16[2] = {-32768, 42};
    int8_t i8[5] = {-128, -1, 0, 1, 127};
    uint8_t u8[3] = {0, 128, 255};
    uint8_t bools[4] = {1, 0, 0, 1};
    float scalar = 42.0f;
    int64_t s23[] = {2, 3}, s3[] = {3}, s4[] = {4}, s22[] = {2, 2}, s2[] = {2}, s5[] = {5}, s04[] = {0, 4},
            s1111[] = {1, 1, 1, 3};
    st_wtensor w[] = {
        {"a.f32", ST_F32, 2, s23, f32},   {"b.f64", ST_F64, 1, s3, f64},  {"c.f16", ST_F16, 1, s4, f16},
        {"d.bf16", ST_BF16, 2, s22, bf16}, {"e.i64", ST_I64, 1, s2, i64}, {"f.i32", ST_I32, 4, s1111, i32},
        {"g.i16", ST_I16, 1, s2, i16},     {"h.i8", ST_I8, 1, s5, i8},    {"i.u8", ST_U8, 1, s3, u8},
        {"j.bool", ST_BOOL, 1, s4, bools}, {"k.scalar", ST_F32, 0, NULL, &scalar},
        {"l.empty", ST_F32, 2, s04, NULL},
    };
    int n = (int)(sizeof w / sizeof w[0]);
    CHECK_INT(st_write(path, w, n, NULL, err, sizeof err), 0);
    CHECK_STR(err, "");

    /* the data section starts at a multiple of 8 and the header is padded with spaces */
    FILE *fp = fopen(path, "rb");
    uint8_t pre[8] = {0};
    CHECK(fp && fread(pre, 1, 8, fp) == 8);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | pre[i];
    CHECK_INT((8 + hl) % 8, 0);
    char *hdr = calloc(1, hl + 1);
    CHECK(fp && fread(hdr, 1, hl, fp) == hl);
    CHECK_CONTAINS(hdr, "\"a.f32\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}");
    CHECK_CONTAINS(hdr, "\"k.scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":");
    CHECK(strstr(hdr, "__metadata__") == NULL);
    free(hdr);
    if (fp) fclose(fp);

    st_file *f = st_open(path, err, sizeof err);
    CHECK(f != NULL);
    if (!f) {
        printf("    %s\n", err);
        st_rm_tree(dir);
        return;
    }
    CHECK_INT(st_count(f), n);
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_find(f, w[i].name);
        CHECK(t != NULL);
        if (!t) continue;
        CHECK(st_at(f, i) == t); /* written in order, so offset order is the given order */
        CHECK_STR(t->name, w[i].name);
        CHECK_STR(t->file, path);
        CHECK_INT(t->dtype, w[i].dtype);
        CHECK_INT(t->ndim, w[i].ndim);
        int64_t numel = 1;
        for (int d = 0; d < w[i].ndim; d++) {
            CHECK_INT(t->shape[d], w[i].shape[d]);
            numel *= w[i].shape[d];
        }
        CHECK_INT(t->numel, numel);
        CHECK_INT(t->nbytes, numel * (int64_t)st_dtype_size(w[i].dtype));
        if (t->nbytes) CHECK(!memcmp(t->data, w[i].data, t->nbytes));
    }
    CHECK(st_find(f, "nope") == NULL);
    CHECK(st_at(f, n) == NULL && st_at(f, -1) == NULL);
    CHECK(st_metadata(f, "format") == NULL);

    float out[6];
    CHECK_INT(st_to_f32(st_find(f, "c.f16"), out, err, sizeof err), 0);
    CHECK(out[0] == 1.0f && out[1] == -2.5f && out[2] == 65504.0f && out[3] == ldexpf(1, -24));
    CHECK_INT(st_to_f32(st_find(f, "d.bf16"), out, err, sizeof err), 0);
    CHECK(out[0] == 1.0f && out[1] == -2.5f && isinf(out[2]) && out[3] == ldexpf(1, -133));
    CHECK_INT(st_to_f32(st_find(f, "b.f64"), out, err, sizeof err), 0);
    CHECK(out[0] == (float)(1.0 / 3) && isinf(out[1]) && out[1] < 0 && out[2] == 2.5f);
    CHECK_INT(st_to_f32(st_find(f, "i.u8"), out, err, sizeof err), -1);
    CHECK_CONTAINS(err, "tensor 'i.u8' has dtype U8, not a float type");

    int64_t want23[] = {2, 3};
    float *a = st_load_f32(f, "a.f32", 2, want23, err, sizeof err);
    CHECK(a != NULL);
    if (a) CHECK(!memcmp(a, f32, sizeof f32));
    free(a);
    float *k = st_load_f32(f, "k.scalar", 0, NULL, err, sizeof err);
    CHECK(k && *k == 42.0f);
    free(k);
    int64_t any4[] = {-1, 4};
    float *e = st_load_f32(f, "l.empty", 2, any4, err, sizeof err);
    CHECK(e != NULL); /* an empty tensor still yields a buffer to free */
    free(e);
    st_close(f);

    /* overwriting goes through a temp file: no leftovers besides the target */
    CHECK_INT(st_write(path, w, 1, NULL, err, sizeof err), 0);
    f = st_open(path, err, sizeof err);
    CHECK(f && st_count(f) == 1);
    st_close(f);
    int64_t zero = 0;
    st_wtensor none = {"z", ST_F32, 1, &zero, NULL};
    CHECK_INT(st_write(path, &none, 1, NULL, err, sizeof err), 0);
    f = st_open(path, err, sizeof err);
    CHECK(f && st_count(f) == 1 && st_at(f, 0)->nbytes == 0);
    st_close(f);
    CHECK_INT(st_write(path, NULL, 0, NULL, err, sizeof err), 0); /* a file with no tensors is valid */
    f = st_open(path, err, sizeof err);
    CHECK(f && st_count(f) == 0);
    st_close(f);
    CHECK_INT(unlink(path), 0);
    CHECK_INT(rmdir(dir), 0); /* fails if a temp file was left behind */
    st_rm_tree(dir);
}

TEST(safetensors_metadata_read_back)
{
    char dir[32], path[64], err[512] = "";
    st_tmpdir(dir);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    float v[2] = {1, 2};
    int64_t s2[] = {2};
    st_wtensor w = {"x", ST_F32, 1, s2, v};
    const char *meta[] = {"format", "pt", "note", "héllo \"quoted\"", NULL};
    CHECK_INT(st_write(path, &w, 1, meta, err, sizeof err), 0);
    st_file *f = st_open(path, err, sizeof err);
    CHECK(f != NULL);
    CHECK_STR(st_metadata(f, "format"), "pt");
    CHECK_STR(st_metadata(f, "note"), "héllo \"quoted\"");
    CHECK(st_metadata(f, "missing") == NULL);
    CHECK(st_find(f, "__metadata__") == NULL);
    CHECK_INT(st_count(f), 1);
    st_close(f);

    const char *odd[] = {"format", NULL};
    CHECK_INT(st_write(path, &w, 1, odd, err, sizeof err), -1);
    CHECK_CONTAINS(err, "__metadata__ 'format' has no value");
    st_rm_tree(dir);
}

TEST(safetensors_tiny_a_checkpoint)
{
    char err[512] = "";
    st_file *f = st_open("tests/data/models/tiny-a", err, sizeof err);
    CHECK(f != NULL);
    if (!f) {
        printf("    %s\n", err);
        return;
    }
    CHECK_INT(st_count(f), 28); /* 12 per layer x 2, ln_f weight+bias, wpe, wte */
    CHECK_STR(st_metadata(f, "format"), "pt");
    CHECK_STR(st_at(f, 0)->file, "tests/data/models/tiny-a/model.safetensors");
    const st_tensor *wte = st_find(f, "transformer.wte.weight");
    CHECK(wte && wte->dtype == ST_F32 && wte->ndim == 2 && wte->shape[0] == 50257 && wte->shape[1] == 64);
    CHECK(wte && wte->nbytes == 50257u * 64 * 4);
    const st_tensor *qkv = st_find(f, "transformer.h.0.attn.c_attn.weight");
    CHECK(qkv && qkv->ndim == 2 && qkv->shape[0] == 64 && qkv->shape[1] == 192);
    const st_tensor *ln = st_find(f, "transformer.h.1.ln_2.bias");
    CHECK(ln && ln->ndim == 1 && ln->shape[0] == 64);
    CHECK(st_find(f, "lm_head.weight") == NULL); /* tied to wte, not stored */

    /* values read independently with Python's struct module */
    int64_t s64[] = {64};
    float *lnf = st_load_f32(f, "transformer.ln_f.weight", 1, s64, err, sizeof err);
    CHECK(lnf != NULL);
    if (lnf) {
        CHECK(lnf[0] == 1.0642626285552979f);
        CHECK(lnf[1] == 0.9699311256408691f);
        CHECK(lnf[63] == 1.0550538301467896f);
    }
    free(lnf);
    int64_t sw[] = {50257, 64};
    float *w = st_load_f32(f, "transformer.wte.weight", 2, sw, err, sizeof err);
    CHECK(w != NULL);
    if (w) {
        double sum = 0;
        for (size_t i = 0; i < 50257u * 64; i++) sum += w[i];
        CHECK(w[0] == 0.03239531069993973f);
        CHECK(w[50257u * 64 - 1] == 0.02522365003824234f);
        CHECK_NEAR(sum, -127.2078186458755, 1e-6);
    }
    free(w);

    int64_t bad[] = {64, 193};
    float *x = st_load_f32(f, "transformer.h.0.attn.c_attn.weight", 2, bad, err, sizeof err);
    CHECK(x == NULL);
    CHECK_STR(err, "tests/data/models/tiny-a/model.safetensors: tensor 'transformer.h.0.attn.c_attn.weight' "
                   "has shape [64, 192], expected [64, 193]");
    int64_t any[] = {-1, 7};
    CHECK(st_load_f32(f, "transformer.wpe.weight", 2, any, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "tensor 'transformer.wpe.weight' has shape [128, 64], expected [*, 7]");
    CHECK(st_load_f32(f, "transformer.wpe.weight", 1, any, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "has shape [128, 64], expected [*]");
    CHECK(st_load_f32(f, "transformer.nope", 1, s64, err, sizeof err) == NULL);
    CHECK_STR(err, "tests/data/models/tiny-a/model.safetensors: tensor 'transformer.nope' not found");
    st_close(f);

    /* the file path itself opens the same way */
    f = st_open("tests/data/models/tiny-a/model.safetensors", err, sizeof err);
    CHECK(f && st_count(f) == 28);
    st_close(f);
}

static void st_write_shard(const char *dir, const char *name, const char *t1, const char *t2, float base)
{
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/%s", dir, name);
    float v1[4] = {base, base + 1, base + 2, base + 3}, v2[2] = {-base, -base - 1};
    int64_t s22[] = {2, 2}, s2[] = {2};
    st_wtensor w[] = {{t1, ST_F32, 2, s22, v1}, {t2, ST_F32, 1, s2, v2}};
    const char *meta[] = {"shard", name, NULL};
    CHECK_INT(st_write(path, w, t2 ? 2 : 1, meta, err, sizeof err), 0);
}

static void st_index(const char *dir, const char *json)
{
    st_put(dir, "model.safetensors.index.json", json, strlen(json));
}

TEST(safetensors_sharded_read)
{
    char dir[32], path[96], err[512] = "";
    st_tmpdir(dir);
    st_write_shard(dir, "model-00001-of-00002.safetensors", "a", "b", 10);
    st_write_shard(dir, "model-00002-of-00002.safetensors", "c", NULL, 20);
    st_index(dir, "{\"metadata\":{\"total_size\":40},\"weight_map\":{"
                  "\"c\":\"model-00002-of-00002.safetensors\",\"a\":\"model-00001-of-00002.safetensors\","
                  "\"b\":\"./model-00001-of-00002.safetensors\"}}");
    /* "./x" and "x" are the same shard */
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    st_file *f;
    for (int via_dir = 0; via_dir < 2; via_dir++) {
        f = st_open(via_dir ? dir : path, err, sizeof err);
        CHECK(f != NULL);
        if (!f) {
            printf("    %s\n", err);
            continue;
        }
        CHECK_INT(st_count(f), 3);
        CHECK_STR(st_at(f, 0)->name, "a"); /* shards in name order, tensors in offset order */
        CHECK_STR(st_at(f, 2)->name, "c");
        CHECK_STR(st_metadata(f, "shard"), "model-00001-of-00002.safetensors");
        const st_tensor *c = st_find(f, "c");
        CHECK(c && c->ndim == 2 && c->shape[1] == 2);
        CHECK(c && strstr(c->file, "/model-00002-of-00002.safetensors") && !strncmp(c->file, dir, strlen(dir)));
        int64_t s22[] = {2, 2}, s2[] = {2};
        float *cv = st_load_f32(f, "c", 2, s22, err, sizeof err);
        CHECK(cv && cv[0] == 20 && cv[3] == 23);
        free(cv);
        float *bv = st_load_f32(f, "b", 1, s2, err, sizeof err);
        CHECK(bv && bv[0] == -10 && bv[1] == -11);
        free(bv);
        CHECK(st_load_f32(f, "b", 2, s22, err, sizeof err) == NULL);
        CHECK_CONTAINS(err, "model-00001-of-00002.safetensors: tensor 'b' has shape [2], expected [2, 2]");
        st_close(f);
    }
    st_rm_tree(dir);
}

static void st_expect_bad_index(const char *dir, const char *json, const char *want)
{
    char path[96], err[512] = "";
    st_index(dir, json);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    st_file *f = st_open(path, err, sizeof err);
    CHECK(f == NULL);
    CHECK_CONTAINS(err, want);
    st_close(f);
}

TEST(safetensors_sharded_errors)
{
    char dir[32], want[256];
    st_tmpdir(dir);
    snprintf(want, sizeof want, "%s/sub", dir);
    CHECK_INT(mkdir(want, 0755), 0);
    st_write_shard(dir, "s1.safetensors", "a", "b", 1);
    st_write_shard(dir, "s2.safetensors", "b", "c", 2); /* b in both */
    st_write_shard(dir, "s3.safetensors", "d", NULL, 3);

    st_expect_bad_index(dir, "{\"weight_map\":{\"a\":\"../s1.safetensors\"}}",
                        "shard '../s1.safetensors' for tensor 'a' escapes the index's directory");
    st_expect_bad_index(dir, "{\"weight_map\":{\"a\":\"sub/../../s1.safetensors\"}}", "escapes the index's directory");
    st_expect_bad_index(dir, "{\"weight_map\":{\"a\":\"/etc/passwd\"}}", "shard '/etc/passwd' for tensor 'a' escapes");
    st_expect_bad_index(dir, "{\"weight_map\":{\"a\":\"sub/..\"}}", "escapes");
    st_expect_bad_index(dir, "{\"weight_map\":{\"a\":\"\"}}", "escapes");

    snprintf(want, sizeof want, "%s/s3.safetensors: tensor 'x' (listed in %s/model.safetensors.index.json) is "
             "missing from this shard", dir, dir);
    st_expect_bad_index(dir, "{\"weight_map\":{\"d\":\"s3.safetensors\",\"x\":\"s3.safetensors\"}}", want);
    /* listed in the wrong shard counts as missing from the listed one */
    snprintf(want, sizeof want, "%s/s1.safetensors: tensor 'd'", dir);
    st_expect_bad_index(dir, "{\"weight_map\":{\"a\":\"s1.safetensors\",\"d\":\"s1.safetensors\","
                             "\"z\":\"s3.safetensors\"}}", want);
    st_expect_bad_index(dir, "{\"weight_map\":{\"a\":\"s1.safetensors\",\"c\":\"s2.safetensors\"}}",
                        "tensor 'b' is present in two shards");
    st_expect_bad_index(dir, "{\"weight_map\":{\"a\":\"nope.safetensors\"}}", "nope.safetensors: No such file");
    st_expect_bad_index(dir, "{\"weight_map\":{\"a\":1}}", "weight_map entry for tensor 'a' is not a string");
    st_expect_bad_index(dir, "{\"weight_map\":[]}", "'weight_map' is missing or not an object");
    st_expect_bad_index(dir, "{\"weight_map\":{}}", "'weight_map' is empty");
    st_expect_bad_index(dir, "[1]", "'weight_map' is missing or not an object");
    st_expect_bad_index(dir, "{\"weight_map\":{\"a\":\"s1.safetensors\",\"a\":\"s1.safetensors\"}}",
                        "duplicate object key");
    st_expect_bad_index(dir, "{\"weight_map\":", "invalid JSON");

    /* a bad shard reports the shard's path */
    uint8_t junk[4] = {1, 2, 3, 4};
    st_put(dir, "s4.safetensors", junk, sizeof junk);
    snprintf(want, sizeof want, "%s/s4.safetensors: file is 4 bytes, too short", dir);
    st_expect_bad_index(dir, "{\"weight_map\":{\"a\":\"s4.safetensors\"}}", want);

    /* a shard in a subdirectory is fine */
    st_write_shard(dir, "sub/s5.safetensors", "e", NULL, 5);
    char path[96], err[512];
    st_index(dir, "{\"weight_map\":{\"e\":\"sub/s5.safetensors\",\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\"}}");
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    st_file *f = st_open(path, err, sizeof err);
    CHECK(f && st_count(f) == 3 && st_find(f, "e") && strstr(st_find(f, "e")->file, "/sub/s5.safetensors"));
    st_close(f);
    st_rm_tree(dir);
}

TEST(safetensors_malformed_headers)
{
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    st_expect_ok(ok, 8);
    st_expect_ok("{}", 0);
    st_expect_ok("{\"__metadata__\":{\"k\":\"v\"},\"e\":{\"dtype\":\"I8\",\"shape\":[0],\"data_offsets\":[0,0]}}  ", 0);

    /* truncated: fewer than 8 bytes, or the data cut short */
    size_t n;
    uint8_t *b = st_image(ok, strlen(ok), 8, &n);
    char err[512];
    CHECK_INT(st_check_buffer(b, 5, "mem", err, sizeof err), -1);
    CHECK_STR(err, "mem: file is 5 bytes, too short for the 8-byte header length");
    CHECK_INT(st_check_buffer(b, n - 3, "mem", err, sizeof err), -1);
    CHECK_CONTAINS(err, "tensor 'a': data_offsets [0, 8] lie beyond the data section (5 bytes)");
    CHECK_INT(st_check_buffer(b, 8 + strlen(ok) - 1, "mem", err, sizeof err), -1);
    CHECK_CONTAINS(err, "header length 54 runs past the end of the file (61 bytes)");
    free(b);

    st_expect_bad(ok, strlen(ok) + 9, 8, "runs past the end of the file");
    st_expect_bad(ok, 1ull << 60, 8, "header length 1152921504606846976 is absurd");
    st_expect_bad(ok, 100000001, 8, "is absurd");
    st_expect_bad(ok, 0, 8, "header is not valid JSON");
    st_expect_bad("{\"a\":", ST_HL, 0, "header is not valid JSON");
    st_expect_bad("[1,2]", ST_HL, 0, "header is not a JSON object");
    st_expect_bad("\"str\"", ST_HL, 0, "header is not a JSON object");
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", ST_HL, 8, "duplicate object key");

    /* offsets */
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", ST_HL, 12,
                  "tensors 'a' [0, 8) and 'b' [4, 12) overlap");
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", ST_HL, 12,
                  "gap of 4 bytes between tensor 'a' (ends at 4) and 'b' (begins at 8)");
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", ST_HL, 8,
                  "gap of 4 bytes before the first tensor 'a'");
    st_expect_bad(ok, strlen(ok), 12, "4 bytes after the last tensor 'a' belong to no tensor");
    st_expect_bad("{}", ST_HL, 3, "data section has 3 bytes but the header lists no tensors");
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", ST_HL, 8,
                  "tensor 'a': data_offsets [8, 16] lie beyond the data section (8 bytes)");
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[9,8]}}", ST_HL, 8,
                  "data_offsets [9, 8] are not 0 <= begin <= end");
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[-4,0]}}", ST_HL, 0,
                  "are not 0 <= begin <= end");
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}}", ST_HL, 8,
                  "'data_offsets' must be [begin, end] integers");
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", ST_HL, 8,
                  "'data_offsets' must be [begin, end] integers");
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", ST_HL, 8, "'data_offsets' must be");

    /* dtype and shape */
    st_expect_bad("{\"a\":{\"dtype\":\"F13\",\"shape\":[2],\"data_offsets\":[0,8]}}", ST_HL, 8,
                  "tensor 'a': unknown dtype 'F13'");
    st_expect_bad("{\"a\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", ST_HL, 8,
                  "'dtype' is missing or not a string");
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", ST_HL, 8,
                  "tensor 'a': shape [3] x F32 is 12 bytes but data_offsets [0, 8] span 8");
    st_expect_bad("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,8]}}", ST_HL, 8,
                  "shape [2] x BF16 is 4 bytes");
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", ST_HL, 0,
                  "tensor 'a': shape [4294967296, 4294967296] x F32 overflows");
    /* numel fits in int64 but numel * 8 bytes does not */
    st_expect_bad("{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}", ST_HL, 0,
                  "overflows");
    /* a zero dim makes the product 0 whatever the other dims are */
    st_expect_ok("{\"a\":{\"dtype\":\"F32\",\"shape\":[0,4294967296,4294967296],\"data_offsets\":[0,0]}}", 0);
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]}}", ST_HL, 8,
                  "tensor 'a': shape[1] = -1 is negative");
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[0,-1],\"data_offsets\":[0,0]}}", ST_HL, 0, "is negative");
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", ST_HL, 8,
                  "shape[0] is not an integer");
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", ST_HL, 8,
                  "tensor 'a': shape has 9 dims, more than 8");
    st_expect_ok("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8);
    st_expect_bad("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", ST_HL, 8, "'shape' is missing or not an array");
    st_expect_bad("{\"a\":[1]}", ST_HL, 0, "tensor 'a': entry is not an object");
    st_expect_bad("{\"\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", ST_HL, 0, "empty name");

    /* __metadata__ */
    st_expect_bad("{\"__metadata__\":{\"k\":1}}", ST_HL, 0, "__metadata__ value for 'k' is not a string");
    st_expect_bad("{\"__metadata__\":[\"k\"]}", ST_HL, 0, "__metadata__ must be an object of string to string");
}

TEST(safetensors_open_and_write_errors)
{
    char dir[32], path[96], err[512];
    st_tmpdir(dir);
    snprintf(path, sizeof path, "%s/missing.safetensors", dir);
    CHECK(st_open(path, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "missing.safetensors: No such file or directory");
    CHECK(st_open(dir, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "no model.safetensors or model.safetensors.index.json");
    CHECK(st_open("/dev/null", err, sizeof err) == NULL);
    CHECK_STR(err, "/dev/null: not a regular file or directory");
    st_put(dir, "empty.safetensors", "", 0);
    snprintf(path, sizeof path, "%s/empty.safetensors", dir);
    CHECK(st_open(path, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "empty.safetensors: file is 0 bytes, too short");

    float v[2] = {1, 2};
    int64_t s2[] = {2}, neg[] = {-2}, big[] = {INT64_MAX, 2};
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    st_wtensor dup[] = {{"x", ST_F32, 1, s2, v}, {"x", ST_F32, 1, s2, v}};
    CHECK_INT(st_write(path, dup, 2, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "duplicate tensor name 'x'");
    st_wtensor w1 = {"x", ST_F32, 1, neg, v};
    CHECK_INT(st_write(path, &w1, 1, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "shape[0] = -2 is negative");
    st_wtensor w2 = {"x", ST_F32, 9, s2, v};
    CHECK_INT(st_write(path, &w2, 1, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "bad dtype or ndim 9");
    st_wtensor w3 = {"x", ST_F32, 2, big, v};
    CHECK_INT(st_write(path, &w3, 1, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "overflows");
    st_wtensor w4 = {"__metadata__", ST_F32, 1, s2, v};
    CHECK_INT(st_write(path, &w4, 1, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "invalid name '__metadata__'");
    st_wtensor w5 = {"x", ST_F32, 1, s2, NULL};
    CHECK_INT(st_write(path, &w5, 1, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "no data");
    struct stat sb;
    CHECK(stat(path, &sb) != 0); /* nothing written on failure */

    snprintf(path, sizeof path, "%s/no/such/dir/w.safetensors", dir);
    st_wtensor ok = {"x", ST_F32, 1, s2, v};
    CHECK_INT(st_write(path, &ok, 1, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "creating temp file: No such file or directory");
    st_rm_tree(dir);
}
