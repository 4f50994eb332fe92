/*
 * runner.h - background jobs on libuv's thread pool.
 *
 * Three kinds of thread meet here.  HTTP threads call ctnas_runner_submit
 * and ctnas_runner_cancel (the only calls safe from any thread: a
 * mutex-guarded inbox plus uv_async_send, whose callback drains the whole
 * inbox because sends coalesce).  The loop thread (main) owns the uv loop:
 * it queues work, runs each job's tick every CTNAS_RUNNER_TICK_MS (to
 * write progress) and its done callback.  Pool threads run the job's work
 * function on job-private memory: never the store, never HTTP.
 *
 * Cancellation is an atomic flag the work function polls (at least every
 * 200 ms); a job still queued in the pool is cancelled before it starts.
 *
 * Long jobs run in slices: done may ask for the work to be queued again
 * (CTNAS_JOB_REQUEUE), after writing a checkpoint say, or to park the job
 * (CTNAS_JOB_PARK) until its tick, which keeps running on the loop
 * thread, asks for it back (a search waiting for measurements).  A parked
 * job still counts against max_active.  Once the runner stops, a job
 * that asks to park is queued again instead, and ends cancelled.
 */
#ifndef CTNAS_RUNNER_H
#define CTNAS_RUNNER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "ctnas.h"

#define CTNAS_RUNNER_TICK_MS 250
/* job->cancel values: 0 run on, 1 cancelled by request, 2 daemon
 * shutting down (the job is interrupted, not cancelled). */
#define CTNAS_RUNNER_CANCELLED 1
#define CTNAS_RUNNER_SHUTDOWN 2

struct ctnas_runner;
struct ctnas_job;

/* What done decides. */
enum ctnas_job_next {
    CTNAS_JOB_FINISHED = 0, /* done freed the job */
    CTNAS_JOB_REQUEUE = 1,  /* run work again */
    CTNAS_JOB_PARK = 2,     /* keep it; its tick will ask to run again */
};

struct ctnas_job_ops {
    /* Pool thread: the job's computation (or one slice of it); returns 0
     * or a code. */
    int (*work)(struct ctnas_job *job);
    /* Loop thread, every tick while the job is queued, running or parked
     * (may be NULL).  A parked job returns 1 to be queued again. */
    int (*tick)(struct ctnas_job *job);
    /* Loop thread, after each work: status is work's return,
     * CTNAS_ECANCELED when cancelled before it started.  Returns an enum
     * ctnas_job_next; with CTNAS_JOB_FINISHED it must have freed the job.
     * Runs under the runner's mutex: it must not call back into the
     * runner, but for ctnas_runner_submit (a follow-up job). */
    int (*done)(struct ctnas_job *job, int status);
};

struct ctnas_job {
    int64_t id;
    const struct ctnas_job_ops *ops;
    void *data;                  /* the job kind's own state */
    atomic_int cancel;           /* CTNAS_RUNNER_CANCELLED / _SHUTDOWN */
    atomic_int started;          /* work has begun on a pool thread */
    /* Wall-clock seconds when it began (set with started), which the job
     * kinds write as the row's started_at: their first tick may come a
     * while later. */
    _Atomic double started_at;
    /* Set before submit for the daemon's own housekeeping (a model's
     * feature warm-up): it takes no max_active place, so it never makes
     * a client's job answer 429, and ctnas_runner_active skips it. */
    int uncounted;
    int parked;                  /* for the runner: waiting for its tick */
    struct ctnas_runner *runner; /* set by submit */
    uv_work_t work;              /* for the runner */
    int rc;                      /* work's return, for the runner */
    struct ctnas_job *next;      /* for the runner */
};

/* Start on loop (call on the loop thread). max_active bounds the jobs
 * queued or running at once: submit answers CTNAS_ELIMIT beyond it. */
int ctnas_runner_new(uv_loop_t *loop, int max_active,
                     struct ctnas_runner **out);
/* Any thread.  The runner takes job (it reaches ops->done in every case
 * but CTNAS_ELIMIT, when the caller keeps it: over max_active, or the
 * runner is stopping). */
int ctnas_runner_submit(struct ctnas_runner *r, struct ctnas_job *job);
/* Any thread: flag job id for cancellation.  CTNAS_ENOTFOUND when it is
 * not queued or running here. */
int ctnas_runner_cancel(struct ctnas_runner *r, int64_t id);
/* Any thread: jobs queued or running. */
int ctnas_runner_active(struct ctnas_runner *r);
/* Loop thread: cancel everything, run the loop until every job is done,
 * close the handles and free r. */
void ctnas_runner_free(struct ctnas_runner *r);

#endif
