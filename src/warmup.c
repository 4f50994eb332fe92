/*
 * warmup.c - see warmup.h.  The background warm-up is an uncounted runner
 * job: it takes no --max-jobs place and has no row, and it holds a
 * reference on the model it warms.
 */
#include "config.h"
#include "warmup.h"

#include <stdlib.h>

#include "log.h"
#include "mem.h"
#include "runner.h"
#include "store_ml.h"

/* Archs per step: between two the warm-up checks for cancellation (and
 * the background job whether anyone else still holds its model); four
 * of the GCN's 256-graph chunks, so a step spreads over its threads. */
#define WARMUP_CHUNK 1024

struct collect {
    const struct ctnas_space *space;
    atomic_int *cancel;
    struct ctnas_arch *archs;
    int n, cap;
};

static int collect_one(void *cls, int64_t id, const char *enc)
{
    (void)id;
    struct collect *c = cls;
    if (c->n == CTNAS_WARMUP_MAX)
        return 1; /* enough: stop the scan */
    if (c->n % 1024 == 0 && atomic_load(c->cancel))
        return CTNAS_ECANCELED;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 1024;
        struct ctnas_arch *a = ctnas_realloc(c->archs, (size_t)cap * sizeof *a);
        if (a == NULL)
            return CTNAS_ENOMEM;
        c->archs = a;
        c->cap = cap;
    }
    if (c->space->parse_string(enc, &c->archs[c->n], NULL) == 0)
        c->n++;
    return 0;
}

int ctnas_warmup_collect_path(const char *db_path,
                              const struct ctnas_space *space,
                              atomic_int *cancel, struct ctnas_arch **archs,
                              int *n, struct ctnas_err *err)
{
    struct ctnas_store *st;
    int rc = ctnas_store_open(db_path, 0, &st, err);
    if (rc < 0)
        return rc;
    struct collect c = {space, cancel, NULL, 0, 0};
    rc = ctnas_store_arch_scan(st, space->name, collect_one, &c, err);
    ctnas_store_close(st);
    if (rc < 0) {
        ctnas_free(c.archs);
        if (rc == CTNAS_ENOMEM || rc == CTNAS_ECANCELED)
            return ctnas_err_set(err, rc, "", "%s", ctnas_strerror(rc));
        return rc;
    }
    *archs = c.archs;
    *n = c.n;
    return 0;
}

int ctnas_warmup_features(const struct ctnas_nac *m,
                          const struct ctnas_space *space,
                          const struct ctnas_arch *archs, int n,
                          ctnas_real *feat, atomic_int *cancel)
{
    int w = ctnas_nac_feature_width(m), rc = 0;
    struct ctnas_graph *g = ctnas_malloc(WARMUP_CHUNK * sizeof *g);
    if (g == NULL)
        return CTNAS_ENOMEM;
    for (int i = 0; i < n && rc == 0; i += WARMUP_CHUNK) {
        if (atomic_load(cancel)) {
            rc = CTNAS_ECANCELED;
            break;
        }
        int k = n - i < WARMUP_CHUNK ? n - i : WARMUP_CHUNK;
        for (int j = 0; j < k; j++)
            space->to_graph(&archs[i + j], &g[j]);
        rc = ctnas_nac_features(m, g, k, feat + (size_t)i * w);
    }
    ctnas_free(g);
    return rc;
}

/* ---- the background warm-up ---- */

struct warmup {
    struct ctnas_job job;
    struct ctnas_served *s;          /* one reference, the job's */
    const struct ctnas_space *space;
    const char *db;                  /* the daemon's conf's */
    struct ctnas_arch *archs;        /* read by the work */
    int n, done;
    double seconds;
    struct ctnas_err err;
};

static void warmup_free(struct warmup *w)
{
    ctnas_served_release(w->s);
    ctnas_free(w->archs);
    ctnas_free(w);
}

/* Pool thread: reads the stored cells through its own connection, then
 * computes their features through the model's cache, so requests
 * meanwhile find each step's cells, and the job skips the cells they
 * computed. */
static int warmup_work(struct ctnas_job *job)
{
    struct warmup *w = job->data;
    double t0 = ctnas_now_seconds();
    /* Only this job holds it: a newer model replaced it, and nobody
     * will read this cache again (checked again between steps). */
    if (atomic_load(&w->s->refs) == 1)
        return 0;
    int rc = ctnas_warmup_collect_path(w->db, w->space, &job->cancel,
                                       &w->archs, &w->n, &w->err);
    if (rc < 0)
        return rc;
    int width = ctnas_nac_feature_width(w->s->nac);
    ctnas_real *f =
        ctnas_malloc((size_t)WARMUP_CHUNK * (size_t)width * sizeof *f);
    if (f == NULL && w->n > 0)
        return CTNAS_ENOMEM;
    for (int i = 0; i < w->n && rc == 0; i += WARMUP_CHUNK) {
        if (atomic_load(&job->cancel)) {
            rc = CTNAS_ECANCELED;
            break;
        }
        if (atomic_load(&w->s->refs) == 1)
            break;
        int k = w->n - i < WARMUP_CHUNK ? w->n - i : WARMUP_CHUNK;
        rc = ctnas_served_features(w->s, w->space, w->archs + i, k, f);
        if (rc == 0)
            w->done = i + k;
    }
    w->seconds = ctnas_now_seconds() - t0;
    ctnas_free(f);
    return rc;
}

/* Loop thread, under the runner's mutex. */
static int warmup_done(struct ctnas_job *job, int status)
{
    struct warmup *w = job->data;
    if (status == 0)
        ctnas_log_debug("model %lld: features of %d of %d stored %s "
                        "architectures cached in %.2f s", (long long)w->s->id,
                        w->done, w->n, w->space->name, w->seconds);
    else if (status != CTNAS_ECANCELED)
        ctnas_log_warn("model %lld: feature warm-up stopped after %d of %d "
                       "architectures: %s", (long long)w->s->id, w->done,
                       w->n, w->err.msg[0] ? w->err.msg
                                           : ctnas_strerror(status));
    warmup_free(w);
    return CTNAS_JOB_FINISHED;
}

static const struct ctnas_job_ops warmup_ops = {
    .work = warmup_work,
    .tick = NULL,
    .done = warmup_done,
};

int ctnas_warmup_publish(struct ctnas_app *app, struct ctnas_served *s,
                         struct ctnas_err *err)
{
    if (ctnas_registry_publish(app->registry, s) < 0)
        return ctnas_err_set(err, CTNAS_ENOMEM, "",
                             "out of memory: model %lld is not served",
                             (long long)s->id);
    const struct ctnas_space *space = ctnas_space_find(s->space);
    if (space == NULL)
        return 0; /* a model of a space this build lacks serves nothing */
    struct warmup *w = ctnas_calloc(1, sizeof *w);
    if (w == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    w->space = space;
    w->db = app->conf->db;
    ctnas_served_ref(s);
    w->s = s;
    int rc;
    w->job.ops = &warmup_ops;
    w->job.data = w;
    w->job.uncounted = 1;
    if ((rc = ctnas_runner_submit(app->runner, &w->job)) < 0) {
        warmup_free(w);
        return ctnas_err_set(err, rc, "", "cannot start the warm-up");
    }
    return 0;
}
