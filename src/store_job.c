/*
 * store_job.c - job and model rows, and the bulk architecture reads (see
 * store_ml.h).  These statements run a few times per job or request, so
 * they are prepared per call rather than cached on the connection.
 */
#include "config.h"
#include "store_ml.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonv.h"
#include "mem.h"
#include "store_int.h"

double ctnas_store_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Prepare sql, bind the arguments described by fmt, in order:
 * 'i' int64_t, 'd' double, 't' const char * (NULL binds NULL),
 * 'j' const json_t * (dumped; NULL binds NULL), 'b' (const void *,
 * size_t) blob. */
static int prep(struct ctnas_store *st, sqlite3_stmt **s, const char *sql,
                const char *what, struct ctnas_err *err, const char *fmt,
                ...)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, s, NULL);
    if (rc != SQLITE_OK)
        return ctnas__store_fail(st, rc, what, err);
    va_list ap;
    va_start(ap, fmt);
    for (int i = 1; *fmt; fmt++, i++) {
        switch (*fmt) {
        case 'i':
            rc = sqlite3_bind_int64(*s, i, va_arg(ap, int64_t));
            break;
        case 'd':
            rc = sqlite3_bind_double(*s, i, va_arg(ap, double));
            break;
        case 't': {
            const char *t = va_arg(ap, const char *);
            rc = t ? sqlite3_bind_text(*s, i, t, -1, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(*s, i);
            break;
        }
        case 'j': {
            const json_t *j = va_arg(ap, const json_t *);
            char *text =
                j ? ctnas_jsonv_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY)
                  : NULL;
            /* A JSON value that cannot be dumped must not become NULL. */
            if (j != NULL && text == NULL)
                rc = SQLITE_NOMEM;
            else
                rc = text ? sqlite3_bind_text(*s, i, text, -1, ctnas_free)
                          : sqlite3_bind_null(*s, i);
            break;
        }
        case 'b': {
            const void *p = va_arg(ap, const void *);
            size_t n = va_arg(ap, size_t);
            rc = sqlite3_bind_blob64(*s, i, p, n, SQLITE_TRANSIENT);
            break;
        }
        }
        if (rc != SQLITE_OK)
            break;
    }
    va_end(ap);
    if (rc != SQLITE_OK) {
        rc = ctnas__store_fail(st, rc, what, err);
        sqlite3_finalize(*s);
        *s = NULL;
        return rc;
    }
    return 0;
}

/* Run a statement that returns no row; finalize it. */
static int exec_done(struct ctnas_store *st, sqlite3_stmt *s,
                     const char *what, struct ctnas_err *err)
{
    int rc = sqlite3_step(s);
    int r = rc == SQLITE_DONE ? 0 : ctnas__store_fail(st, rc, what, err);
    sqlite3_finalize(s);
    return r;
}

/* Run an INSERT; finalize it; *id the new row's id. */
static int exec_insert(struct ctnas_store *st, sqlite3_stmt *s,
                       const char *what, int64_t *id, struct ctnas_err *err)
{
    int rc = exec_done(st, s, what, err);
    if (rc == 0)
        *id = sqlite3_last_insert_rowid(st->db);
    return rc;
}

/* The JSON a column holds: null for SQL NULL or text that does not parse
 * (rows stay readable whatever was written), NULL when out of memory, so
 * that the row fails rather than lose the value. */
static json_t *col_json(sqlite3_stmt *s, int i)
{
    if (sqlite3_column_type(s, i) == SQLITE_NULL)
        return json_null();
    const char *t = (const char *)sqlite3_column_text(s, i);
    if (t == NULL)
        return NULL; /* SQLite could not convert the value: memory */
    json_error_t jerr;
    int oom;
    json_t *j = ctnas_jsonv_load(t, strlen(t), JSON_DECODE_ANY, &jerr, &oom);
    if (oom)
        return NULL;
    return j ? j : json_null();
}

static json_t *col_text(sqlite3_stmt *s, int i)
{
    const char *t = (const char *)sqlite3_column_text(s, i);
    return t ? json_string(t) : json_null();
}

/* A NOT NULL text column: "" should a damaged file hold NULL there, so
 * that no reader of the row meets a null it was promised never comes. */
static json_t *col_word(sqlite3_stmt *s, int i)
{
    const char *t = (const char *)sqlite3_column_text(s, i);
    return json_string(t ? t : "");
}

static json_t *col_real(sqlite3_stmt *s, int i)
{
    return sqlite3_column_type(s, i) == SQLITE_NULL
               ? json_null()
               : json_real(sqlite3_column_double(s, i));
}

/* ---- jobs ---- */

#define JOB_COLS                                                          \
    "id, kind, state, params, progress, result, error, created_at, "      \
    "started_at, finished_at, updated_at"

/* The states a job ends in, as an SQL list. */
#define ENDED_STATES "('succeeded', 'failed', 'cancelled')"

static json_t *job_row(sqlite3_stmt *s)
{
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
                     "s:o}",
                     "id", (json_int_t)sqlite3_column_int64(s, 0), "kind",
                     col_word(s, 1), "state", col_word(s, 2), "params",
                     col_json(s, 3), "progress", col_json(s, 4), "result",
                     col_json(s, 5), "error", col_text(s, 6), "created_at",
                     col_real(s, 7), "started_at", col_real(s, 8),
                     "finished_at", col_real(s, 9), "updated_at",
                     col_real(s, 10));
}

int ctnas_store_job_insert(struct ctnas_store *st, const char *kind,
                           const json_t *params, const json_t *label_ids,
                           const struct ctnas_job_key *key, int64_t *id,
                           struct ctnas_err *err)
{
    sqlite3_stmt *s;
    double now = ctnas_store_now();
    int rc = prep(st, &s,
                  "INSERT INTO jobs (id, kind, state, params, label_ids, "
                  "idem_key, idem_hash, created_at, updated_at) VALUES "
                  "(" CTNAS__NEXT_ID("jobs") ", ?, 'queued', ?, ?, ?, ?, ?, "
                  "?)",
                  "insert a job", err, "tjjttdd", kind, params, label_ids,
                  key ? key->key : NULL, key ? key->hash : NULL, now, now);
    if (rc < 0)
        return rc;
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc == SQLITE_DONE) {
        *id = sqlite3_last_insert_rowid(st->db);
        return 0;
    }
    /* Only the key's index is unique among the columns written here. */
    if (rc == SQLITE_CONSTRAINT_UNIQUE && key != NULL)
        return ctnas_err_set(err, CTNAS_ECONFLICT, "Idempotency-Key",
                             "another request holds this Idempotency-Key");
    return ctnas__store_fail(st, rc, "insert a job", err);
}

int ctnas_store_job_by_key(struct ctnas_store *st, const char *key,
                           int64_t *id, char hash[33], struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s, "SELECT id, idem_hash FROM jobs WHERE idem_key = ?",
                  "find a job by its key", err, "t", key);
    if (rc < 0)
        return rc;
    rc = sqlite3_step(s);
    const char *h = NULL;
    if (rc == SQLITE_ROW &&
        (h = (const char *)sqlite3_column_text(s, 1)) == NULL &&
        sqlite3_errcode(st->db) == SQLITE_NOMEM) {
        rc = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    } else if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(s, 0);
        snprintf(hash, 33, "%s", h ? h : "");
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = ctnas_err_set(err, CTNAS_ENOTFOUND, "Idempotency-Key",
                           "no job holds this key");
    } else {
        rc = ctnas__store_fail(st, rc, "find a job by its key", err);
    }
    sqlite3_finalize(s);
    return rc;
}

int ctnas_store_job_delete(struct ctnas_store *st, int64_t id,
                           struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s, "DELETE FROM jobs WHERE id = ? AND state IN "
                  ENDED_STATES, "delete a job", err, "i", id);
    if (rc < 0 || (rc = exec_done(st, s, "delete a job", err)) < 0)
        return rc;
    if (sqlite3_changes(st->db) > 0)
        return 0;
    /* Nothing deleted: no such job, or one that has not ended. */
    json_t *row;
    if ((rc = ctnas_store_job_get(st, id, &row, err)) < 0)
        return rc;
    rc = ctnas_err_set(err, CTNAS_ECONFLICT, "id",
                       "job %lld is %s: cancel it, then delete it once it "
                       "has ended", (long long)id,
                       json_string_value(json_object_get(row, "state")));
    json_decref(row);
    return rc;
}

int ctnas_store_job_purge_ended(struct ctnas_store *st, double before,
                                int limit, int *n, struct ctnas_err *err)
{
    sqlite3_stmt *s;
    /* One transaction of at most limit jobs: the caller sizes it to
     * hold the write lock briefly (retention.c).  Through jobs_finished
     * (sql/010), so only the rows due are read: the unary + keeps the
     * planner off jobs_state, which would read every ended job and sort
     * them. */
    int rc = prep(st, &s, "DELETE FROM jobs WHERE id IN (SELECT id FROM "
                  "jobs WHERE finished_at < ?1 AND +state IN " ENDED_STATES
                  " ORDER BY finished_at LIMIT ?2)",
                  "purge ended jobs", err, "di", before, (int64_t)limit);
    if (rc < 0 || (rc = exec_done(st, s, "purge ended jobs", err)) < 0)
        return rc;
    *n = sqlite3_changes(st->db);
    return 0;
}

int ctnas_store_search_continue(struct ctnas_store *st, int64_t id,
                                struct ctnas_err *err)
{
    sqlite3_stmt *s;
    /* A waiting row's progress is the round that ended: the search
     * writes it before it says waiting. */
    int rc = prep(st, &s, "UPDATE jobs SET continue_round = "
                  "json_extract(progress, '$.round') WHERE id = ? AND kind "
                  "= 'search' AND state = 'waiting'", "continue a search",
                  err, "i", id);
    if (rc < 0 || (rc = exec_done(st, s, "continue a search", err)) < 0)
        return rc;
    if (sqlite3_changes(st->db) > 0)
        return 0;
    return ctnas_err_set(err, CTNAS_ECONFLICT, "id",
                         "job %lld is not a waiting search", (long long)id);
}


int ctnas_store_job_forget_key(struct ctnas_store *st, int64_t id,
                               struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s, "UPDATE jobs SET idem_key = NULL, idem_hash = NULL "
                  "WHERE id = ?", "forget a job's key", err, "i", id);
    return rc < 0 ? rc : exec_done(st, s, "forget a job's key", err);
}

/* The one row of job id that sql (one '?' for the id) selects, mapped
 * by fn into *out; CTNAS_ENOTFOUND when there is no such job. */
static int job_read(struct ctnas_store *st, int64_t id, const char *sql,
                    json_t *(*fn)(sqlite3_stmt *), json_t **out,
                    const char *what, struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s, sql, what, err, "i", id);
    if (rc < 0)
        return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = fn(s);
        rc = *out ? 0 : ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    } else if (rc == SQLITE_DONE) {
        rc = ctnas_err_set(err, CTNAS_ENOTFOUND, "id", "no job %lld",
                           (long long)id);
    } else {
        rc = ctnas__store_fail(st, rc, what, err);
    }
    sqlite3_finalize(s);
    return rc;
}

int ctnas_store_job_get(struct ctnas_store *st, int64_t id, json_t **row,
                        struct ctnas_err *err)
{
    return job_read(st, id, "SELECT " JOB_COLS " FROM jobs WHERE id = ?",
                    job_row, row, "read a job", err);
}

static json_t *first_col_json(sqlite3_stmt *s)
{
    return col_json(s, 0);
}

int ctnas_store_search_continue_round(struct ctnas_store *st, int64_t id,
                                      int *round, struct ctnas_err *err)
{
    json_t *v = NULL;
    int rc = job_read(st, id, "SELECT continue_round FROM jobs WHERE id = ?",
                      first_col_json, &v, "read a search's continue", err);
    if (rc < 0)
        return rc;
    *round = (int)json_integer_value(v); /* null (never told): 0 */
    json_decref(v);
    return 0;
}

int ctnas_store_job_labels(struct ctnas_store *st, int64_t id,
                           json_t **label_ids, struct ctnas_err *err)
{
    json_t *v = NULL;
    int rc = job_read(st, id, "SELECT label_ids FROM jobs WHERE id = ?",
                      first_col_json, &v, "read a job's labels", err);
    if (rc < 0)
        return rc;
    /* SQL NULL (no labelled set) reads as JSON null */
    if (json_is_null(v)) {
        json_decref(v);
        v = NULL;
    }
    *label_ids = v;
    return 0;
}

/* Collect every row of s into a new array with fn; finalize s. */
static int collect(struct ctnas_store *st, sqlite3_stmt *s,
                   json_t *(*fn)(sqlite3_stmt *), json_t **rows,
                   const char *what, struct ctnas_err *err)
{
    json_t *arr = json_array();
    int rc = arr ? SQLITE_DONE : SQLITE_NOMEM;
    /* A row that cannot be built fails the listing: a page silently
     * short of a row would read as the end of the data. */
    while (arr && (rc = sqlite3_step(s)) == SQLITE_ROW)
        if ((arr = ctnas_jsonv_append(arr, fn(s))) == NULL)
            rc = SQLITE_NOMEM;
    if (rc != SQLITE_DONE) {
        rc = ctnas__store_fail(st, rc, what, err);
        json_decref(arr);
        sqlite3_finalize(s);
        return rc;
    }
    sqlite3_finalize(s);
    *rows = arr;
    return 0;
}

/* Step s for its one row and finalize it: *out its first column. */
static int one_i64(struct ctnas_store *st, sqlite3_stmt *s, const char *what,
                   int64_t *out, struct ctnas_err *err)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(s, 0);
        rc = 0;
    } else {
        rc = ctnas__store_fail(st, rc, what, err);
    }
    sqlite3_finalize(s);
    return rc;
}

/* Step s to its end and finalize it: *out the first column of every row
 * (a new array, NULL when there are none), *n how many. */
static int collect_ids(struct ctnas_store *st, sqlite3_stmt *s,
                       const char *what, int64_t **out, int *n,
                       struct ctnas_err *err)
{
    int64_t *ids = NULL;
    int k = 0, cap = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (k == cap) {
            int c2 = cap ? 2 * cap : 1024;
            int64_t *g = ctnas_realloc(ids, (size_t)c2 * sizeof *g);
            if (g == NULL) {
                rc = SQLITE_NOMEM;
                break;
            }
            ids = g;
            cap = c2;
        }
        ids[k++] = sqlite3_column_int64(s, 0);
    }
    if (rc != SQLITE_DONE) {
        /* the failure read before finalize, which resets it */
        rc = rc == SQLITE_NOMEM
                 ? ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory")
                 : ctnas__store_fail(st, rc, what, err);
        sqlite3_finalize(s);
        ctnas_free(ids);
        return rc;
    }
    sqlite3_finalize(s);
    *out = ids;
    *n = k;
    return 0;
}

int ctnas_store_job_list(struct ctnas_store *st, const char *kind,
                         const char *state, int64_t before, int limit,
                         json_t **rows, struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "SELECT " JOB_COLS " FROM jobs WHERE (?1 IS NULL OR "
                  "kind = ?1) AND (?2 IS NULL OR state = ?2) AND id < ?4 "
                  "ORDER BY id DESC LIMIT ?3",
                  "list jobs", err, "ttii", kind, state, (int64_t)limit,
                  before > 0 ? before : INT64_MAX);
    if (rc < 0)
        return rc;
    return collect(st, s, job_row, rows, "list jobs", err);
}

int ctnas_store_job_start(struct ctnas_store *st, int64_t id, double at,
                          struct ctnas_err *err)
{
    sqlite3_stmt *s;
    double now = ctnas_store_now();
    int rc = prep(st, &s,
                  "UPDATE jobs SET state = 'running', started_at = "
                  "coalesce(started_at, ?1), updated_at = ?2 WHERE id = ?3",
                  "start a job", err, "ddi", at > 0 && at <= now ? at : now,
                  now, id);
    return rc < 0 ? rc : exec_done(st, s, "start a job", err);
}

int ctnas_store_job_progress(struct ctnas_store *st, int64_t id,
                             const json_t *progress, struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "UPDATE jobs SET progress = ?1, updated_at = ?2 "
                  "WHERE id = ?3",
                  "record job progress", err, "jdi", progress,
                  ctnas_store_now(), id);
    return rc < 0 ? rc : exec_done(st, s, "record job progress", err);
}

int ctnas_store_job_finish(struct ctnas_store *st, int64_t id,
                           const char *state, const json_t *result,
                           const char *error, struct ctnas_err *err)
{
    int final = strcmp(state, "succeeded") == 0 ||
                strcmp(state, "failed") == 0 ||
                strcmp(state, "cancelled") == 0;
    double now = ctnas_store_now();
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "UPDATE jobs SET state = ?1, result = coalesce(?2, "
                  "result), error = coalesce(?3, error), finished_at = "
                  "CASE WHEN ?4 THEN ?5 ELSE NULL END, updated_at = ?5 "
                  "WHERE id = ?6 AND state NOT IN " ENDED_STATES,
                  "finish a job", err, "tjtidi", state, result, error,
                  (int64_t)final, now, id);
    return rc < 0 ? rc : exec_done(st, s, "finish a job", err);
}

int ctnas_store_job_fail_interrupted(struct ctnas_store *st,
                                     const char *kind, const char *reason,
                                     int *n,
                                     struct ctnas_err *err)
{
    sqlite3_stmt *s;
    double now = ctnas_store_now();
    int rc = prep(st, &s,
                  "UPDATE jobs SET state = 'failed', error = ?1, "
                  "finished_at = ?2, updated_at = ?2 WHERE kind = ?3 AND "
                  "state IN ('queued', 'running', 'waiting')",
                  "fail interrupted jobs", err, "tdt", reason, now, kind);
    if (rc < 0)
        return rc;
    if ((rc = exec_done(st, s, "fail interrupted jobs", err)) < 0)
        return rc;
    *n = sqlite3_changes(st->db);
    return 0;
}

/* ---- models ---- */

#define MODEL_COLS                                                        \
    "id, space, dataset, metric, job_id, config, figures, "               \
    "json_array_length(train_ids), created_at, published"

static json_t *model_row(sqlite3_stmt *s)
{
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o}",
                     "id",
                     (json_int_t)sqlite3_column_int64(s, 0), "space",
                     col_text(s, 1), "dataset", col_text(s, 2), "metric",
                     sqlite3_column_bytes(s, 3) ? col_text(s, 3)
                                                : json_null(),
                     "job_id",
                     sqlite3_column_type(s, 4) == SQLITE_NULL
                         ? json_null()
                         : json_integer(sqlite3_column_int64(s, 4)),
                     "config", col_json(s, 5), "figures", col_json(s, 6),
                     "n_train", (json_int_t)sqlite3_column_int64(s, 7),
                     "created_at", col_real(s, 8), "published",
                     json_boolean(sqlite3_column_int(s, 9)));
}

int ctnas_store_model_insert(struct ctnas_store *st,
                             const struct ctnas_model_meta *m,
                             const void *blob, size_t len, int64_t *id,
                             struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "INSERT INTO models (id, space, dataset, metric, job_id, "
                  "config, figures, train_ids, weights, published, "
                  "created_at) VALUES (" CTNAS__NEXT_ID("models") ", ?, ?, "
                  "?, nullif(?, 0), ?, ?, ?, ?, ?, ?)",
                  "store a model", err, "tttijjjbid", m->space, m->dataset,
                  m->metric ? m->metric : "", m->job_id, m->config,
                  m->figures, m->train_ids, blob, len,
                  (int64_t)(m->published != 0), ctnas_store_now());
    return rc < 0 ? rc : exec_insert(st, s, "store a model", id, err);
}

int ctnas_store_model_delete(struct ctnas_store *st, int64_t id,
                             struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = ctnas_store_begin(st, err);
    if (rc < 0)
        return rc;
    /* The checks and the delete in one write transaction, so they see
     * the same rows.  The newest published model of its space and
     * dataset is the one that serves them, or is about to: a training
     * job commits its model, then publishes it to the registry, so the
     * registry alone would let it go in between.  A search that has not
     * started (or resumes without a checkpoint) loads its comparator by
     * id. */
    rc = prep(st, &s,
              "SELECT published = 1 AND id = (SELECT max(m.id) FROM models "
              "m WHERE m.published = 1 AND m.space = models.space AND "
              "m.dataset = models.dataset), EXISTS (SELECT 1 FROM jobs "
              "WHERE kind = 'search' AND state IN ('queued', 'running', "
              "'waiting') AND json_extract(params, '$.comparator') = "
              "models.id), space, dataset FROM models WHERE id = ?",
              "delete a model", err, "i", id);
    if (rc == 0) {
        int step = sqlite3_step(s);
        if (step == SQLITE_DONE)
            rc = ctnas_err_set(err, CTNAS_ENOTFOUND, "id", "no model %lld",
                               (long long)id);
        else if (step != SQLITE_ROW)
            rc = ctnas__store_fail(st, step, "delete a model", err);
        else if (sqlite3_column_int(s, 0))
            rc = ctnas_err_set(err, CTNAS_ECONFLICT, "id",
                               "model %lld is the newest published for %s "
                               "on %s, so it serves them: publish a newer "
                               "one for them first", (long long)id,
                               (const char *)sqlite3_column_text(s, 3),
                               (const char *)sqlite3_column_text(s, 2));
        else if (sqlite3_column_int(s, 1))
            rc = ctnas_err_set(err, CTNAS_ECONFLICT, "id",
                               "model %lld is the comparator of a search "
                               "that has not ended: cancel it first",
                               (long long)id);
        sqlite3_finalize(s);
    }
    if (rc == 0 && (rc = prep(st, &s, "DELETE FROM models WHERE id = ?",
                              "delete a model", err, "i", id)) == 0)
        rc = exec_done(st, s, "delete a model", err);
    if (rc == 0)
        return ctnas_store_commit(st, err);
    ctnas_store_rollback(st);
    return rc;
}

int ctnas_store_model_get(struct ctnas_store *st, int64_t id, json_t **row,
                          void **blob, size_t *len, struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "SELECT " MODEL_COLS ", weights, train_ids FROM models "
                  "WHERE id = ?",
                  "read a model", err, "i", id);
    if (rc < 0)
        return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        rc = 0;
        *row = model_row(s);
        if (*row == NULL ||
            json_object_set_new(*row, "train_ids", col_json(s, 11)) != 0) {
            json_decref(*row);
            *row = NULL;
            rc = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        } else if (blob) {
            int n = sqlite3_column_bytes(s, 10);
            *blob = ctnas_malloc(n > 0 ? (size_t)n : 1);
            if (*blob == NULL) {
                json_decref(*row);
                rc = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
            } else {
                if (n > 0)
                    memcpy(*blob, sqlite3_column_blob(s, 10), (size_t)n);
                *len = (size_t)n;
            }
        }
    } else if (rc == SQLITE_DONE) {
        rc = ctnas_err_set(err, CTNAS_ENOTFOUND, "model", "no model %lld",
                           (long long)id);
    } else {
        rc = ctnas__store_fail(st, rc, "read a model", err);
    }
    sqlite3_finalize(s);
    return rc;
}

int ctnas_store_model_list(struct ctnas_store *st, const char *space,
                           const char *dataset, int64_t before, int limit,
                           json_t **rows, struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "SELECT " MODEL_COLS " FROM models WHERE (?1 IS NULL OR "
                  "space = ?1) AND (?4 IS NULL OR dataset = ?4) AND id < ?3 "
                  "ORDER BY id DESC LIMIT ?2",
                  "list models", err, "tiit", space, (int64_t)limit,
                  before > 0 ? before : INT64_MAX, dataset);
    if (rc < 0)
        return rc;
    return collect(st, s, model_row, rows, "list models", err);
}

int ctnas_store_model_latest(struct ctnas_store *st, int64_t **ids, int *n,
                             struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "SELECT max(id) FROM models WHERE published = 1 "
                  "GROUP BY space, dataset ORDER BY 1",
                  "find the serving models", err, "");
    if (rc < 0)
        return rc;
    return collect_ids(st, s, "find the serving models", ids, n, err);
}

/* ---- bulk reads ---- */

int ctnas_store_arch_scan(struct ctnas_store *st, const char *space,
                          ctnas_store_arch_fn cb, void *cls,
                          struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "SELECT id, encoding FROM architectures WHERE space = ? "
                  "ORDER BY id",
                  "read architectures", err, "t", space);
    if (rc < 0)
        return rc;
    int r = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if ((r = cb(cls, sqlite3_column_int64(s, 0),
                    (const char *)sqlite3_column_text(s, 1))) != 0)
            break;
    if (r == 0 && rc != SQLITE_DONE)
        r = ctnas__store_fail(st, rc, "read architectures", err);
    sqlite3_finalize(s);
    return r;
}

/* The join and filter of the two reads below: ?1 space, ?2 dataset, ?3
 * metric or NULL. */
#define MEASURED_FROM                                                        \
    "FROM architectures a JOIN measurements m ON m.arch_id = a.id WHERE "   \
    "a.space = ?1 AND m.dataset = ?2 AND (?3 IS NULL OR m.metric = ?3) "

/* Step s (a read of id, encoding, mean) to its end through cb, and
 * finalize it. */
static int measured_rows(struct ctnas_store *st, sqlite3_stmt *s,
                         ctnas_store_measured_fn cb, void *cls,
                         struct ctnas_err *err)
{
    int rc, r = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if ((r = cb(cls, sqlite3_column_int64(s, 0),
                    (const char *)sqlite3_column_text(s, 1),
                    sqlite3_column_double(s, 2))) != 0)
            break;
    if (r == 0 && rc != SQLITE_DONE)
        r = ctnas__store_fail(st, rc, "read measured architectures", err);
    sqlite3_finalize(s);
    return r;
}

int ctnas_store_arch_measured(struct ctnas_store *st, const char *space,
                              const char *dataset, const char *metric,
                              const int64_t *ids, int n_ids,
                              ctnas_store_measured_fn cb, void *cls,
                              struct ctnas_err *err)
{
    sqlite3_stmt *s;
    json_t *list = NULL;
    if (ids && (list = ctnas_jsonv_int64_array(ids, n_ids)) == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    /* With ids, SQLite looks each one up by rowid (EXPLAIN QUERY PLAN:
     * "SEARCH a USING INTEGER PRIMARY KEY"), then sorts them. */
    int rc = prep(st, &s,
                  ids ? "SELECT a.id, a.encoding, avg(m.value) " MEASURED_FROM
                        "AND a.id IN (SELECT value FROM json_each(?4)) "
                        "GROUP BY a.id ORDER BY a.id"
                      : "SELECT a.id, a.encoding, avg(m.value) " MEASURED_FROM
                        "GROUP BY a.id ORDER BY a.id",
                  "read measured architectures", err, ids ? "tttj" : "ttt",
                  space, dataset, metric, list);
    json_decref(list);
    if (rc < 0)
        return rc;
    return measured_rows(st, s, cb, cls, err);
}

int ctnas_store_arch_measured_since(struct ctnas_store *st,
                                    const char *space, const char *dataset,
                                    const char *metric, int64_t mark,
                                    ctnas_store_measured_fn cb, void *cls,
                                    struct ctnas_err *err)
{
    sqlite3_stmt *s;
    /* The new measurements are a rowid range: only they are scanned, then
     * each of their architectures is read as above. */
    int rc = prep(st, &s,
                  "SELECT a.id, a.encoding, avg(m.value) " MEASURED_FROM
                  "AND a.id IN (SELECT arch_id FROM measurements WHERE "
                  "id > ?4 AND dataset = ?2 AND (?3 IS NULL OR metric = ?3))"
                  " GROUP BY a.id ORDER BY a.id",
                  "read new measurements", err, "ttti", space, dataset,
                  metric, mark);
    if (rc < 0)
        return rc;
    return measured_rows(st, s, cb, cls, err);
}

int ctnas_store_measurement_mark(struct ctnas_store *st, int64_t *mark,
                                 struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s, "SELECT " CTNAS__NEXT_ID("measurements") " - 1",
                  "read the measurement mark", err, "");
    return rc < 0 ? rc : one_i64(st, s, "read the measurement mark", mark,
                                 err);
}

int ctnas_store_arch_measured_ids(struct ctnas_store *st, const char *space,
                                  const char *dataset, const char *metric,
                                  int64_t **out, int *n,
                                  struct ctnas_err *err)
{
    sqlite3_stmt *s;
    /* Covering indexes on both sides: no architecture row is read. */
    int rc = prep(st, &s, "SELECT a.id " MEASURED_FROM "GROUP BY a.id "
                  "ORDER BY a.id", "read measured ids", err, "ttt", space,
                  dataset, metric);
    if (rc < 0)
        return rc;
    return collect_ids(st, s, "read measured ids", out, n, err);
}

static json_t *metric_row(sqlite3_stmt *s)
{
    return col_text(s, 0);
}

int ctnas_store_metrics(struct ctnas_store *st, const char *space,
                        const char *dataset, json_t **metrics,
                        struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "SELECT DISTINCT m.metric FROM measurements m JOIN "
                  "architectures a ON a.id = m.arch_id WHERE a.space = ? "
                  "AND m.dataset = ? ORDER BY 1",
                  "list metrics", err, "tt", space, dataset);
    if (rc < 0)
        return rc;
    return collect(st, s, metric_row, metrics, "list metrics", err);
}

/* ---- searches ---- */

int ctnas_store_checkpoint_put(struct ctnas_store *st, int64_t id,
                               long step, const void *blob, size_t len,
                               const json_t *extra, struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "INSERT OR REPLACE INTO search_checkpoints (job_id, step, "
                  "state, extra, updated_at) VALUES (?, ?, ?, "
                  "coalesce(?, '{}'), ?)",
                  "write a checkpoint", err, "iibjd", id, (int64_t)step,
                  blob, len, extra, ctnas_store_now());
    return rc < 0 ? rc : exec_done(st, s, "write a checkpoint", err);
}

int ctnas_store_checkpoint_events(struct ctnas_store *st, int64_t id,
                                  long events, struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "UPDATE search_checkpoints SET extra = json_set(extra, "
                  "'$.events', ?) WHERE job_id = ?",
                  "record a checkpoint's events", err, "ii",
                  (int64_t)events, id);
    return rc < 0 ? rc : exec_done(st, s, "record a checkpoint's events",
                                   err);
}

int ctnas_store_checkpoint_get(struct ctnas_store *st, int64_t id,
                               long *step, void **blob, size_t *len,
                               json_t **extra, struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "SELECT step, state, extra FROM search_checkpoints "
                  "WHERE job_id = ?",
                  "read a checkpoint", err, "i", id);
    if (rc < 0)
        return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        int n = sqlite3_column_bytes(s, 1);
        *step = (long)sqlite3_column_int64(s, 0);
        *blob = ctnas_malloc(n > 0 ? (size_t)n : 1);
        *len = (size_t)n;
        if (*blob == NULL) {
            rc = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        } else {
            if (n > 0)
                memcpy(*blob, sqlite3_column_blob(s, 1), (size_t)n);
            *extra = col_json(s, 2);
            rc = 0;
            if (*extra == NULL) {
                ctnas_free(*blob);
                *blob = NULL;
                rc = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
            }
        }
    } else if (rc == SQLITE_DONE) {
        rc = ctnas_err_set(err, CTNAS_ENOTFOUND, "", "no checkpoint");
    } else {
        rc = ctnas__store_fail(st, rc, "read a checkpoint", err);
    }
    sqlite3_finalize(s);
    return rc;
}

int ctnas_store_event_put(struct ctnas_store *st, int64_t id, long seq,
                          const json_t *data, struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "INSERT OR REPLACE INTO search_events (job_id, seq, data, "
                  "created_at) VALUES (?, ?, ?, ?)",
                  "record an event", err, "iijd", id, (int64_t)seq, data,
                  ctnas_store_now());
    return rc < 0 ? rc : exec_done(st, s, "record an event", err);
}

/* NULL when out of memory (collect fails the listing). */
static json_t *event_row(sqlite3_stmt *s)
{
    json_t *d = col_json(s, 1);
    if (d != NULL && !json_is_object(d)) {
        json_decref(d);
        d = json_object();
    }
    if (d == NULL ||
        json_object_set_new(d, "seq",
                            json_integer(sqlite3_column_int64(s, 0))) != 0 ||
        json_object_set_new(d, "time", col_real(s, 2)) != 0) {
        json_decref(d);
        return NULL;
    }
    return d;
}

int ctnas_store_events_trim(struct ctnas_store *st, int64_t id, long keep,
                            struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "DELETE FROM search_events WHERE job_id = ? AND seq > ?",
                  "trim events", err, "ii", id, (int64_t)keep);
    return rc < 0 ? rc : exec_done(st, s, "trim events", err);
}

int ctnas_store_events(struct ctnas_store *st, int64_t id, long since,
                       int limit, json_t **rows, struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "SELECT seq, data, created_at FROM search_events WHERE "
                  "job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                  "read events", err, "iii", id, (int64_t)since,
                  (int64_t)limit);
    if (rc < 0)
        return rc;
    return collect(st, s, event_row, rows, "read events", err);
}

int ctnas_store_pseudo_put(struct ctnas_store *st, int64_t id, long seq,
                           const char *a, const char *b, int label,
                           double confidence, long step,
                           struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "INSERT OR IGNORE INTO pseudo_labels (job_id, seq, arch_a, "
                  "arch_b, label, confidence, step) VALUES (?, ?, ?, ?, ?, "
                  "?, ?)",
                  "store a pseudo-label", err, "iittidi", id, (int64_t)seq,
                  a, b, (int64_t)label, confidence, (int64_t)step);
    return rc < 0 ? rc : exec_done(st, s, "store a pseudo-label", err);
}

int ctnas_store_pseudo_count(struct ctnas_store *st, int64_t id,
                             int64_t *n, struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "SELECT count(*) FROM pseudo_labels WHERE job_id = ?",
                  "count pseudo-labels", err, "i", id);
    return rc < 0 ? rc : one_i64(st, s, "count pseudo-labels", n, err);
}

int ctnas_store_jobs_unfinished(struct ctnas_store *st, const char *kind,
                                json_t **rows, struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int rc = prep(st, &s,
                  "SELECT " JOB_COLS " FROM jobs WHERE kind = ? AND state "
                  "IN ('queued', 'running', 'waiting') ORDER BY id",
                  "list unfinished jobs", err, "t", kind);
    if (rc < 0)
        return rc;
    return collect(st, s, job_row, rows, "list unfinished jobs", err);
}

int ctnas_store_arch_standing(struct ctnas_store *st, const char *space,
                              const char *hash, const char *dataset,
                              const char *metric, int *found, int64_t *id,
                              double *value, int64_t *rank,
                              struct ctnas_err *err)
{
    sqlite3_stmt *s;
    /* LEFT JOIN: a cell stored but not measured there still has its
     * id. */
    int rc = prep(st, &s,
                  "SELECT a.id, sc.mean, (SELECT count(*) + 1 FROM "
                  "arch_scores o WHERE o.dataset = sc.dataset AND "
                  "o.metric = sc.metric AND o.space = a.space AND "
                  "o.mean > sc.mean) FROM architectures a LEFT JOIN "
                  "arch_scores sc ON sc.arch_id = a.id AND sc.dataset = ? "
                  "AND sc.metric = ? WHERE a.space = ? AND a.hash = ?",
                  "look an architecture up", err, "tttt", dataset, metric,
                  space, hash);
    if (rc < 0)
        return rc;
    rc = sqlite3_step(s);
    *found = 0;
    *id = 0;
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(s, 0);
        *found = sqlite3_column_type(s, 1) != SQLITE_NULL;
        *value = sqlite3_column_double(s, 1);
        *rank = sqlite3_column_int64(s, 2);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = 0;
    } else {
        rc = ctnas__store_fail(st, rc, "look an architecture up", err);
    }
    sqlite3_finalize(s);
    return rc;
}
