/* saes_yaml.c: see saes_yaml.h. A small tree of the document's nodes with the lines each
 * spans (libyaml counts lines from 0), then whole-line edits on the original text. */
#define _GNU_SOURCE
#include "server/saes_yaml.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

typedef struct yn {
    char kind;              /* 's' scalar, 'm' mapping (kids: key, value, ...), 'q' sequence, 'a' alias */
    int flow;
    size_t line0, line1;    /* first line, and the last line with its content */
    char *val;              /* scalar */
    struct yn **kid;
    int nk, cap;
} yn;

static void yn_free(yn *n)
{
    if (!n) return;
    for (int i = 0; i < n->nk; i++) yn_free(n->kid[i]);
    free(n->kid);
    free(n->val);
    free(n);
}

static int yn_add(yn *n, yn *k)
{
    if (n->nk == n->cap) {
        int c = n->cap ? 2 * n->cap : 8;
        yn **nk = realloc(n->kid, sizeof *nk * (size_t)c);
        if (!nk) return -1;
        n->kid = nk;
        n->cap = c;
    }
    n->kid[n->nk++] = k;
    if (k->line1 > n->line1) n->line1 = k->line1;
    return 0;
}

/* The last line a mark ending a node belongs to: a mark at column 0 ends the line before. */
static size_t end_line(yaml_mark_t m, size_t start)
{
    return m.column == 0 && m.line > start ? m.line - 1 : m.line;
}

/* The node that ev starts (ev is consumed); NULL on a parse error (*bad set). */
static yn *node_of(yaml_parser_t *p, yaml_event_t *ev, int depth, int *bad)
{
    yn *n = calloc(1, sizeof *n);
    if (!n || depth > 64) {
        free(n);
        yaml_event_delete(ev);
        *bad = 1;
        return NULL;
    }
    n->line0 = ev->start_mark.line;
    n->line1 = end_line(ev->end_mark, n->line0);
    yaml_event_type_t end = YAML_NO_EVENT;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        n->kind = 's';
        n->val = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        break;
    case YAML_ALIAS_EVENT: n->kind = 'a'; break;
    case YAML_SEQUENCE_START_EVENT:
        n->kind = 'q';
        n->flow = ev->data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE;
        end = YAML_SEQUENCE_END_EVENT;
        break;
    case YAML_MAPPING_START_EVENT:
        n->kind = 'm';
        n->flow = ev->data.mapping_start.style == YAML_FLOW_MAPPING_STYLE;
        end = YAML_MAPPING_END_EVENT;
        break;
    default: *bad = 1;
    }
    yaml_event_delete(ev);
    if (*bad || end == YAML_NO_EVENT) {
        if (*bad) yn_free(n);
        return *bad ? NULL : n;
    }
    for (;;) {
        yaml_event_t c;
        if (!yaml_parser_parse(p, &c)) {
            *bad = 1;
            break;
        }
        if (c.type == end) {
            /* A block collection's end mark sits at the next token, past comments and blank
             * lines; only a flow collection's (after its bracket) is its own. */
            if (n->flow) n->line1 = end_line(c.end_mark, n->line0);
            yaml_event_delete(&c);
            break;
        }
        yn *k = node_of(p, &c, depth + 1, bad);
        if (!k || yn_add(n, k)) {
            yn_free(k);
            *bad = 1;
            break;
        }
    }
    if (*bad) {
        yn_free(n);
        return NULL;
    }
    return n;
}

/* The document's root node (NULL for an empty text: *bad stays 0). */
static yn *parse(const char *text, size_t len, char *err, size_t errlen, int *bad)
{
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    yn *root = NULL;
    *bad = 0;
    for (int done = 0; !done && !*bad;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            *bad = 1;
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
        case YAML_DOCUMENT_END_EVENT: done = 1; /* the first document only */ /* fall through */
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_START_EVENT: yaml_event_delete(&ev); break;
        default: root = node_of(&p, &ev, 0, bad);
        }
    }
    if (*bad) {
        snprintf(err, errlen, "line %zu: %s", p.problem_mark.line + 1, p.problem ? p.problem : "invalid YAML");
        yn_free(root);
        root = NULL;
    }
    yaml_parser_delete(&p);
    return root;
}

/* The value of key in mapping m (NULL when absent). */
static yn *get(const yn *m, const char *key)
{
    for (int i = 0; m && m->kind == 'm' && i + 1 < m->nk; i += 2)
        if (m->kid[i]->kind == 's' && !strcmp(m->kid[i]->val, key)) return m->kid[i + 1];
    return NULL;
}

static const yn *get_key(const yn *m, const char *key)
{
    for (int i = 0; m && m->kind == 'm' && i + 1 < m->nk; i += 2)
        if (m->kid[i]->kind == 's' && !strcmp(m->kid[i]->val, key)) return m->kid[i];
    return NULL;
}

/* ---- the text as lines ---- */

typedef struct lines {
    const char *t;
    size_t *at;             /* start offset of each line; at[n] = length */
    size_t n;
    const char *eol;        /* the file's line break, for inserted lines */
} lines;

static int lines_of(lines *L, const char *t, size_t len)
{
    L->t = t;
    L->n = 0;
    L->eol = "\n";
    size_t cap = 1024;
    L->at = malloc(sizeof *L->at * cap);
    if (!L->at) return -1;
    L->at[L->n++] = 0;
    for (size_t i = 0; i < len; i++) {
        int br = t[i] == '\n' || (t[i] == '\r' && (i + 1 >= len || t[i + 1] != '\n'));
        if (t[i] == '\r' && i + 1 < len && t[i + 1] == '\n' && L->n == 1) L->eol = "\r\n";
        if (!br || i + 1 >= len) continue;
        if (L->n + 1 >= cap) {
            size_t *na = realloc(L->at, sizeof *na * (cap *= 2));
            if (!na) return -1;
            L->at = na;
        }
        L->at[L->n++] = i + 1;
    }
    L->at[L->n] = len;
    return 0;
}

/* Leading spaces of line i. */
static size_t indent_of(const lines *L, size_t i)
{
    size_t k = 0;
    while (L->at[i] + k < L->at[i + 1] && L->t[L->at[i] + k] == ' ') k++;
    return k;
}

/* ---- rendering ---- */

/* Whether s reads back as the same string when written plain, for libyaml and for PyYAML's
 * YAML 1.1 (yes/no/on/off are booleans there), in block and in flow context. */
static int plain_ok(const char *s)
{
    static const char *const words[] = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"};
    if (!*s || !(isalpha((unsigned char)*s) || *s == '_')) return 0;
    for (const char *c = s; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("_./-", *c)) return 0;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (!strcasecmp(s, words[i])) return 0;
    char *end;
    (void)strtod(s, &end);
    return *end != '\0'; /* "inf", "nan" */
}

static void put_scalar(FILE *f, const json_t *v)
{
    if (json_is_string(v) && plain_ok(json_string_value(v))) {
        fputs(json_string_value(v), f);
    } else if (json_is_real(v)) {
        fprintf(f, "%.6g", json_real_value(v));
    } else {
        /* A JSON string is a YAML double-quoted scalar; integers, booleans and null as JSON writes them. */
        char *s = json_dumps(v, JSON_ENCODE_ANY);
        fputs(s ? s : "null", f);
        free(s);
    }
}

static void put_key(FILE *f, const char *k)
{
    json_t *s = json_string(k);
    put_scalar(f, s);
    json_decref(s);
    fputs(":", f);
}

/* One saes item: "- {k: v, ...}" (flow) or "- k: v" and then "k: v" lines at cont. */
static void put_item(FILE *f, const json_t *sae, size_t dash, size_t cont, int flow, const char *eol)
{
    const char *k;
    json_t *v;
    int first = 1;
    fprintf(f, "%*s-%s", (int)dash, "", flow ? " {" : "");
    json_object_foreach((json_t *)sae, k, v) {
        if (flow) fputs(first ? "" : ", ", f);
        else if (first) fprintf(f, "%*s", (int)(cont > dash + 1 ? cont - dash - 1 : 1), "");
        else fprintf(f, "%*s", (int)cont, "");
        put_key(f, k);
        fputs(" ", f);
        put_scalar(f, v);
        if (!flow) fputs(eol, f);
        first = 0;
    }
    if (flow) fprintf(f, "}%s", eol);
}

/* ---- the merge ---- */

typedef struct edit {
    size_t from, to;        /* lines [from, to) replaced by text (from == to: inserted before from) */
    char *text;
    size_t len;
} edit;

static char *apply(const lines *L, const edit *ed)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    if (!f) return NULL;
    size_t a = L->at[ed->from], b = L->at[ed->to];
    fwrite(L->t, 1, a, f);
    /* Inserting after a last line that has no line break gives it one. */
    if (a > 0 && L->t[a - 1] != '\n' && L->t[a - 1] != '\r') fputs(L->eol, f);
    fwrite(ed->text, 1, ed->len, f);
    fwrite(L->t + b, 1, L->at[L->n] - b, f);
    fclose(f);
    return out;
}

/* The line of the "-" that opens item it (its content may start a line or two later). */
static size_t dash_line(const lines *L, const yn *it)
{
    for (size_t i = it->line0, stop = it->line0 > 3 ? it->line0 - 3 : 0;; i--) {
        size_t k = indent_of(L, i);
        if (L->at[i] + k < L->at[i + 1] && L->t[L->at[i] + k] == '-') return i;
        if (i == stop) return it->line0;
    }
}

/* The "-" column and the column its content starts at, from line i. */
static void dash_cols(const lines *L, size_t i, size_t *dash, size_t *cont)
{
    *dash = indent_of(L, i);
    size_t k = L->at[i] + *dash + 1;
    while (k < L->at[i + 1] && L->t[k] == ' ') k++;
    *cont = k - L->at[i];
    if (*cont <= *dash + 1 || k >= L->at[i + 1] || L->t[k] == '\n' || L->t[k] == '\r') *cont = *dash + 2;
}

static int merge(const yn *root, const lines *L, const json_t *entry, const json_t *sae, const char *repo_id,
                 const char *release_default, edit *ed, char *release, size_t rn, char *err, size_t errlen)
{
    FILE *f = open_memstream(&ed->text, &ed->len);
    if (!f) return snprintf(err, errlen, "out of memory"), SY_INVALID;
    const char *path = json_string_value(json_object_get(sae, "path"));
    const yn *rel = NULL;
    for (int i = 0; root && i + 1 < root->nk; i += 2) {
        const yn *v = root->kid[i + 1], *r = get(v, "repo_id");
        if (root->kid[i]->kind == 's' && r && r->kind == 's' && !strcmp(r->val, repo_id)) {
            rel = v;
            snprintf(release, rn, "%s", root->kid[i]->val);
            break;
        }
    }
    int rc = SY_OK;
    if (rel) {
        const yn *saes = get(rel, "saes");
        if (rel->flow) {
            rc = SY_LAYOUT;
            snprintf(err, errlen, "release '%s' is a flow mapping ({...}) on line %zu; write it in block style", release,
                     rel->line0 + 1);
        } else if (!saes) {
            /* No list yet: one after the release's last line, at its keys' indent. */
            size_t ind = indent_of(L, rel->line0);
            fprintf(f, "%*ssaes:%s", (int)ind, "", L->eol);
            put_item(f, sae, ind, ind + 2, 0, L->eol);
            ed->from = ed->to = rel->line1 + 1;
        } else if (saes->kind == 'q' && saes->nk > 0 && !saes->flow) {
            const yn *hit = NULL, *last = saes->kid[saes->nk - 1];
            for (int i = 0; i < saes->nk && path; i++) {
                const yn *p = get(saes->kid[i], "path");
                if (p && p->kind == 's' && !strcmp(p->val, path)) hit = saes->kid[i];
            }
            const yn *like = hit ? hit : last;
            size_t dl = dash_line(L, like), dash, cont;
            dash_cols(L, dl, &dash, &cont);
            put_item(f, sae, dash, cont, like->flow, L->eol);
            ed->from = hit ? dl : last->line1 + 1;
            ed->to = hit ? hit->line1 + 1 : ed->from;
        } else if ((saes->kind == 'q' && saes->nk == 0) || saes->kind == 's') {
            /* "saes: []", "saes: null" or "saes:" with nothing: that line becomes "saes:" (its
             * comment kept) and the list follows. */
            size_t kl = get_key(rel, "saes")->line0, ind = indent_of(L, kl), ll = L->at[kl + 1] - L->at[kl];
            const char *a = L->t + L->at[kl], *colon = memchr(a, ':', ll), *hash = memchr(a, '#', ll);
            char rest[64] = "";
            if (colon) {
                size_t rl = (size_t)((hash ? hash : a + ll) - colon - 1);
                snprintf(rest, sizeof rest, "%.*s", (int)(rl < sizeof rest ? rl : sizeof rest - 1), colon + 1);
            }
            char *r0 = rest + strspn(rest, " \t");
            r0[strcspn(r0, " \t\r\n")] = '\0';
            if (!colon || (*r0 && strcmp(r0, "[]") && strcmp(r0, "~") && strcmp(r0, "null"))) {
                rc = SY_LAYOUT;
                snprintf(err, errlen, "the saes of release '%s' (line %zu) are not a list on their key's line", release, kl + 1);
            } else {
                fprintf(f, "%.*s", (int)(colon - a + 1), a);
                if (hash) fprintf(f, " %.*s", (int)strcspn(hash, "\r\n"), hash);
                fputs(L->eol, f);
                put_item(f, sae, ind, ind + 2, 0, L->eol);
                ed->from = kl;
                ed->to = kl + 1;
            }
        } else {
            rc = SY_LAYOUT;
            snprintf(err, errlen, "the saes of release '%s' (line %zu) are not a block list (- ...); write them in block style",
                     release, saes->line0 + 1);
        }
    } else {
        snprintf(release, rn, "%s", release_default);
        if (get(root, release)) {
            rc = SY_CONFLICT;
            const yn *r = get(get(root, release), "repo_id");
            snprintf(err, errlen, "release '%s' already exists for repo %s", release, r && r->kind == 's' ? r->val : "(none)");
        }
        /* A new release after the last one, indented as the file's first release is. */
        size_t ind = 2;
        if (root && root->nk >= 2 && root->kid[1]->kind == 'm' && !root->kid[1]->flow && root->kid[1]->nk)
            ind = indent_of(L, root->kid[1]->kid[0]->line0);
        if (!ind) ind = 2;
        put_key(f, release);
        fputs(L->eol, f);
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)entry, k, v) {
            if (!strcmp(k, "saes")) continue;
            fprintf(f, "%*s", (int)ind, "");
            put_key(f, k);
            fputs(" ", f);
            put_scalar(f, v);
            fputs(L->eol, f);
        }
        fprintf(f, "%*ssaes:%s", (int)ind, "", L->eol);
        put_item(f, sae, ind, ind + 2, 0, L->eol);
        ed->from = ed->to = root ? root->line1 + 1 : L->n;
        /* Past the last line (an empty root, or a text of one line without a break). */
        if (ed->from > L->n) ed->from = ed->to = L->n;
    }
    fclose(f);
    if (ed->to > L->n) ed->to = L->n;
    if (ed->from > ed->to) ed->from = ed->to;
    return rc;
}

int saes_yaml_merge(const char *text, const json_t *entry, const char *release_default, char **out, char *release,
                    size_t rn, char *err, size_t errlen)
{
    *out = NULL;
    if (!text) text = "";
    size_t len = strlen(text);
    json_t *sae = json_array_get(json_object_get(entry, "saes"), 0);
    const char *repo_id = json_string_value(json_object_get(entry, "repo_id"));
    if (!json_is_object(sae) || !repo_id) return snprintf(err, errlen, "the entry has no repo_id or no SAE"), SY_INVALID;
    /* libyaml also breaks lines at NEL, LS and PS, which the line table does not. */
    if (strstr(text, "\xc2\x85") || strstr(text, "\xe2\x80\xa8") || strstr(text, "\xe2\x80\xa9"))
        return snprintf(err, errlen, "the file has Unicode line separators (NEL, LS, PS)"), SY_LAYOUT;
    int bad;
    yn *root = parse(text, len, err, errlen, &bad);
    if (bad) return SY_INVALID;
    if (root && root->kind == 's' && !*root->val) {
        yn_free(root); /* only comments, or "---" alone */
        root = NULL;
    }
    if (root && (root->kind != 'm' || root->flow)) {
        snprintf(err, errlen, "not a block mapping of releases");
        yn_free(root);
        return SY_INVALID;
    }
    lines L;
    if (lines_of(&L, text, len)) {
        yn_free(root);
        return snprintf(err, errlen, "out of memory"), SY_INVALID;
    }
    edit ed = {0};
    int rc = merge(root, &L, entry, sae, repo_id, release_default, &ed, release, rn, err, errlen);
    if (rc == SY_OK && !(*out = apply(&L, &ed))) rc = (snprintf(err, errlen, "out of memory"), SY_INVALID);
    free(ed.text);
    free(L.at);
    yn_free(root);
    return rc;
}
