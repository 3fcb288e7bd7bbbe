/* backend.h: the compute backend interface the engine calls for heavy math. Two
 * implementations: cpu.c (OpenBLAS + plain C on a small thread pool; also the reference for
 * tests) and the CUDA one (cuda_backend.cu, cuBLAS + kernels), built as a separate shared object
 * and loaded at run time so that saed starts on machines with no GPU, driver or CUDA libraries.
 *
 * Memory: every float* passed to an op is backend memory (device memory for CUDA, host memory
 * for the CPU), obtained from alloc() and filled with upload(). host_memory says whether the
 * engine may read and write it directly. All matrices are row-major float32.
 * Every op returns 0, or -1 with the reason in err (backend_error()). Ops on a device backend
 * are queued on one stream and may still be running when they return; every op that writes
 * host memory (download, argmax_rows, topk_rows, nonzeros) waits for what it needs, so callers
 * never synchronize. Knows nothing of HTTP or SQL. */
#ifndef SAED_GPU_BACKEND_H
#define SAED_GPU_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct saed_backend saed_backend;

/* The element-wise activations of the model families: GPT-2's gelu_new / HF's
 * gelu_pytorch_tanh (one formula), the exact erf GELU (HF "gelu"), and SiLU. */
typedef enum backend_act { ACT_GELU_TANH = 0, ACT_GELU_ERF, ACT_SILU } backend_act;

/* The shape of one attention call. */
typedef struct attn_shape {
    int B, Tq, Tk;      /* sequences; query rows and key rows (cached + new) per sequence */
    int NH, NKV, hd;    /* query heads, key/value heads (NH % NKV == 0), floats per head */
    float scale;        /* multiplies q·k (GPT-2 and Llama: 1/sqrt(hd)) */
    float softcap;      /* > 0: a score s becomes softcap·tanh(s/softcap) before the mask */
    int window;         /* > 0: a query at position p sees keys p-window+1 .. p only */
} attn_shape;

/* GEMM precision on backends that have a choice (SAED_GPU_PRECISION): fp32 as the CPU, or
 * tensor-core products of tf32 / bf16-rounded inputs accumulated in fp32. The CPU is always
 * fp32. */
typedef enum backend_precision { BACKEND_FP32 = 0, BACKEND_TF32, BACKEND_BF16 } backend_precision;

struct saed_backend {
    const char *name;       /* "cpu" or "cuda" */
    char device[160];       /* human description, e.g. "NVIDIA H100 (sm_90, 79 GiB)" */
    int host_memory;        /* 1: backend pointers are plain host memory */
    int rows_exact;         /* 1: every op gives a row of a batch the same bits whatever the
                             * other rows are and however many (CPU with detgemm's products):
                             * generations over the same prompt may share forwards */
    backend_precision precision; /* read by gemm and attention on every call */
    char err[256];          /* last error */

    void *(*alloc)(saed_backend *b, size_t bytes);   /* zero-filled; NULL on failure */
    void (*release)(saed_backend *b, void *p);
    int (*upload)(saed_backend *b, void *dst, const void *src, size_t bytes);
    int (*download)(saed_backend *b, void *dst, const void *src, size_t bytes);

    /* C (M,N) = alpha · op(A) · op(B) + beta · C; op(X) = X or X^T (ta/tb = 1); row-major with
     * leading dimensions lda/ldb/ldc (elements between consecutive rows as stored). */
    int (*gemm)(saed_backend *b, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

    /* out (N,C) = layernorm of each row of inp with weight/bias. out may equal inp. */
    int (*layernorm)(saed_backend *b, float *out, const float *inp, const float *w, const float *bias, int N, int C,
                     float eps);
    /* x (N,C) += bias (C) broadcast over rows. */
    int (*add_bias)(saed_backend *b, float *x, const float *bias, int N, int C);
    /* x (N,C) = bias (C) in every row. Optional (NULL: the engine adds biases after the GEMM):
     * lets a GEMM with beta 1 add onto its bias. */
    int (*fill_rows)(saed_backend *b, float *x, const float *bias, int N, int C);
    /* out = gelu_new(in) (tanh approximation), n elements; out may equal in. */
    int (*gelu)(saed_backend *b, float *out, const float *in, size_t n);
    /* out = a + b, n elements; out may equal a. */
    int (*add)(saed_backend *b, float *out, const float *a, const float *b2, size_t n);
    /* Each row of x (N,C) minus its mean. */
    int (*center_rows)(saed_backend *b, float *x, int N, int C);
    /* out (B,T,C) = wte[ids] + wpe[pos0 + t]; ids is host memory. wte/ids NULL: positions
     * only; wpe NULL: tokens only. */
    int (*embed)(saed_backend *b, float *out, const int32_t *ids, const float *wte, const float *wpe, int B, int T,
                 int C, int pos0);
    /* dst rows (stride ldd) = src rows (stride lds), rows × width elements. */
    int (*copy2d)(saed_backend *b, float *dst, int ldd, const float *src, int lds, int rows, int width);
    /* Causal multi-head attention over the shape in s (attn_shape above). q: (B,Tq,NH·hd) with
     * row stride ldq; k, v: (B,Tk,NKV·hd) with row stride ldkv and batch stride sbkv
     * (elements). Query t sits at absolute position Tk - Tq + t and attends to keys
     * 0..that position (the last `window` of them when s->window > 0); query head h reads
     * key/value head h / (NH/NKV). z: (B,Tq,NH·hd) dense. pattern, when not NULL:
     * (B,NH,Tq,Tk) softmax probabilities (0 where masked). */
    int (*attention)(saed_backend *b, float *z, float *pattern, const float *q, int ldq, const float *k,
                     const float *v, int ldkv, long sbkv, const struct attn_shape *s);
    /* Per-row argmax of x (N,C) into idx (host memory). */
    int (*argmax_rows)(saed_backend *b, int32_t *idx, const float *x, int N, int C);
    /* Per-row top k of x (N,C), largest first (ties: lower index first), into host vals and
     * idx (N,k). k <= C. */
    int (*topk_rows)(saed_backend *b, float *vals, int32_t *idx, const float *x, int N, int C, int k);
    /* out (N,C) = h where h > 0, h > thr[c] (thr (C), or NULL) and gate[r,c] > 0 (gate (N,C),
     * or NULL), else 0: ReLU, JumpReLU and the gated SAE's mask in one pass. out may equal h. */
    int (*masked_relu)(saed_backend *b, float *out, const float *h, const float *thr, const float *gate, int N, int C);
    /* x (N,C) = masked_relu(x + bias (C) broadcast over rows, thr) row by row, the same
     * values as add_bias then masked_relu without a second pass over x. Optional (NULL: the
     * engine calls the two). */
    int (*bias_masked_relu)(saed_backend *b, float *x, const float *bias, const float *thr, int N, int C);
    /* bias_masked_relu that also marks where the result is non-zero in map (host memory, ⌈C/64⌉
     * words per row; column c is bit c%64 of word c/64), so that a reader of the sparse result
     * need not scan x again. Optional (NULL: no map; host-memory backends only). */
    int (*bias_masked_relu_map)(saed_backend *b, float *x, const float *bias, const float *thr, int N, int C,
                                uint64_t *map);
    /* x (N,C) *= s (C) broadcast over rows. */
    int (*scale_cols)(saed_backend *b, float *x, const float *s, int N, int C);
    /* Row r of x (N,C) becomes x[r]·scale[r] + shift[r]; scale and shift (N) are host memory,
     * shift may be NULL. */
    int (*scale_rows)(saed_backend *b, float *x, const float *scale, const float *shift, int N, int C);
    /* x (N,C) = 0 except x[r, idx[r,j]] = vals[r,j] for j < k; vals and idx (N,k) are host
     * memory, as topk_rows leaves them. */
    int (*scatter_rows)(saed_backend *b, float *x, const float *vals, const int32_t *idx, int N, int C, int k);
    /* The values > 0 of columns [c0, c0+F) of x (N rows, leading dimension ld) as CSR in host
     * memory: rowptr (N+1) and, row by row with columns ascending, absolute column numbers and
     * values, at most cap of them. rowptr[N] is the total even when it exceeds cap; then cols
     * and vals are left untouched and the caller retries with room for rowptr[N]. Lets a device
     * hand over sparse feature activations instead of the dense matrix. */
    int (*nonzeros)(saed_backend *b, int64_t *rowptr, int32_t *cols, float *vals, size_t cap, const float *x, int N,
                    int ld, int c0, int F);
    /* The ops below serve the rotary families (Llama, Gemma-2, GPT-NeoX); a backend without
     * them still runs GPT-2 (model_load names the missing op otherwise). */
    /* out (N,C) = inp / sqrt(mean(inp²) + eps) · w, the mean and the division in float32 as
     * HF's RMSNorm computes them; w NULL: no weight. out may equal inp. */
    int (*rmsnorm)(saed_backend *b, float *out, const float *inp, const float *w, int N, int C, float eps);
    /* Rotary position embedding in place. x: B·T rows at row stride ld, each holding nh heads
     * of hd floats from its start; in every head the first rot dims (rot even, <= hd) are
     * rotated in HF's half-split layout (pairs i, i + rot/2) and the rest left alone. cs:
     * (positions, rot) rows in backend memory, row p = [cos(p·f_i) | sin(p·f_i)] for
     * i < rot/2; row r of x sits at position pos0 + r % T. */
    int (*rotary)(saed_backend *b, float *x, int ld, int B, int T, int nh, int hd, int rot, const float *cs,
                  int pos0);
    /* out = act(in), n elements; out may equal in. */
    int (*act)(saed_backend *b, float *out, const float *in, size_t n, backend_act a);
    /* out = act(gate) · up element-wise (SwiGLU, GeGLU), n elements; out may equal gate. */
    int (*glu)(saed_backend *b, float *out, const float *gate, const float *up, size_t n, backend_act a);
    /* C (M,N) = A (M,K) · Wᵀ + beta · C with W (N,K) in 16-bit floats (bf16 = 1: BF16, else
     * IEEE half), widened exactly to float32 block by block: weights stay at their stored
     * size. Optional (NULL: the engine widens the weights once at load). */
    int (*gemm_w16)(saed_backend *b, int M, int N, int K, const float *A, int lda, const uint16_t *W, int bf16,
                    float beta, float *C, int ldc);
    /* x = cap · tanh(x / cap), n elements (Gemma-2's logit soft-capping). */
    int (*softcap)(saed_backend *b, float *x, size_t n, float cap);
    /* Free and total bytes of the backend's own memory (a GPU's), for sizing batches. NULL on
     * backends whose memory is the host's. */
    int (*mem_info)(saed_backend *b, size_t *free_bytes, size_t *total_bytes);
    /* 0 while the backend can still run ops; -1 with err once its device has failed for good
     * (a sticky CUDA error: every later op would fail too). NULL on backends that cannot fail. */
    int (*healthy)(saed_backend *b);

    void (*destroy)(saed_backend *b);
    void *impl;
};

/* Convenience for messages. */
static inline const char *backend_error(const saed_backend *b) { return b->err; }

/* spec: "auto" (CUDA when a device and driver are present, else CPU), "cpu", "cuda" or
 * "cuda:N". NULL with err when the requested backend cannot be opened. "auto" never fails
 * for want of a GPU: it returns the CPU backend and leaves why CUDA was not used in err
 * (err is "" whenever no reason applies). */
saed_backend *backend_open(const char *spec, char *err, size_t errlen);
/* As backend_open, except that "auto" and a bare "cuda" take device slot modulo the number of
 * devices: worker i passes i, so that n workers spread over n GPUs. */
saed_backend *backend_open_slot(const char *spec, int slot, char *err, size_t errlen);
/* Checks a spec without opening anything: 0, or -1 with err. */
int backend_spec_check(const char *spec, char *err, size_t errlen);
/* "fp32", "tf32", "bf16" → *out; -1 when unknown. */
int backend_precision_parse(const char *s, backend_precision *out);
const char *backend_precision_name(backend_precision p);
saed_backend *backend_cpu_open(void);
void backend_close(saed_backend *b);
/* Call first in main(). OpenBLAS's idle threads spin (sched_yield) for about 2^28 cycles after
 * each product before they sleep, and OPENBLAS_THREAD_TIMEOUT is read only when the library
 * loads; between products the CPU backend runs its own pool (element-wise ops, attention, the
 * dashboard statistics), which those spinning threads slow down on a machine with few cores.
 * So unless the variable is set, this sets it to 4 (2^4 cycles) and re-executes the program
 * (/proc/self/exe, same argv); if that fails, the program goes on as it was. */
void backend_blas_env(char **argv);
/* Names the first op the backend lacks, or NULL when it implements the whole interface. */
const char *backend_missing_op(const saed_backend *b);

/* Entry point exported by the CUDA shared object (saed-cuda.so): device N, or NULL with err
 * (no driver, no device, N out of range, CUDA or cuBLAS failing to start). */
typedef saed_backend *(*backend_cuda_open_fn)(int device, char *err, size_t errlen);
#define BACKEND_CUDA_SYMBOL "saed_cuda_backend_open"
/* Optional second export: how many devices the driver reports (0 on any error). */
typedef int (*backend_cuda_count_fn)(void);
#define BACKEND_CUDA_COUNT_SYMBOL "saed_cuda_device_count"
#define BACKEND_CUDA_LIBRARY "saed-cuda.so"

#endif
