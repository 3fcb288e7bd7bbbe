/* base64.c: see base64.h. */
#include "server/base64.h"

#include <stdlib.h>
#include <string.h>

static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *data, size_t n)
{
    const unsigned char *p = data;
    char *o = malloc(4 * ((n + 2) / 3) + 1), *q = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        *q++ = A[v >> 18 & 63];
        *q++ = A[v >> 12 & 63];
        *q++ = i + 1 < n ? A[v >> 6 & 63] : '=';
        *q++ = i + 2 < n ? A[v & 63] : '=';
    }
    *q = '\0';
    return o;
}

unsigned char *base64_decode(const char *t, size_t len, size_t *n)
{
    if (len % 4) return NULL;
    unsigned char *o = malloc(len / 4 * 3 + 1);
    size_t k = 0;
    for (size_t i = 0; o && i < len; i += 4) {
        unsigned v = 0;
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            char ch = t[i + j];
            const char *f = ch ? strchr(A, ch) : NULL;
            if (ch == '=' && i + 4 == len && j >= 2) {
                pad++;
                v <<= 6;
                continue;
            }
            if (!f || pad) {
                free(o);
                return NULL;
            }
            v = v << 6 | (unsigned)(f - A);
        }
        o[k++] = (unsigned char)(v >> 16);
        if (pad < 2) o[k++] = (unsigned char)(v >> 8);
        if (pad < 1) o[k++] = (unsigned char)v;
    }
    if (o) *n = k;
    return o;
}
