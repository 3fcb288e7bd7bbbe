/* job_autointerp.c: see job_autointerp.h. Features are handed out one at a time to
 * maxConcurrency threads, each with its own LLM client (its own kept-alive connection); the
 * job's one database connection is shared under a mutex. Each feature's explanation and
 * scores are written in one statement tagged with the job id, so a job killed mid-way and
 * resumed skips what it finished, and a re-run replaces only what autointerp jobs wrote for
 * the same method and explainer model. Cancellation is looked up at most every 200 ms while
 * requests go out (in flight too), so a cancelled job abandons its requests and sends no more. */
#include "server/job_autointerp.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/autointerp.h"
#include "server/log.h"

#define AI_MAX_CONCURRENCY 32
#define AI_FAIL_STREAK 8   /* features failing in a row with LLM errors: the attempt fails */

static int key_env_allowed(const saed_config *cfg, const char *env)
{
    size_t n = strlen(env);
    for (const char *p = cfg->llm_key_envs; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && !strncmp(p, env, n)) return 1;
        p += l + (e ? 1 : 0);
    }
    return 0;
}

int ai_api_key(const saed_config *cfg, const char *env, char *out, size_t n, char *err, size_t errlen)
{
    out[0] = '\0';
    if (env) {
        if (!key_env_allowed(cfg, env)) {
            snprintf(err, errlen, "apiKeyEnv: '%s' is not listed in SAED_LLM_KEY_ENVS", env);
            return -1;
        }
        const char *v = getenv(env);
        if (!v || !*v) {
            snprintf(err, errlen, "apiKeyEnv: the environment variable %s is not set", env);
            return -1;
        }
        snprintf(out, n, "%s", v);
        return 0;
    }
    if (!cfg->llm_key_file[0]) return 0;
    FILE *f = fopen(cfg->llm_key_file, "r");
    if (!f || !fgets(out, (int)n, f)) {
        if (f) fclose(f);
        out[0] = '\0';
        snprintf(err, errlen, "SAED_LLM_KEY_FILE: cannot read %s", cfg->llm_key_file);
        return -1;
    }
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

/* {baseUrl, model, apiKeyEnv?, tokenField?} checked into a clean copy. */
static json_t *llm_endpoint(const saed_config *cfg, json_t *o, const char *what, char *err, size_t errlen)
{
    const char *url = json_string_value(json_object_get(o, "baseUrl"));
    const char *model = json_string_value(json_object_get(o, "model"));
    json_t *env = json_object_get(o, "apiKeyEnv"), *tf = json_object_get(o, "tokenField");
    if (!json_is_object(o) || !url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))) {
        snprintf(err, errlen, "%s.baseUrl: required http:// or https:// URL", what);
        return NULL;
    }
    if (!model || !*model) {
        snprintf(err, errlen, "%s.model: required string", what);
        return NULL;
    }
    if (env && (!json_is_string(env) || !key_env_allowed(cfg, json_string_value(env)))) {
        snprintf(err, errlen, "%s.apiKeyEnv: expected one of SAED_LLM_KEY_ENVS (%s)", what, cfg->llm_key_envs);
        return NULL;
    }
    if (tf && (!json_is_string(tf) || (strcmp(json_string_value(tf), "max_tokens") &&
                                       strcmp(json_string_value(tf), "max_completion_tokens")))) {
        snprintf(err, errlen, "%s.tokenField: expected max_tokens or max_completion_tokens", what);
        return NULL;
    }
    json_t *r = json_pack("{s:s,s:s}", "baseUrl", url, "model", model);
    if (env) json_object_set(r, "apiKeyEnv", env);
    if (tf) json_object_set(r, "tokenField", tf);
    return r;
}

typedef struct num_field {
    const char *name;
    long long def, lo, hi;
} num_field;

int job_autointerp_payload(const saed_config *cfg, json_t *body, json_t **payload, char *err, size_t errlen)
{
    *payload = NULL;
    if (!json_is_object(body)) {
        snprintf(err, errlen, "request body must be a JSON object");
        return -1;
    }
    const char *model = json_string_value(json_object_get(body, "modelId"));
    const char *sae = json_string_value(json_object_get(body, "saeId"));
    const char *method = json_string_value(json_object_get(body, "method"));
    enum ai_explainer m;
    const char *tn;
    if (!model || !sae) {
        snprintf(err, errlen, "%s: required string", model ? "saeId" : "modelId");
        return -1;
    }
    if (ai_explainer_parse(method, &m, &tn)) {
        snprintf(err, errlen, "method: expected oai_token-act-pair, np_max-act-logits or eleuther_delphi");
        return -1;
    }
    json_t *ex = llm_endpoint(cfg, json_object_get(body, "explainer"), "explainer", err, errlen);
    if (!ex) return -1;
    json_t *p = json_pack("{s:s,s:s,s:s,s:o}", "modelId", model, "saeId", sae, "method", method, "explainer", ex);
    json_t *sc = json_object_get(body, "scorer");
    if (sc && !json_is_null(sc)) {
        enum ai_scorer s;
        const char *stn, *sm = json_string_value(json_object_get(sc, "method"));
        if (!json_is_object(sc) || ai_scorer_parse(sm, &s, &stn)) {
            snprintf(err, errlen, "scorer.method: expected simulation, fuzz, detection or recall_alt");
            json_decref(p);
            return -1;
        }
        /* the scorer's server defaults to the explainer's */
        json_t *merged = json_deep_copy(ex);
        json_object_update(merged, sc);
        json_t *se = llm_endpoint(cfg, merged, "scorer", err, errlen);
        json_decref(merged);
        if (!se) {
            json_decref(p);
            return -1;
        }
        json_object_set_new(se, "method", json_string(sm));
        json_object_set_new(p, "scorer", se);
    }
    const num_field nums[] = {
        {"nExamples", m == AI_EXPLAIN_DELPHI ? 20 : 10, 1, 100}, {"nScoreExamples", 10, 1, 100},
        {"nNegatives", 5, 0, 100}, {"maxConcurrency", 4, 1, AI_MAX_CONCURRENCY}, {"priority", 0, -100, 100},
        {"maxAttempts", 3, 1, 100}, {"maxRequests", cfg->llm_max_requests, 1, cfg->llm_max_requests},
        {"maxTokens", cfg->llm_max_tokens, 1, cfg->llm_max_tokens},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        json_t *v = json_object_get(body, nums[i].name);
        if (v && (!json_is_integer(v) || json_integer_value(v) < nums[i].lo || json_integer_value(v) > nums[i].hi)) {
            snprintf(err, errlen, "%s: expected an integer in [%lld, %lld]", nums[i].name, nums[i].lo, nums[i].hi);
            json_decref(p);
            return -1;
        }
        json_object_set_new(p, nums[i].name, json_integer(v ? json_integer_value(v) : nums[i].def));
    }
    json_t *t = json_object_get(body, "temperature");
    if (t && (!json_is_number(t) || json_number_value(t) < 0 || json_number_value(t) > 2)) {
        snprintf(err, errlen, "temperature: expected a number in [0, 2]");
        json_decref(p);
        return -1;
    }
    json_object_set_new(p, "temperature", json_real(t ? json_number_value(t) : 1.0));
    json_t *fr = json_object_get(body, "featureRange");
    if (fr) {
        if (!json_is_array(fr) || json_array_size(fr) != 2 || !json_is_integer(json_array_get(fr, 0)) ||
            !json_is_integer(json_array_get(fr, 1)) || json_integer_value(json_array_get(fr, 0)) < 0 ||
            json_integer_value(json_array_get(fr, 1)) <= json_integer_value(json_array_get(fr, 0))) {
            snprintf(err, errlen, "featureRange: expected [start, end] with 0 <= start < end");
            json_decref(p);
            return -1;
        }
        json_object_set(p, "featureRange", fr);
    }
    *payload = p;
    return 0;
}

/* ---- the runner ---- */

typedef struct run {
    job_ctx *c;
    json_t *p;
    const char *model_id, *sae_id, *type_name, *score_type, *expl_model, *score_model;
    enum ai_explainer method;
    enum ai_scorer scorer;
    int has_scorer, n_examples, n_score, n_neg, total;
    double temperature;
    int *todo, n_todo, next;
    int done, failed, fail_streak, fatal;
    char key_ex[1024], key_sc[1024];
    llm_budget budget;
    pthread_mutex_t mu;  /* the db connection, the counters, err */
    double last_check;
    char err[1024];
} run;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void progress_json(run *R, char *out, size_t n, const char *phase)
{
    double el = now_s() - R->c->started;
    int handled = R->done + R->failed, left = R->n_todo - handled;
    double eta = handled > 0 ? el / handled * left : 0;
    snprintf(out, n,
             "{\"phase\":\"%s\",\"featuresDone\":%d,\"featuresTotal\":%d,\"featuresFailed\":%d,\"requests\":%lld,"
             "\"tokensUsed\":%lld,\"etaSeconds\":%.0f}",
             phase, R->total - R->n_todo + R->done, R->total, R->failed, (long long)atomic_load(&R->budget.requests),
             (long long)atomic_load(&R->budget.tokens), eta);
}

/* Under mu. */
static int beat(run *R, int force)
{
    char prog[512];
    progress_json(R, prog, sizeof prog, "explaining");
    return job_heartbeat_json(R->c, prog, force);
}

/* The LLM clients' stop check: the job's stop flag, refreshed from the database (cancel,
 * lease) at most every 200 ms. */
static int should_stop(void *ud)
{
    run *R = ud;
    pthread_mutex_lock(&R->mu);
    if (!R->c->stop && !R->fatal && now_s() - R->last_check > 0.2) {
        R->last_check = now_s();
        beat(R, 1);
    }
    int stop = R->c->stop || R->fatal;
    pthread_mutex_unlock(&R->mu);
    return stop;
}

static int split_records(json_t *acts, json_t *negs, int n_examples, int n_score, int n_neg, ai_recs *ex, ai_recs *sc,
                         char *err, size_t errlen)
{
    /* Interleaved split, as OAI's: even ranks explain, odd ranks are held out for scoring
     * (with the negatives); a feature with one example uses it for both. */
    json_t *ea = json_array(), *sa = json_array();
    for (size_t i = 0; i < json_array_size(acts); i++) {
        json_t *a = json_array_get(acts, i);
        if (i % 2 == 0 && (int)json_array_size(ea) < n_examples) json_array_append(ea, a);
        else if (i % 2 == 1 && (int)json_array_size(sa) < n_score) json_array_append(sa, a);
    }
    if (json_array_size(sa) == 0 && json_array_size(acts)) json_array_append(sa, json_array_get(acts, 0));
    for (size_t i = 0; i < json_array_size(negs) && (int)i < n_neg; i++) {
        json_t *t = json_array_get(negs, i), *v = json_array();
        for (size_t k = 0; k < json_array_size(t); k++) json_array_append_new(v, json_real(0));
        json_array_append_new(sa, json_pack("{s:O,s:o}", "tokens", t, "values", v));
    }
    int rc = ai_recs_from_json(ea, "examples", ex, err, errlen);
    if (rc == 0 && (rc = ai_recs_from_json(sa, "scoring records", sc, err, errlen))) ai_recs_free(ex);
    json_decref(ea);
    json_decref(sa);
    return rc;
}

/* One feature. 0 done, 1 failed (counted, the job goes on), LLM_BUDGET/LLM_STOPPED, or -1
 * for a database error (the attempt is retried). */
static int one_feature(run *R, llm_client *ex_c, llm_client *sc_c, int idx, char *err, size_t errlen)
{
    char index[16], jid[24], neg[16];
    snprintf(index, sizeof index, "%d", idx);
    snprintf(jid, sizeof jid, "%" PRId64, R->c->j->id);
    snprintf(neg, sizeof neg, "%d", R->n_neg);
    pthread_mutex_lock(&R->mu);
    PGresult *r1 = db_exec(R->c->db, DB_AI_FEATURE, (const char *const[]){R->model_id, R->sae_id, index});
    PGresult *r2 = db_exec(R->c->db, DB_AI_NEGATIVES, (const char *const[]){R->model_id, R->sae_id, index, neg});
    pthread_mutex_unlock(&R->mu);
    int dbok = db_kind(r1) == DB_OK && PQntuples(r1) == 1 && db_kind(r2) == DB_OK && PQntuples(r2) == 1;
    json_t *f = dbok ? json_loads(PQgetvalue(r1, 0, 0), 0, NULL) : NULL;
    json_t *negs = dbok ? json_loads(PQgetvalue(r2, 0, 0), 0, NULL) : NULL;
    if (!dbok) snprintf(err, errlen, "database error reading feature %d", idx);
    PQclear(r1);
    PQclear(r2);
    if (!dbok) return -1;
    ai_recs ex = {0}, sc = {0};
    int rc = split_records(json_object_get(f, "acts"), negs, R->n_examples, R->n_score, R->n_neg, &ex, &sc, err, errlen);
    if (rc) {
        json_decref(f);
        json_decref(negs);
        return 1;
    }
    char expl[2048];
    rc = ai_explain(ex_c, R->method, ex.r, ex.n, json_object_get(f, "pos_str"), R->temperature, expl, sizeof expl, err, errlen);
    double score = NAN;
    json_t *details = NULL, *scores = json_array();
    if (rc == LLM_OK && R->has_scorer) {
        rc = ai_score(sc_c, R->scorer, expl, sc.r, sc.n, &score, &details, err, errlen);
        if (rc == LLM_OK) {
            char *dj = json_dumps(details, JSON_COMPACT);
            json_array_append_new(scores, json_pack("{s:o,s:s,s:s,s:s}", "value", ai_json_score(score), "t", R->score_type,
                                                    "m", R->score_model, "j", dj));
            free(dj);
        }
    }
    json_decref(details);
    ai_recs_free(&ex);
    ai_recs_free(&sc);
    json_decref(f);
    json_decref(negs);
    if (rc != LLM_OK) {
        json_decref(scores);
        return rc == LLM_FAILED ? 1 : rc;
    }
    /* scoreV2 holds the JSON simulator's score, as Neuronpedia's v2 scorer did */
    char v2[32] = "";
    if (R->has_scorer && R->scorer == AI_SCORE_SIMULATION && isfinite(score)) snprintf(v2, sizeof v2, "%.17g", score);
    char *sj = json_dumps(scores, JSON_COMPACT);
    json_decref(scores);
    pthread_mutex_lock(&R->mu);
    PGresult *r = db_exec(R->c->db, DB_AI_STORE, (const char *const[]){R->model_id, R->sae_id, index, expl, R->type_name,
                                                                        R->expl_model, v2[0] ? v2 : NULL, jid, sj});
    pthread_mutex_unlock(&R->mu);
    free(sj);
    int ok = db_kind(r) == DB_OK && PQntuples(r) == 1;
    if (!ok) db_errmsg(r, err, errlen);
    PQclear(r);
    return ok ? 0 : -1;
}

static llm_client *client_for(run *R, json_t *o, const char *key)
{
    llm_opts lo = {.base_url = json_string_value(json_object_get(o, "baseUrl")),
                   .model = json_string_value(json_object_get(o, "model")), .api_key = key,
                   .timeout_s = R->c->cfg->llm_timeout_s, .retries = R->c->cfg->llm_retries,
                   .token_field = json_string_value(json_object_get(o, "tokenField")), .budget = &R->budget,
                   .stop = should_stop, .stop_ud = R};
    return llm_new(&lo);
}

static void *thread_main(void *arg)
{
    run *R = arg;
    llm_client *ex_c = client_for(R, json_object_get(R->p, "explainer"), R->key_ex);
    llm_client *sc_c = R->has_scorer ? client_for(R, json_object_get(R->p, "scorer"), R->key_sc) : NULL;
    for (;;) {
        pthread_mutex_lock(&R->mu);
        int i = (R->c->stop || R->fatal || R->next >= R->n_todo) ? -1 : R->next++;
        pthread_mutex_unlock(&R->mu);
        if (i < 0) break;
        char err[1024] = "";
        int rc = one_feature(R, ex_c, sc_c, R->todo[i], err, sizeof err);
        pthread_mutex_lock(&R->mu);
        if (rc == 0) {
            R->done++;
            R->fail_streak = 0;
        } else if (rc == 1) {
            R->failed++;
            log_warn("job %lld: feature %d: %s", (long long)R->c->j->id, R->todo[i], err);
            snprintf(R->err, sizeof R->err, "feature %d: %s", R->todo[i], err);
            if (++R->fail_streak >= AI_FAIL_STREAK) R->fatal = JOB_RETRY;
        } else if (rc != LLM_STOPPED) {
            if (!R->fatal) snprintf(R->err, sizeof R->err, "%s", err);
            R->fatal = rc == LLM_BUDGET ? JOB_FATAL : JOB_RETRY;
        }
        beat(R, 0);
        pthread_mutex_unlock(&R->mu);
    }
    llm_free(ex_c);
    llm_free(sc_c);
    return NULL;
}

int job_autointerp_run(job_ctx *c, char *err, size_t errlen)
{
    run R = {.c = c};
    R.p = json_loads(c->j->payload, 0, NULL);
    json_t *p = R.p, *ex = json_object_get(p, "explainer"), *sc = json_object_get(p, "scorer");
    R.model_id = json_string_value(json_object_get(p, "modelId"));
    R.sae_id = json_string_value(json_object_get(p, "saeId"));
    R.expl_model = json_string_value(json_object_get(ex, "model"));
    if (!R.model_id || !R.sae_id || !R.expl_model ||
        ai_explainer_parse(json_string_value(json_object_get(p, "method")), &R.method, &R.type_name) ||
        (sc && ai_scorer_parse(json_string_value(json_object_get(sc, "method")), &R.scorer, &R.score_type))) {
        snprintf(err, errlen, "malformed payload");
        json_decref(p);
        return JOB_FATAL;
    }
    R.has_scorer = sc != NULL;
    R.score_model = json_string_value(json_object_get(sc, "model"));
    R.n_examples = (int)json_integer_value(json_object_get(p, "nExamples"));
    R.n_score = (int)json_integer_value(json_object_get(p, "nScoreExamples"));
    R.n_neg = (int)json_integer_value(json_object_get(p, "nNegatives"));
    R.temperature = json_number_value(json_object_get(p, "temperature"));
    R.budget.max_requests = json_integer_value(json_object_get(p, "maxRequests"));
    R.budget.max_tokens = json_integer_value(json_object_get(p, "maxTokens"));
    if (ai_api_key(c->cfg, json_string_value(json_object_get(ex, "apiKeyEnv")), R.key_ex, sizeof R.key_ex, err, errlen) ||
        (sc && ai_api_key(c->cfg, json_string_value(json_object_get(sc, "apiKeyEnv")), R.key_sc, sizeof R.key_sc, err, errlen))) {
        json_decref(p);
        return JOB_FATAL;
    }
    json_t *fr = json_object_get(p, "featureRange");
    char f0[16], f1[16], jid[24];
    snprintf(f0, sizeof f0, "%lld", fr ? (long long)json_integer_value(json_array_get(fr, 0)) : 0LL);
    snprintf(f1, sizeof f1, "%lld", fr ? (long long)json_integer_value(json_array_get(fr, 1)) : 2147483647LL);
    snprintf(jid, sizeof jid, "%" PRId64, c->j->id);
    /* the whole range (for featuresTotal), then what this job has not yet explained */
    PGresult *all = db_exec(c->db, DB_AI_TODO, (const char *const[]){R.model_id, R.sae_id, f0, f1, "0"});
    PGresult *todo = db_exec(c->db, DB_AI_TODO, (const char *const[]){R.model_id, R.sae_id, f0, f1, jid});
    if (db_kind(all) != DB_OK || db_kind(todo) != DB_OK) {
        snprintf(err, errlen, "database error listing the features");
        PQclear(all);
        PQclear(todo);
        json_decref(p);
        return JOB_RETRY;
    }
    R.total = PQntuples(all);
    R.n_todo = PQntuples(todo);
    R.todo = calloc((size_t)R.n_todo + 1, sizeof *R.todo);
    for (int i = 0; i < R.n_todo; i++) R.todo[i] = atoi(PQgetvalue(todo, i, 0));
    PQclear(all);
    PQclear(todo);
    if (R.total == 0) {
        snprintf(err, errlen, "SAE %s/%s has no stored dashboards in the range: run a dashboard job first", R.model_id, R.sae_id);
        free(R.todo);
        json_decref(p);
        return JOB_FATAL;
    }
    log_info("job %lld: autointerp %s of %d feature(s) (%d already done)", (long long)c->j->id, R.type_name, R.n_todo,
             R.total - R.n_todo);
    pthread_mutex_init(&R.mu, NULL);
    int nt = (int)json_integer_value(json_object_get(p, "maxConcurrency"));
    if (nt > R.n_todo) nt = R.n_todo > 0 ? R.n_todo : 1;
    pthread_t th[AI_MAX_CONCURRENCY];
    int started = 0;
    for (int i = 0; i < nt; i++)
        if (pthread_create(&th[i], NULL, thread_main, &R) == 0) started++;
    if (started == 0) thread_main(&R);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    pthread_mutex_destroy(&R.mu);
    int rc;
    if (c->stop) {
        rc = JOB_STOPPED;
        snprintf(err, errlen, "stopped");
    } else if (R.fatal) {
        rc = R.fatal;
        snprintf(err, errlen, "%s", R.err);
    } else {
        char prog[512];
        progress_json(&R, prog, sizeof prog, "done");
        int d = jobs_complete(c->db, c->j, prog);
        rc = d == 1 ? JOB_DONE : d == 0 ? JOB_STOPPED : JOB_RETRY;
        if (d == 0) c->lease_lost = 1;
        if (d != 1) snprintf(err, errlen, d == 0 ? "lease lost before completion" : "completing the job failed");
    }
    free(R.todo);
    json_decref(p);
    memset(R.key_ex, 0, sizeof R.key_ex);
    memset(R.key_sc, 0, sizeof R.key_sc);
    return rc;
}
