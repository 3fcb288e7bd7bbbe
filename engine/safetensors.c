/* safetensors.c: see safetensors.h. Reads single files and sharded checkpoints by mmap and
 * validates every header field (length prefix, JSON shape, dtypes, dims, byte counts, and that
 * the data_offsets tile the data section exactly) before handing out a pointer into the mapping;
 * writes files atomically (temp file + rename).
 *
 * Does not: check that shard files stay unmodified while mapped (a file truncated underneath us
 * raises SIGBUS, as with any mmap reader), resolve symlinks when confining shards to the index's
 * directory (HuggingFace caches link shards into a blobs/ directory, so the check is lexical:
 * no leading '/', no '..' component), convert integer dtypes to float, or support big-endian
 * hosts (the format is little-endian and tensor bytes are handed out as stored). */
#include "engine/safetensors.h"

#include <errno.h>
#include <fcntl.h>      // defines: open
#include <jansson.h>    // defines: json_loadb, json_load_file, json_dumps
#include <math.h>       // defines: ldexpf
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>   // defines: mmap, munmap
#include <sys/stat.h>   // defines: fstat, stat, fchmod
#include <unistd.h>     // defines: close, fsync, unlink

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c hands out tensor bytes as stored (little-endian); port the byte swaps first"
#endif

/* The reference implementation's limit; a larger prefix means a corrupt or hostile file. */
#define ST_MAX_HEADER 100000000ull

static const struct { const char *name; size_t size; } st_dtypes[] = {
    [ST_F64] = {"F64", 8}, [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4}, [ST_I16] = {"I16", 2}, [ST_I8] = {"I8", 1},
    [ST_U8] = {"U8", 1},   [ST_BOOL] = {"BOOL", 1},
};
#define ST_NDTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

size_t st_dtype_size(st_dtype t) { return (unsigned)t < ST_NDTYPES ? st_dtypes[t].size : 0; }
const char *st_dtype_name(st_dtype t) { return (unsigned)t < ST_NDTYPES ? st_dtypes[t].name : "unknown"; }

static int st_dtype_parse(const char *s, st_dtype *out)
{
    for (int i = 0; i < ST_NDTYPES; i++)
        if (!strcmp(st_dtypes[i].name, s)) {
            *out = (st_dtype)i;
            return 0;
        }
    return -1;
}

float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf, or NaN with its payload kept */
    } else if (exp == 0) {
        /* zero or subnormal: man * 2^-24 is exact in float32 (normal there) */
        float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float st_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16; /* bfloat16 is the top half of a float32 */
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---- tensor list ---- */

typedef struct st_vec {
    st_tensor *v;
    int n, cap;
} st_vec;

static int st_vec_push(st_vec *a, const st_tensor *t)
{
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 16;
        st_tensor *v = realloc(a->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = *t;
    return 0;
}

static void st_vec_free(st_vec *a)
{
    for (int i = 0; i < a->n; i++) free((char *)a->v[i].name);
    free(a->v);
    memset(a, 0, sizeof *a);
}

static int st_cmp_offset(const void *pa, const void *pb)
{
    const st_tensor *a = pa, *b = pb;
    const uint8_t *da = a->data, *db = b->data;
    if (da != db) return da < db ? -1 : 1;
    if (a->nbytes != b->nbytes) return a->nbytes < b->nbytes ? -1 : 1;
    return strcmp(a->name, b->name);
}

static void st_fmt_shape(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int i = 0; i < ndim && o < len; i++) {
        if (shape[i] < 0) o += (size_t)snprintf(buf + o, len - o, "%s*", i ? ", " : "");
        else o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    }
    if (o < len) snprintf(buf + o, len - o, "]");
}

/* ---- header validation ---- */

static int st_parse_metadata(json_t *md, const char *label, char *err, size_t errlen)
{
    if (!json_is_object(md)) {
        snprintf(err, errlen, "%s: __metadata__ must be an object of string to string", label);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(md, k, v) {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "%s: __metadata__ value for '%s' is not a string", label, k);
            return -1;
        }
    }
    return 0;
}

/* One header entry -> t (name not yet set). data_size bounds the offsets. */
static int st_parse_entry(const char *label, const char *name, json_t *e, const uint8_t *data, size_t data_size,
                          st_tensor *t, char *err, size_t errlen)
{
    if (!*name) {
        snprintf(err, errlen, "%s: a tensor has an empty name", label);
        return -1;
    }
    if (!json_is_object(e)) {
        snprintf(err, errlen, "%s: tensor '%s': entry is not an object", label, name);
        return -1;
    }
    const char *ds = json_string_value(json_object_get(e, "dtype"));
    if (!ds) {
        snprintf(err, errlen, "%s: tensor '%s': 'dtype' is missing or not a string", label, name);
        return -1;
    }
    if (st_dtype_parse(ds, &t->dtype)) {
        snprintf(err, errlen, "%s: tensor '%s': unknown dtype '%.32s'", label, name, ds);
        return -1;
    }
    json_t *shape = json_object_get(e, "shape");
    if (!json_is_array(shape)) {
        snprintf(err, errlen, "%s: tensor '%s': 'shape' is missing or not an array", label, name);
        return -1;
    }
    if (json_array_size(shape) > ST_MAX_DIMS) {
        snprintf(err, errlen, "%s: tensor '%s': shape has %zu dims, more than %d", label, name,
                 json_array_size(shape), ST_MAX_DIMS);
        return -1;
    }
    t->ndim = (int)json_array_size(shape);
    int64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < t->ndim; i++) {
        json_t *d = json_array_get(shape, (size_t)i);
        if (!json_is_integer(d)) {
            snprintf(err, errlen, "%s: tensor '%s': shape[%d] is not an integer", label, name, i);
            return -1;
        }
        if (json_integer_value(d) < 0) {
            snprintf(err, errlen, "%s: tensor '%s': shape[%d] = %lld is negative", label, name, i,
                     (long long)json_integer_value(d));
            return -1;
        }
        t->shape[i] = json_integer_value(d);
        /* keep checking later dims: a 0 dim does not excuse a negative one */
        if (__builtin_mul_overflow(numel, t->shape[i], &numel)) overflow = 1;
    }
    char sh[256];
    st_fmt_shape(sh, sizeof sh, t->ndim, t->shape);
    uint64_t nbytes;
    if (overflow || __builtin_mul_overflow((uint64_t)numel, (uint64_t)st_dtype_size(t->dtype), &nbytes)) {
        snprintf(err, errlen, "%s: tensor '%s': shape %s x %s overflows 64 bits", label, name, sh,
                 st_dtype_name(t->dtype));
        return -1;
    }
    json_t *off = json_object_get(e, "data_offsets");
    if (!json_is_array(off) || json_array_size(off) != 2 || !json_is_integer(json_array_get(off, 0)) ||
        !json_is_integer(json_array_get(off, 1))) {
        snprintf(err, errlen, "%s: tensor '%s': 'data_offsets' must be [begin, end] integers", label, name);
        return -1;
    }
    long long b = json_integer_value(json_array_get(off, 0)), en = json_integer_value(json_array_get(off, 1));
    if (b < 0 || en < b) {
        snprintf(err, errlen, "%s: tensor '%s': data_offsets [%lld, %lld] are not 0 <= begin <= end", label, name,
                 b, en);
        return -1;
    }
    if ((unsigned long long)en > data_size) {
        snprintf(err, errlen, "%s: tensor '%s': data_offsets [%lld, %lld] lie beyond the data section (%zu bytes)",
                 label, name, b, en, data_size);
        return -1;
    }
    if ((uint64_t)(en - b) != nbytes) {
        snprintf(err, errlen, "%s: tensor '%s': shape %s x %s is %llu bytes but data_offsets [%lld, %lld] span %lld",
                 label, name, sh, st_dtype_name(t->dtype), (unsigned long long)nbytes, b, en, en - b);
        return -1;
    }
    t->numel = numel;
    t->nbytes = (size_t)nbytes;
    t->data = data + b;
    return 0;
}

/* safetensors requires the tensors, sorted by offset, to cover [0, data_size) exactly. */
static int st_check_tiling(const st_tensor *v, int n, const uint8_t *data, size_t data_size, const char *label,
                           char *err, size_t errlen)
{
    size_t end = 0;
    for (int i = 0; i < n; i++) {
        size_t b = (size_t)((const uint8_t *)v[i].data - data);
        if (b < end) {
            size_t pb = (size_t)((const uint8_t *)v[i - 1].data - data);
            snprintf(err, errlen, "%s: tensors '%s' [%zu, %zu) and '%s' [%zu, %zu) overlap", label, v[i - 1].name, pb,
                     pb + v[i - 1].nbytes, v[i].name, b, b + v[i].nbytes);
            return -1;
        }
        if (b > end) {
            if (i) snprintf(err, errlen, "%s: gap of %zu bytes between tensor '%s' (ends at %zu) and '%s' (begins at %zu)",
                            label, b - end, v[i - 1].name, end, v[i].name, b);
            else snprintf(err, errlen, "%s: gap of %zu bytes before the first tensor '%s'", label, b, v[i].name);
            return -1;
        }
        end = b + v[i].nbytes;
    }
    if (end != data_size) {
        if (n) snprintf(err, errlen, "%s: %zu bytes after the last tensor '%s' belong to no tensor", label,
                        data_size - end, v[n - 1].name);
        else snprintf(err, errlen, "%s: data section has %zu bytes but the header lists no tensors", label, data_size);
        return -1;
    }
    return 0;
}

/* Validates buf[0..size) and appends its tensors, sorted by offset, to out (names malloc'd,
 * data pointing into buf, file = label). *meta gets a reference to __metadata__ or NULL. */
static int st_parse(const uint8_t *buf, size_t size, const char *label, st_vec *out, json_t **meta, char *err,
                    size_t errlen)
{
    *meta = NULL;
    if (size < 8) {
        snprintf(err, errlen, "%s: file is %zu bytes, too short for the 8-byte header length", label, size);
        return -1;
    }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | buf[i];
    if (hl > ST_MAX_HEADER) {
        snprintf(err, errlen, "%s: header length %llu is absurd (more than %llu bytes)", label,
                 (unsigned long long)hl, ST_MAX_HEADER);
        return -1;
    }
    if (hl > size - 8) {
        snprintf(err, errlen, "%s: header length %llu runs past the end of the file (%zu bytes)", label,
                 (unsigned long long)hl, size);
        return -1;
    }
    json_error_t je;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hl, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root) {
        snprintf(err, errlen, "%s: header is not valid JSON (at byte %d): %s", label, je.position, je.text);
        return -1;
    }
    int rc = -1, first = out->n;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: header is not a JSON object", label);
        goto done;
    }
    const uint8_t *data = buf + 8 + hl;
    size_t data_size = size - 8 - (size_t)hl;
    const char *name;
    json_t *e;
    json_object_foreach(root, name, e) {
        if (!strcmp(name, "__metadata__")) {
            if (st_parse_metadata(e, label, err, errlen)) goto done;
            *meta = json_incref(e);
            continue;
        }
        st_tensor t = {.file = label};
        if (st_parse_entry(label, name, e, data, data_size, &t, err, errlen)) goto done;
        if (!(t.name = strdup(name)) || st_vec_push(out, &t)) {
            free((char *)t.name);
            snprintf(err, errlen, "%s: out of memory", label);
            goto done;
        }
    }
    if (out->n > first) qsort(out->v + first, (size_t)(out->n - first), sizeof *out->v, st_cmp_offset);
    rc = st_check_tiling(out->v + first, out->n - first, data, data_size, label, err, errlen);
done:
    if (rc) {
        while (out->n > first) free((char *)out->v[--out->n].name);
        json_decref(*meta);
        *meta = NULL;
    }
    json_decref(root);
    return rc;
}

int st_check_buffer(const uint8_t *buf, size_t file_size, const char *label, char *err, size_t errlen)
{
    st_vec v = {0};
    json_t *meta;
    int rc = st_parse(buf, file_size, label ? label : "buffer", &v, &meta, err, errlen);
    json_decref(meta);
    st_vec_free(&v);
    return rc;
}

/* ---- files ---- */

typedef struct st_map {
    char *path;
    const uint8_t *base;
    size_t size;
    json_t *meta;
} st_map;

struct st_file {
    char *path;
    st_map *maps;
    int nmaps;
    st_vec t;
    const st_tensor **by_name; /* t.v sorted by name, for st_find; t.v no longer grows */
};

static int st_map_file(st_map *m, const char *path, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (!(m->path = strdup(path))) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block us; fstat rejects it */
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if (sb.st_size < 8) { /* also keeps mmap away from empty files */
        snprintf(err, errlen, "%s: file is %lld bytes, too short for the 8-byte header length", path,
                 (long long)sb.st_size);
        close(fd);
        return -1;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        snprintf(err, errlen, "%s: too large to map", path);
        close(fd);
        return -1;
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
        return -1;
    }
    m->base = p;
    m->size = (size_t)sb.st_size;
    return 0;
}

void st_close(st_file *f)
{
    if (!f) return;
    for (int i = 0; i < f->nmaps; i++) {
        if (f->maps[i].base) munmap((void *)f->maps[i].base, f->maps[i].size);
        json_decref(f->maps[i].meta);
        free(f->maps[i].path);
    }
    free(f->maps);
    st_vec_free(&f->t);
    free(f->by_name);
    free(f->path);
    free(f);
}

static int st_cmp_name(const void *a, const void *b)
{
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

/* Builds by_name; a name twice means two shards hold it. */
static int st_index_names(st_file *f, char *err, size_t errlen)
{
    if (!(f->by_name = malloc((size_t)(f->t.n ? f->t.n : 1) * sizeof *f->by_name))) {
        snprintf(err, errlen, "%s: out of memory", f->path);
        return -1;
    }
    for (int i = 0; i < f->t.n; i++) f->by_name[i] = &f->t.v[i];
    qsort(f->by_name, (size_t)f->t.n, sizeof *f->by_name, st_cmp_name);
    for (int i = 1; i < f->t.n; i++) {
        const st_tensor *a = f->by_name[i - 1], *b = f->by_name[i];
        if (!strcmp(a->name, b->name)) {
            snprintf(err, errlen, "%s: tensor '%s' is present in two shards: %s and %s", f->path, a->name, a->file,
                     b->file);
            return -1;
        }
    }
    return 0;
}

static st_file *st_new(const char *path, int nmaps, char *err, size_t errlen)
{
    st_file *f = calloc(1, sizeof *f);
    if (f) f->path = strdup(path);
    if (f) f->maps = calloc((size_t)(nmaps ? nmaps : 1), sizeof *f->maps);
    if (!f || !f->path || !f->maps) {
        snprintf(err, errlen, "%s: out of memory", path);
        st_close(f);
        return NULL;
    }
    return f;
}

static st_file *st_open_single(const char *path, char *err, size_t errlen)
{
    st_file *f = st_new(path, 1, err, errlen);
    if (!f) return NULL;
    f->nmaps = 1;
    st_map *m = &f->maps[0];
    if (st_map_file(m, path, err, errlen) || st_parse(m->base, m->size, m->path, &f->t, &m->meta, err, errlen) ||
        st_index_names(f, err, errlen)) {
        st_close(f);
        return NULL;
    }
    return f;
}

/* Shards must resolve inside the index's directory: no absolute path, no '..' component. The
 * canonical form drops '.' and empty components, so "./a" and "a" are one shard. NULL when the
 * name escapes; malloc'd otherwise (an empty result also counts as escaping: it is the directory). */
static char *st_shard_canon(const char *s)
{
    if (*s == '/') return NULL;
    char *out = malloc(strlen(s) + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (const char *p = s; *p;) {
        const char *q = strchr(p, '/');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            free(out);
            return NULL;
        }
        if (len && !(len == 1 && p[0] == '.')) {
            if (o) out[o++] = '/';
            memcpy(out + o, p, len);
            o += len;
        }
        p += len + (q != NULL);
    }
    out[o] = 0;
    if (!o) {
        free(out);
        return NULL;
    }
    return out;
}

static int st_cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void st_free_names(char **names, size_t n, char **uniq)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    free(uniq);
}

static st_file *st_open_index(const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root) {
        struct stat sb;
        if (stat(path, &sb)) snprintf(err, errlen, "%s: %s", path, strerror(errno));
        else snprintf(err, errlen, "%s: invalid JSON at line %d: %s", path, je.line, je.text);
        return NULL;
    }
    st_file *f = NULL;
    char **shards = NULL, **uniq = NULL; /* canonical shard name per weight_map entry; distinct ones */
    size_t ns = 0, nu = 0;
    char *dir = NULL;
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(root) || !json_is_object(wm)) {
        snprintf(err, errlen, "%s: 'weight_map' is missing or not an object", path);
        goto fail;
    }
    size_t nw = json_object_size(wm);
    if (!nw) {
        snprintf(err, errlen, "%s: 'weight_map' is empty", path);
        goto fail;
    }
    if (!(shards = malloc(nw * sizeof *shards))) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    const char *tname;
    json_t *v;
    json_object_foreach(wm, tname, v) {
        const char *s = json_string_value(v);
        if (!s) {
            snprintf(err, errlen, "%s: weight_map entry for tensor '%s' is not a string", path, tname);
            goto fail;
        }
        /* out of memory reads as escaping too; either way nothing is opened */
        if (!(shards[ns] = st_shard_canon(s))) {
            snprintf(err, errlen, "%s: shard '%s' for tensor '%s' escapes the index's directory", path, s, tname);
            goto fail;
        }
        ns++;
    }
    /* distinct shard names, in name order (model-00001-of-N first); shards owns the strings */
    uniq = malloc(ns * sizeof *uniq);
    if (!uniq) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    memcpy(uniq, shards, ns * sizeof *uniq);
    qsort(uniq, ns, sizeof *uniq, st_cmp_str);
    for (size_t i = 0; i < ns; i++)
        if (!nu || strcmp(uniq[nu - 1], uniq[i])) uniq[nu++] = uniq[i];

    const char *slash = strrchr(path, '/');
    dir = slash ? strndup(path, (size_t)(slash - path) + 1) : strdup("");
    if (!dir || !(f = st_new(path, (int)nu, err, errlen))) {
        if (!dir) snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    for (size_t i = 0; i < nu; i++) {
        char sp[4096];
        if ((size_t)snprintf(sp, sizeof sp, "%s%s", dir, uniq[i]) >= sizeof sp) {
            snprintf(err, errlen, "%s: shard path for '%s' is too long", path, uniq[i]);
            goto fail;
        }
        st_map *m = &f->maps[f->nmaps++];
        if (st_map_file(m, sp, err, errlen) ||
            st_parse(m->base, m->size, m->path, &f->t, &m->meta, err, errlen))
            goto fail;
    }
    if (st_index_names(f, err, errlen)) goto fail;
    size_t iw = 0;
    json_object_foreach(wm, tname, v) {
        const st_tensor *t = st_find(f, tname);
        const char *want = shards[iw++]; /* same iteration order as above */
        size_t dl = strlen(dir);
        if (!t || strncmp(t->file, dir, dl) || strcmp(t->file + dl, want)) {
            snprintf(err, errlen, "%s%s: tensor '%s' (listed in %s) is missing from this shard", dir, want, tname,
                     path);
            goto fail;
        }
    }
    st_free_names(shards, ns, uniq);
    free(dir);
    json_decref(root);
    return f;
fail:
    st_close(f);
    st_free_names(shards, ns, uniq);
    free(dir);
    json_decref(root);
    return NULL;
}

static int st_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

st_file *st_open(const char *path, char *err, size_t errlen)
{
    struct stat sb;
    if (!path || stat(path, &sb)) {
        snprintf(err, errlen, "%s: %s", path ? path : "(null)", path ? strerror(errno) : "no path");
        return NULL;
    }
    if (S_ISDIR(sb.st_mode)) {
        char p[4096];
        /* a single file wins when both exist, as HuggingFace's loader does */
        snprintf(p, sizeof p, "%s/model.safetensors", path);
        if (!stat(p, &sb)) return st_open_single(p, err, errlen);
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", path);
        if (!stat(p, &sb)) return st_open_index(p, err, errlen);
        snprintf(err, errlen, "%s: no model.safetensors or model.safetensors.index.json", path);
        return NULL;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file or directory", path);
        return NULL;
    }
    return st_ends_with(path, ".json") ? st_open_index(path, err, errlen) : st_open_single(path, err, errlen);
}

int st_count(const st_file *f) { return f ? f->t.n : 0; }

const st_tensor *st_at(const st_file *f, int i) { return f && i >= 0 && i < f->t.n ? &f->t.v[i] : NULL; }

const st_tensor *st_find(const st_file *f, const char *name)
{
    if (!f || !name) return NULL;
    int lo = 0, hi = f->t.n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(name, f->by_name[mid]->name);
        if (!c) return f->by_name[mid];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *st_metadata(const st_file *f, const char *key)
{
    if (!f || !f->nmaps || !key) return NULL;
    return json_string_value(json_object_get(f->maps[0].meta, key));
}

/* ---- float32 access ---- */

int st_to_f32(const st_tensor *t, float *out, char *err, size_t errlen)
{
    if (!t) {
        snprintf(err, errlen, "no tensor");
        return -1;
    }
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case ST_F32:
        if (t->nbytes) memcpy(out, p, t->nbytes);
        return 0;
    case ST_F64:
        for (int64_t i = 0; i < t->numel; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8); /* data need not be aligned */
            out[i] = (float)d;
        }
        return 0;
    case ST_F16:
    case ST_BF16:
        for (int64_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = t->dtype == ST_F16 ? st_f16_to_f32(h) : st_bf16_to_f32(h);
        }
        return 0;
    default:
        snprintf(err, errlen, "%s: tensor '%s' has dtype %s, not a float type", t->file ? t->file : "?",
                 t->name ? t->name : "?", st_dtype_name(t->dtype));
        return -1;
    }
}

float *st_load_f32(const st_file *f, const char *name, int ndim, const int64_t *shape, char *err, size_t errlen)
{
    const st_tensor *t = st_find(f, name);
    if (!t) {
        snprintf(err, errlen, "%s: tensor '%s' not found", f ? f->path : "(no file)", name ? name : "(null)");
        return NULL;
    }
    if (ndim < 0 || ndim > ST_MAX_DIMS || (ndim && !shape)) {
        snprintf(err, errlen, "%s: tensor '%s': expected ndim %d is invalid", t->file, t->name, ndim);
        return NULL;
    }
    int ok = ndim == t->ndim;
    for (int i = 0; ok && i < ndim; i++) ok = shape[i] == -1 || shape[i] == t->shape[i];
    if (!ok) {
        char have[256], want[256];
        st_fmt_shape(have, sizeof have, t->ndim, t->shape);
        st_fmt_shape(want, sizeof want, ndim, shape);
        snprintf(err, errlen, "%s: tensor '%s' has shape %s, expected %s", t->file, t->name, have, want);
        return NULL;
    }
    if ((uint64_t)t->numel > SIZE_MAX / sizeof(float)) {
        snprintf(err, errlen, "%s: tensor '%s' is too large to copy", t->file, t->name);
        return NULL;
    }
    float *out = malloc(t->numel ? (size_t)t->numel * sizeof(float) : 1);
    if (!out) {
        snprintf(err, errlen, "%s: tensor '%s': out of memory", t->file, t->name);
        return NULL;
    }
    if (st_to_f32(t, out, err, errlen)) {
        free(out);
        return NULL;
    }
    return out;
}

/* ---- writer ---- */

static int st_write_all(FILE *fp, const void *p, size_t n) { return n && fwrite(p, 1, n, fp) != n ? -1 : 0; }

int st_write(const char *path, const st_wtensor *tensors, int n, const char *const *meta, char *err, size_t errlen)
{
    if (!path || n < 0 || (n && !tensors)) {
        snprintf(err, errlen, "%s: invalid arguments", path ? path : "(null)");
        return -1;
    }
    int rc = -1, fd = -1;
    char *hdr = NULL, *tmp = NULL;
    FILE *fp = NULL;
    size_t *nb = calloc((size_t)(n ? n : 1), sizeof *nb);
    json_t *root = json_object();
    if (!nb || !root) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    if (meta) {
        json_t *md = json_object();
        if (!md || json_object_set_new(root, "__metadata__", md)) {
            snprintf(err, errlen, "%s: out of memory", path);
            goto out;
        }
        for (int i = 0; meta[i]; i += 2) {
            json_t *s = meta[i + 1] ? json_string(meta[i + 1]) : NULL;
            if (!s || json_object_set_new(md, meta[i], s)) {
                snprintf(err, errlen, "%s: __metadata__ '%s' has no value or is not valid UTF-8", path, meta[i]);
                goto out;
            }
        }
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const st_wtensor *w = &tensors[i];
        const char *nm = w->name ? w->name : "(null)";
        if (!w->name || !*w->name || !strcmp(w->name, "__metadata__")) {
            snprintf(err, errlen, "%s: tensor %d has an invalid name '%s'", path, i, nm);
            goto out;
        }
        if (json_object_get(root, w->name)) {
            snprintf(err, errlen, "%s: duplicate tensor name '%s'", path, nm);
            goto out;
        }
        if (!st_dtype_size(w->dtype) || w->ndim < 0 || w->ndim > ST_MAX_DIMS || (w->ndim && !w->shape)) {
            snprintf(err, errlen, "%s: tensor '%s': bad dtype or ndim %d", path, nm, w->ndim);
            goto out;
        }
        int64_t numel = 1; /* int64, as st_tensor.numel: what the reader accepts */
        json_t *shape = json_array();
        for (int d = 0; d < w->ndim; d++) {
            if (w->shape[d] < 0 || __builtin_mul_overflow(numel, w->shape[d], &numel)) {
                json_decref(shape);
                snprintf(err, errlen, "%s: tensor '%s': shape[%d] = %lld is negative or overflows", path, nm, d,
                         (long long)w->shape[d]);
                goto out;
            }
            json_array_append_new(shape, json_integer(w->shape[d]));
        }
        uint64_t bytes, end;
        if (__builtin_mul_overflow((uint64_t)numel, (uint64_t)st_dtype_size(w->dtype), &bytes) ||
            __builtin_add_overflow(off, bytes, &end) || end > INT64_MAX || (bytes && !w->data)) {
            json_decref(shape);
            snprintf(err, errlen, "%s: tensor '%s': too large, or no data", path, nm);
            goto out;
        }
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", st_dtype_name(w->dtype), "shape", shape,
                              "data_offsets", (json_int_t)off, (json_int_t)end);
        if (!e || json_object_set_new(root, w->name, e)) {
            snprintf(err, errlen, "%s: tensor '%s': name is not valid UTF-8", path, nm);
            goto out;
        }
        nb[i] = (size_t)bytes;
        off = end;
    }
    /* insertion order is kept by jansson, so tensors appear as given, after __metadata__ */
    if (!(hdr = json_dumps(root, JSON_COMPACT))) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    size_t hl = strlen(hdr), padded = (hl + 8 + 7) / 8 * 8 - 8; /* data starts at a multiple of 8 */
    if (padded > ST_MAX_HEADER) {
        snprintf(err, errlen, "%s: header would be %zu bytes, more than readers accept", path, padded);
        goto out;
    }
    size_t pl = strlen(path) + 16;
    if (!(tmp = malloc(pl))) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    snprintf(tmp, pl, "%s.tmp.XXXXXX", path);
    if ((fd = mkstemp(tmp)) < 0) {
        snprintf(err, errlen, "%s: creating temp file: %s", path, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto out;
    }
    fchmod(fd, 0644); /* mkstemp makes 0600; weights are meant to be shared */
    if (!(fp = fdopen(fd, "wb"))) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int bad = st_write_all(fp, le, 8) || st_write_all(fp, hdr, hl);
    for (size_t i = hl; i < padded && !bad; i++) bad = fputc(' ', fp) == EOF;
    for (int i = 0; i < n && !bad; i++) bad = st_write_all(fp, tensors[i].data, nb[i]);
    if (bad || fflush(fp) || fsync(fileno(fp))) {
        snprintf(err, errlen, "%s: writing: %s", tmp, strerror(errno));
        goto out;
    }
    int cr = fclose(fp);
    fp = NULL;
    if (cr || rename(tmp, path)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    free(tmp);
    tmp = NULL;
    rc = 0;
out:
    if (fp) fclose(fp);
    if (fd >= 0) close(fd);
    if (tmp) unlink(tmp);
    free(tmp);
    free(hdr);
    free(nb);
    json_decref(root);
    return rc;
}

void st_release(const st_tensor *t)
{
    const uintptr_t pg = 4096, lo = ((uintptr_t)t->data + pg - 1) & ~(pg - 1),
                    hi = ((uintptr_t)t->data + t->nbytes) & ~(pg - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}
