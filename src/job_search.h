/*
 * job_search.h - contrastive search jobs (POST /v1/searches): built on an
 * HTTP thread from the request and the store, run in slices of about a
 * second on the runner's pool (src/search.h does the search), with
 * progress, events, pseudo-labels and checkpoints written between slices
 * on the loop thread.  A search left unfinished by a stop or a crash
 * resumes from its last checkpoint when the daemon starts again.
 */
#ifndef CTNAS_JOB_SEARCH_H
#define CTNAS_JOB_SEARCH_H

#include <jansson.h>

#include "api.h"

/* Validate a search request, insert its job row and submit it; *out is
 * the job row (new reference).  Errors name the request field. */
int ctnas_job_search_submit(struct ctnas_app *app, struct ctnas_store *st,
                            const json_t *req,
                            const struct ctnas_job_key *key, json_t **out,
                            struct ctnas_err *err);

/* At start-up (loop thread): resubmit every unfinished search job, from
 * its checkpoint when it has one; *n counts them. */
int ctnas_job_search_resume(struct ctnas_app *app, struct ctnas_store *st,
                            int *n, struct ctnas_err *err);

#endif
