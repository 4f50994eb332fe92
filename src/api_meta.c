/*
 * api_meta.c - the application state shared by handlers, and the routes
 * that describe the daemon itself: /v1/health, /metrics and /v1/spaces.
 */
#include "config.h"
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "http.h"
#include "jsonv.h"
#include "runner.h"
#include "space.h"

static void store_key_free(void *p)
{
    ctnas_store_close(p);
}

int ctnas_app_init(struct ctnas_app *app, const struct ctnas_conf *conf)
{
    app->conf = conf;
    app->started = ctnas_now_seconds();
    if (pthread_key_create(&app->store_key, store_key_free) != 0)
        return CTNAS_ENOMEM;
    if (pthread_mutex_init(&app->submit_mu, NULL) != 0) {
        pthread_key_delete(app->store_key);
        return CTNAS_ENOMEM;
    }
    return 0;
}

void ctnas_app_destroy(struct ctnas_app *app)
{
    explicit_bzero(app->token, sizeof app->token);
    /* The calling thread's own connection, if it opened one. */
    struct ctnas_store *st = pthread_getspecific(app->store_key);
    if (st != NULL) {
        pthread_setspecific(app->store_key, NULL);
        ctnas_store_close(st);
    }
    pthread_key_delete(app->store_key);
    pthread_mutex_destroy(&app->submit_mu);
}

int ctnas_app_store(struct ctnas_app *app, struct ctnas_store **st,
                    struct ctnas_err *err)
{
    *st = pthread_getspecific(app->store_key);
    if (*st != NULL)
        return 0;
    int rc = ctnas_store_open(app->conf->db, 0, st, err);
    if (rc < 0)
        return rc;
    pthread_setspecific(app->store_key, *st);
    return 0;
}

/* Whether this thread's connection answers (health, metrics): *st is
 * it, derr why not. */
static int db_up(struct ctnas_app *app, struct ctnas_store **st,
                 struct ctnas_err *derr)
{
    return ctnas_app_store(app, st, derr) == 0 &&
           ctnas_store_ping(*st, derr) == 0;
}

int ctnas_api_health(struct ctnas_req *req, json_t **out,
                     struct ctnas_err *err)
{
    (void)err;
    struct ctnas_store *st;
    struct ctnas_err derr = {0};
    int db_ok = db_up(req->app, &st, &derr);
    const struct ctnas_app *app = req->app;
    /* Jobs: a client about to submit can see whether it would get 429. */
    int active = app->runner ? ctnas_runner_active(app->runner) : 0;
    /* Requests: whether the workers keep up (queued stays near 0). */
    struct ctnas_http_load load = {0};
    if (app->http)
        ctnas_http_load(app->http, &load);
    *out = json_pack("{s:s, s:s, s:f, s:{s:b, s:i, s:s*}, "
                     "s:{s:i, s:i, s:I}, s:{s:i, s:i, s:i, s:I, s:I}}",
                     "status",
                     db_ok ? "ok" : "degraded", "version", CTNAS_VERSION,
                     "uptime_seconds", ctnas_now_seconds() - app->started,
                     "database", "ok", db_ok, "schema_version",
                     db_ok ? ctnas_store_schema_version(st) : 0, "error",
                     db_ok ? NULL : derr.msg, "jobs", "active", active,
                     "limit", app->conf->max_jobs, "retention_seconds",
                     (json_int_t)app->conf->job_retention, "requests",
                     "workers", load.workers, "busy", load.busy, "queued",
                     load.queued, "buffered_bytes", (json_int_t)load.buffered,
                     "buffered_limit", (json_int_t)app->conf->max_buffered);
    /* Degraded health is still an answer; 503 tells load balancers. */
    return db_ok ? 200 : 503;
}

/* Resident memory in bytes (/proc/self/statm), or -1. */
static double resident_bytes(void)
{
    long pages = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%*s %ld", &pages) != 1)
            pages = -1;
        fclose(f);
    }
    return pages < 0 ? -1 : (double)pages * (double)sysconf(_SC_PAGESIZE);
}

/* Prometheus' text format: what health says, as numbers, and the
 * request metrics of http.c.  Built in a memory stream, answered as a
 * JSON string the HTTP layer sends as text (req->reply_type). */
int ctnas_api_metrics(struct ctnas_req *req, json_t **out,
                      struct ctnas_err *err)
{
    struct ctnas_app *app = req->app;
    struct ctnas_store *st;
    struct ctnas_err derr = {0};
    int db_ok = db_up(app, &st, &derr);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    fprintf(f,
            "# HELP ctnasd_up 1 when the database answers (health ok).\n"
            "# TYPE ctnasd_up gauge\n"
            "ctnasd_up %d\n"
            "# HELP ctnasd_uptime_seconds Seconds since the start.\n"
            "# TYPE ctnasd_uptime_seconds gauge\n"
            "ctnasd_uptime_seconds %.3f\n"
            "# HELP ctnasd_jobs_active Jobs queued, running or waiting.\n"
            "# TYPE ctnasd_jobs_active gauge\n"
            "ctnasd_jobs_active %d\n"
            "# HELP ctnasd_jobs_limit --max-jobs.\n"
            "# TYPE ctnasd_jobs_limit gauge\n"
            "ctnasd_jobs_limit %d\n"
            "# HELP process_resident_memory_bytes Resident memory.\n"
            "# TYPE process_resident_memory_bytes gauge\n"
            "process_resident_memory_bytes %.0f\n",
            db_ok, ctnas_now_seconds() - app->started,
            app->runner ? ctnas_runner_active(app->runner) : 0,
            app->conf->max_jobs, resident_bytes());
    int rc = app->http ? ctnas_http_write_metrics(app->http, f) : 0;
    if (fclose(f) != 0 || rc < 0 || text == NULL) {
        free(text);
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }
    *out = json_stringn(text, len);
    free(text);
    req->reply_type = "text/plain; version=0.0.4; charset=utf-8";
    return 200;
}

int ctnas_api_spaces(struct ctnas_req *req, json_t **out,
                     struct ctnas_err *err)
{
    (void)req;
    (void)err;
    json_t *items = json_array();
    for (int i = 0; items != NULL && ctnas_spaces[i]; i++)
        items = ctnas_jsonv_append(items, ctnas_spaces[i]->describe());
    /* items NULL: the pack fails too, and http.c answers 500 */
    *out = json_pack("{s:o}", "items", items);
    return 200;
}
