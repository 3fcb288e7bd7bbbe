/* dashboard.h: the statistics engine behind feature dashboards — what SAEDashboard's
 * NeuronpediaRunner computes per feature (shared/reference/saelens-saedashboard.md §3.3), as
 * one streaming pass over every feature at once with memory independent of the number of
 * prompts, plus the quantities derived from the weights alone.
 *
 * It does NOT read datasets, run the model or the SAE, render token strings, round numbers
 * for export, or talk to SQL/HTTP: the caller feeds feature activations batch by batch and
 * turns the results into Neuronpedia/SAEDashboard rows. Pure C on the host (OpenBLAS for the
 * weight products, gpu/par.h for per-feature loops).
 *
 * ---- Streaming accumulator (dash_acc) ----
 * Feed prompts in increasing prompt order (any batch sizes; gaps allowed): same inputs, seed
 * and options give bit-identical results whatever the batching, and features [f0,f1) give the
 * same results as the same features inside a wider range (except correlated features, which
 * compare within blocks aligned to absolute indices: split ranges at multiples of corr_block).
 *
 * Positions: mask[b,t] = 0 marks BOS/pad positions, as SAEDashboard zeroes them: they count in
 * every denominator (frac_nonzero, binContains) as value 0 but are never examples, never
 * non-zeros, and are left out of the correlations. An activation "fires" when it is > 0;
 * anything else (0, negative, NaN) is treated as 0. Every SAELens architecture ends in a
 * ReLU-like step, so this only matters for garbage input.
 *
 * Per feature, and how exact it is (F features, K = top_k, n = n_intervals, k = per_interval):
 *  - max, min non-zero, non-zero count, frac_nonzero = non-zeros / all positions: exact.
 *  - Top-K examples by activation over (prompt, pos), several per prompt allowed: exact, a
 *    bounded heap; ties broken by (prompt, pos) ascending. Only firing positions qualify (a
 *    feature firing at fewer than K positions has fewer top examples).
 *  - Interval examples: n equal-width intervals [e_j, e_j+1] with e = torch.linspace(0, max,
 *    n+1) (float32, torch's algorithm), closed on both sides as SAEDashboard's `lower <= act
 *    <= upper`; the lowest also holds the zeros of unmasked positions (interval_zeros = 1, as
 *    SAEDashboard; 0 = only firing positions). Each interval's examples are its k eligible
 *    positions with the smallest sample key dash_sample_key(seed, prompt, pos, feature): a
 *    uniform sample without replacement, exact membership, EXACT equality with a brute force
 *    that knows every activation, independent of order and batching. How, with max unknown
 *    until the end: every final interval is at least w = max_so_far/n wide, so a firing
 *    position can be dropped for good once every window of width w containing its value
 *    holds k positions with smaller keys (new positions and a growing max only make that
 *    truer). The survivors are the elements that are ever among the k smallest keys of a
 *    sliding window — about 2·k·(n+1) — plus about k·ln(N) just below the running max
 *    (the max may still grow, so a window may yet start there): 40–150 per feature at the
 *    defaults, flat from 4K to 16.8M positions in measurements, 24 bytes each. Zeros keep
 *    a k-smallest-key heap fed by walking the batch's positions in key order (the key is
 *    h(prompt, pos) + g(feature), so one sort per batch serves every feature). A hard cap
 *    (interval_cap, default 1024 survivors) keeps memory bounded even against adversarial
 *    keys; if it is ever hit, the largest keys are evicted and examples_exact = 0.
 *  - binContains (fraction of ALL positions, masked ones as 0, inside [e_j, e_j+1]) and the
 *    histogram (hist_bins bins of the non-zero values over [min_nonzero, max], SAEDashboard's
 *    torch.histc(acts[acts > 0], bins): bin = (int)((v − lo)·bins / (hi − lo)) in float32,
 *    bins itself (v = hi) going to the last bin; lo = hi → [lo−1, hi+1]; values = bin centres
 *    from torch.linspace): both need the value distribution at edges only known at the end,
 *    and an exact one-pass answer needs every distinct value. So: EXACT (every count equal to
 *    histc, binContains equal to a count; hist_exact = 1, hist_err_max = 0) while the feature
 *    has at most hist_exact_max distinct non-zero values (default 2048): sorted (value, count)
 *    pairs, new values appended unsorted and merged in when the store fills (each value moved
 *    O(1) times), the store doubling from 16 pairs up to 1.25·hist_exact_max + 8 (20.5 KB at
 *    the default). Beyond that, the (hist_exact_max+1)-th distinct value in position order
 *    (whatever the batching) moves the feature to a linear grid of hist_bins·hist_sub buckets
 *    (19.2 KB at 50·96, the store freed) that starts on the observed [min, max] and doubles
 *    (merging pairs) to follow later values, so each final bin spans at least hist_sub/2
 *    buckets; a bucket cut by a final edge is split in proportion to the overlap and heights
 *    are rounded cumulatively (sum = non-zero count exactly). hist_err_max then bounds the
 *    counts that can sit in a neighbouring bin (the counts of the cut buckets; binContains is
 *    off by at most twice that); the actual error is noise from those buckets, largest just
 *    past the exact limit and falling as 1/√n: measured (tests/unit_histogram.c) at most
 *    0.44% of a feature's counts misplaced at 2.5K values (uniform values, the worst shape),
 *    0.1% from 25K values. So a feature costs at most ~20 KB here in either mode.
 *  - Correlated neurons: top 3 Pearson between the feature and each input dimension over the
 *    unmasked positions (feature value 0 where it does not fire), from Σf, Σf², Σx, Σx² and
 *    Σ f·x_j; `cos` holds the cosine similarity (SAEDashboard's `_l1` field). Σ f·x_j is
 *    accumulated only where the feature fires (an axpy in double per firing (position,
 *    feature), cost nnz·d_in, ≪ the encode's 2·d_in·d_sae per token for sparse SAEs) in
 *    position order, which keeps it bit-identical across batchings (a per-batch GEMM would
 *    not be). Memory F·d_in doubles (151 MB for 24576 × 768). Exact up to rounding.
 *  - Correlated features: top 3 Pearson (and cosine) among the other features of the same
 *    block of corr_block features aligned to absolute indices (SAEDashboard compares within
 *    its 128-feature batch; the default 2048 compares 16× wider). Pair sums Σ f_a·f_b are
 *    accumulated over co-firing pairs only (cost Σ per position of (firing in block)²), in
 *    double, half-matrix: F·corr_block·4 bytes (201 MB for 24576 at 2048). corr_block = 0
 *    turns them off; corr_block ≥ F compares all features exactly. Features whose activation
 *    (or dimension) has no variance get no Pearson candidates; lists may hold fewer than 3.
 *
 * Cost and memory, measured on the 2-core dev box (24576 features, 32×128-token batches, L0
 * 675, d_in 768, defaults, values captured): about 0.55 s per batch with both cores (0.2 s
 * without correlated neurons/features) next to 0.5 s for the encode GEMM; about 800 MB of
 * state (Σ f·x 151 MB, pair sums 201 MB, distributions 79 MB, captured values ~250 MB,
 * interval survivors ~70 MB), flat in the number of prompts. (Measured before the exact
 * histogram store: distributions now take up to ~20 KB per feature, 500 MB at 24576
 * features, instead of a fixed 3.2 KB; a statistics-only run of 4096 features at 0.1–5% density
 * without correlations or capture measured +14 KB per feature and 25–40% more accumulate
 * time on the shared dev box; not re-measured in the full pipeline.) Per batch, each work unit (a
 * correlated-feature block; one thread each): the non-zeros found from the encode's bitmap
 * (dash_acc_add_map) or by one read of the dense (B,T,F) input with 16-value mask tests,
 * then regrouped by feature with a stable counting sort (every
 * feature still sees them in position order), the pair sums applied tile by tile, then each
 * feature's whole batch applied at once with its state hot in cache. The Σ f·x rows
 * (nnz·d_in multiply-adds in double, reading x rows from the last-level cache) take about 30%
 * of that, the pair sums and per-value updates another 30%, the interval survivors' window
 * checks (sky_needed) 20%.
 *
 * Examples hold (prompt, pos, value). With capture_values, each example also comes with its
 * feature's values over the whole prompt (dash_feature.example_values): for every prompt one
 * of a feature's candidates (top-K heap, interval survivors, zero heap) sits in, the
 * accumulator keeps that feature's non-zero values there, taken from the batch as it goes
 * and dropped when no candidate refers to the prompt any more — bounded by the candidates
 * (top_k + interval_cap + per_interval per feature), never by the prompts (dashboard.c).
 * Without it the caller has to re-run the example prompts (at most 45 per feature).
 * SAEDashboard drops position 0 from the window and sets qualifying_token_index = pos − 1.
 *
 * ---- Weight-derived (dash_weights) ----
 * Logit lens W_dec[i] @ W_U (no final LN, no bias; W_U may be given as GPT-2's wte (V, d_in)),
 * top/bottom logit_k ids and values (ties: lower id first) and a logit_bins histogram of all V
 * logits (torch.histc over [min, max]); neuron alignment: top 3 signed entries of W_dec[i]
 * with l1 share |v|/‖W_dec[i]‖₁; decoder cosine similarity: top cos_k other features of the
 * whole SAE (Neuronpedia's topkCosSimIndices/Values). Blocked cblas_sgemm, memory
 * O(block · (V + d_sae)). For hook_pre/post or hook_z SAEs the caller passes the matching
 * unembedding path (W_out[L] @ W_U, W_O[L] @ W_U) as W_U.
 *
 * Thread-safety: an accumulator is used by one thread at a time; different ones are
 * independent. dash_weights is reentrant. */
#ifndef SAED_ENGINE_DASHBOARD_H
#define SAED_ENGINE_DASHBOARD_H

#include <stddef.h>
#include <stdint.h>

#define DASH_TOP3 3 /* correlated neurons/features and neuron alignment, as SAEDashboard */

typedef struct dash_opts {
    int top_k;          /* top examples per feature (20) */
    int n_intervals;    /* equal-width intervals over [0, max] (5), 1..100 */
    int per_interval;   /* examples drawn per interval (5) */
    int hist_bins;      /* histogram of non-zero values (50) */
    int hist_sub;       /* grid buckets per histogram bin past the exact limit, even, ≥ 2 (96) */
    int hist_exact_max; /* distinct non-zero values a feature keeps exactly, ≥ 2 (2048) */
    int interval_zeros; /* 1: the lowest interval's population includes zeros, as SAEDashboard (1) */
    int interval_cap;   /* hard cap on interval survivors per feature (1024) */
    int corr_block;     /* correlated-feature block size; 0 = off (2048) */
    uint64_t seed;      /* interval sampling (0) */
    int capture_values; /* 1: each example's prompt row of values, see "Examples" above (0) */
} dash_opts;

void dash_opts_default(dash_opts *o);

typedef struct dash_example {
    int64_t prompt;     /* prompt index as fed to dash_acc_add */
    int32_t pos;        /* position in the prompt, 0..T-1 */
    int32_t group;      /* -1: top-K group; j ≥ 0: interval j (0 = lowest) */
    float value;        /* the feature's activation there (0 for a zero drawn into interval 0) */
} dash_example;

typedef struct dash_interval {
    float lo, hi;       /* closed [lo, hi] */
    double contains;    /* fraction of all positions with lo ≤ value ≤ hi (masked ones as 0) */
    int n_examples;
} dash_interval;

typedef struct dash_feature {
    int index;                        /* absolute feature index */
    /* -- streaming statistics (dash_acc_finish) -- */
    int64_t n_positions, n_nonzero;   /* all positions fed (masked included); firing ones */
    double frac_nonzero;
    float max_value, min_nonzero;     /* 0, 0 when the feature never fires */
    int n_examples;                   /* top group (value desc, then (prompt, pos)), then the */
    dash_example *examples;           /* intervals from highest to lowest, each by value desc */
    int n_intervals;                  /* 0 when the feature never fires */
    dash_interval *intervals;         /* [j], j = 0 lowest */
    int n_hist;                       /* hist_bins, 0 when the feature never fires */
    float *hist_values;               /* bin centres */
    int64_t *hist_heights;
    int hist_exact;                   /* histogram and binContains equal a brute force */
    int64_t hist_err_max;             /* at most this many non-zeros sit in a bin next to their
                                       * brute-force bin (0 when hist_exact) */
    int examples_exact;               /* 0 only if interval_cap was hit */
    int n_corr_neurons;
    int32_t corr_neuron_idx[DASH_TOP3];
    float corr_neuron_pearson[DASH_TOP3], corr_neuron_cos[DASH_TOP3];
    int n_corr_features;
    int32_t corr_feature_idx[DASH_TOP3]; /* absolute feature indices */
    float corr_feature_pearson[DASH_TOP3], corr_feature_cos[DASH_TOP3];
    /* -- from the weights (dash_weights) -- */
    int n_logits;                     /* logit_k (≤ V) */
    int32_t *pos_ids, *neg_ids;       /* largest first / smallest first */
    float *pos_values, *neg_values;
    int n_logit_hist;
    float *logit_hist_values;         /* bin centres */
    int64_t *logit_hist_heights;
    int n_align;
    int32_t align_idx[DASH_TOP3];
    float align_values[DASH_TOP3], align_l1[DASH_TOP3];
    int n_cos;
    int32_t *cos_idx;                 /* other features, most similar first (ties: lower index) */
    float *cos_values;
    /* -- captured (dash_opts.capture_values), else NULL -- */
    float *example_values;            /* (n_examples, T): the feature's raw values over each
                                       * example's prompt, as fed to dash_acc_add */
} dash_feature;

/* n zeroed records with index = f0 + i; NULL on allocation failure. */
dash_feature *dash_features_new(int f0, int n);
void dash_features_free(dash_feature *a, int n);

typedef struct dash_acc dash_acc;

/* An accumulator for features [f0, f1) of prompts of T positions; d_in > 0 enables correlated
 * neurons (then every dash_acc_add needs x). NULL with err naming the bad option. */
dash_acc *dash_acc_new(const dash_opts *o, int f0, int f1, int T, int d_in, char *err, size_t errlen);
void dash_acc_free(dash_acc *a);

/* One batch of B prompts, prompt indices prompt0 .. prompt0+B-1 (≥ every index fed before).
 * acts: (B,T,F) activations of features f0..f1-1, host; mask: (B,T), 1 = counted position,
 * NULL = all counted; x: (B,T,d_in) SAE inputs, host, or NULL when d_in = 0. -1 with err. */
int dash_acc_add(dash_acc *a, const float *acts, const uint8_t *mask, int B, int64_t prompt0, const float *x,
                 char *err, size_t errlen);
/* The same with acts rows ld ≥ F floats apart (position r's features at acts + r·ld), so a
 * caller holding all d_sae features of a batch passes its range without copying it. */
int dash_acc_add_rows(dash_acc *a, const float *acts, size_t ld, const uint8_t *mask, int B, int64_t prompt0,
                      const float *x, char *err, size_t errlen);
/* Where acts' non-zeros are: position r's feature f0 + q (acts[r·ld + q]) is non-zero (any bit
 * pattern but +0.0) exactly when bit bit0 + q of bits[r·words ..] is set (bit b: bit b%64 of
 * word b/64), as sae_encode_map leaves it for all d_sae features with bit0 = f0. */
typedef struct dash_nzmap {
    const uint64_t *bits;
    size_t words;
    int bit0;
} dash_nzmap;
/* dash_acc_add_rows that takes the non-zeros from map (NULL: scans acts for them); the
 * results are the same bits either way. */
int dash_acc_add_map(dash_acc *a, const float *acts, size_t ld, const dash_nzmap *map, const uint8_t *mask, int B,
                     int64_t prompt0, const float *x, char *err, size_t errlen);

/* Heap bytes the accumulator holds now (scratch for the largest batch included). */
size_t dash_acc_bytes(const dash_acc *a);

/* Results for every feature of the range into *out (dash_features_new(f0, f1 - f0), filled;
 * free with dash_features_free). The accumulator stays usable (more batches may follow). */
int dash_acc_finish(dash_acc *a, dash_feature **out, char *err, size_t errlen);

typedef struct dash_wopts {
    int logit_k;        /* top/bottom logits (10) */
    int logit_bins;     /* logit histogram bins (50) */
    int cos_k;          /* decoder cosine-similarity neighbours (10) */
} dash_wopts;

void dash_wopts_default(dash_wopts *o);

/* Fills (allocates) the weight-derived fields of out[0 .. f1-f0), which must be unset — an
 * array from dash_acc_finish or dash_features_new — for features [f0, f1). W_dec: (d_sae,
 * d_in), the whole SAE (cosine neighbours are searched in all of it); W_U: (d_in, V), or
 * (V, d_in) when wu_rows_are_tokens (GPT-2's wte), or NULL to skip the logit lens. Host
 * memory. -1 with err. */
int dash_weights(const dash_wopts *o, const float *W_dec, int d_sae, int d_in, const float *W_U, int V,
                 int wu_rows_are_tokens, int f0, int f1, dash_feature *out, char *err, size_t errlen);

/* Decoder rows closest to q (d_in) in cosine, as Neuronpedia's util/sae-topk-by-decoder-cossim
 * ranks them: W_dec[i]·q / max(‖W_dec[i]‖‖q‖, 1e-8) (sums in double), every row a candidate
 * (a query that is row i finds i first), ties lower index first, a non-finite cosine ranked
 * below every finite one (as -inf). Offers rows row0 .. row0 + rows (W: (rows, d_in), host)
 * to the best-first selection idx/val of capacity k that holds n entries so far (0 at the
 * start), so the decoder can come a block at a time; returns the new count. */
int dash_decoder_nearest(const float *W, int rows, int d_in, int row0, const float *q, int k, int32_t *idx, float *val,
                         int n);

/* The exact formulas, exposed for exporters and tests. */
/* torch.linspace(a, b, n) in float32 (torch's two-sided algorithm). */
void dash_linspace(float a, float b, int n, float *out);
/* torch.histc's bin of v in [lo, hi] with bins bins (the caller has widened lo = hi). */
int dash_histc_bin(float v, float lo, float hi, int bins);
/* The interval-sampling key of (prompt, pos) for a feature: smaller keys are drawn first. */
uint64_t dash_sample_key(uint64_t seed, int64_t prompt, int pos, int feature);

#endif
