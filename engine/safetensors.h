/* safetensors.h: reading (mmap) and writing the safetensors format, single files and sharded
 * checkpoints (model.safetensors.index.json). Every header field is validated before any
 * tensor byte is touched. Pure C + jansson: no HTTP, no SQL. */
#ifndef SAED_ENGINE_SAFETENSORS_H
#define SAED_ENGINE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef enum st_dtype {
    ST_F64, ST_F32, ST_F16, ST_BF16, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL
} st_dtype;

typedef struct st_tensor {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data;   /* inside the mapping; not necessarily aligned */
    size_t nbytes;
    const char *file;   /* path of the file holding it (shards) */
} st_tensor;

typedef struct st_file st_file;

size_t st_dtype_size(st_dtype t);
const char *st_dtype_name(st_dtype t);

/* path: a .safetensors file, a model.safetensors.index.json, or a directory holding either
 * model.safetensors or model.safetensors.index.json. NULL with err naming file and tensor. */
st_file *st_open(const char *path, char *err, size_t errlen);
void st_close(st_file *f);

int st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, int i);
const st_tensor *st_find(const st_file *f, const char *name);   /* NULL when absent */
/* A __metadata__ value (single file or first shard), NULL when absent. */
const char *st_metadata(const st_file *f, const char *key);

/* Converts any float dtype (F64/F32/F16/BF16) to float32 into out[numel]. -1 with err otherwise. */
int st_to_f32(const st_tensor *t, float *out, char *err, size_t errlen);
/* Looks a tensor up, checks its shape against shape[0..ndim) (a -1 entry matches anything) and
 * returns a malloc'd float32 copy. NULL with err naming the file, tensor and shapes. */
float *st_load_f32(const st_file *f, const char *name, int ndim, const int64_t *shape, char *err, size_t errlen);

/* Tells the kernel the tensor's mapped pages are not needed any more (a loader that has copied
 * them): a large checkpoint then does not stay resident twice while it loads. The data stays
 * readable (pages fault in again from the file). */
void st_release(const st_tensor *t);

/* Parses and validates a header held in memory (the 8-byte length prefix + JSON + data) of
 * file_size bytes in total. Used by st_open and by the fuzz target. 0 or -1 with err. */
int st_check_buffer(const uint8_t *buf, size_t file_size, const char *label, char *err, size_t errlen);

/* Writer: tensors in the given order, data contiguous, header padded with spaces so the data
 * section starts at a multiple of 8. meta: NULL-terminated key,value,... pairs or NULL. */
typedef struct st_wtensor {
    const char *name;
    st_dtype dtype;
    int ndim;
    const int64_t *shape;
    const void *data;
} st_wtensor;
int st_write(const char *path, const st_wtensor *tensors, int n, const char *const *meta, char *err, size_t errlen);

/* IEEE half and bfloat16 to float. */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t h);

#endif
