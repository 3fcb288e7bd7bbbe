/* jinja_lex.c: splits a chat template into text and tag tokens as Jinja2's lexer does with
 * transformers' settings: trim_blocks (the first newline after %} or #} goes), lstrip_blocks
 * (spaces and tabs between a line's start and {% or {# go), "-" on either side of a tag strips
 * all whitespace that way, "+" turns lstrip/trim off for that tag, and one trailing newline of
 * the template goes. Inside tags: names, numbers, strings (Python escapes) and operators.
 * Comments vanish here. Not handled: line statements, custom delimiters, {% raw %} (the parser
 * refuses it). */
#include "engine/jinja.h"

#include <errno.h>  // defines: errno, ERANGE
#include <stdlib.h> // defines: strtod, strtoll
#include <string.h> // defines: strncmp, memchr

typedef struct lexer { jctx *c; const char *s; size_t n, i; jtok *t; size_t nt, cap; } lexer;

static void emit(lexer *L, jtok t)
{
    if (L->nt == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 256;
        jtok *nt = jj_alloc(L->c, cap * sizeof *nt);
        if (L->nt) memcpy(nt, L->t, L->nt * sizeof *nt);
        L->t = nt, L->cap = cap;
    }
    L->t[L->nt++] = t;
}

static int ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f'; }
static int idstart(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_'; }
static int idchar(char ch) { return idstart(ch) || (ch >= '0' && ch <= '9'); }
static int hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

static size_t put_utf8(char *o, unsigned long cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) { o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | (cp >> 6 & 63)), o[2] = (char)(0x80 | (cp & 63)); return 3; }
    o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | (cp >> 12 & 63)), o[2] = (char)(0x80 | (cp >> 6 & 63)), o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* A quoted string at L->i, unescaped as Python's unicode-escape does (unknown escapes stay). */
static void lex_string(lexer *L)
{
    size_t start = L->i;
    char q = L->s[L->i++];
    size_t j = L->i;
    while (j < L->n && L->s[j] != q) j += L->s[j] == '\\' ? 2 : 1;
    if (j >= L->n) jj_fail(L->c, start, "syntax error: unterminated string");
    char *o = jj_alloc(L->c, j - L->i + 1);
    size_t k = 0;
    for (size_t i = L->i; i < j; i++) {
        char ch = L->s[i];
        if (ch != '\\') { o[k++] = ch; continue; }
        char e = L->s[++i];
        int digits = 0;
        switch (e) {
        case 'n': o[k++] = '\n'; break;
        case 't': o[k++] = '\t'; break;
        case 'r': o[k++] = '\r'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'v': o[k++] = '\v'; break;
        case 'a': o[k++] = '\a'; break;
        case '\\': case '\'': case '"': o[k++] = e; break;
        case '\n': break;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
            if (e >= '0' && e <= '7') {
                unsigned long v = 0;
                int m = 0;
                while (m < 3 && i < j && L->s[i] >= '0' && L->s[i] <= '7') v = v * 8 + (unsigned long)(L->s[i++] - '0'), m++;
                i--;
                k += put_utf8(o + k, v);
            } else o[k++] = '\\', o[k++] = e;
        }
        if (digits) {
            unsigned long v = 0;
            for (int m = 0; m < digits; m++) {
                int h = i + 1 < j ? hexval(L->s[i + 1]) : -1;
                if (h < 0) jj_fail(L->c, start, "syntax error: truncated \\%c escape in a string", e);
                v = v * 16 + (unsigned long)h, i++;
            }
            if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) jj_fail(L->c, start, "not implemented: escape of code point 0x%lx", v);
            k += put_utf8(o + k, v);
        }
    }
    o[k] = 0;
    emit(L, (jtok){.t = JT_STRING, .p = o, .n = k, .pos = start});
    L->i = j + 1;
}

static void lex_number(lexer *L)
{
    size_t start = L->i, j = L->i;
    int isf = 0;
    while (j < L->n && ((L->s[j] >= '0' && L->s[j] <= '9') || L->s[j] == '_')) j++;
    if (j + 1 < L->n && L->s[j] == '.' && L->s[j + 1] >= '0' && L->s[j + 1] <= '9') {
        isf = 1, j++;
        while (j < L->n && ((L->s[j] >= '0' && L->s[j] <= '9') || L->s[j] == '_')) j++;
    }
    if (j < L->n && (L->s[j] == 'e' || L->s[j] == 'E')) {
        size_t e = j + 1;
        if (e < L->n && (L->s[e] == '+' || L->s[e] == '-')) e++;
        if (e < L->n && L->s[e] >= '0' && L->s[e] <= '9') {
            isf = 1, j = e;
            while (j < L->n && L->s[j] >= '0' && L->s[j] <= '9') j++;
        }
    }
    char buf[64];
    size_t k = 0;
    for (size_t i = start; i < j && k < sizeof buf - 1; i++)
        if (L->s[i] != '_') buf[k++] = L->s[i];
    buf[k] = 0;
    jtok t = {.t = isf ? JT_FLOAT : JT_INT, .pos = start};
    if (isf) t.f = strtod(buf, NULL);
    else {
        errno = 0;
        t.i = strtoll(buf, NULL, 10);
        if (errno == ERANGE || k >= sizeof buf - 1) jj_fail(L->c, start, "not implemented: integer literal beyond 64 bits");
    }
    emit(L, t);
    L->i = j;
}

static const char *const ops2[] = {"//", "**", "==", "!=", "<=", ">="};

/* The inside of a {{ }} or {% %} tag up to its end; returns the end's whitespace modifier. */
static char lex_tag(lexer *L, int var, size_t open)
{
    int depth = 0;
    for (;;) {
        while (L->i < L->n && ws(L->s[L->i])) L->i++;
        if (L->i >= L->n) jj_fail(L->c, open, "syntax error: %s not closed", var ? "{{" : "{%");
        const char *p = L->s + L->i;
        size_t left = L->n - L->i;
        if (!depth) {
            const char *end = var ? "}}" : "%}";
            if (left >= 3 && (p[0] == '-' || (!var && p[0] == '+')) && !strncmp(p + 1, end, 2)) {
                emit(L, (jtok){.t = var ? JT_VAR_END : JT_BLOCK_END, .pos = L->i});
                L->i += 3;
                return p[0];
            }
            if (left >= 2 && !strncmp(p, end, 2)) {
                emit(L, (jtok){.t = var ? JT_VAR_END : JT_BLOCK_END, .pos = L->i});
                L->i += 2;
                return 0;
            }
        }
        char ch = *p;
        if (ch == '\'' || ch == '"') { lex_string(L); continue; }
        if (ch >= '0' && ch <= '9') { lex_number(L); continue; }
        if (idstart(ch)) {
            size_t j = L->i;
            while (j < L->n && idchar(L->s[j])) j++;
            emit(L, (jtok){.t = JT_NAME, .p = jj_strdup(L->c, p, j - L->i), .n = j - L->i, .pos = L->i});
            L->i = j;
            continue;
        }
        size_t len = 0;
        for (size_t k = 0; k < sizeof ops2 / sizeof *ops2; k++)
            if (left >= 2 && !strncmp(p, ops2[k], 2)) len = 2;
        if (!len && strchr("+-*/%~<>=()[]{},.:|", ch)) len = 1;
        if (!len) jj_fail(L->c, L->i, "syntax error: unexpected character '%c'", ch);
        if (ch == '(' || ch == '[' || ch == '{') depth++;
        if ((ch == ')' || ch == ']' || ch == '}') && depth) depth--;
        emit(L, (jtok){.t = JT_OP, .p = jj_strdup(L->c, p, len), .n = len, .pos = L->i});
        L->i += len;
    }
}

/* After a tag's end: "-" eats all whitespace, else trim_blocks eats one newline (not after
 * {{ }}, not after "+"). Returns whether the text now starts a line (for lstrip_blocks). */
static int after_tag(lexer *L, char mod, int block)
{
    size_t i0 = L->i;
    if (mod == '-') while (L->i < L->n && ws(L->s[L->i])) L->i++;
    else if (block && mod != '+' && L->i < L->n && L->s[L->i] == '\n') L->i++;
    return L->i > i0 && L->s[L->i - 1] == '\n';
}

jtok *jj_lex(jctx *c, const char *src, size_t n, size_t *ntok)
{
    lexer L = {.c = c, .s = src, .n = n};
    if (n && src[n - 1] == '\n') L.n = --n; /* keep_trailing_newline=False */
    int line_start = 1;
    while (L.i < L.n) {
        size_t j = L.i;
        const char *tag = NULL;
        for (; j + 1 < L.n; j++)
            if (src[j] == '{' && (src[j + 1] == '{' || src[j + 1] == '%' || src[j + 1] == '#')) { tag = src + j; break; }
        if (!tag) j = L.n;
        size_t tn = j - L.i;
        char kind = tag ? tag[1] : 0, mod = tag && j + 2 < L.n ? src[j + 2] : 0;
        if (mod != '-' && mod != '+') mod = 0;
        if (kind == '{' && mod == '+') mod = 0;
        const char *text = src + L.i;
        if (mod == '-') while (tn && ws(text[tn - 1])) tn--;
        else if (tag && kind != '{' && mod != '+') {
            size_t lp = tn;
            while (lp && text[lp - 1] != '\n') lp--;
            int only_ws = lp < tn;
            for (size_t k = lp; k < tn; k++) only_ws &= text[k] == ' ' || text[k] == '\t' || text[k] == '\r' || text[k] == '\v' || text[k] == '\f';
            if ((lp > 0 || line_start) && only_ws) tn = lp;
        }
        if (tn) emit(&L, (jtok){.t = JT_TEXT, .p = text, .n = tn, .pos = L.i});
        if (!tag) break;
        size_t open = j;
        L.i = j + 2 + (mod != 0);
        if (kind == '#') {
            size_t k = L.i;
            while (k + 1 < L.n && !(src[k] == '#' && src[k + 1] == '}')) k++;
            if (k + 1 >= L.n) jj_fail(c, open, "syntax error: comment not closed");
            char emod = k > L.i && src[k - 1] == '-' ? '-' : k > L.i && src[k - 1] == '+' ? '+' : 0;
            L.i = k + 2;
            line_start = after_tag(&L, emod, 1);
            continue;
        }
        emit(&L, (jtok){.t = kind == '{' ? JT_VAR_BEGIN : JT_BLOCK_BEGIN, .pos = open});
        char emod = lex_tag(&L, kind == '{', open);
        line_start = after_tag(&L, emod, kind == '%');
    }
    emit(&L, (jtok){.t = JT_EOF, .pos = L.n});
    *ntok = L.nt;
    return L.t;
}
