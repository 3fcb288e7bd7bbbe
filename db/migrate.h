/* migrate.h: the schema migration runner. Files are migrations/NNNN_name.sql, applied in order,
 * each in its own transaction that also records it in schema_migrations (version, name,
 * checksum = sha256 of the file text, applied_at). */
#ifndef SAED_DB_MIGRATE_H
#define SAED_DB_MIGRATE_H

#include <stddef.h>

#include "db/db.h"

typedef struct migration {
    int version;
    char name[128];     /* file name without .sql */
    char *sql;
} migration;

typedef struct migration_set {
    migration *items;
    int n;
} migration_set;

/* Reads and checks the directory: names, consecutive versions from 1. */
int migrate_load(const char *dir, migration_set *out, char *err, size_t errlen);
void migrate_free(migration_set *s);
static inline int migrate_head(const migration_set *s) { return s->n ? s->items[s->n - 1].version : 0; }

/* Applies pending migrations. Fails, changing nothing, when an applied migration's checksum
 * differs from its file or the database holds a version this set does not know.
 * *applied receives the number applied. */
int migrate_apply(db_conn *c, const migration_set *s, int *applied, char *err, size_t errlen);

/* Current schema version (0 when the ledger does not exist); -1 with err when unreachable. */
int migrate_current(db_conn *c, char *err, size_t errlen);

#endif
