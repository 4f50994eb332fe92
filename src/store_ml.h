/*
 * store_ml.h - the store's side of machine learning: background job rows,
 * trained model rows, and the bulk reads that feed training and ranking.
 * Same rules as store.h: one connection per thread, bound parameters only.
 *
 * Job and model rows come back as JSON objects (new references), since
 * their callers only ever print or read them as JSON:
 *   job:   {"id", "kind", "state", "params", "progress", "result", "error",
 *           "created_at", "started_at", "finished_at", "updated_at"}
 *   model: {"id", "space", "dataset", "metric", "job_id", "config",
 *           "figures", "n_train", "created_at"} (+ "train_ids" on request)
 * with times as unix seconds and JSON columns parsed.
 */
#ifndef CTNAS_STORE_ML_H
#define CTNAS_STORE_ML_H

#include <jansson.h>
#include <stdint.h>

#include "store.h"

/* Wall-clock unix seconds, fractional. */
double ctnas_store_now(void);

/* ---- jobs ---- */
/* A client's Idempotency-Key and the fingerprint (MD5 hex) of the request
 * that came with it. */
struct ctnas_job_key {
    char key[256];
    char hash[33];
};

/* A queued job; label_ids (a JSON array of architecture ids, or NULL) is
 * the labelled set a search starts from, stored beside params because
 * only a resume reads it (ctnas_store_job_labels).  key may be NULL; a
 * key another job holds is CTNAS_ECONFLICT (field "Idempotency-Key"). */
int ctnas_store_job_insert(struct ctnas_store *st, const char *kind,
                           const json_t *params, const json_t *label_ids,
                           const struct ctnas_job_key *key, int64_t *id,
                           struct ctnas_err *err);
/* The job holding key: *id and the fingerprint stored with it;
 * CTNAS_ENOTFOUND when no job does. */
int ctnas_store_job_by_key(struct ctnas_store *st, const char *key,
                           int64_t *id, char hash[33], struct ctnas_err *err);
/* Delete job id, which must have ended, with its events, pseudo-labels
 * and checkpoint; its models stay, without a job.  CTNAS_ENOTFOUND, or
 * CTNAS_ECONFLICT (field "id") for a job still queued, running or
 * waiting. */
int ctnas_store_job_delete(struct ctnas_store *st, int64_t id,
                           struct ctnas_err *err);
/* Delete at most limit jobs that ended before the time before (the
 * store's clock, seconds), oldest first, as ctnas_store_job_delete does;
 * *n says how many went. */
int ctnas_store_job_purge_ended(struct ctnas_store *st, double before,
                                int limit, int *n, struct ctnas_err *err);
/* Tell waiting search id to go on without the measurements it still
 * waits for: the round it waits after is recorded (sql/009).
 * CTNAS_ECONFLICT (field "id") when job id is not a waiting search. */
int ctnas_store_search_continue(struct ctnas_store *st, int64_t id,
                                struct ctnas_err *err);
/* *round: the round search id was last told to go on after, 0 when
 * never; CTNAS_ENOTFOUND when there is no such job. */
int ctnas_store_search_continue_round(struct ctnas_store *st, int64_t id,
                                      int *round, struct ctnas_err *err);
/* Job id lets go of its key (a submit refused after the insert), so a
 * retry with it makes a new job. */
int ctnas_store_job_forget_key(struct ctnas_store *st, int64_t id,
                               struct ctnas_err *err);
/* *label_ids: job id's stored labelled set (new reference), or NULL when
 * it has none; CTNAS_ENOTFOUND for no such job. */
int ctnas_store_job_labels(struct ctnas_store *st, int64_t id,
                           json_t **label_ids, struct ctnas_err *err);
int ctnas_store_job_get(struct ctnas_store *st, int64_t id, json_t **row,
                        struct ctnas_err *err);
/* Newest first, at most limit, of ids below before (0: any); kind and
 * state may be NULL (any). */
int ctnas_store_job_list(struct ctnas_store *st, const char *kind,
                         const char *state, int64_t before, int limit,
                         json_t **rows, struct ctnas_err *err);
/* queued -> running; started_at becomes at (now when at is 0) unless
 * it is set already (a resumed job). */
int ctnas_store_job_start(struct ctnas_store *st, int64_t id, double at,
                          struct ctnas_err *err);
int ctnas_store_job_progress(struct ctnas_store *st, int64_t id,
                             const json_t *progress, struct ctnas_err *err);
/* Set state, and result / error when not NULL; a final state also sets
 * finished_at.  A job already in a final state is left as it is (the first
 * end recorded wins). */
int ctnas_store_job_finish(struct ctnas_store *st, int64_t id,
                           const char *state, const json_t *result,
                           const char *error, struct ctnas_err *err);
/* At start-up: jobs of kind left queued or running by a stopped daemon
 * end as failed with reason; *n counts them. */
int ctnas_store_job_fail_interrupted(struct ctnas_store *st,
                                     const char *kind, const char *reason,
                                     int *n,
                                     struct ctnas_err *err);

/* ---- models ---- */
struct ctnas_model_meta {
    const char *space, *dataset, *metric;
    int64_t job_id;                 /* 0: none */
    int published;                  /* 1: it may serve its (space, dataset) */
    const json_t *config, *figures, *train_ids;
};
int ctnas_store_model_insert(struct ctnas_store *st,
                             const struct ctnas_model_meta *meta,
                             const void *blob, size_t len, int64_t *id,
                             struct ctnas_err *err);
/* One model's row; with blob not NULL also its weights (*blob new,
 * ctnas_free()). */
int ctnas_store_model_get(struct ctnas_store *st, int64_t id, json_t **row,
                          void **blob, size_t *len, struct ctnas_err *err);
/* Delete model id: CTNAS_ENOTFOUND, or CTNAS_ECONFLICT while a search
 * that has not ended names it as its comparator, or while it is the
 * newest published model of its space and dataset, the one that serves
 * them once published to the registry (field "id" all). */
int ctnas_store_model_delete(struct ctnas_store *st, int64_t id,
                             struct ctnas_err *err);
/* Newest first, at most limit, of ids below before (0: any); space and
 * dataset (filters) may be NULL. */
int ctnas_store_model_list(struct ctnas_store *st, const char *space,
                           const char *dataset, int64_t before, int limit,
                           json_t **rows, struct ctnas_err *err);
/* Ids of the newest published model of every (space, dataset): *ids a
 * new array (ctnas_free(); NULL when there are none), *n how many. */
int ctnas_store_model_latest(struct ctnas_store *st, int64_t **ids, int *n,
                             struct ctnas_err *err);

/* ---- bulk reads ---- */
/* Each architecture of space, oldest first: cb(cls, id, encoding); a
 * non-zero return from cb stops the scan and is returned. */
typedef int (*ctnas_store_arch_fn)(void *cls, int64_t id,
                                   const char *encoding);
int ctnas_store_arch_scan(struct ctnas_store *st, const char *space,
                          ctnas_store_arch_fn cb, void *cls,
                          struct ctnas_err *err);
/* Each architecture of space measured on dataset (and metric, unless
 * NULL), with the mean of those measurements: cb(cls, id, encoding,
 * value), oldest first; only those whose id is one of ids[0 .. n_ids)
 * when ids is not NULL (looked up by id, not found in a scan: a few of a
 * large catalogue cost little). */
typedef int (*ctnas_store_measured_fn)(void *cls, int64_t id,
                                       const char *encoding, double value);
int ctnas_store_arch_measured(struct ctnas_store *st, const char *space,
                              const char *dataset, const char *metric,
                              const int64_t *ids, int n_ids,
                              ctnas_store_measured_fn cb, void *cls,
                              struct ctnas_err *err);
/* The ids alone of what ctnas_store_arch_measured reads (ids NULL), in
 * the same order, from the indexes without the rows' encodings: *out
 * (free it; NULL when there are none) and *n. */
int ctnas_store_arch_measured_ids(struct ctnas_store *st, const char *space,
                                  const char *dataset, const char *metric,
                                  int64_t **out, int *n,
                                  struct ctnas_err *err);

/* Every measurement stored from now on has an id above *mark. */
int ctnas_store_measurement_mark(struct ctnas_store *st, int64_t *mark,
                                 struct ctnas_err *err);
/* As ctnas_store_arch_measured (ids NULL), but only the architectures
 * with a measurement on dataset (and metric) stored after mark, each with
 * the mean of all of them: what a client uploaded since the mark was
 * read. */
int ctnas_store_arch_measured_since(struct ctnas_store *st,
                                    const char *space, const char *dataset,
                                    const char *metric, int64_t mark,
                                    ctnas_store_measured_fn cb, void *cls,
                                    struct ctnas_err *err);

/* ---- searches ---- */
/* Replace job id's checkpoint (state blob and extra JSON). */
int ctnas_store_checkpoint_put(struct ctnas_store *st, int64_t id,
                               long step, const void *blob, size_t len,
                               const json_t *extra, struct ctnas_err *err);
/* Record in job id's checkpoint (if it has one) that events up to seq
 * events are written: events that describe no progress beyond it (a
 * phase that began), which a resume must keep rather than number anew. */
int ctnas_store_checkpoint_events(struct ctnas_store *st, int64_t id,
                                  long events, struct ctnas_err *err);
/* The checkpoint of job id: *blob new (ctnas_free()), *extra new
 * reference; CTNAS_ENOTFOUND when it has none. */
int ctnas_store_checkpoint_get(struct ctnas_store *st, int64_t id,
                               long *step, void **blob, size_t *len,
                               json_t **extra, struct ctnas_err *err);
/* Write progress event seq of job id (replacing one of that number). */
int ctnas_store_event_put(struct ctnas_store *st, int64_t id, long seq,
                          const json_t *data, struct ctnas_err *err);
/* Drop job id's events numbered above keep: a job resumed from a
 * checkpoint that recorded keep events replaces the lost ones anew, and
 * until then no record may describe progress that was undone. */
int ctnas_store_events_trim(struct ctnas_store *st, int64_t id, long keep,
                            struct ctnas_err *err);
/* Events of job id numbered above since, in order, at most limit: a new
 * array of {"seq", "data", "created_at"}... flattened as data + "seq". */
int ctnas_store_events(struct ctnas_store *st, int64_t id, long since,
                       int limit, json_t **rows, struct ctnas_err *err);
/* Store pseudo-label seq of job id (idempotent). */
int ctnas_store_pseudo_put(struct ctnas_store *st, int64_t id, long seq,
                           const char *a, const char *b, int label,
                           double confidence, long step,
                           struct ctnas_err *err);
int ctnas_store_pseudo_count(struct ctnas_store *st, int64_t id,
                             int64_t *n, struct ctnas_err *err);
/* Search jobs a stopped daemon left unfinished (queued, running or
 * waiting): a new array of job rows. */
int ctnas_store_jobs_unfinished(struct ctnas_store *st, const char *kind,
                                json_t **rows, struct ctnas_err *err);
/* For an architecture (space, hash): its stored id (0 when it is not
 * stored), and its mean value on (dataset, metric) and rank among the
 * stored architectures by that mean (1 = best), with *found 1, or
 * *found 0 when it is not stored or not measured there. */
int ctnas_store_arch_standing(struct ctnas_store *st, const char *space,
                              const char *hash, const char *dataset,
                              const char *metric, int *found, int64_t *id,
                              double *value, int64_t *rank,
                              struct ctnas_err *err);

/* The distinct metrics measured on dataset for space: a new array of
 * strings. */
int ctnas_store_metrics(struct ctnas_store *st, const char *space,
                        const char *dataset, json_t **metrics,
                        struct ctnas_err *err);

#endif
