/* dataset.h: the prompt source of dashboard jobs. Reads a dataset in one of three formats,
 * makes one window of T tokens per document, drops exact duplicates and returns a seeded,
 * deterministic sample of n_prompts windows. Pure C (zlib, jansson, the GPT-2 tokenizer).
 *
 * It does NOT check that the path is allowed (SAED_DATA_ROOTS is the caller's), download
 * anything, run the model, or talk to SQL/HTTP.
 *
 * ---- Formats ----
 *  text    a file with one document per line ("\n", a trailing "\r" is dropped; an empty
 *          line is an empty document), or a directory: each *.txt file in it (byte order
 *          of the names, dot-files and subdirectories ignored) is ONE document, untouched.
 *  jsonl   JSON lines, one object per line, the document in the string field text_field
 *          ("text"). Blank lines are ignored.
 *  tokens  JSON lines with an integer array field (text_field, default "input_ids") of
 *          already tokenized ids, used as they are: row[:T], no BOS added, no tokenizer
 *          needed. Every id must lie in [0, vocab_size).
 * Any file may be gzip-compressed (.gz or not: zlib reads both). A directory given for jsonl
 * or tokens means its *.jsonl and *.jsonl.gz files in name order, each read line by line.
 *
 * ---- Windows ----
 * As SAEDashboard's ActivationsStore with disable_concat_sequences (shared/reference/
 * saelens-saedashboard.md §3.2 item 3), plus packing as an option.
 * Each document is tokenized without BOS (text never yields special tokens here). With
 * prepend_bos the window is [BOS] + doc[:T−1], else doc[:T]; a document with fewer tokens is
 * skipped (short). BOS is prepended whatever its id (SAELens skips an id of 0, a bug).
 * With pack, short non-empty documents are instead appended, in dataset order, to a pack
 * buffer — each preceded by BOS when prepend_bos — and every time the buffer reaches T
 * tokens it becomes a window (the document that overflows it is cut and the rest of it
 * dropped; if only its BOS fits, the window ends with that BOS) and the buffer restarts
 * empty. Full-length documents in between make their own windows and do not disturb the
 * buffer. An unfinished buffer at the end is dropped (its documents count as short). Only
 * the start of a document is tokenized (dataset_encode_prefix): a long document costs O(T).
 *
 * Exact duplicates: windows with identical ids are one window; the first occurrence (lowest
 * record) is kept. Deduplicated by a 64-bit hash of the ids; for the windows returned, hash
 * equality is confirmed by comparing the ids, so a hash collision can never drop or merge a
 * returned window (stats.hash_collisions counts any found).
 *
 * Sample: each distinct window w gets key(w) = dataset_sample_key(seed, hash(ids)); the
 * n_prompts windows with the smallest (key, record) are returned: a uniform sample of the
 * whole dataset (SAEDashboard instead takes the first n_prompts windows and shuffles them;
 * max_records bounds how much is read). Same dataset + seed + options → same prompts, bit
 * for bit, whatever else changes; a larger n_prompts returns a superset; fewer distinct
 * windows than n_prompts → all of them (out->n says how many).
 * OUTPUT ORDER: the chosen windows sorted by record, i.e. their position in the dataset.
 *
 * Records: the 0-based index of a line across all files of the dataset (every line counts,
 * blank or malformed), or of a file for a directory of .txt files. A packed window's record
 * is that of its first document.
 *
 * ---- Memory and passes ----
 * Pass 1 streams the whole dataset once (64 KiB reads; one line held at a time, capped at
 * max_line bytes) and keeps 16 bytes per window (sample key, record), sorted in place at
 * the end: O(windows), never O(text) — 16 MB per million documents (up to 2.5× that for
 * the moment the array grows). Pass 2 streams again only up to the last chosen record and
 * re-tokenizes only the chosen documents (and, with pack, the documents of a chosen packed
 * window), holding n ≤ n_prompts windows (n·T·4 bytes) and 16 bytes per member of a chosen
 * duplicate group. Measured on the 2-core dev box: 200 MB of text (43k lines, T 128, 24576
 * prompts) in 1.8 s at 36 MB peak RSS; 100 MB of JSON lines as .gz in 4.1 s.
 * The files must not change between the passes (a changed chosen window fails the load).
 *
 * ---- Malformed input ----
 * Bad JSON, a non-object line, a missing or non-string text field, a missing/non-array
 * input_ids, a non-integer id, an id outside [0, vocab_size), a JSON line longer than
 * max_line: reported as "path:line: message", counted and skipped (the first
 * DATASET_MAX_MSGS messages are kept), or with strict the load fails with that message.
 * Invalid UTF-8 and NUL bytes in text are tokenized as bytes. Text lines (and .txt files)
 * longer than max_line keep their first max_line bytes (only the start is ever used).
 * I/O errors (unreadable file, corrupt gzip) always fail the load.
 *
 * Thread-safety: reentrant; the tokenizer is only read. */
#ifndef SAED_ENGINE_DATASET_H
#define SAED_ENGINE_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer.h" // defines: tokenizer

#define DATASET_MAX_MSGS 8
#define DATASET_MSG_LEN 256
#define DATASET_DEFAULT_MAX_LINE ((size_t)64 << 20)

typedef enum dataset_format { DATASET_TEXT, DATASET_JSONL, DATASET_TOKENS } dataset_format;

/* Called about every MiB read and at the end of each file: pass 1 or 2, (compressed) bytes
 * read so far and the size of all files (pass 2 may stop early). Non-zero cancels the load. */
typedef int (*dataset_progress_fn)(void *ctx, int pass, uint64_t done, uint64_t total);

typedef struct dataset_opts {
    dataset_format format;
    const char *path;        /* file or directory */
    const char *text_field;  /* NULL: "text" (jsonl), "input_ids" (tokens) */
    int T;                   /* n_tokens_in_prompt, 1..1048576 (≥ 2 with prepend_bos) */
    int prepend_bos;
    int32_t bos_id;          /* < 0: the tokenizer's <|endoftext|> */
    int pack;                /* 0: short documents skipped (SAEDashboard); 1: packed */
    int n_prompts;           /* ≥ 1 */
    uint64_t seed;
    int strict;              /* 1: the first malformed line fails the load */
    int vocab_size;          /* ids must be below; 0: the tokenizer's (no check without one) */
    uint64_t max_records;    /* read only the first records (0: all) */
    size_t max_line;         /* 0: DATASET_DEFAULT_MAX_LINE */
    int hash_bits;           /* tests only: keep this many bits of the hash (0: 64) to force collisions */
    dataset_progress_fn progress;
    void *progress_ctx;
} dataset_opts;

/* format text, T 128, prepend_bos 1, bos_id -1, n_prompts 24576, everything else 0/NULL. */
void dataset_opts_default(dataset_opts *o);
/* "text" | "jsonl" | "tokens" → 0, else -1. */
int dataset_format_parse(const char *s, dataset_format *f);
const char *dataset_format_name(dataset_format f);

typedef struct dataset_source {
    uint64_t record;         /* see "Records" */
    const char *file;        /* the file holding it (owned by the result) */
    uint64_t line;           /* 1-based line in that file (1 for a .txt file document) */
    int n_docs;              /* documents in the window: 1, more when packed */
} dataset_source;

typedef struct dataset_stats {
    uint64_t records;        /* lines (or .txt files) read in pass 1 */
    uint64_t documents;      /* records that gave a document (not blank, not malformed) */
    uint64_t windows;        /* windows made, duplicates included */
    uint64_t packed_windows; /* of which packed */
    uint64_t unique_windows; /* distinct windows (64-bit hash; exact whenever ≤ n_prompts) */
    uint64_t duplicates;     /* windows dropped as duplicates: windows − unique_windows */
    uint64_t short_skipped;  /* documents too short for a window and not packed */
    uint64_t malformed;      /* lines skipped as malformed */
    uint64_t hash_collisions;/* distinct windows found sharing a hash (expect 0) */
    uint64_t bytes;          /* compressed bytes read in pass 1 */
    int n_msgs;
    char msgs[DATASET_MAX_MSGS][DATASET_MSG_LEN]; /* the first malformed-line messages */
} dataset_stats;

typedef struct dataset_result {
    int n;                   /* windows returned: min(n_prompts, unique windows) */
    int T;
    int32_t *ids;            /* (n, T) */
    dataset_source *src;     /* (n) */
    dataset_stats stats;
    char **files;            /* (n_files) the dataset's files in reading order; src[].file points here */
    int n_files;
} dataset_result;

/* Loads the sample into *out (zeroed first; free with dataset_result_free, also after a
 * failure). tok may be NULL for the tokens format. 0, or -1 with err (an option error names
 * the option; a strict failure is "path:line: message"). Zero windows is not an error. */
int dataset_prompts(const dataset_opts *o, const tokenizer *tok, dataset_result *out, char *err, size_t errlen);
void dataset_result_free(dataset_result *r);

/* Tokenizes just enough of text to know its first `need` tokens, exactly as tok_encode of
 * the whole text would give them: it encodes a prefix that ends before an ASCII whitespace
 * that follows a printable ASCII character (a pre-token boundary whatever follows), growing
 * it ×4 until `need` tokens come out or the text is done. With complete = 0 the text is a cut
 * prefix of a longer document: the end of the text is not treated as the end of a document
 * unless no boundary exists. Returns the number of ids in *ids (malloc'd; ≥ need, or all of
 * a shorter text), or -1 with err. */
int dataset_encode_prefix(const tokenizer *tok, const char *text, size_t len, int complete, int need,
                          int32_t **ids, char *err, size_t errlen);

/* The 64-bit hash of a window's ids that deduplication uses, and the sample key of a window
 * with that hash: a bijection of the hash for a given seed. */
uint64_t dataset_window_hash(const int32_t *ids, int n);
uint64_t dataset_sample_key(uint64_t seed, uint64_t hash);

#endif
