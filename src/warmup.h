/*
 * warmup.h - a comparator's features of the stored architectures of its
 * space, computed before a client asks: a training job computes them
 * before it publishes its model, and a model that starts serving any
 * other way (loaded at start-up, published by a search) gets them from a
 * background job.  The first /v1/compare or /v1/rank over stored cells
 * (what clients mostly send) then finds them cached instead of running
 * the GCN over thousands of cells inside one request.
 */
#ifndef CTNAS_WARMUP_H
#define CTNAS_WARMUP_H

#include <stdatomic.h>

#include "api.h"
#include "registry.h"
#include "space.h"

/* At most this many stored architectures are warmed (the oldest); later
 * ones are cached when a request first needs them. */
#define CTNAS_WARMUP_MAX (1 << 16)

/* The stored architectures of space, oldest first, at most
 * CTNAS_WARMUP_MAX (rows that do not parse are left out), read through a
 * connection of its own to the database at db_path, opened and closed
 * here: any thread, meant for the pool's (the scan parses every stored
 * cell, 0.35 s for 20,000 NAS-Bench-101 ones, too long for an HTTP
 * thread or the loop thread).  Stops with CTNAS_ECANCELED once *cancel
 * is set.  *archs (free it) is NULL when there are none. */
int ctnas_warmup_collect_path(const char *db_path,
                              const struct ctnas_space *space,
                              atomic_int *cancel, struct ctnas_arch **archs,
                              int *n, struct ctnas_err *err);

/* Features of n architectures with model m into feat (n x width), a
 * block at a time, stopping with CTNAS_ECANCELED once *cancel is set.
 * Any thread; 0, CTNAS_ECANCELED or CTNAS_ENOMEM. */
int ctnas_warmup_features(const struct ctnas_nac *m,
                          const struct ctnas_space *space,
                          const struct ctnas_arch *archs, int n,
                          ctnas_real *feat, atomic_int *cancel);

/* Publish s (the registry takes its own reference) and submit a
 * background job that reads the stored architectures (on a pool thread,
 * ctnas_warmup_collect_path) and fills s's cache with them.  Loop thread
 * (a job's done callback included) or start-up.  Serving does not depend
 * on the warm-up, so its failure (out of memory, an unreadable store) is
 * logged by the job, or returned for the caller to log, with s published
 * anyway; CTNAS_ENOMEM also when s itself could not be published
 * (ctnas_registry_publish). */
int ctnas_warmup_publish(struct ctnas_app *app, struct ctnas_served *s,
                         struct ctnas_err *err);

#endif
