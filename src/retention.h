/*
 * retention.h - ended jobs are deleted a set time after they end
 * (--job-retention), with their events, pseudo-labels and checkpoint,
 * as DELETE /v1/jobs/{id}?purge=true would: a daemon that runs searches
 * for months keeps a bounded database, and an Idempotency-Key is free
 * again once its job is gone.
 *
 * The sweeps run as one uncounted runner job (it takes no --max-jobs
 * place) that parks between them: the first sweep at start-up, then one
 * every tenth of the retention time, at least every second and at most
 * every hour, so a job goes between retention and retention plus one
 * interval after it ended.
 */
#ifndef CTNAS_RETENTION_H
#define CTNAS_RETENTION_H

#include "api.h"

/* Jobs deleted per transaction at most, and the time a transaction
 * aims to hold the write lock: a sweep takes it for a moment at a time,
 * and leaves it free as long between (retention.c). */
#define CTNAS_RETENTION_BATCH 100
#define CTNAS_RETENTION_HOLD_S 0.01

/* Start the sweeps on app's runner when app->conf->job_retention > 0
 * (else do nothing): 0, or a code with err set.  They stop with the
 * runner. */
int ctnas_retention_start(struct ctnas_app *app, struct ctnas_err *err);

#endif
