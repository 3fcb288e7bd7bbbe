/* statements.h: names of every SQL statement saed runs. The SQL itself is in statements.c,
 * one table, so the whole data access surface can be read in one place. */
#ifndef SAED_DB_STATEMENTS_H
#define SAED_DB_STATEMENTS_H

enum db_stmt {
    DB_PING,
    DB_SCHEMA_VERSION,
    DB_MIG_LOCK,
    DB_MIG_UNLOCK,
    DB_MIG_APPLIED,
    DB_MIG_CHECKSUM,
    DB_MIG_RECORD,
    DB_MODEL_INSERT,
    DB_MODEL_GET,
    DB_MODEL_LIST,
    DB_MODEL_DELETE,
    DB_MODEL_PATH,
    DB_SAE_INSERT,
    DB_SAE_GET,
    DB_SAE_LIST,
    DB_SAE_LIST_MODEL,
    DB_SAE_DELETE,
    DB_SAE_DENSITY,
    DB_JOB_ENQUEUE,
    DB_JOB_CLAIM,
    DB_JOB_CLAIM_ID,
    DB_JOB_HEARTBEAT,
    DB_JOB_COMPLETE,
    DB_JOB_RETRY_OR_FAIL,
    DB_JOB_CANCELLED,
    DB_JOB_REQUEST_CANCEL,
    DB_JOB_SWEEP,
    DB_JOB_GET,
    DB_JOB_COUNTS,
    DB_JOB_LIST,
    DB_ACTIVATIONS_DELETE_RANGE,
    DB_FEATURES_INSERT,
    DB_ACTIVATIONS_INSERT,
    DB_SAE_MARK_DASHBOARDS,
    DB_SAE_PATHS,
    DB_LISTEN_JOBS,
    DB_BEGIN,
    DB_COMMIT,
    DB_JOBS_RELEASE_WORKER,
    /* dashboard export (server/export_db.c) */
    DB_EXPORT_BEGIN,
    DB_EXPORT_SAE,
    DB_EXPORT_NP_META,
    DB_EXPORT_NP_FEATURES,
    DB_EXPORT_NP_ACTIVATIONS,
    DB_EXPORT_NP_EXPLANATIONS,
    DB_EXPORT_SD_RUN_SETTINGS,
    DB_EXPORT_SD_FEATURES,
    DB_EXPORT_SD_ACTIVATIONS,
    /* live activations and search (handlers/activation.c, handlers/search.c) */
    DB_LIVE_SAE,
    DB_LIVE_SET_SAES,
    DB_LIVE_DENSITY,
    DB_LIVE_NEURONS,
    DB_LIVE_TOPK_FEATURES,
    DB_V1_INIT_SAES, /* POST /initialize (handlers/v1_init.c) */
    /* Neuronpedia read API (handlers/feature.c, explanation.c, vector.c; server/explanations.c) */
    DB_FEATURE_GET,
    DB_FEATURES_GET_MANY,
    DB_LISTEN_FEATURES,
    DB_VECTOR_GET,
    DB_EXPLANATION_NEW,
    DB_EXPLANATION_SEARCH,
    DB_EXPLANATION_EXPORT_RANGE,
    DB_EXPLANATION_EXPORT_ROWS,
    DB_EXPLANATION_IMPORT_MISSING,
    DB_EXPLANATION_IMPORT_UPSERT,
    /* steering (server/steer.c, handlers/steer.c) */
    DB_STEER_SAE,
    DB_STEER_FIND,
    DB_STEER_STORE,
    DB_STEER_GET,
    DB_STEER_CHAT_FIND,
    DB_STEER_CHAT_STORE,
    /* autointerp (server/job_autointerp.c) */
    DB_AI_TODO,
    DB_AI_FEATURE,
    DB_AI_NEGATIVES,
    DB_AI_STORE,
    DB_JOB_GET_KIND,
    DB_JOB_LIST_KIND,
    DB_N_STMTS
};

typedef struct db_statement {
    const char *name;
    const char *sql;
    int nparams;
    int readonly; /* safe to re-run after a lost connection */
} db_statement;

extern const db_statement db_statements[DB_N_STMTS];

/* DDL that creates the migrations ledger; DDL cannot be prepared, so it is run as a script. */
extern const char db_migrations_bootstrap_sql[];

#endif
