/*
 * retention.c - see retention.h.  The sweep reads and writes the store
 * on a pool thread through a connection of its own, opened for each
 * sweep: one an hour costs nothing, and no connection sits idle between.
 */
#include "config.h"
#include "retention.h"

#include <string.h>
#include <time.h>

#include "log.h"
#include "mem.h"
#include "runner.h"
#include "store.h"
#include "store_ml.h"

struct retention {
    struct ctnas_job job;
    const char *db;            /* the daemon's conf's */
    long long keep;            /* seconds */
    double interval;           /* seconds between sweeps */
    double next;               /* ctnas_now_seconds() of the next sweep */
    int purged;                /* by the last sweep */
    double seconds;            /* the last sweep took */
    struct ctnas_err err;      /* of the last sweep */
};

/* Seconds between sweeps for a retention of seconds (> 0). */
static double interval_for(long long seconds)
{
    double t = (double)seconds / 10;
    return t < 1 ? 1 : t > 3600 ? 3600 : t;
}

/* Pool thread: delete what ended before now - keep, a batch at a time,
 * until a batch comes back short or the daemon stops.
 *
 * Requests that write wait for SQLite's write lock while a batch holds
 * it (store.c's busy handler wakes them at each commit); a sweep that
 * took the lock again at once could still beat them to it (measured,
 * with SQLite's own handler: uploads waited up to 0.6 s behind 100-job
 * batches).  So each batch is sized to hold the lock about
 * CTNAS_RETENTION_HOLD_S, and the lock is then left free as long as it
 * was held. */
static int retention_work(struct ctnas_job *job)
{
    struct retention *r = job->data;
    struct ctnas_store *st;
    double start = ctnas_now_seconds();
    r->purged = 0;
    memset(&r->err, 0, sizeof r->err);
    int rc = ctnas_store_open(r->db, 0, &st, &r->err);
    if (rc < 0)
        return rc;
    double before = ctnas_store_now() - (double)r->keep;
    int batch = 8, n;
    for (;;) {
        if (atomic_load(&job->cancel)) {
            rc = CTNAS_ECANCELED;
            break;
        }
        double t0 = ctnas_now_seconds();
        rc = ctnas_store_job_purge_ended(st, before, batch, &n, &r->err);
        if (rc < 0)
            break;
        r->purged += n;
        double held = ctnas_now_seconds() - t0;
        if (n < batch)
            break;
        if (held > 2 * CTNAS_RETENTION_HOLD_S && batch > 1)
            batch /= 2;
        else if (held < CTNAS_RETENTION_HOLD_S / 2 &&
                 batch < CTNAS_RETENTION_BATCH)
            batch *= 2;
        double pause = held < 0.001 ? 0.001 : held > 0.05 ? 0.05 : held;
        struct timespec ts = {0, (long)(pause * 1e9)};
        nanosleep(&ts, NULL);
    }
    ctnas_store_close(st);
    r->seconds = ctnas_now_seconds() - start;
    return rc;
}

/* Loop thread: the next sweep is due interval from now. */
static int retention_tick(struct ctnas_job *job)
{
    struct retention *r = job->data;
    return ctnas_now_seconds() >= r->next;
}

/* Loop thread, under the runner's mutex.  A failed sweep (the disk full,
 * the database locked past the busy timeout) is only logged: the next
 * one tries again. */
static int retention_done(struct ctnas_job *job, int status)
{
    struct retention *r = job->data;
    if (r->purged > 0)
        ctnas_log_info("job retention: deleted %d job%s that ended over "
                       "%lld s ago, in %.2f s", r->purged,
                       r->purged == 1 ? "" : "s", r->keep, r->seconds);
    if (status == CTNAS_ECANCELED) {
        ctnas_free(r);
        return CTNAS_JOB_FINISHED;
    }
    if (status < 0)
        ctnas_log_warn("job retention: the sweep stopped after %d jobs: %s",
                       r->purged, r->err.msg[0] ? r->err.msg
                                                : ctnas_strerror(status));
    r->next = ctnas_now_seconds() + r->interval;
    return CTNAS_JOB_PARK;
}

static const struct ctnas_job_ops retention_ops = {
    .work = retention_work,
    .tick = retention_tick,
    .done = retention_done,
};

int ctnas_retention_start(struct ctnas_app *app, struct ctnas_err *err)
{
    long long keep = app->conf->job_retention;
    if (keep <= 0)
        return 0;
    struct retention *r = ctnas_calloc(1, sizeof *r);
    if (r == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    r->db = app->conf->db;
    r->keep = keep;
    r->interval = interval_for(keep);
    r->job.ops = &retention_ops;
    r->job.data = r;
    r->job.uncounted = 1;
    int rc = ctnas_runner_submit(app->runner, &r->job);
    if (rc < 0) {
        ctnas_free(r);
        return ctnas_err_set(err, rc, "", "cannot start the job retention");
    }
    ctnas_log_info("ended jobs are deleted %lld s after they end, checked "
                   "every %.0f s", keep, r->interval);
    return 0;
}
