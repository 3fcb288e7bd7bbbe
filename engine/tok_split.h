/* tok_split.h: hand-written matchers for the Split pre-tokenizer regexes saed accepts in a
 * tokenizer.json (internal to the tokenizer; engine/tok_split.c). Each is keyed on the exact
 * pattern string; anything else is refused at load. */
#ifndef SAED_ENGINE_TOK_SPLIT_H
#define SAED_ENGINE_TOK_SPLIT_H

#include <stddef.h>

/* Llama-3's pattern (digit runs of at most 3) and Qwen2's (single digits); NULL for others. */
extern const char tok_split_llama3_pattern[], tok_split_qwen2_pattern[];

/* End of the regex match that starts at i (i < n): the patterns tile any text, so pieces are
 * [i, end) in turn. max_digits: 3 for Llama-3, 1 for Qwen2. */
size_t tok_split_llama3_end(const unsigned char *s, size_t n, size_t i, int max_digits);

#endif
