/*
 * warmup.h - putting a comparator into service: publish it in the
 * registry and fill its feature cache in the background with the
 * architectures stored for its space, so the first /v1/compare and
 * /v1/rank over stored cells (what clients mostly send) find their
 * features computed instead of running the GCN over thousands of cells
 * inside one request.
 */
#ifndef CTNAS_WARMUP_H
#define CTNAS_WARMUP_H

#include "api.h"
#include "registry.h"

/* At most this many stored architectures are warmed (the oldest); later
 * ones are cached when a request first needs them. */
#define CTNAS_WARMUP_MAX (1 << 16)

/* Publish s (the registry takes its own reference) and submit its
 * warm-up, reading the stored architectures with st on this thread.  Loop
 * thread (a job's done callback included) or start-up.  Serving does not
 * depend on the warm-up, so its failure (out of memory, an unreadable
 * store) is returned for the caller to log, with s published anyway. */
int ctnas_warmup_publish(struct ctnas_app *app, struct ctnas_store *st,
                         struct ctnas_served *s, struct ctnas_err *err);

#endif
