/* tok_split.c: see tok_split.h. Llama-3 / Qwen2 pre-tokenizer pattern
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 *   \s*[\r\n]+|\s+(?!\S)|\s+
 * (Qwen2: \p{N} alone), alternatives tried in order, first that matches wins, as a
 * backtracking engine does. \s is White_Space, \p{L}/\p{N} the general categories
 * (engine/unicode.c); invalid UTF-8 bytes are "other". Does not allocate. */
#include "engine/tok_split.h"

#include "engine/unicode.h" // defines: uni_utf8_next, uni_class

const char tok_split_llama3_pattern[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                        "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char tok_split_qwen2_pattern[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                       "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static inline int cls_at(const unsigned char *s, size_t n, size_t i, size_t *len)
{
    if (s[i] < 0x80) {
        *len = 1;
        return uni_ascii_class[s[i]];
    }
    uint32_t cp;
    *len = uni_utf8_next(s + i, n - i, &cp);
    return uni_class(cp);
}

static inline unsigned lower(unsigned c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

size_t tok_split_llama3_end(const unsigned char *s, size_t n, size_t i, int max_digits)
{
    size_t l;
    if (s[i] == '\'' && i + 1 < n) { // (?i:...): ASCII case folding, plus U+017F (long s) ~ s
        unsigned a = lower(s[i + 1]), b = i + 2 < n ? lower(s[i + 2]) : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
        if (a == 0xC5 && b == 0xBF) return i + 3;
    }
    size_t l0;
    int c0 = cls_at(s, n, i, &l0);
    int nl0 = s[i] == '\r' || s[i] == '\n';
    size_t j = i + l0;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (c0 == UNI_LETTER || (!nl0 && c0 != UNI_NUMBER && j < n && cls_at(s, n, j, &l) == UNI_LETTER)) {
        if (c0 != UNI_LETTER) j += l;
        while (j < n && cls_at(s, n, j, &l) == UNI_LETTER) j += l;
        return j;
    }
    if (c0 == UNI_NUMBER) { // \p{N}{1,max}
        for (int k = 1; k < max_digits && j < n && cls_at(s, n, j, &l) == UNI_NUMBER; k++) j += l;
        return j;
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    j = s[i] == ' ' ? i + 1 : i;
    if (j < n && cls_at(s, n, j, &l) == UNI_OTHER) {
        j += l;
        while (j < n && cls_at(s, n, j, &l) == UNI_OTHER) j += l;
        while (j < n && (s[j] == '\r' || s[j] == '\n')) j++;
        return j;
    }
    // c0 is white space here. \s*[\r\n]+: up to the run's last line break.
    size_t e = i, last = i, nl_end = 0;
    while (e < n && cls_at(s, n, e, &l) == UNI_SPACE) {
        if (s[e] == '\r' || s[e] == '\n') nl_end = e + 1;
        last = e;
        e += l;
    }
    if (nl_end) return nl_end;
    // \s+(?!\S), then \s+
    if (e == n) return e;
    return last > i ? last : e;
}
