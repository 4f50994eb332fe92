/*
 * runner.c - see runner.h.  Owns the inbox, the list of active jobs and
 * the uv handles; never looks inside a job's data.
 */
#include "config.h"
#include "runner.h"

#include <stdlib.h>
#include <time.h>

#include "mem.h"

struct ctnas_runner {
    uv_loop_t *loop;
    uv_async_t async;
    uv_timer_t timer;
    pthread_mutex_t mu;
    struct ctnas_job *inbox;   /* submitted, not yet queued (mu) */
    struct ctnas_job *active;  /* queued on the pool or running (mu) */
    int n_active;              /* inbox + active, uncounted not (mu) */
    /* n_active counts parked jobs too: a parked search still holds its
     * memory, so it still takes one of the max_active places. */
    int max_active;
    int stopping;              /* ctnas_runner_free has begun (mu) */
};

/* The runner whose done callback this thread is running, under its
 * mutex: a done may then submit a follow-up job (a published model's
 * warm-up) without taking the mutex it already holds. */
static _Thread_local struct ctnas_runner *in_done;

/* Pool thread.  started is set even for a job cancelled while queued, so
 * that its done runs like any other; its work function never runs. */
static void on_work(uv_work_t *w)
{
    struct ctnas_job *job = w->data;
    if (!atomic_load(&job->started)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        atomic_store(&job->started_at,
                     (double)ts.tv_sec + ts.tv_nsec * 1e-9);
    }
    atomic_store(&job->started, 1);
    job->rc = atomic_load(&job->cancel) ? CTNAS_ECANCELED
                                        : job->ops->work(job);
}

/* Loop thread.  libuv allows a uv_work_t to be queued again from its own
 * after_work callback, which is how REQUEUE reuses job->work.
 * UV_ECANCELED would come from uv_cancel, which nothing calls today; it
 * is mapped anyway so done always sees a CTNAS code. */
static void on_after_work(uv_work_t *w, int status)
{
    struct ctnas_job *job = w->data;
    struct ctnas_runner *r = job->runner;
    /* done records the end under the mutex, so a concurrent cancel either
     * finds the job still listed or sees its final row. */
    pthread_mutex_lock(&r->mu);
    /* Unlink first: done may free the job. */
    for (struct ctnas_job **p = &r->active; *p; p = &(*p)->next)
        if (*p == job) {
            *p = job->next;
            break;
        }
    job->next = NULL;
    int counted = !job->uncounted; /* read now: done may free the job */
    in_done = r;
    int next = job->ops->done(job, status == UV_ECANCELED ? CTNAS_ECANCELED
                                                          : job->rc);
    in_done = NULL;
    if (next == CTNAS_JOB_REQUEUE || next == CTNAS_JOB_PARK) {
        job->next = r->active;
        r->active = job;
        /* Once stopping, no tick would wake a parked job: queue it
         * again, and on_work answers CTNAS_ECANCELED (it is flagged). */
        job->parked = next == CTNAS_JOB_PARK && !r->stopping;
        if (!job->parked) {
            job->work.data = job;
            uv_queue_work(r->loop, &job->work, on_work, on_after_work);
        }
    } else if (counted) {
        r->n_active--;
    }
    pthread_mutex_unlock(&r->mu);
}

/* Loop thread: drain the whole inbox, since several uv_async_send calls
 * may have coalesced into this one callback. */
static void on_async(uv_async_t *a)
{
    struct ctnas_runner *r = a->data;
    pthread_mutex_lock(&r->mu);
    struct ctnas_job *in = r->inbox;
    r->inbox = NULL;
    /* The inbox is a stack: queue in submission order. */
    struct ctnas_job *rev = NULL;
    while (in) {
        struct ctnas_job *n = in->next;
        in->next = rev;
        rev = in;
        in = n;
    }
    for (struct ctnas_job *job = rev, *n; job; job = n) {
        n = job->next;
        job->next = r->active;
        r->active = job;
        job->work.data = job;
        uv_queue_work(r->loop, &job->work, on_work, on_after_work);
    }
    pthread_mutex_unlock(&r->mu);
}

static void on_tick(uv_timer_t *t)
{
    struct ctnas_runner *r = t->data;
    /* Ticks run on the loop thread, as do done callbacks, so the list
     * cannot lose a job under us; the mutex guards against submitters. */
    pthread_mutex_lock(&r->mu);
    for (struct ctnas_job *job = r->active; job; job = job->next) {
            /* A job still queued has nothing to report: its row says
             * queued until the pool picks it up. */
        if (!job->ops->tick || !atomic_load(&job->started))
            continue;
        /* A parked job comes back when its tick says so, or to end when
         * it is cancelled. */
        if (job->ops->tick(job) && job->parked) {
            job->parked = 0;
            job->work.data = job;
            uv_queue_work(r->loop, &job->work, on_work, on_after_work);
        } else if (job->parked && atomic_load(&job->cancel)) {
            job->parked = 0;
            job->work.data = job;
            uv_queue_work(r->loop, &job->work, on_work, on_after_work);
        }
    }
    pthread_mutex_unlock(&r->mu);
}

int ctnas_runner_new(uv_loop_t *loop, int max_active,
                     struct ctnas_runner **out)
{
    struct ctnas_runner *r = ctnas_calloc(1, sizeof *r);
    if (r == NULL)
        return CTNAS_ENOMEM;
    r->loop = loop;
    r->max_active = max_active;
    pthread_mutex_init(&r->mu, NULL);
    uv_async_init(loop, &r->async, on_async);
    r->async.data = r;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    /* The timer runs for the runner's whole life, jobs or not: four
     * wake-ups a second cost nothing and spare start/stop bookkeeping. */
    uv_timer_start(&r->timer, on_tick, CTNAS_RUNNER_TICK_MS,
                   CTNAS_RUNNER_TICK_MS);
    *out = r;
    return 0;
}

/* Any thread.  The job is only pushed on the inbox here: uv_queue_work is
 * not thread safe, so the loop thread queues it in on_async.  The flags
 * are reset before the job becomes visible to any other thread. */
int ctnas_runner_submit(struct ctnas_runner *r, struct ctnas_job *job)
{
    int locked = in_done == r;
    if (!locked)
        pthread_mutex_lock(&r->mu);
    /* Once stopping, nothing new: the async handle that would queue it
     * is closing, so it would sit in the inbox for ever. */
    if (r->stopping ||
        (!job->uncounted && r->n_active >= r->max_active)) {
        if (!locked)
            pthread_mutex_unlock(&r->mu);
        return CTNAS_ELIMIT;
    }
    job->runner = r;
    atomic_store(&job->cancel, 0);
    atomic_store(&job->started, 0);
    job->next = r->inbox;
    r->inbox = job;
    if (!job->uncounted)
        r->n_active++;
    if (!locked)
        pthread_mutex_unlock(&r->mu);
    /* After unlocking: uv_async_send is the one libuv call safe from any
     * thread, and it needs no lock of ours. */
    uv_async_send(&r->async);
    return 0;
}

/* Any thread.  Setting the flag is all it does: the job's own work polls
 * it, and its done writes the final row, so a cancelled job ends through
 * the same path as any other. */
int ctnas_runner_cancel(struct ctnas_runner *r, int64_t id)
{
    int rc = CTNAS_ENOTFOUND;
    pthread_mutex_lock(&r->mu);
    for (int pass = 0; pass < 2; pass++)
        for (struct ctnas_job *job = pass ? r->active : r->inbox; job;
             job = job->next)
            if (job->id == id) {
                atomic_store(&job->cancel, CTNAS_RUNNER_CANCELLED);
                rc = 0;
            }
    pthread_mutex_unlock(&r->mu);
    /* A job still waiting for a pool thread need not wait at all.  Only
     * the loop thread may call uv_cancel; the flag covers the rest: work
     * checks it before it starts. */
    return rc;
}

/* A snapshot: it may be stale by the time the caller acts on it, which
 * is why submit checks the limit again under the same mutex. */
int ctnas_runner_active(struct ctnas_runner *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->n_active;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void ctnas_runner_free(struct ctnas_runner *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    /* A job a client cancelled stays cancelled: it must not come back as
     * interrupted (to be resumed or submitted again). */
    for (int pass = 0; pass < 2; pass++)
        for (struct ctnas_job *job = pass ? r->active : r->inbox; job;
             job = job->next) {
            int none = 0;
            atomic_compare_exchange_strong(&job->cancel, &none,
                                           CTNAS_RUNNER_SHUTDOWN);
        }
    pthread_mutex_unlock(&r->mu);
    /* Queue what is in the inbox (it ends as cancelled at once), wake the
     * parked jobs so they end too, then let every job finish: the loop
     * runs until no work is pending. */
    on_async(&r->async);
    pthread_mutex_lock(&r->mu);
    for (struct ctnas_job *job = r->active; job; job = job->next)
        if (job->parked) {
            job->parked = 0;
            job->work.data = job;
            uv_queue_work(r->loop, &job->work, on_work, on_after_work);
        }
    pthread_mutex_unlock(&r->mu);
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, NULL);
    uv_close((uv_handle_t *)&r->async, NULL);
    /* Returns once no work is pending and both handles are closed.  It
     * does end: a requeued job is flagged, so on_work answers
     * CTNAS_ECANCELED without running it, and every job kind's done
     * returns CTNAS_JOB_FINISHED on that status. */
    uv_run(r->loop, UV_RUN_DEFAULT);
    pthread_mutex_destroy(&r->mu);
    ctnas_free(r);
}
