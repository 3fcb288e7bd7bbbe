/* srv.c: see srv.h. */
#include "tests/srv.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/sample.h"
#include "engine/tokenizer.h"
#include "tests/oas.h"
#include "tests/t.h"

static oas *spec;
static int db_counter;

oas *tests_spec(void);
oas *tests_spec(void)
{
    if (!spec) {
        char err[512];
        spec = oas_load("openapi/openapi.yaml", err, sizeof err);
        if (!spec) t_fail(__FILE__, __LINE__, "openapi/openapi.yaml: %s", err);
    }
    return spec;
}

int tdb_available(void) { return getenv("SAED_TEST_PG_HOST") && getenv("SAED_TEST_PG_PORT"); }

static void url_for(char *url, size_t n, const char *db)
{
    snprintf(url, n, "postgresql:///%s?host=%s&port=%s&user=postgres", db, getenv("SAED_TEST_PG_HOST"),
             getenv("SAED_TEST_PG_PORT"));
}

int tdb_exec(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    int rc = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        rc = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? 0 : -1;
        if (rc && getenv("SAED_TEST_VERBOSE")) fprintf(stdout, "    tdb_exec: %s", PQresultErrorMessage(r));
        PQclear(r);
    } else {
        fprintf(stdout, "    tdb_exec: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return rc;
}

int tdb_create(char *url, size_t n)
{
    char name[64], admin[512], sql[128];
    snprintf(name, sizeof name, "t_%d_%d", (int)getpid(), ++db_counter);
    url_for(admin, sizeof admin, "postgres");
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    if (tdb_exec(admin, sql)) return -1;
    url_for(url, n, name);
    return 0;
}

int tdb_pg(const char *action)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "bash scripts/pg.sh %s '%s' >/dev/null", action, getenv("SAED_TEST_PG_HOST"));
    return system(cmd) == 0 ? 0 : -1;
}

const char *saed_bin(void)
{
    const char *b = getenv("SAED_BIN");
    return b ? b : "build/saed";
}

static void read_fd(int fd, char *buf, size_t n)
{
    size_t len = 0;
    ssize_t k;
    while (n && (k = read(fd, buf + len, n - 1 - len)) > 0) len += (size_t)k;
    if (n) buf[len] = '\0';
    char sink[4096];
    while (read(fd, sink, sizeof sink) > 0) {}
}

int saed_run(const char *const *args, char *out, size_t outlen, char *err, size_t errlen)
{
    char of[] = "/tmp/saed-out-XXXXXX", ef[] = "/tmp/saed-err-XXXXXX";
    int ofd = mkstemp(of), efd = mkstemp(ef);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(ofd, 1);
        dup2(efd, 2);
        const char *argv[64] = {saed_bin()};
        int i = 0;
        for (; args[i] && i < 62; i++) argv[i + 1] = args[i];
        argv[i + 1] = NULL;
        execv(saed_bin(), (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    lseek(ofd, 0, SEEK_SET);
    lseek(efd, 0, SEEK_SET);
    char dummy[1];
    read_fd(ofd, out ? out : dummy, out ? outlen : sizeof dummy);
    read_fd(efd, err ? err : dummy, err ? errlen : sizeof dummy);
    close(ofd);
    close(efd);
    unlink(of);
    unlink(ef);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

int srv_start(srv *s, const char *db_url, const char *const *extra)
{
    memset(s, 0, sizeof *s);
    snprintf(s->db_url, sizeof s->db_url, "%s", db_url);
    snprintf(s->dir, sizeof s->dir, "/tmp/saed-srv-XXXXXX");
    if (!mkdtemp(s->dir)) return -1;
    s->port = free_port();
    char listen[64], out[200], err[200];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", s->port);
    snprintf(out, sizeof out, "%s/stdout", s->dir);
    snprintf(err, sizeof err, "%s/stderr", s->dir);
    s->pid = fork();
    if (s->pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1);
        dup2(e, 2);
        const char *argv[64] = {saed_bin(), "serve", "--listen", listen, "--database-url", db_url,
                                "--http-threads", "2", "--log-level", "debug"};
        int n = 10;
        for (int i = 0; extra && extra[i] && n < 62; i++) argv[n++] = extra[i];
        argv[n] = NULL;
        execv(saed_bin(), (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            fprintf(stdout, "    saed exited during start-up with status %d; stderr in %s\n", WEXITSTATUS(st), err);
            s->pid = 0;
            return -1;
        }
        int fd = srv_connect(s);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        usleep(50000);
    }
    fprintf(stdout, "    saed did not start listening in 10 s\n");
    return -1;
}

int srv_stop(srv *s)
{
    if (s->pid <= 0) return -1;
    kill(s->pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 400; i++) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(25000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    s->pid = 0;
    return -1;
}

int srv_connect(srv *s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    size_t k = sz * n;
    char *nb = realloc(r->body, r->len + k + 1);
    if (!nb) return 0;
    r->body = nb;
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = '\0';
    return k;
}

static void grab(const char *line, size_t n, const char *name, char *dst, size_t dn)
{
    size_t nl = strlen(name);
    if (n > nl + 1 && !strncasecmp(line, name, nl) && line[nl] == ':') {
        const char *v = line + nl + 1;
        while (*v == ' ') v++;
        size_t vl = n - (size_t)(v - line);
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n')) vl--;
        if (vl >= dn) vl = dn - 1;
        memcpy(dst, v, vl);
        dst[vl] = '\0';
    }
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    size_t k = sz * n;
    grab(p, k, "Content-Type", r->ctype, sizeof r->ctype);
    grab(p, k, "Allow", r->allow, sizeof r->allow);
    grab(p, k, "Retry-After", r->retry_after, sizeof r->retry_after);
    grab(p, k, "X-Request-Id", r->request_id, sizeof r->request_id);
    grab(p, k, "Location", r->location, sizeof r->location);
    grab(p, k, "Access-Control-Allow-Origin", r->acao, sizeof r->acao);
    grab(p, k, "ETag", r->etag, sizeof r->etag);
    grab(p, k, "Cache-Control", r->cache_control, sizeof r->cache_control);
    return k;
}

void tests_camelize(json_t *j)
{
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) tests_camelize(v);
        return;
    }
    if (!json_is_object(j)) return;
    json_t *copy = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
        char name[256];
        size_t o = 0;
        for (const char *p = k; *p && o + 1 < sizeof name; p++)
            if (*p == '_' && p[1]) name[o++] = (char)(p[1] >= 'a' && p[1] <= 'z' ? p[1] - 32 : p[1]), p++;
            else name[o++] = *p;
        name[o] = '\0';
        tests_camelize(v);
        json_object_set(copy, name, v);
    }
    json_object_clear(j);
    json_object_update(j, copy);
    json_decref(copy);
}

/* An event-stream body with each `data: <json>` line camelized (other lines kept); malloc'd. */
static char *camelize_events(const char *body)
{
    size_t cap = strlen(body) * 2 + 64, o = 0;
    char *outb = malloc(cap);
    for (const char *p = body; outb && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        json_t *d = !strncmp(p, "data: ", 6) ? json_loadb(p + 6, len - 6, 0, NULL) : NULL;
        char *s = NULL;
        if (d) tests_camelize(d), s = json_dumps(d, JSON_COMPACT);
        json_decref(d);
        size_t need = (s ? strlen(s) + 6 : len) + 2;
        char *grown = o + need >= cap ? realloc(outb, cap = (o + need) * 2) : outb;
        if (!grown) {
            free(s);
            free(outb);
            return NULL;
        }
        outb = grown;
        o += s ? (size_t)sprintf(outb + o, "data: %s", s) : (memcpy(outb + o, p, len), len);
        if (nl) outb[o++] = '\n';
        free(s);
        p += len + (nl ? 1 : 0);
    }
    if (outb) outb[o] = '\0';
    return outb;
}

/* Checks the body of an error against the one error shape ({"error": str} on the
 * inference-server wire: /v1/..., /health and /initialize). */
static void check_error_shape(const char *method, const char *path, const resp *r)
{
    if (r->status < 400 || !r->body) return;
    json_t *j = json_loads(r->body, 0, NULL);
    const char *code = NULL, *m1 = NULL, *m2 = NULL;
    size_t pl = strcspn(path, "?");
    if (!strncmp(path, "/v1/", 4) || (pl == 7 && !strncmp(path, "/health", 7)) ||
        (pl == 11 && !strncmp(path, "/initialize", 11))) {
        if (!j || json_unpack(j, "{s:s}", "error", &m1) || !*m1 || json_object_size(j) != 1)
            t_fail(__FILE__, __LINE__, "%s %s -> %d: body is not {\"error\": str}: %.300s", method, path, r->status,
                   r->body);
        json_decref(j);
        return;
    }
    if (!j || json_unpack(j, "{s:{s:s,s:s},s:s}", "error", "code", &code, "message", &m1, "message", &m2) ||
        strcmp(m1, m2) || !*m1)
        t_fail(__FILE__, __LINE__, "%s %s -> %d: body is not the error shape: %.300s", method, path, r->status, r->body);
    json_decref(j);
}

int http(srv *s, const char *method, const char *path, const char *const *headers, const char *body, resp *out)
{
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    char url[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    struct curl_slist *hl = NULL;
    for (int i = 0; headers && headers[i]; i++) hl = curl_slist_append(hl, headers[i]);
    if (body && !(headers && headers[0] && strstr(headers[0], "Content-Type")))
        hl = curl_slist_append(hl, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    CURLcode rc = curl_easy_perform(c);
    long st = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    out->status = (int)st;
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        t_fail(__FILE__, __LINE__, "%s %s: %s", method, path, curl_easy_strerror(rc));
        return -1;
    }
    if (!out->body) out->body = calloc(1, 1);
    if (!out->request_id[0]) t_fail(__FILE__, __LINE__, "%s %s: no X-Request-Id", method, path);
    if (strcmp(out->acao, "*")) t_fail(__FILE__, __LINE__, "%s %s: no CORS Access-Control-Allow-Origin", method, path);
    check_error_shape(method, path, out);
    char qpath[1024];
    snprintf(qpath, sizeof qpath, "%s", path);
    char *q = strchr(qpath, '?');
    if (q) *q = '\0';
    char err[1024];
    /* Answers of the router itself (unknown path, wrong method) have no operation to check. */
    bool routed = !(out->status == 405 || (out->status == 404 && strstr(out->body, "\"route_not_found\"")));
    if (out->status == 405 && !out->allow[0]) t_fail(__FILE__, __LINE__, "%s %s: 405 without Allow", method, path);
    const char *checked = out->body;
    size_t blen = out->len;
    char *camel = NULL;
    bool v1 = !strncmp(qpath, "/v1/", 4);
    json_t *j = v1 ? json_loads(out->body, 0, NULL) : NULL;
    if (j) {
        tests_camelize(j);
        camel = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (camel) checked = camel, blen = strlen(camel);
    } else if (v1 && out->body && strstr(out->ctype, "text/event-stream") && (camel = camelize_events(out->body))) {
        checked = camel, blen = strlen(camel);
    }
    if (routed && strcmp(method, "OPTIONS") && tests_spec() &&
        oas_check(tests_spec(), method, qpath, out->status, out->ctype[0] ? out->ctype : NULL, checked, blen, err, sizeof err))
        t_fail(__FILE__, __LINE__, "openapi: %s", err);
    free(camel);
    return 0;
}

json_t *resp_json(const resp *r)
{
    return r->body ? json_loads(r->body, 0, NULL) : NULL;
}

void resp_free(resp *r)
{
    free(r->body);
    r->body = NULL;
}

int srv_fresh(srv *s, char *url, size_t n, const char *const *extra)
{
    if (!tdb_available()) {
        t_skip("no test PostgreSQL (run through tests/run.sh)");
        return -1;
    }
    char own[512];
    if (!url) {
        url = own;
        n = sizeof own;
    }
    if (tdb_create(url, n)) {
        t_fail(__FILE__, __LINE__, "could not create a test database");
        return -1;
    }
    if (srv_start(s, url, extra)) {
        t_fail(__FILE__, __LINE__, "saed did not start");
        return -1;
    }
    return 0;
}

/* dir: a copy of tests/data/sae/tiny-a-res-standard whose cfg says expected_average_only_in
 * with norm_scaling_factor 4 (the weights are linked, not copied). 0 on success. */
int tests_write_nsf_sae(const char *dir)
{
    char path[600], cwd[400];
    json_t *cfg = json_load_file("tests/data/sae/tiny-a-res-standard/cfg.json", 0, NULL);
    if (!cfg || !getcwd(cwd, sizeof cwd)) return -1;
    json_object_set_new(cfg, "normalize_activations", json_string("expected_average_only_in"));
    json_object_set_new(cfg, "norm_scaling_factor", json_real(4));
    snprintf(path, sizeof path, "%s/cfg.json", dir);
    int rc = json_dump_file(cfg, path, 0);
    json_decref(cfg);
    char from[1100];
    snprintf(from, sizeof from, "%s/tests/data/sae/tiny-a-res-standard/sae_weights.safetensors", cwd);
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", dir);
    return rc || symlink(from, path) ? -1 : 0;
}

void tests_write_corpus(const char *path, int docs, int words_per_doc, unsigned seed)
{
    static const char *const words[] = {"the", "river", "bank", "money", "cat", "sat", "on", "mat", "quick", "brown",
                                        "fox", "jumps", "over", "lazy", "dog", "and", "then", "a", "very", "long",
                                        "story", "about", "Paris", "London", "numbers", "1", "2", "3", "tree", "house"};
    FILE *f = fopen(path, "w");
    unsigned s = seed;
    for (int d = 0; f && d < docs; d++) {
        for (int w = 0; w < words_per_doc; w++) {
            s = s * 1103515245u + 12345u;
            /* Mostly the word list, sometimes a numbered word, so windows rarely repeat. */
            if ((s >> 8) % 4) fprintf(f, "%s%s", w ? " " : "", words[(s >> 16) % 30]);
            else fprintf(f, "%sw%u", w ? " " : "", (s >> 16) % 500);
        }
        fputc('\n', f);
    }
    if (f) fclose(f);
}

long long tdb_scalar(const char *url, const char *sql)
{
    char cmd[2048], out[64] = "";
    snprintf(cmd, sizeof cmd, "psql '%s' -qtAc \"%s\"", url, sql);
    FILE *p = popen(cmd, "r");
    if (p) {
        if (!fgets(out, sizeof out, p)) out[0] = '\0';
        pclose(p);
    }
    return atoll(out);
}

json_t *srv_wait_job(srv *s, long long id, int seconds)
{
    char path[64];
    snprintf(path, sizeof path, "/api/dashboard-jobs/%lld", id);
    for (int i = 0; i < seconds * 10; i++) {
        resp r;
        http(s, "GET", path, NULL, NULL, &r);
        json_t *j = resp_json(&r);
        resp_free(&r);
        const char *st = json_string_value(json_object_get(j, "state"));
        if (st && strcmp(st, "available") && strcmp(st, "running")) return j;
        json_decref(j);
        usleep(100000);
    }
    return NULL;
}

float *tests_saed_encode(const char *model_dir, const char *sae_dir, const char *text, int fold, int d_sae, int *T)
{
    static char out[1 << 21];
    char err[2048];
    int rc = saed_run((const char *const[]){"encode", "--model", model_dir, "--sae", sae_dir, "--text", text,
                                            "--prepend-bos", fold ? "--fold-dec-norm" : NULL, NULL},
                      out, sizeof out, err, sizeof err);
    if (rc) {
        t_fail(__FILE__, __LINE__, "saed encode %s: %d %s", model_dir, rc, err);
        return NULL;
    }
    json_t *j = json_loads(out, 0, NULL), *acts = json_object_get(j, "acts");
    *T = (int)json_array_size(acts);
    float *d = calloc((size_t)*T * d_sae, sizeof(float));
    for (int t = 0; d && t < *T; t++) {
        json_t *row = json_array_get(acts, (size_t)t);
        for (size_t k = 0; k < json_array_size(row); k++) {
            json_t *p = json_array_get(row, k);
            d[(size_t)t * d_sae + json_integer_value(json_array_get(p, 0))] = (float)json_number_value(json_array_get(p, 1));
        }
    }
    json_decref(j);
    return d;
}

/* The greedy reference: ids[T, T + n) and each step's log-softmax of the chosen and the k_top
 * most likely tokens, from `saed forward`. */
static int saed_greedy(const char *model_dir, int32_t *ids, int T, int n, int k_top, float *lp, int32_t *top, float *top_lp)
{
    char *out = malloc(4 << 20), err[512], idarg[8192];
    float *lg = NULL, *ls = NULL;
    int rc = -1;
    for (int k = 0; k < n; k++) {
        size_t l = (size_t)snprintf(idarg, sizeof idarg, "[");
        for (int i = 0; i < T + k && l < sizeof idarg; i++)
            l += (size_t)snprintf(idarg + l, sizeof idarg - l, "%s%d", i ? "," : "", ids[i]);
        snprintf(idarg + l, sizeof idarg - l, "]");
        int st = out ? saed_run((const char *const[]){"forward", "--model", model_dir, "--ids", idarg, NULL}, out, 4 << 20,
                                err, sizeof err)
                     : -1;
        json_t *f = st ? NULL : json_loads(out, 0, NULL), *ll = json_object_get(f, "logits_last");
        int V = (int)json_array_size(ll);
        if (!lg && V > 0) lg = malloc(sizeof(float) * V), ls = malloc(sizeof(float) * V);
        if (V == 0 || !lg || !ls) {
            t_fail(__FILE__, __LINE__, "saed forward %s: %d %s", model_dir, st, err);
            json_decref(f);
            goto done;
        }
        int best = 0;
        for (int i = 0; i < V; i++) {
            lg[i] = (float)json_number_value(json_array_get(ll, (size_t)i));
            if (lg[i] > lg[best]) best = i;
        }
        json_decref(f);
        sample_log_softmax(lg, V, ls);
        ids[T + k] = best;
        lp[k] = ls[best];
        if (k_top > 0) sample_top_k(ls, V, k_top, top + (size_t)k * k_top);
        for (int j = 0; j < k_top; j++) top_lp[(size_t)k * k_top + j] = ls[top[(size_t)k * k_top + j]];
    }
    rc = 0;
done:
    free(out), free(lg), free(ls);
    return rc;
}

void tests_check_greedy(const char *model_dir, const int32_t *prompt, int T, int n, int k_top, json_t *lps, const char *text)
{
    char err[512];
    tokenizer *tok = tok_load_dir(model_dir, err, sizeof err);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(T + n)), *top = malloc(sizeof(int32_t) * (size_t)(n * k_top + 1));
    float *lp = malloc(sizeof(float) * (size_t)n), *top_lp = malloc(sizeof(float) * (size_t)(n * k_top + 1));
    if (!tok || !ids || !top || !lp || !top_lp) {
        t_fail(__FILE__, __LINE__, "%s: %s", model_dir, tok ? "out of memory" : err);
        goto done;
    }
    memcpy(ids, prompt, sizeof(int32_t) * (size_t)T);
    if (saed_greedy(model_dir, ids, T, n, k_top, lp, top, top_lp)) goto done;
    if (json_array_size(lps) != (size_t)n) t_fail(__FILE__, __LINE__, "%zu logprobs, wanted %d", json_array_size(lps), n);
    for (int k = 0; k < n && (size_t)k < json_array_size(lps); k++) {
        json_t *e = json_array_get(lps, (size_t)k), *tl = json_object_get(e, "topLogprobs");
        char *want = tok_token_str(tok, ids[T + k]);
        CHECK_STR(json_string_value(json_object_get(e, "token")), want);
        free(want);
        CHECK_NEAR(json_number_value(json_object_get(e, "logprob")), lp[k], 1e-4);
        CHECK_INT(json_array_size(tl), k_top);
        for (int t = 0; t < k_top && (size_t)t < json_array_size(tl); t++) {
            json_t *x = json_array_get(tl, (size_t)t);
            char *ts = tok_token_str(tok, top[k * k_top + t]);
            CHECK_STR(json_string_value(json_object_get(x, "token")), ts);
            free(ts);
            CHECK_NEAR(json_number_value(json_object_get(x, "logprob")), top_lp[k * k_top + t], 1e-4);
        }
    }
    size_t dl = 0;
    char *got = tok_decode(tok, ids + T, n, &dl);
    CHECK_STR(text, got);
    free(got);
done:
    tok_free(tok);
    free(ids), free(top), free(lp), free(top_lp);
}

static size_t shot_body(char *p, size_t sz, size_t n, void *ud)
{
    shot *s = ud;
    char *b = realloc(s->resp, s->len + sz * n + 1);
    if (!b) return 0;
    memcpy(b + s->len, p, sz * n);
    s->resp = b;
    s->len += sz * n;
    b[s->len] = 0;
    return sz * n;
}

static size_t shot_header(char *p, size_t sz, size_t n, void *ud)
{
    shot *s = ud;
    size_t l = sz * n;
    if (l > 13 && !strncasecmp(p, "Retry-After: ", 13)) snprintf(s->retry_after, sizeof s->retry_after, "%.*s", (int)(l - 15), p + 13);
    if (l > 14 && !strncasecmp(p, "Content-Type: ", 14)) snprintf(s->ctype, sizeof s->ctype, "%.*s", (int)(l - 16), p + 14);
    return l;
}

void *fire(void *arg)
{
    shot *s = arg;
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, s->path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, shot_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, shot_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

char *tests_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = NULL;
    long n = fseek(f, 0, SEEK_END) ? -1 : ftell(f);
    if (n >= 0 && !fseek(f, 0, SEEK_SET) && (b = malloc((size_t)n + 1)) && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        *len = (size_t)n;
    }
    return b;
}

/* tiny-a's files and a tokenizer_config.json with a small chat template, in dir. 0 on success. */
int tests_write_chat_model(const char *dir)
{
    char cmd[512];
    const char *m = "tests/data/models/tiny-a";
    snprintf(cmd, sizeof cmd, "cp %s/config.json %s/model.safetensors %s/vocab.json %s/merges.txt '%s/'", m, m, m, m, dir);
    if (system(cmd)) return -1;
    char path[256];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs("{\"bos_token\":\"<|endoftext|>\",\"eos_token\":\"<|endoftext|>\",\"chat_template\":"
          "\"{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\\n{% endfor %}"
          "{% if add_generation_prompt %}assistant:{% endif %}\"}",
          f);
    return fclose(f) ? -1 : 0;
}

int tests_add_chat_model(srv *s, const char *const *hdr, const char *dir, const char *sae_dir)
{
    char body[600];
    resp r;
    snprintf(body, sizeof body, "{\"id\":\"tiny-chat\",\"path\":\"%s\"}", dir);
    http(s, "POST", "/api/models", hdr, body, &r);
    int ok = r.status == 201;
    resp_free(&r);
    snprintf(body, sizeof body, "{\"modelId\":\"tiny-chat\",\"path\":\"%s\",\"setName\":\"rs\"}", sae_dir);
    http(s, "POST", "/api/saes", hdr, body, &r);
    ok = ok && r.status == 201;
    resp_free(&r);
    if (!ok) t_fail(__FILE__, __LINE__, "registering tiny-chat from %s", dir);
    return ok ? 0 : -1;
}
