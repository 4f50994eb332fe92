/*
 * job_train.h - the comparator-training job: POST /v1/nac/train builds it
 * (reading the training set from the store on the HTTP thread), the
 * runner trains it on a pool thread, and its done callback stores the
 * model and publishes it for serving on the loop thread, after a second
 * slice on the pool has computed its features of the stored cells (see
 * warmup.h).
 */
#ifndef CTNAS_JOB_TRAIN_H
#define CTNAS_JOB_TRAIN_H

#include <jansson.h>

#include "api.h"

struct ctnas_served;

/* Validate a training request, insert its job row, submit it.  *out: the
 * job row as JSON (new reference).  Errors name the request field. */
int ctnas_job_train_submit(struct ctnas_app *app, struct ctnas_store *st,
                           const json_t *req,
                           const struct ctnas_job_key *key, json_t **out,
                           struct ctnas_err *err);

/* Load the newest model of every (space, dataset) into the registry (at
 * start-up, on the loop thread).  *n counts them. */
int ctnas_job_train_load_serving(struct ctnas_app *app,
                                 struct ctnas_store *st, int *n,
                                 struct ctnas_err *err);

/* A stored model as a served one (new reference), for requests naming a
 * model id. */
int ctnas_job_train_load_model(struct ctnas_store *st, int64_t id,
                               struct ctnas_served **out,
                               struct ctnas_err *err);

#endif
