/*
 * api.h - what route handlers see: the application state and the request.
 * Handlers never see libmicrohttpd; http.c adapts.
 *
 * A handler returns the HTTP status of its success (200, 201, 202) and
 * sets *out to one new json_t reference (http.c dumps and releases it), or
 * returns a negative CTNAS_E* code with err filled, which http.c turns into
 * {"error": {"code", "message", "field"}} with the status of the code.
 * A success with *out NULL (json_pack ran out of memory) is answered as
 * CTNAS_ENOMEM, so handlers need not check their last pack.
 */
#ifndef CTNAS_API_H
#define CTNAS_API_H

#include <jansson.h>
#include <pthread.h>

#include "conf.h"
#include "ctnas.h"
#include "store.h"

struct ctnas_runner;
struct ctnas_registry;

struct ctnas_app {
    const struct ctnas_conf *conf;
    struct ctnas_runner *runner;      /* background jobs (thread-safe calls) */
    struct ctnas_registry *registry;  /* serving comparators */
    /* The HTTP server, for its load (health), from its start to its
     * stop (set by http.c). */
    struct ctnas_http *http;
    pthread_key_t store_key;   /* each HTTP thread's own connection */
    /* Job submits one at a time, from the --max-jobs check to the
     * runner's taking the job (ctnas_api_job_start). */
    pthread_mutex_t submit_mu;
    double started;            /* CLOCK_MONOTONIC seconds at start */
    char token[256];           /* required bearer token, or "" (none) */
};

#define CTNAS_ROUTE_MAX_PARAMS 2

struct ctnas_req {
    struct ctnas_app *app;
    const char *method;
    const char *path;
    /* Path parameters in pattern order ("{id}"), borrowed. */
    const char *params[CTNAS_ROUTE_MAX_PARAMS];
    char param_buf[CTNAS_ROUTE_MAX_PARAMS][64];
    json_t *body;              /* parsed JSON body, or NULL (borrowed) */
    void *conn;                /* for http.c only */
    /* Without a connection (a handler called directly, as
     * tests/test_oom.c does): the request's headers, name and value in
     * turn, NULL-terminated; or NULL. */
    const char *const *headers;
    /* A header a handler adds to its success answer (static strings),
     * or NULL. */
    const char *reply_header, *reply_value;
    /* Set by a handler whose *out is a JSON string to be answered as
     * text of this Content-Type (static), not as JSON; or NULL. */
    const char *reply_type;
};

typedef int (*ctnas_handler)(struct ctnas_req *req, json_t **out,
                             struct ctnas_err *err);

/* Initialise app around conf (borrowed); 0 or a negative code. */
int ctnas_app_init(struct ctnas_app *app, const struct ctnas_conf *conf);
void ctnas_app_destroy(struct ctnas_app *app);

/* This thread's store connection, opened on first use (borrowed: closed
 * when the thread exits). */
int ctnas_app_store(struct ctnas_app *app, struct ctnas_store **st,
                    struct ctnas_err *err);

/* Query-string value, or NULL (implemented in http.c). */
const char *ctnas_req_query(const struct ctnas_req *req, const char *key);
/* Request header value (name case-insensitive), or NULL (http.c). */
const char *ctnas_req_header(const struct ctnas_req *req, const char *name);
/* Reject query keys not in the NULL-terminated list (400 naming it). */
int ctnas_req_query_only(const struct ctnas_req *req,
                         const char *const *allowed, struct ctnas_err *err);
/* The body, required to be a JSON object. */
int ctnas_req_body_object(const struct ctnas_req *req, json_t **body,
                          struct ctnas_err *err);

/* Add the derived fields of a job row (elapsed_seconds,
 * remaining_seconds, fraction) in place: 0, or CTNAS_ENOMEM (row, still
 * the caller's, may then lack some). */
int ctnas_api_job_view(json_t *row);

/* 0 when state is NULL or a job state; else EINVAL on field "state". */
int ctnas_api_job_state_check(const char *state, struct ctnas_err *err);

/* The POST of a job route: the request's body to submit(), whose new job
 * row is answered with its view and 202.  With an Idempotency-Key header,
 * a repeat of the request answers the job the first one made (202 and
 * "Idempotent-Replayed: true"), the same key with another request is
 * CTNAS_ECONFLICT; key (NULL without the header) goes on to
 * ctnas_api_job_start. */
struct ctnas_job_key;
typedef int (*ctnas_api_submit_fn)(struct ctnas_app *app,
                                   struct ctnas_store *st, const json_t *req,
                                   const struct ctnas_job_key *key,
                                   json_t **out, struct ctnas_err *err);
int ctnas_api_job_submit(struct ctnas_req *req, ctnas_api_submit_fn submit,
                         json_t **out, struct ctnas_err *err);

/* For submit functions: insert the row of job (kind; label_ids may be
 * NULL) and hand job, its ops and data set, to the runner.  Takes job in
 * every case: on an error before the runner has it, drop(job) frees it.
 * Submits run one at a time from the --max-jobs check to the runner's
 * taking the job, so a refusal (CTNAS_ELIMIT) leaves no row, and a
 * concurrent request with the same Idempotency-Key finds this one's job
 * committed; only a runner that is stopping refuses a job after its row
 * is written (CTNAS_EBUSY; the row ends failed).  *out: the new row (new
 * reference). */
struct ctnas_job;
int ctnas_api_job_start(struct ctnas_app *app, struct ctnas_store *st,
                        struct ctnas_job *job,
                        void (*drop)(struct ctnas_job *job), const char *kind,
                        const json_t *params, const json_t *label_ids,
                        const struct ctnas_job_key *key, json_t **out,
                        struct ctnas_err *err);

/* Pages of a list newest first (jobs, models): the cursor is the id the
 * last page ended on, so the next page starts below it and rows made
 * meanwhile do not shift it.  read: ?cursor= into *before (0 without
 * one; 400 on "cursor" for anything but a positive integer).  cut: rows
 * were read with one more than limit; drop that one and return the
 * next_cursor (a new string, or null on the last page; NULL when out of
 * memory). */
int ctnas_api_cursor_read(const struct ctnas_req *req, int64_t *before,
                          struct ctnas_err *err);
/* A path segment seg as a row id into *id: anything but a positive
 * integer names no row, so it is 404 "no <what> '<seg>'" on field. */
int ctnas_api_path_id(const char *seg, const char *field, const char *what,
                      int64_t *id, struct ctnas_err *err);
json_t *ctnas_api_cursor_cut(json_t *rows, size_t limit);

/* The GET of a job list route, ?state=&limit= (and ?kind= when kind is
 * NULL; else only jobs of that kind). */
int ctnas_api_job_list_kind(struct ctnas_req *req, const char *kind,
                            json_t **out, struct ctnas_err *err);

/* Route handlers (routes.def lists them with their paths). */
#define ROUTE(method, path, handler, query, summary) \
    int handler(struct ctnas_req *req, json_t **out, struct ctnas_err *err);
#include "routes.def"
#undef ROUTE

#endif
