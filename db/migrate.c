/* migrate.c: see migrate.h. The advisory lock makes concurrent `saed migrate` runs (several
 * hosts starting at once) apply each migration exactly once. */
#include "db/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_mig(const void *a, const void *b)
{
    return ((const migration *)a)->version - ((const migration *)b)->version;
}

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    int bad = 0;
    char chunk[8192];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n + 1 > cap) {
            size_t ncap = (len + n + 1) * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                bad = 1;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    bad |= ferror(f) || (n == 0 && !feof(f));
    fclose(f);
    if (!buf || bad) {
        free(buf);
        snprintf(err, errlen, "%s: read error", path);
        return NULL;
    }
    buf[len] = '\0';
    if (strlen(buf) != len) {
        free(buf);
        snprintf(err, errlen, "%s: contains a NUL byte", path);
        return NULL;
    }
    return buf;
}

int migrate_load(const char *dir, migration_set *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "migrations directory %s: %s", dir, strerror(errno));
        return -1;
    }
    regex_t re;
    regcomp(&re, "^[0-9]{4}_[a-z0-9_]+\\.sql$", REG_EXTENDED | REG_NOSUB);
    struct dirent *e;
    int rc = 0, cap = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 4 || strcmp(e->d_name + l - 4, ".sql")) continue;
        if (regexec(&re, e->d_name, 0, NULL, 0) || l - 4 >= sizeof out->items[0].name) {
            snprintf(err, errlen, "%s/%s: migration files are named NNNN_lowercase_name.sql", dir, e->d_name);
            rc = -1;
            break;
        }
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            migration *ni = realloc(out->items, (size_t)cap * sizeof *ni);
            if (!ni) { rc = -1; snprintf(err, errlen, "out of memory"); break; }
            out->items = ni;
        }
        migration *m = &out->items[out->n];
        m->version = atoi(e->d_name);
        memcpy(m->name, e->d_name, l - 4);
        m->name[l - 4] = '\0';
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!(m->sql = read_file(path, err, errlen))) { rc = -1; break; }
        out->n++;
    }
    closedir(d);
    regfree(&re);
    if (rc == 0) {
        qsort(out->items, (size_t)out->n, sizeof *out->items, cmp_mig);
        for (int i = 0; i < out->n; i++) {
            if (out->items[i].version != i + 1) {
                snprintf(err, errlen, "%s: expected migration %04d, found %s (versions must run 1, 2, 3... without gaps or duplicates)",
                         dir, i + 1, out->items[i].name);
                rc = -1;
                break;
            }
        }
    }
    if (rc) migrate_free(out);
    return rc;
}

void migrate_free(migration_set *s)
{
    for (int i = 0; i < s->n; i++) free(s->items[i].sql);
    free(s->items);
    s->items = NULL;
    s->n = 0;
}

static int fail(PGresult *r, const char *what, char *err, size_t errlen)
{
    char m[512];
    snprintf(err, errlen, "%s: %s", what, db_errmsg(r, m, sizeof m));
    PQclear(r);
    return -1;
}

int migrate_current(db_conn *c, char *err, size_t errlen)
{
    PGresult *r = db_exec(c, DB_SCHEMA_VERSION, NULL);
    enum db_kind k = db_kind(r);
    if (k == DB_NOT_MIGRATED) {
        PQclear(r);
        return 0;
    }
    if (k != DB_OK) return fail(r, "reading schema_migrations", err, errlen);
    int v = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static int check_applied(db_conn *c, const migration_set *s, int *current, char *err, size_t errlen)
{
    PGresult *r = db_exec(c, DB_MIG_APPLIED, NULL);
    if (db_kind(r) != DB_OK) return fail(r, "reading schema_migrations", err, errlen);
    *current = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        int v = atoi(PQgetvalue(r, i, 0));
        const char *name = PQgetvalue(r, i, 1), *sum = PQgetvalue(r, i, 2);
        if (v != i + 1 && v <= s->n) {
            snprintf(err, errlen, "schema_migrations is missing version %d (has %d): the ledger was edited by hand", i + 1, v);
            PQclear(r);
            return -1;
        }
        if (v < 1 || v > s->n) {
            snprintf(err, errlen, "database schema is at version %d (%s), ahead of this binary's migrations (head %d): upgrade saed",
                     v, name, migrate_head(s));
            PQclear(r);
            return -1;
        }
        const migration *m = &s->items[v - 1];
        if (strcmp(m->name, name)) {
            snprintf(err, errlen, "migration %d is recorded as %s but the file is %s.sql", v, name, m->name);
            PQclear(r);
            return -1;
        }
        const char *p[] = {m->sql};
        PGresult *cr = db_exec(c, DB_MIG_CHECKSUM, p);
        if (db_kind(cr) != DB_OK) {
            PQclear(r);
            return fail(cr, "computing a checksum", err, errlen);
        }
        int same = !strcmp(PQgetvalue(cr, 0, 0), sum);
        PQclear(cr);
        if (!same) {
            snprintf(err, errlen, "migration %s.sql was changed after it was applied (recorded checksum %.16s...); restore the file or write a new migration",
                     m->name, sum);
            PQclear(r);
            return -1;
        }
        if (v > *current) *current = v;
    }
    PQclear(r);
    return 0;
}

static int apply_one(db_conn *c, const migration *m, char *err, size_t errlen)
{
    char what[256];
    snprintf(what, sizeof what, "migration %s.sql", m->name);
    PGresult *r = db_exec_script(c, "BEGIN");
    if (db_kind(r) != DB_OK) return fail(r, what, err, errlen);
    PQclear(r);
    r = db_exec_script(c, m->sql);
    if (db_kind(r) != DB_OK) {
        fail(r, what, err, errlen);
        PQclear(db_exec_script(c, "ROLLBACK"));
        return -1;
    }
    PQclear(r);
    PGresult *cr = db_exec(c, DB_MIG_CHECKSUM, (const char *const[]){m->sql});
    if (db_kind(cr) != DB_OK) {
        PQclear(db_exec_script(c, "ROLLBACK"));
        return fail(cr, what, err, errlen);
    }
    char ver[16];
    snprintf(ver, sizeof ver, "%d", m->version);
    const char *p[] = {ver, m->name, PQgetvalue(cr, 0, 0)};
    r = db_exec(c, DB_MIG_RECORD, p);
    PQclear(cr);
    if (db_kind(r) != DB_OK) {
        fail(r, what, err, errlen);
        PQclear(db_exec_script(c, "ROLLBACK"));
        return -1;
    }
    PQclear(r);
    r = db_exec_script(c, "COMMIT");
    if (db_kind(r) != DB_OK) return fail(r, what, err, errlen);
    PQclear(r);
    return 0;
}

int migrate_apply(db_conn *c, const migration_set *s, int *applied, char *err, size_t errlen)
{
    *applied = 0;
    /* Lock first: two first-time migrators racing on CREATE TABLE IF NOT EXISTS collide. */
    PGresult *r = db_exec(c, DB_MIG_LOCK, NULL);
    if (db_kind(r) != DB_OK) return fail(r, "taking the migration lock", err, errlen);
    PQclear(r);
    r = db_exec_script(c, db_migrations_bootstrap_sql);
    int current = 0, rc = 0;
    if (db_kind(r) != DB_OK) rc = fail(r, "creating schema_migrations", err, errlen);
    else PQclear(r);
    if (rc == 0) rc = check_applied(c, s, &current, err, errlen);
    for (int v = current + 1; rc == 0 && v <= s->n; v++) {
        rc = apply_one(c, &s->items[v - 1], err, errlen);
        if (rc == 0) (*applied)++;
    }
    PQclear(db_exec(c, DB_MIG_UNLOCK, NULL));
    return rc;
}
