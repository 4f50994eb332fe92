/*
 * api_job.c - /v1/jobs: poll, list and cancel background jobs.  Handlers
 * read job rows from the store (the runner writes progress there), and
 * only cancellation reaches into the runner.
 */
#include "config.h"
#include "api.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "jsonv.h"
#include "log.h"
#include "md5.h"
#include "mem.h"
#include "runner.h"
#include "store_ml.h"

/* Add the derived timing fields to a job row: elapsed and estimated
 * remaining seconds, from its start time (less a search's time waiting
 * for measurements) and progress fraction.  No estimate while a search
 * waits (the client's time) or polishes (its steps are all done, the
 * climbs' length unknown). */
int ctnas_api_job_view(json_t *row)
{
    /* Internal to resuming (jobs stored before sql/004 keep their
     * labelled set in params) and to the suggestions route. */
    json_object_del(json_object_get(row, "params"), "label_ids");
    json_object_del(json_object_get(row, "progress"), "suggestions");
    const char *state = json_string_value(json_object_get(row, "state"));
    json_t *started = json_object_get(row, "started_at");
    json_t *finished = json_object_get(row, "finished_at");
    json_t *progress = json_object_get(row, "progress");
    double frac = json_number_value(json_object_get(progress, "fraction"));
    const char *phase =
        json_string_value(json_object_get(progress, "phase"));
    int unknown = strcmp(state, "waiting") == 0 ||
                  (phase != NULL && strcmp(phase, "polishing") == 0);
    int done = strcmp(state, "succeeded") == 0;
    json_t *elapsed = json_null(), *remaining = json_null();
    if (json_is_number(started)) {
        double end = json_is_number(finished) ? json_number_value(finished)
                                              : ctnas_store_now();
        double e = end - json_number_value(started);
        elapsed = json_real(e > 0 ? e : 0);
        /* A search's rounds past waited for the client: not its pace. */
        double active =
            e - json_number_value(json_object_get(progress,
                                                  "waited_seconds"));
        if (json_is_number(finished))
            remaining = json_real(0);
        else if (!unknown && frac > 0 && frac <= 1)
            remaining = json_real((active > 0 ? active : 0) * (1 - frac) /
                                  frac);
    }
    int bad = json_object_set_new(row, "elapsed_seconds", elapsed);
    bad |= json_object_set_new(row, "remaining_seconds", remaining);
    bad |= json_object_set_new(
        row, "fraction", json_real(done ? 1.0 : (isfinite(frac) ? frac : 0)));
    return bad ? CTNAS_ENOMEM : 0;
}

/* *out = row with its view, or CTNAS_ENOMEM with row released. */
static int view_out(json_t *row, json_t **out, int status,
                    struct ctnas_err *err)
{
    if (ctnas_api_job_view(row) != 0) {
        json_decref(row);
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }
    *out = row;
    return status;
}

int ctnas_api_job_state_check(const char *state, struct ctnas_err *err)
{
    static const char *const states[] = {"queued", "running", "waiting",
                                         "succeeded", "failed", "cancelled",
                                         NULL};
    for (const char *const *s = states; state && *s; s++)
        if (strcmp(*s, state) == 0)
            return 0;
    if (state == NULL)
        return 0;
    return ctnas_err_set(err, CTNAS_EINVAL, "state",
                         "state must be queued, running, waiting, "
                         "succeeded, failed or cancelled");
}

int ctnas_api_path_id(const char *seg, const char *field, const char *what,
                      int64_t *id, struct ctnas_err *err)
{
    if (ctnas_jsonv_parse_int(seg, field, 1, INT64_MAX, id, NULL) < 0)
        return ctnas_err_set(err, CTNAS_ENOTFOUND, field, "no %s '%s'",
                             what, seg);
    return 0;
}

int ctnas_api_job_get(struct ctnas_req *req, json_t **out,
                      struct ctnas_err *err)
{
    int64_t id;
    struct ctnas_store *st;
    json_t *row;
    int rc;
    if ((rc = ctnas_api_path_id(req->params[0], "id", "job", &id, err)) <
            0 ||
        (rc = ctnas_app_store(req->app, &st, err)) < 0 ||
        (rc = ctnas_store_job_get(st, id, &row, err)) < 0)
        return rc;
    return view_out(row, out, 200, err);
}

/* The request's Idempotency-Key into key with the fingerprint of the
 * request (MD5 of its path, less a trailing slash, and canonical body):
 * 1, or 0 without the header, or a 400 for a key that is not 1-255
 * visible ASCII characters but '"' (the structured-field form "..." of
 * the IETF draft is unquoted). */
static int read_key(const struct ctnas_req *req, const json_t *body,
                    struct ctnas_job_key *key, struct ctnas_err *err)
{
    const char *h = ctnas_req_header(req, "Idempotency-Key");
    if (h == NULL)
        return 0;
    size_t n = strlen(h);
    if (n >= 2 && h[0] == '"' && h[n - 1] == '"') {
        h++;
        n -= 2;
    }
    int ok = n >= 1 && n < sizeof key->key;
    for (size_t i = 0; ok && i < n; i++)
        ok = h[i] > 0x20 && h[i] < 0x7f && h[i] != '"';
    if (!ok)
        return ctnas_err_set(err, CTNAS_EINVAL, "Idempotency-Key",
                             "Idempotency-Key must be 1 to %zu visible "
                             "ASCII characters other than '\"'",
                             sizeof key->key - 1);
    memcpy(key->key, h, n);
    key->key[n] = '\0';
    /* Sorted keys: the same request in another key order is the same;
     * so is a path the router takes with a trailing slash. */
    size_t plen = strlen(req->path);
    while (plen > 1 && req->path[plen - 1] == '/')
        plen--;
    json_t *req_doc = json_pack("[s%,O]", req->path, plen, body);
    size_t flags = JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17);
    char *text = req_doc ? ctnas_jsonv_dumps(req_doc, flags) : NULL;
    json_decref(req_doc);
    if (text == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    ctnas_md5_hex(text, strlen(text), key->hash);
    ctnas_free(text);
    return 1;
}

/* Answer the job that holds key, if one does: 202 and its view when it
 * was made by the same request, 409 when by another; CTNAS_ENOTFOUND,
 * with err untouched, when no job holds key. */
static int replay(struct ctnas_req *req, struct ctnas_store *st,
                  const struct ctnas_job_key *key, json_t **out,
                  struct ctnas_err *err)
{
    int64_t id;
    char hash[33];
    json_t *row;
    struct ctnas_err e2 = {0};
    int rc = ctnas_store_job_by_key(st, key->key, &id, hash, &e2);
    if (rc == CTNAS_ENOTFOUND)
        return rc;
    if (rc < 0) {
        *err = e2;
        return rc;
    }
    if (strcmp(hash, key->hash) != 0)
        return ctnas_err_set(err, CTNAS_ECONFLICT, "Idempotency-Key",
                             "this Idempotency-Key made job %lld with a "
                             "different request; use a new key for a new "
                             "job", (long long)id);
    /* Purged since (DELETE ?purge=true, --job-retention): the key is
     * free again. */
    if ((rc = ctnas_store_job_get(st, id, &row, &e2)) == CTNAS_ENOTFOUND)
        return rc;
    if (rc < 0) {
        *err = e2;
        return rc;
    }
    req->reply_header = "Idempotent-Replayed";
    req->reply_value = "true";
    return view_out(row, out, 202, err);
}

int ctnas_api_job_submit(struct ctnas_req *req, ctnas_api_submit_fn submit,
                         json_t **out, struct ctnas_err *err)
{
    json_t *body;
    struct ctnas_store *st;
    struct ctnas_job_key key;
    int rc, keyed;
    if ((rc = ctnas_req_body_object(req, &body, err)) < 0 ||
        (keyed = rc = read_key(req, body, &key, err)) < 0 ||
        (rc = ctnas_app_store(req->app, &st, err)) < 0)
        return rc;
    if (keyed && (rc = replay(req, st, &key, out, err)) != CTNAS_ENOTFOUND)
        return rc;
    rc = submit(req->app, st, body, keyed ? &key : NULL, out, err);
    /* Refused (the key taken, --max-jobs reached) because a concurrent
     * request with the key made its job first: answer that job.  Not
     * after other failures: one after the insert would find this very
     * request's job and call it a replay. */
    if (keyed && (rc == CTNAS_ELIMIT ||
                  (rc == CTNAS_ECONFLICT &&
                   strcmp(err->field, "Idempotency-Key") == 0))) {
        int r2 = replay(req, st, &key, out, err);
        if (r2 != CTNAS_ENOTFOUND)
            return r2;
        if (rc == CTNAS_ECONFLICT)
            /* Its holder let go of it meanwhile (refused at shutdown). */
            return ctnas_err_set(err, CTNAS_EBUSY, "Idempotency-Key",
                                 "a concurrent request with this key was "
                                 "refused: retry");
    }
    if (rc < 0 || *out == NULL)
        return rc;
    /* The job is queued whatever happens to its answer now: a client that
     * sent a key can retry for it. */
    json_t *row = *out;
    *out = NULL;
    return view_out(row, out, 202, err);
}

static int too_many(struct ctnas_app *app, struct ctnas_err *err)
{
    int n = app->conf->max_jobs;
    return ctnas_err_set(err, CTNAS_ELIMIT, "",
                         "%d job%s already queued, running or waiting "
                         "(the limit, --max-jobs): wait for one to finish, "
                         "or cancel one (a waiting ask/tell search holds "
                         "its place until its last round)", n,
                         n == 1 ? " is" : "s are");
}

int ctnas_api_job_start(struct ctnas_app *app, struct ctnas_store *st,
                        struct ctnas_job *job,
                        void (*drop)(struct ctnas_job *job), const char *kind,
                        const json_t *params, const json_t *label_ids,
                        const struct ctnas_job_key *key, json_t **out,
                        struct ctnas_err *err)
{
    int64_t id = 0;
    int rc;
    pthread_mutex_lock(&app->submit_mu);
    if (ctnas_runner_active(app->runner) >= app->conf->max_jobs) {
        rc = too_many(app, err);
    } else if ((rc = ctnas_store_job_insert(st, kind, params, label_ids,
                                            key, &id, err)) == 0) {
        job->id = id;
        if (ctnas_runner_submit(app->runner, job) < 0) {
            /* Only when the runner is stopping (the check above and this
             * submit are one step for clients' jobs): the key is let go
             * first, so a retry after the restart makes a job. */
            struct ctnas_err e2;
            if (ctnas_store_job_forget_key(st, id, &e2) < 0)
                ctnas_log_warn("job %lld keeps its Idempotency-Key: %s",
                               (long long)id, e2.msg);
            ctnas_store_job_finish(st, id, "failed", NULL,
                                   "the daemon was stopping", &e2);
            rc = ctnas_err_set(err, CTNAS_EBUSY, "",
                               "the daemon is stopping: submit again once "
                               "it is back");
        }
    }
    pthread_mutex_unlock(&app->submit_mu);
    if (rc < 0) {
        drop(job);
        return rc;
    }
    /* the runner has job, which may be done and gone already: only its id
     * from here on */
    return ctnas_store_job_get(st, id, out, err);
}

int ctnas_api_cursor_read(const struct ctnas_req *req, int64_t *before,
                          struct ctnas_err *err)
{
    const char *cur = ctnas_req_query(req, "cursor");
    *before = 0;
    if (cur && ctnas_jsonv_parse_int(cur, "cursor", 1, INT64_MAX, before,
                                     NULL) < 0)
        return ctnas_err_set(err, CTNAS_EINVAL, "cursor",
                             "cursor must be a next_cursor of this route");
    return 0;
}

json_t *ctnas_api_cursor_cut(json_t *rows, size_t limit)
{
    if (json_array_size(rows) <= limit)
        return json_null();
    json_array_remove(rows, limit);
    char buf[24];
    snprintf(buf, sizeof buf, "%lld",
             (long long)json_integer_value(json_object_get(
                 json_array_get(rows, limit - 1), "id")));
    return json_string(buf);
}

int ctnas_api_job_list_kind(struct ctnas_req *req, const char *kind,
                            json_t **out, struct ctnas_err *err)
{
    static const char *const any_kind[] = {"kind", "state", "limit",
                                           "cursor", NULL};
    int rc = ctnas_req_query_only(req, kind ? any_kind + 1 : any_kind, err);
    if (rc < 0)
        return rc;
    if (kind == NULL) {
        kind = ctnas_req_query(req, "kind");
        if (kind && strcmp(kind, "train") != 0 &&
            strcmp(kind, "search") != 0)
            return ctnas_err_set(err, CTNAS_EINVAL, "kind",
                                 "kind must be train or search");
    }
    const char *state = ctnas_req_query(req, "state");
    int64_t limit = 100, before = 0;
    const char *lim = ctnas_req_query(req, "limit");
    if (lim && (rc = ctnas_jsonv_parse_int(lim, "limit", 1, 1000, &limit,
                                           err)) < 0)
        return rc;
    if ((rc = ctnas_api_cursor_read(req, &before, err)) < 0)
        return rc;
    if ((rc = ctnas_api_job_state_check(state, err)) < 0)
        return rc;
    struct ctnas_store *st;
    json_t *rows;
    /* One row more than the page tells whether there is a next one. */
    if ((rc = ctnas_app_store(req->app, &st, err)) < 0 ||
        (rc = ctnas_store_job_list(st, kind, state, before, (int)limit + 1,
                                   &rows, err)) < 0)
        return rc;
    json_t *next = ctnas_api_cursor_cut(rows, (size_t)limit);
    size_t i;
    json_t *row;
    int bad = next == NULL;
    json_array_foreach(rows, i, row)
        bad = bad || ctnas_api_job_view(row) != 0;
    if (bad) {
        json_decref(rows);
        json_decref(next);
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }
    *out = json_pack("{s:o, s:o}", "items", rows, "next_cursor", next);
    return 200;
}

int ctnas_api_job_list(struct ctnas_req *req, json_t **out,
                       struct ctnas_err *err)
{
    return ctnas_api_job_list_kind(req, NULL, out, err);
}

/* ?purge=true: delete a job that has ended (200), instead of cancelling
 * one that has not. */
static int purge(int64_t id, struct ctnas_store *st, json_t **out,
                 struct ctnas_err *err)
{
    int rc = ctnas_store_job_delete(st, id, err);
    if (rc < 0)
        return rc;
    *out = json_pack("{s:I, s:b}", "id", (json_int_t)id, "deleted", 1);
    return 200;
}

int ctnas_api_job_cancel(struct ctnas_req *req, json_t **out,
                         struct ctnas_err *err)
{
    static const char *const params[] = {"purge", NULL};
    int64_t id;
    struct ctnas_store *st;
    json_t *row;
    int rc;
    if ((rc = ctnas_req_query_only(req, params, err)) < 0 ||
        (rc = ctnas_api_path_id(req->params[0], "id", "job", &id, err)) <
            0)
        return rc;
    const char *p = ctnas_req_query(req, "purge");
    if (p && strcmp(p, "true") != 0 && strcmp(p, "false") != 0)
        return ctnas_err_set(err, CTNAS_EINVAL, "purge",
                             "purge must be true or false");
    if ((rc = ctnas_app_store(req->app, &st, err)) < 0)
        return rc;
    if (p && strcmp(p, "true") == 0)
        return purge(id, st, out, err);
    if ((rc = ctnas_store_job_get(st, id, &row, err)) < 0)
        return rc;
    const char *state = json_string_value(json_object_get(row, "state"));
    if (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
        strcmp(state, "cancelled") == 0) {
        ctnas_err_set(err, CTNAS_ECONFLICT, "id",
                      "job %lld has already ended (%s); there is nothing "
                      "to cancel (?purge=true deletes it)", (long long)id,
                      state);
        json_decref(row);
        return CTNAS_ECONFLICT;
    }
    json_decref(row);
    if (ctnas_runner_cancel(req->app->runner, id) < 0) {
        /* Not in this daemon's runner: a row orphaned by a crash. */
        if ((rc = ctnas_store_job_finish(st, id, "cancelled", NULL,
                                         "cancelled by request", err)) < 0)
            return rc;
    }
    if ((rc = ctnas_store_job_get(st, id, &row, err)) < 0)
        return rc;
    state = json_string_value(json_object_get(row, "state"));
    if (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0) {
        /* It ended while we looked. */
        ctnas_err_set(err, CTNAS_ECONFLICT, "id",
                      "job %lld has already ended (%s); there is nothing "
                      "to cancel", (long long)id, state);
        json_decref(row);
        return CTNAS_ECONFLICT;
    }
    /* The job stops within a second; poll it to see "cancelled". */
    if (json_object_set_new(row, "cancel_requested", json_true()) != 0) {
        json_decref(row);
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }
    return view_out(row, out, 202, err);
}
