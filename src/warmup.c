/*
 * warmup.c - see warmup.h.  The warm-up is an uncounted runner job: it
 * takes no --max-jobs place and has no row, and it holds a reference on
 * the model it warms.
 */
#include "config.h"
#include "warmup.h"

#include <stdlib.h>

#include "log.h"
#include "runner.h"
#include "space.h"
#include "store_ml.h"

/* Archs per ctnas_served_features call: between two calls the job checks
 * for shutdown, and whether anyone but itself still holds the model. */
#define WARMUP_CHUNK 1024

struct warmup {
    struct ctnas_job job;
    struct ctnas_served *s;          /* one reference, the job's */
    const struct ctnas_space *space;
    struct ctnas_arch *archs;
    int n, cap, done;
    double seconds;
};

static void warmup_free(struct warmup *w)
{
    ctnas_served_release(w->s);
    free(w->archs);
    free(w);
}

/* Pool thread: only the model and the job's own copy of the archs. */
static int warmup_work(struct ctnas_job *job)
{
    struct warmup *w = job->data;
    int width = ctnas_nac_feature_width(w->s->nac);
    ctnas_real *f = malloc((size_t)WARMUP_CHUNK * (size_t)width * sizeof *f);
    if (f == NULL)
        return CTNAS_ENOMEM;
    double t0 = ctnas_now_seconds();
    int rc = 0;
    for (int i = 0; i < w->n && rc == 0; i += WARMUP_CHUNK) {
        if (atomic_load(&job->cancel)) {
            rc = CTNAS_ECANCELED;
            break;
        }
        /* Only this job holds it: a newer model replaced it, and nobody
         * will read this cache again. */
        if (atomic_load(&w->s->refs) == 1)
            break;
        int k = w->n - i < WARMUP_CHUNK ? w->n - i : WARMUP_CHUNK;
        rc = ctnas_served_features(w->s, w->space, w->archs + i, k, f);
        if (rc == 0)
            w->done = i + k;
    }
    w->seconds = ctnas_now_seconds() - t0;
    free(f);
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
                       w->n, ctnas_strerror(status));
    warmup_free(w);
    return CTNAS_JOB_FINISHED;
}

static const struct ctnas_job_ops warmup_ops = {
    .work = warmup_work,
    .tick = NULL,
    .done = warmup_done,
};

/* A stored row; one that does not parse is left to requests to report. */
static int add_stored(void *cls, int64_t id, const char *enc)
{
    (void)id;
    struct warmup *w = cls;
    if (w->n == CTNAS_WARMUP_MAX)
        return 1; /* enough: stop the scan */
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 1024;
        struct ctnas_arch *a = realloc(w->archs, (size_t)cap * sizeof *a);
        if (a == NULL)
            return CTNAS_ENOMEM;
        w->archs = a;
        w->cap = cap;
    }
    if (w->space->parse_string(enc, &w->archs[w->n], NULL) == 0)
        w->n++;
    return 0;
}

int ctnas_warmup_publish(struct ctnas_app *app, struct ctnas_store *st,
                         struct ctnas_served *s, struct ctnas_err *err)
{
    ctnas_registry_publish(app->registry, s);
    const struct ctnas_space *space = ctnas_space_find(s->space);
    if (space == NULL)
        return 0; /* a model of a space this build lacks serves nothing */
    struct warmup *w = calloc(1, sizeof *w);
    if (w == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    w->space = space;
    ctnas_served_ref(s);
    w->s = s;
    int rc = ctnas_store_arch_scan(st, space->name, add_stored, w, err);
    if (rc < 0) {
        if (rc == CTNAS_ENOMEM)
            ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        warmup_free(w);
        return rc;
    }
    if (w->n == 0) {
        warmup_free(w);
        return 0;
    }
    w->job.ops = &warmup_ops;
    w->job.data = w;
    w->job.uncounted = 1;
    if ((rc = ctnas_runner_submit(app->runner, &w->job)) < 0) {
        warmup_free(w);
        return ctnas_err_set(err, rc, "", "cannot start the warm-up");
    }
    return 0;
}
