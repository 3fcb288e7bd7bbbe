/* web_page.c: the feature page served by saed. web_static checks the serving itself over
 * HTTP: every file of web/ byte for byte with its media type, ETag revalidation (304),
 * Cache-Control, the HTML routes, 404 in the error shape for unknown names and for every
 * path-traversal spelling (sent raw, past curl's own normalisation). web_page_chromium runs a
 * real dashboard job and drives the page in headless Chromium (tests/web/feature_page.mjs,
 * playwright-core): histograms, tokens and values, live activations, steering, keyboard
 * navigation, a phone viewport; screenshots land in BUILD/web-screenshots/. It skips, saying
 * why, without chromium, node or playwright-core (tests/web/fetch.sh). */
#include <dirent.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/srv.h"
#include "tests/t.h"

#define KEY "web-page-key-0123456789abcdef"
#define HDR_KEY "x-api-key: " KEY

/* One request written by hand (no client-side path normalisation); the status, and whether
 * the answer holds needle. */
static int raw_get(srv *s, const char *path, const char *needle, int *has)
{
    int fd = srv_connect(s);
    if (fd < 0) return -1;
    char req[1200], buf[16384];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    ssize_t k;
    while (got < sizeof buf - 1 && (k = read(fd, buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)k;
    close(fd);
    buf[got] = 0;
    *has = strstr(buf, needle) != NULL;
    int status = 0;
    sscanf(buf, "HTTP/1.1 %d", &status);
    return status;
}

static const char *want_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot) return "?";
    if (!strcmp(dot, ".html")) return "text/html; charset=utf-8";
    if (!strcmp(dot, ".css")) return "text/css; charset=utf-8";
    if (!strcmp(dot, ".js")) return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".svg")) return "image/svg+xml";
    return "?";
}

TEST(web_static)
{
    srv s;
    if (srv_fresh(&s, NULL, 0, (const char *const[]){"--migrate", "--api-keys", KEY, NULL})) return;

    /* Every file in web/ is served as it is on disk, with its media type and an ETag. */
    DIR *d = opendir("web");
    CHECK(d != NULL);
    int files = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[600], url[600];
        snprintf(p, sizeof p, "web/%s", e->d_name);
        size_t len = 0;
        char *disk = tests_slurp(p, &len);
        snprintf(url, sizeof url, "/static/%s", e->d_name);
        resp r;
        http(&s, "GET", url, NULL, NULL, &r);
        CHECK_INT(r.status, 200);
        CHECK_STR(r.ctype, want_type(e->d_name));
        CHECK(disk && r.len == len && !memcmp(r.body, disk, len));
        /* The ETag is the FNV-1a 64 of the file on disk, computed here again. */
        unsigned long long h = 1469598103934665603ULL;
        for (size_t i = 0; disk && i < len; i++) h = (h ^ (unsigned char)disk[i]) * 1099511628211ULL;
        char want_etag[40];
        snprintf(want_etag, sizeof want_etag, "\"%016llx\"", h);
        CHECK_STR(r.etag, want_etag);
        CHECK_STR(r.cache_control, "no-cache");
        free(disk);
        resp_free(&r);
        files++;
    }
    if (d) closedir(d);
    CHECK(files >= 8);

    /* The two pages: / is index.html, /feature/... is feature.html (for any feature: the page
     * asks /api/feature itself). */
    size_t ilen = 0, flen = 0;
    char *index_html = tests_slurp("web/index.html", &ilen), *feature_html = tests_slurp("web/feature.html", &flen);
    resp r;
    http(&s, "GET", "/", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_STR(r.ctype, "text/html; charset=utf-8");
    CHECK(index_html && r.len == ilen && !memcmp(r.body, index_html, ilen));
    char etag[96];
    snprintf(etag, sizeof etag, "%s", r.etag);
    resp_free(&r);
    http(&s, "GET", "/feature/tiny-a/1-std/7", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK(feature_html && r.len == flen && !memcmp(r.body, feature_html, flen));
    CHECK(strcmp(r.etag, etag) != 0);
    resp_free(&r);
    http(&s, "GET", "/feature/tiny-a/1-std/7/", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    free(index_html);
    free(feature_html);

    /* Revalidation: the same ETag (alone, weak, or in a list) is 304 with no body; another is 200. */
    char h1[160], h2[200], h3[160];
    snprintf(h1, sizeof h1, "If-None-Match: %s", etag);
    snprintf(h2, sizeof h2, "If-None-Match: \"0000000000000000\", W/%s", etag);
    snprintf(h3, sizeof h3, "If-None-Match: \"0000000000000000\"");
    const char *hs[] = {h1, h2, "If-None-Match: *"};
    for (int i = 0; i < 3; i++) {
        http(&s, "GET", "/", (const char *const[]){hs[i], NULL}, NULL, &r);
        CHECK_INT(r.status, 304);
        CHECK_INT(r.len, 0);
        CHECK_STR(r.etag, etag);
        resp_free(&r);
    }
    http(&s, "GET", "/", (const char *const[]){h3, NULL}, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK(r.len > 0);
    resp_free(&r);
    http(&s, "HEAD", "/static/style.css", NULL, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK_INT(r.len, 0);
    CHECK_STR(r.ctype, "text/css; charset=utf-8");
    resp_free(&r);
    http(&s, "POST", "/", NULL, "{}", &r);
    CHECK_INT(r.status, 405);
    CHECK_CONTAINS(r.allow, "GET");
    resp_free(&r);

    /* Unknown names: 404 in the error shape (http() checks the shape). curl folds a plain
     * "/static/.." into "/" itself, so that spelling goes raw below. */
    static const char *const missing[] = {"/static/nope.js", "/static/index.htm", "/static/FEATURE.JS", "/static/%2e%2e", "/static/..%2FMakefile",
                                          "/static/%2e%2e%2fREADME.md", "/static/..%5cMakefile"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        http(&s, "GET", missing[i], NULL, NULL, &r);
        CHECK_INT(r.status, 404);
        json_t *j = resp_json(&r);
        const char *code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
        if (!code || (strcmp(code, "not_found") && strcmp(code, "route_not_found")))
            t_fail(__FILE__, __LINE__, "GET %s: error code %s", missing[i], code ? code : "(none)");
        json_decref(j);
        resp_free(&r);
    }
    /* Traversal spelled raw, as a hostile client sends it: never a file outside web/. */
    static const char *const raw[] = {"/static/..", "/static/../Makefile", "/static/../../../../etc/passwd", "/static/./style.css/../../Makefile",
                                      "/static/..%2fMakefile", "/static/%2e%2e/Makefile", "/feature/../Makefile",
                                      "/static//etc/passwd", "/static/web%2fstyle.css"};
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        int leaked = 0, leaked2 = 0;
        int st = raw_get(&s, raw[i], "root:x:", &leaked);
        raw_get(&s, raw[i], "CFLAGS", &leaked2);
        if (st != 404 && st != 400) t_fail(__FILE__, __LINE__, "GET %s (raw): status %d", raw[i], st);
        if (leaked || leaked2) t_fail(__FILE__, __LINE__, "GET %s (raw) served a file outside web/", raw[i]);
    }
    srv_stop(&s);
}

static int executable(const char *p) { return p && *p && access(p, X_OK) == 0; }

/* Whether a program is on PATH. */
static int on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char dir[4096], p[4200];
    snprintf(dir, sizeof dir, "%s", path ? path : "/usr/bin:/bin");
    for (char *tok = strtok(dir, ":"); tok; tok = strtok(NULL, ":")) {
        snprintf(p, sizeof p, "%s/%s", tok, prog);
        if (executable(p)) return 1;
    }
    return 0;
}

static json_t *post_ok(srv *s, const char *path, const char *body, int want)
{
    resp r;
    http(s, "POST", path, (const char *const[]){HDR_KEY, NULL}, body, &r);
    if (r.status != want) t_fail(__FILE__, __LINE__, "POST %s: %d, expected %d: %.300s", path, r.status, want, r.body);
    json_t *j = resp_json(&r);
    resp_free(&r);
    return j;
}

static int is_png(const char *path)
{
    size_t len = 0;
    char *b = tests_slurp(path, &len);
    int ok = b && len > 1000 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8);
    free(b);
    return ok;
}

TEST(web_page_chromium)
{
    const char *chromium = getenv("SAED_CHROMIUM") ? getenv("SAED_CHROMIUM") : "/usr/bin/chromium";
    const char *pw = getenv("SAED_PLAYWRIGHT") ? getenv("SAED_PLAYWRIGHT") : "build/npm/playwright-core";
    char pw_index[600];
    snprintf(pw_index, sizeof pw_index, "%s/index.mjs", pw);
    if (!executable(chromium)) {
        t_skip("skipped: chromium not found at %s (apt-get install chromium; scripts/deps.sh --test)", chromium);
        return;
    }
    if (!on_path("node")) {
        t_skip("skipped: node not found on PATH");
        return;
    }
    if (access(pw_index, R_OK)) {
        t_skip("skipped: playwright-core not found at %s (run tests/web/fetch.sh)", pw);
        return;
    }
    if (!tdb_available()) {
        t_skip("skipped: no test PostgreSQL");
        return;
    }

    char root[] = "/tmp/saed-web-test-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    char corpus[300], roots[600], body[1200];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", root);
    tests_write_corpus(corpus, 60, 40, 11);
    snprintf(roots, sizeof roots, "tests/data:%s", root);
    srv s;
    /* Keys set, as a deployment has them: the page uses only routes that need none. */
    if (srv_fresh(&s, NULL, 0, (const char *const[]){"--migrate", "--data-roots", roots, "--workers", "1", "--api-keys", KEY, NULL}))
        return;
    json_decref(post_ok(&s, "/api/models", "{\"id\":\"tiny-a\",\"path\":\"tests/data/models/tiny-a\"}", 201));
    json_decref(post_ok(&s, "/api/saes", "{\"modelId\":\"tiny-a\",\"path\":\"tests/data/sae/tiny-a-res-jumprelu\",\"setName\":\"jr\"}", 201));
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-a\",\"saeId\":\"1-jr\",\"dataset\":{\"path\":\"%s\",\"format\":\"text\"},"
             "\"nPrompts\":32,\"nTokensInPrompt\":24,\"batchPrompts\":8,\"seed\":5}", corpus);
    json_t *j = post_ok(&s, "/api/dashboard-jobs", body, 201);
    long long id = (long long)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    j = srv_wait_job(&s, id, 120);
    const char *st = json_string_value(json_object_get(j, "state"));
    int done = st && !strcmp(st, "completed");
    json_decref(j);
    if (!done) {
        t_fail(__FILE__, __LINE__, "the dashboard job did not complete");
        srv_stop(&s);
        return;
    }
    json_decref(post_ok(&s, "/api/explanation/new",
                        "{\"modelId\":\"tiny-a\",\"layer\":\"1-jr\",\"index\":7,\"description\":\"license terms\","
                        "\"explanationModelName\":\"gpt-4o-mini\",\"typeName\":\"oai_token-act-pair\",\"scoreV1\":0.42,"
                        "\"scores\":[{\"value\":0.61,\"explanationScoreTypeName\":\"recall_alt\","
                        "\"explanationScoreModelName\":\"gpt-4o-mini\"}]}",
                        201));

    char bin[512], shots[600], cmd[2000];
    snprintf(bin, sizeof bin, "%s", saed_bin());
    snprintf(shots, sizeof shots, "%s/web-screenshots", dirname(bin));
    snprintf(cmd, sizeof cmd, "SAED_PLAYWRIGHT='%s' SAED_CHROMIUM='%s' node tests/web/feature_page.mjs http://127.0.0.1:%d tiny-a 1-jr 7 '%s' 2>&1",
             pw, chromium, s.port, shots);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    char out[1 << 16];
    size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[n] = 0;
    int rc = p ? pclose(p) : -1;
    int status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    if (status != 0 || strstr(out, "FAIL:") || !strstr(out, "all checks passed"))
        t_fail(__FILE__, __LINE__, "feature_page.mjs exit %d:\n%s", status, out);
    /* The script prints one "ok:" per check; far fewer means it stopped early. */
    int oks = 0;
    for (const char *q = out; (q = strstr(q, "ok: ")); q += 4) oks++;
    CHECK(oks >= 30);
    static const char *const pngs[] = {"feature-desktop.png", "feature-phone.png", "index-phone.png"};
    for (int i = 0; i < 3; i++) {
        char f[700];
        snprintf(f, sizeof f, "%s/%s", shots, pngs[i]);
        if (!is_png(f)) t_fail(__FILE__, __LINE__, "no screenshot %s", f);
    }
    srv_stop(&s);
    char rm[400];
    snprintf(rm, sizeof rm, "rm -rf '%s'", root);
    if (system(rm)) t_fail(__FILE__, __LINE__, "removing %s", root);
}
