/* unicode.c: see unicode.h. Classes come from a binary search over the generated range table;
 * ASCII has its own 128-entry table. Does not allocate. */
#include "engine/unicode.h"

typedef struct uni_range {
    uint32_t lo, hi; // inclusive
    int cls;         // enum uni_class
} uni_range;

#include "engine/unicode_tables.h" // defines: uni_ranges

/* Filled from the same facts as the table (checked against it by tests/unit_tokenizer.c):
 * \t..\r and ' ' are White_Space, 0-9 numbers, A-Z a-z letters. */
const unsigned char uni_ascii_class[128] = {
    ['\t'] = UNI_SPACE, ['\n'] = UNI_SPACE, ['\v'] = UNI_SPACE, ['\f'] = UNI_SPACE, ['\r'] = UNI_SPACE,
    [' '] = UNI_SPACE,
    ['0' ... '9'] = UNI_NUMBER,
    ['A' ... 'Z'] = UNI_LETTER,
    ['a' ... 'z'] = UNI_LETTER,
};

int uni_class_slow(uint32_t cp)
{
    size_t lo = 0, hi = sizeof uni_ranges / sizeof uni_ranges[0];
    while (lo < hi) { // first range with hi >= cp
        size_t mid = (lo + hi) / 2;
        if (uni_ranges[mid].hi < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo < sizeof uni_ranges / sizeof uni_ranges[0] && uni_ranges[lo].lo <= cp) return uni_ranges[lo].cls;
    return UNI_OTHER;
}

size_t uni_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v;
    unsigned lo = 0x80, hi = 0xBF; // allowed range of the second byte (RFC 3629's table)
    if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;      // overlong
        else if (c == 0xED) hi = 0x9F; // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07;
        if (c == 0xF0) lo = 0x90;      // overlong
        else if (c == 0xF4) hi = 0x8F; // above U+10FFFF
    } else {
        *cp = UNI_INVALID;
        return 1;
    }
    if (n < len || s[1] < lo || s[1] > hi) {
        *cp = UNI_INVALID;
        return 1;
    }
    v = v << 6 | (s[1] & 0x3F);
    for (size_t i = 2; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = UNI_INVALID;
            return 1;
        }
        v = v << 6 | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}
