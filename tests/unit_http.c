/* unit_http.c: route matching (404 vs 405, trailing slash, parameters) and path confinement. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/http.h"
#include "server/paths.h"
#include "tests/t.h"

static int match(const char *method, const char *path, int *status, char *allow, char **param)
{
    char *names[HTTP_MAX_PARAMS];
    char *values[HTTP_MAX_PARAMS];
    int n = 0;
    int i = http_match(method, path, names, values, &n, status, allow, 128);
    *param = NULL;
    for (int k = 0; k < n; k++) {
        if (k == 0) CHECK_STR(names[k], "id");
        free(names[k]);
        if (k == 0) *param = values[k];
        else free(values[k]);
    }
    return i;
}

TEST(routes_match_params_and_slash)
{
    int st;
    char allow[128], *p;
    int i = match("GET", "/api/models/gpt2-small", &st, allow, &p);
    CHECK(i >= 0);
    CHECK_INT(st, 200);
    CHECK_STR(p, "gpt2-small");
    free(p);
    i = match("GET", "/api/models/gpt2-small/", &st, allow, &p);
    CHECK(i >= 0);
    CHECK_STR(p, "gpt2-small");
    free(p);
    CHECK(match("GET", "/healthz/", &st, allow, &p) >= 0);
    CHECK(match("GET", "/api/models/", &st, allow, &p) >= 0);
    CHECK_STR(http_routes[match("GET", "/api/models/", &st, allow, &p)].pattern, "/api/models");
}

TEST(routes_404_vs_405)
{
    int st;
    char allow[128], *p;
    CHECK_INT(match("GET", "/nope", &st, allow, &p), -1);
    CHECK_INT(st, 404);
    CHECK_INT(match("GET", "/api/models/a/b", &st, allow, &p), -1);
    CHECK_INT(st, 404);
    CHECK_INT(match("GET", "/api/models//", &st, allow, &p), -1);
    CHECK_INT(st, 404);
    CHECK_INT(match("PUT", "/api/models", &st, allow, &p), -1);
    CHECK_INT(st, 405);
    CHECK_STR(allow, "GET, HEAD, POST, OPTIONS");
    CHECK_INT(match("POST", "/healthz", &st, allow, &p), -1);
    CHECK_INT(st, 405);
    CHECK_STR(allow, "GET, HEAD, OPTIONS");
    CHECK(match("HEAD", "/healthz", &st, allow, &p) >= 0);
}

TEST(paths_confinement)
{
    char dir[] = "/tmp/saed-paths-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char root[300], inside[300], other[300], link[300], out[4096];
    snprintf(root, sizeof root, "%s/root", dir);
    snprintf(inside, sizeof inside, "%s/root/m", dir);
    snprintf(other, sizeof other, "%s/root-other", dir);
    snprintf(link, sizeof link, "%s/root/escape", dir);
    mkdir(root, 0755);
    mkdir(inside, 0755);
    mkdir(other, 0755);
    CHECK_INT(symlink(other, link), 0);
    char *rr = realpath(root, NULL);
    char *roots[] = {rr};
    CHECK_INT(paths_confine(roots, 1, inside, out, sizeof out), 0);
    CHECK_CONTAINS(out, "/root/m");
    char p[400];
    snprintf(p, sizeof p, "%s/m/../../root-other", root);
    CHECK_INT(paths_confine(roots, 1, p, out, sizeof out), -1);   /* ../ escape */
    CHECK_INT(paths_confine(roots, 1, other, out, sizeof out), -1); /* sibling with the root as prefix */
    CHECK_INT(paths_confine(roots, 1, link, out, sizeof out), -1);  /* symlink escape */
    snprintf(p, sizeof p, "%s/nonexistent", root);
    CHECK_INT(paths_confine(roots, 1, p, out, sizeof out), -1);
    CHECK_INT(paths_confine(roots, 1, "", out, sizeof out), -1);
    CHECK_INT(paths_confine(roots, 0, inside, out, sizeof out), -1);
    free(rr);
    unlink(link);
    rmdir(inside);
    rmdir(root);
    rmdir(other);
    rmdir(dir);
}
