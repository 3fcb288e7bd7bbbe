/* unit_chat_template.c: the chat-template renderer (engine/chat_template.h) against golden
 * renders of real chat templates and of one-feature templates, made by @huggingface/jinja
 * 0.5.13 (tests/tok/gen_chat.mjs) and cross-checked with Python Jinja2 as transformers sets it
 * up (tests/tok/check_chat.py; where the two differ the line's "jinja2" field holds Python's
 * result, which transformers gives and these tests follow). Also: loading tokenizer_config.json
 * in its forms, refusals of what is not implemented, and truncated templates failing cleanly.
 * The llama3/qwen3/gemma3 configs come from tests/tok/fetch.sh ($SAED_TOKENIZER_CACHE,
 * default build/npm); those cases skip when it is absent. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/chat_template.h"
#include "tests/t.h"

static const char *cache_dir(void)
{
    const char *c = getenv("SAED_TOKENIZER_CACHE");
    return c && *c ? c : "build/npm";
}

/* The template directory of a golden file: the fetched npm config, or the committed one. */
static int template_dir(const char *name, char *dir, size_t n)
{
    struct stat st;
    snprintf(dir, n, "tests/data/chat/templates/%s", name);
    if (!stat(dir, &st)) return 1;
    snprintf(dir, n, "%s/%s", cache_dir(), name);
    char p[1100];
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    if (stat(p, &st)) {
        t_skip("%s absent (run tests/tok/fetch.sh)", p);
        return 0;
    }
    return 1;
}

/* Every line of tests/data/chat/NAME.jsonl: output byte for byte, or an error where the
 * reference errs (the same message when it is the template's own raise_exception). */
static void run_golden(const char *name)
{
    char dir[1024], path[256], err[512];
    chat_template tpl = {0}, own = {0};
    int from_dir = strcmp(name, "constructs") != 0;
    if (from_dir) {
        if (!template_dir(name, dir, sizeof dir)) return;
        int rc = chat_template_load(dir, &tpl, err, sizeof err);
        if (rc != 1) t_fail(__FILE__, __LINE__, "%s: load rc %d: %s", name, rc, err);
        if (rc != 1) return;
    }
    snprintf(path, sizeof path, "tests/data/chat/%s.jsonl", name);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (f && getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        CHECK(j != NULL);
        if (!j) continue;
        json_t *ref = json_object_get(j, "jinja2");
        if (!ref) ref = j;
        json_t *msgs = json_object_get(j, "messages");
        size_t m = json_array_size(msgs);
        chat_msg *cm = calloc(m + 1, sizeof *cm);
        for (size_t i = 0; i < m; i++) {
            cm[i].role = json_string_value(json_object_get(json_array_get(msgs, i), "role"));
            cm[i].content = json_string_value(json_object_get(json_array_get(msgs, i), "content"));
        }
        const chat_template *use = &tpl;
        if (!from_dir) {
            own.source = (char *)json_string_value(json_object_get(j, "template"));
            own.bos_token = "<s>", own.eos_token = "</s>";
            use = &own;
        }
        const char *cname = json_string_value(json_object_get(j, "case"));
        int agp = json_is_true(json_object_get(j, "add_generation_prompt"));
        char *out = chat_render(use, cm, m, agp, err, sizeof err);
        json_t *want = json_object_get(ref, "expected");
        if (want) {
            if (!out || strcmp(out, json_string_value(want)))
                t_fail(__FILE__, __LINE__, "%s/%s agp=%d: got \"%.300s\"%s%s, want \"%.300s\"", name, cname, agp,
                       out ? out : "(null)", out ? "" : " error: ", out ? "" : err, json_string_value(want));
        } else {
            const char *werr = json_string_value(json_object_get(ref, "error"));
            const char *jserr = json_string_value(json_object_get(j, "error"));
            if (out) t_fail(__FILE__, __LINE__, "%s/%s agp=%d: rendered \"%.200s\", want error \"%s\"", name, cname, agp, out, werr);
            /* raise_exception: both references carry the template's own message */
            else if (!json_object_get(j, "jinja2") && jserr && strstr(cname, "raise") == cname) CHECK_STR(err, jserr);
            else if (!json_object_get(j, "jinja2") && jserr && from_dir) CHECK_STR(err, jserr);
            else CHECK(err[0] != 0);
        }
        free(out);
        free(cm);
        json_decref(j);
        n++;
    }
    free(line);
    if (f) fclose(f);
    CHECK(n >= 30);
    if (from_dir) chat_template_free(&tpl);
}

TEST(chat_golden_llama3) { run_golden("llama3"); }
TEST(chat_golden_qwen3) { run_golden("qwen3"); }
TEST(chat_golden_gemma3) { run_golden("gemma3"); }
TEST(chat_golden_tinyllama) { run_golden("tinyllama"); }
TEST(chat_golden_gemma2) { run_golden("gemma2"); }
TEST(chat_golden_qwen2) { run_golden("qwen2"); }
TEST(chat_golden_mistral) { run_golden("mistral"); }
TEST(chat_golden_constructs) { run_golden("constructs"); }

static char *render_src(const char *src, char *err, size_t errn)
{
    chat_template t = {(char *)src, "<s>", "</s>"};
    chat_msg m[2] = {{"user", "Hi"}, {"assistant", "Hello"}};
    return chat_render(&t, m, 2, 1, err, errn);
}

/* Exact values, by hand from Python Jinja2 3.1 with transformers' settings. */
TEST(chat_render_errors_named)
{
    char err[512];
    struct { const char *src, *want; } cases[] = {
        {"{{ raise_exception('Only user and assistant roles are supported!') }}", "Only user and assistant roles are supported!"},
        {"{% if true %}x", "line 1, column 15: syntax error: unexpected end of template, expected 'elif'"},
        {"a\n  {{ 1 + }}", "line 2, column 10: syntax error: unexpected end of print statement, expected an expression"},
        {"{{ x | frobnicate }}", "line 1, column 8: not implemented: filter 'frobnicate'"},
        {"{{ x is frob }}", "line 1, column 9: not implemented: test 'frob'"},
        {"{% include 'other.jinja' %}", "line 1, column 4: not implemented: {% include %}"},
        {"{% raw %}x{% endraw %}", "line 1, column 4: not implemented: {% raw %}"},
        {"{% macro m() %}{{ caller() }}{% endmacro %}{% call m() %}{% endcall %}", "not implemented: {% call %}"},
        {"{{ 'é' | upper }}", "not implemented: upper of non-ASCII text"},
        {"{{ '%s' % 1 }}", "not implemented: string formatting with %"},
        {"{{ nothing.attr }}", "'nothing' is undefined"},
        {"{{ nothing() }}", "'nothing' is undefined"},
        {"{{ messages[0].missing.x }}", "'dict object' has no attribute 'missing'"},
        {"{{ 1 + 'a' }}", "unsupported operand type(s) for +: 'int' and 'str'"},
        {"{{ 9223372036854775807 + 1 }}", "not implemented: integer result beyond 64 bits"},
        {"{{ 'abc'.zfill(5) }}", "'str object' has no attribute 'zfill'"},
        {"{% for i in range(100000000) %}{% endfor %}", "loop limit exceeded"},
        {"{% macro r(n) %}{{ r(n) }}{% endmacro %}{{ r(1) }}", "too deep"},
        {"{{ 'x' * 100000000 }}", "repetition too large"},
        {"{% set x = 1 %}{{ x.y.z }}", "'int object' has no attribute 'y'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out = render_src(cases[i].src, err, sizeof err);
        if (out) t_fail(__FILE__, __LINE__, "%s: rendered \"%s\"", cases[i].src, out);
        else CHECK_CONTAINS(err, cases[i].want);
        free(out);
    }
}

TEST(chat_render_values)
{
    char err[512];
    struct { const char *src, *want; } cases[] = {
        {"{{ messages | length }}|{{ messages[-1]['content'] }}", "2|Hello"},
        {"{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %}", "37"},
        {"{{ {'a': 'é\\u2028', 'b': [1.5, none]} | tojson }}", "{\"a\": \"é\u2028\", \"b\": [1.5, null]}"},
        {"{{ [1, 2] | tojson(indent=2) }}", "[\n  1,\n  2\n]"},
        {"{{ 'a\\tb'.split() }} {{ (1,) }} {{ \"it's\" }} {{ [\"it's\"] }}", "['a', 'b'] (1,) it's [\"it's\"]"},
        {"{% set ns = namespace(a=1) %}{% set ns.a = ns.a + 1 %}{{ ns.a }}", "2"},
        {"{{ 1e16 }} {{ 123456789.0 }} {{ 0.0001 }} {{ -0.0 }} {{ 10 / 4 }}", "1e+16 123456789.0 0.0001 -0.0 2.5"},
        {"  {%- if true %}\n  x\n  {%+ endif %}\n", "  x\n  "},
        {"{{ bos_token }}{{ eos_token }}{{ tools }}{{ documents is none }}", "<s></s>NoneTrue"},
        {"{{ 'x' if false }}|{{ none is not none }}|{{ 2 is divisibleby 2 }}", "|False|True"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out = render_src(cases[i].src, err, sizeof err);
        if (!out) t_fail(__FILE__, __LINE__, "%s: error %s", cases[i].src, err);
        else CHECK_STR(out, cases[i].want);
        free(out);
    }
}

static void write_file(const char *dir, const char *text)
{
    char p[512];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(p, "w");
    if (f) fputs(text, f), fclose(f);
}

TEST(chat_template_load_forms)
{
    char err[512], base[] = "/tmp/saed-chat-XXXXXX", dir[600];
    CHECK(mkdtemp(base) != NULL);
    chat_template t;
    /* fetched configs */
    const char *fetched[] = {"llama3", "qwen3", "gemma3"};
    for (int i = 0; i < 3; i++) {
        snprintf(dir, sizeof dir, "%s/%s", cache_dir(), fetched[i]);
        char p[700];
        snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
        if (access(p, R_OK)) { t_skip("%s absent (run tests/tok/fetch.sh)", p); continue; }
        CHECK_INT(chat_template_load(dir, &t, err, sizeof err), 1);
        CHECK(t.source && strlen(t.source) > 100);
        static const char *bos[] = {"<|begin_of_text|>", NULL, "<bos>"}, *eos[] = {"<|end_of_text|>", "<|im_end|>", "<end_of_turn>"};
        if (bos[i]) CHECK_STR(t.bos_token, bos[i]);
        else CHECK(t.bos_token == NULL);
        CHECK_STR(t.eos_token, eos[i]);
        chat_template_free(&t);
    }
    snprintf(dir, sizeof dir, "%s/list", base);
    write_file(dir, "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, {\"name\": \"default\", \"template\": \"D{{ bos_token }}\"}],"
                    " \"bos_token\": {\"content\": \"<s>\", \"lstrip\": false, \"__type\": \"AddedToken\"}, \"eos_token\": \"</s>\"}");
    CHECK_INT(chat_template_load(dir, &t, err, sizeof err), 1);
    CHECK_STR(t.source, "D{{ bos_token }}");
    CHECK_STR(t.bos_token, "<s>");
    CHECK_STR(t.eos_token, "</s>");
    char *out = chat_render(&t, NULL, 0, 0, err, sizeof err);
    CHECK_STR(out, "D<s>");
    free(out);
    chat_template_free(&t);
    snprintf(dir, sizeof dir, "%s/nodefault", base);
    write_file(dir, "{\"chat_template\": [{\"name\": \"rag\", \"template\": \"R\"}]}");
    CHECK_INT(chat_template_load(dir, &t, err, sizeof err), 0);
    snprintf(dir, sizeof dir, "%s/none", base);
    write_file(dir, "{\"bos_token\": \"<s>\"}");
    CHECK_INT(chat_template_load(dir, &t, err, sizeof err), 0);
    CHECK(t.source == NULL);
    snprintf(dir, sizeof dir, "%s/absent", base);
    CHECK_INT(chat_template_load(dir, &t, err, sizeof err), 0);
    snprintf(dir, sizeof dir, "%s/badjson", base);
    write_file(dir, "{\"chat_template\": ");
    CHECK_INT(chat_template_load(dir, &t, err, sizeof err), -1);
    CHECK_CONTAINS(err, "tokenizer_config.json");
    snprintf(dir, sizeof dir, "%s/badtype", base);
    write_file(dir, "{\"chat_template\": 42}");
    CHECK_INT(chat_template_load(dir, &t, err, sizeof err), -1);
    CHECK_CONTAINS(err, "chat_template");
    snprintf(dir, sizeof dir, "%s/badtok", base);
    write_file(dir, "{\"chat_template\": \"x\", \"eos_token\": 7}");
    CHECK_INT(chat_template_load(dir, &t, err, sizeof err), -1);
    CHECK_CONTAINS(err, "eos_token");
    snprintf(dir, sizeof dir, "%s/badlist", base);
    write_file(dir, "{\"chat_template\": [{\"name\": \"default\"}]}");
    CHECK_INT(chat_template_load(dir, &t, err, sizeof err), -1);
    CHECK_CONTAINS(err, "chat_template[0]");
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    CHECK_INT(system(cmd), 0);
}

/* Every prefix of each real template (and byte flips of it) renders or errors, never crashes;
 * run under build/asan too. */
TEST(chat_truncated_templates_fail_cleanly)
{
    const char *names[] = {"tinyllama", "gemma2", "qwen2", "mistral", "llama3", "qwen3", "gemma3"};
    chat_msg m[3] = {{"system", "S"}, {"user", "U"}, {"assistant", "A"}};
    int tried = 0, errors = 0;
    unsigned seed = 12345;
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        char dir[1024], err[512];
        struct stat st;
        snprintf(dir, sizeof dir, "tests/data/chat/templates/%s", names[k]);
        if (stat(dir, &st)) snprintf(dir, sizeof dir, "%s/%s", cache_dir(), names[k]);
        chat_template t;
        if (chat_template_load(dir, &t, err, sizeof err) != 1) continue;
        size_t n = strlen(t.source);
        char *buf = malloc(n + 1);
        for (size_t cut = 0; cut <= n; cut += 1 + cut / 64) {
            for (int flip = 0; flip < 2; flip++) {
                memcpy(buf, t.source, cut);
                buf[cut] = 0;
                if (flip && cut) {
                    seed = seed * 1103515245u + 12345u;
                    buf[(seed >> 8) % cut] = "{}%#-()[]'\"|.~ \n"[(seed >> 4) % 16];
                }
                chat_template tt = {buf, t.bos_token, t.eos_token};
                char *out = chat_render(&tt, m + (cut & 1), 2, (int)(cut & 2), err, sizeof err);
                tried++;
                if (!out) {
                    errors++;
                    CHECK(err[0] != 0);
                }
                free(out);
            }
        }
        free(buf);
        chat_template_free(&t);
    }
    CHECK(tried > 200);
    CHECK(errors > 0);
}
