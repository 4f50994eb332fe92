/*
 * job_train.c - see job_train.h.  The pool thread touches only the job's
 * own memory (the training set, the progress snapshot under its mutex);
 * the store is written from the loop thread (tick, done).
 */
#include "config.h"
#include "job_train.h"

#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "jsonv.h"
#include "log.h"
#include "mem.h"
#include "nac_json.h"
#include "registry.h"
#include "runner.h"
#include "space.h"
#include "store_ml.h"
#include "warmup.h"

/* One training job.  Built on the HTTP thread by submit, then owned by
 * the runner: the training set is read by the pool thread only while
 * work runs; model and res are written by work and read by done, the
 * runner's queueing ordering the two.  done frees the whole struct. */
struct train_job {
    struct ctnas_job job;
    struct ctnas_app *app;
    struct ctnas_nac_train_config cfg;
    const struct ctnas_space *space;
    char dataset[64], metric[64];
    int publish;
    struct ctnas_dataset set;    /* the training set, with store ids */
    /* Progress snapshot: written by the pool thread, read by tick. */
    pthread_mutex_t mu;
    struct ctnas_nac_progress prog;
    /* seq counts snapshots; seq_written is the last one stored, 0 before
     * the job row was marked running and -1 after that but before the
     * first progress row. */
    int seq, seq_written;
    /* Result, handed from work to done. */
    struct ctnas_nac *model;
    struct ctnas_nac_train_result res;
    struct ctnas_err err;
    /* A model to publish first gets the features of the stored cells, so
     * its first requests find them cached: done queues a second slice of
     * work that reads the cells (through a connection of its own, so
     * neither an HTTP thread nor the loop thread stalls on them) and
     * computes their features. */
    int warming;
    struct ctnas_arch *warm;
    ctnas_real *warm_feat;
    int n_warm;
    double warm_seconds;
};

static void train_job_free(struct train_job *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->mu);
    ctnas_free(t->warm);
    ctnas_free(t->warm_feat);
    ctnas_nac_free(t->model);
    ctnas_dataset_destroy(&t->set);
    ctnas_free(t);
}

/* For ctnas_api_job_start. */
static void train_drop(struct ctnas_job *job)
{
    train_job_free(job->data);
}

/* Pool thread, from inside ctnas_nac_train.  Mid-epoch calls exist only
 * so cancellation is noticed promptly; just epoch ends are snapshotted.
 * A non-zero return (the cancel flag) makes the training stop with
 * CTNAS_ECANCELED. */
static int on_progress(const struct ctnas_nac_progress *p, void *user)
{
    struct train_job *t = user;
    if (!p->in_epoch) {
        pthread_mutex_lock(&t->mu);
        t->prog = *p;
        t->seq++;
        pthread_mutex_unlock(&t->mu);
    }
    return atomic_load(&t->job.cancel);
}

/* Pool thread, the second slice: the warm-up features.  Failing (for
 * want of memory, or of a readable store) only drops them: the model
 * serves without.  A cancel cancels the job. */
static int warm_work(struct train_job *t)
{
    int w = ctnas_nac_feature_width(t->model);
    double t0 = ctnas_now_seconds();
    struct ctnas_err werr = {0};
    int rc = ctnas_warmup_collect_path(t->app->conf->db, t->space,
                                       &t->job.cancel, &t->warm,
                                       &t->n_warm, &werr);
    if (rc == CTNAS_ECANCELED)
        return rc;
    if (rc < 0) {
        ctnas_log_warn("job %lld: no warm-up: %s", (long long)t->job.id,
                       werr.msg);
        t->n_warm = 0;
    }
    if (t->n_warm > 0) {
        t->warm_feat = ctnas_malloc((size_t)t->n_warm * (size_t)w *
                                    sizeof *t->warm_feat);
        rc = t->warm_feat ? ctnas_warmup_features(t->model, t->space,
                                                  t->warm, t->n_warm,
                                                  t->warm_feat,
                                                  &t->job.cancel)
                          : CTNAS_ENOMEM;
        if (rc == CTNAS_ECANCELED)
            return rc;
        if (rc < 0)
            t->n_warm = 0;
    }
    t->warm_seconds = ctnas_now_seconds() - t0;
    return 0;
}

/* Pool thread: the whole training in one slice (no checkpoints), then,
 * for a model to publish, the warm-up in a second. */
static int train_work(struct ctnas_job *job)
{
    struct train_job *t = job->data;
    if (t->warming)
        return warm_work(t);
    return ctnas_nac_train_archs(&t->cfg, t->space, t->set.archs,
                                 t->set.values, t->set.n, on_progress, t,
                                 &t->model, &t->res, &t->err);
}

static json_t *progress_json(const struct ctnas_nac_progress *p)
{
    int total = p->epochs * p->members;
    /* Members train one after another, so the fraction done counts the
     * finished members' epochs plus the current member's. */
    double frac = total > 0 ? (double)(p->member * p->epochs + p->epoch) /
                                  total
                            : 0;
    return json_pack("{s:i, s:i, s:i, s:i, s:f, s:o, s:o, s:o}", "member",
                     p->member + 1, "members", p->members, "epoch", p->epoch,
                     "epochs", p->epochs, "fraction", frac,
                     "loss", ctnas_jsonv_real_or_null(p->loss),
                     "train_pair_accuracy",
                     ctnas_jsonv_real_or_null(p->pair_acc),
                     "holdout_kendall_tau",
                     ctnas_jsonv_real_or_null(p->holdout_tau));
}

/* Loop thread, every CTNAS_RUNNER_TICK_MS once the job has started.  The
 * snapshot is copied under mu and written outside it, so the pool thread
 * never waits on SQLite.  Store errors are dropped: progress is best
 * effort, and the next tick tries again with a fresher snapshot. */
static int train_tick(struct ctnas_job *job)
{
    struct train_job *t = job->data;
    struct ctnas_store *st;
    struct ctnas_err err = {0};
    pthread_mutex_lock(&t->mu);
    struct ctnas_nac_progress p = t->prog;
    int seq = t->seq, fresh = t->seq != t->seq_written;
    pthread_mutex_unlock(&t->mu);
    if (ctnas_app_store(t->app, &st, &err) < 0)
        return 0;
    if (t->seq_written == 0) {
        /* First tick after the pool picked the job up. */
        if (ctnas_store_job_start(st, job->id,
                                  atomic_load(&job->started_at), &err) < 0)
            return 0;
        t->seq_written = -1;
    }
    if (!fresh || seq == 0)
        return 0;
    json_t *pj = progress_json(&p);
    if (ctnas_store_job_progress(st, job->id, pj, &err) == 0)
        t->seq_written = seq;
    json_decref(pj);
    return 0;
}

/* Store the model and mark the job succeeded, in one transaction. */
static int store_result(struct train_job *t, struct ctnas_store *st,
                        int64_t *model_id, struct ctnas_err *err)
{
    /* One transaction, so a poll never sees a succeeded job without its
     * model, nor a model row of a job that failed.  figures is borrowed
     * by meta and referenced by result; every reference is dropped
     * below on all paths. */
    size_t len = ctnas_nac_blob_size(t->model);
    void *blob = ctnas_malloc(len);
    if (blob == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    ctnas_nac_save(t->model, blob, len);
    json_t *ids = ctnas_jsonv_int64_array(t->set.ids, t->set.n);
    json_t *figures = json_pack(
        "{s:f, s:o, s:o, s:o, s:I, s:i, s:i, s:f}", "train_seconds",
        t->res.seconds, "loss", ctnas_jsonv_real_or_null(t->res.loss),
        "train_pair_accuracy", ctnas_jsonv_real_or_null(t->res.pair_acc),
        "holdout_kendall_tau", ctnas_jsonv_real_or_null(t->res.holdout_tau),
        "steps", (json_int_t)t->res.steps, "n_train", t->set.n,
        "warmed", t->n_warm, "warm_seconds", t->warm_seconds);
    json_t *cfg = ctnas_nac_json_write(&t->cfg);
    struct ctnas_model_meta meta = {t->space->name, t->dataset,
                                    t->metric,
                                    t->job.id, t->publish, cfg, figures,
                                    ids};
    /* A model is stored whole, with its training set and figures, or not
     * at all. */
    int rc = ids && figures && cfg
                 ? ctnas_store_begin(st, err)
                 : ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    int began = rc == 0;
    if (rc == 0)
        rc = ctnas_store_model_insert(st, &meta, blob, len, model_id, err);
    json_t *result = NULL;
    if (rc == 0) {
        result = json_pack("{s:I, s:O}", "model_id", (json_int_t)*model_id,
                           "figures", figures);
        rc = result ? ctnas_store_job_finish(st, t->job.id, "succeeded",
                                             result, NULL, err)
                    : ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }
    if (rc == 0)
        rc = ctnas_store_commit(st, err);
    else if (began)
        ctnas_store_rollback(st);
    json_decref(result);
    json_decref(cfg);
    json_decref(figures);
    json_decref(ids);
    ctnas_free(blob);
    return rc;
}

/* Loop thread, under the runner's mutex.  After training a model to
 * publish, requeues the job to read the stored cells and compute their
 * features; otherwise writes the job's final row, publishes the model
 * when asked, and frees t.  A shutdown is recorded as "failed:
 * interrupted" rather than "cancelled", since nobody asked for it. */
static int train_done(struct ctnas_job *job, int status)
{
    struct train_job *t = job->data;
    struct ctnas_store *st;
    struct ctnas_err err = {0};
    if (ctnas_app_store(t->app, &st, &err) < 0) {
        ctnas_log_error("job %lld: cannot record its end: %s",
                        (long long)job->id, err.msg);
        train_job_free(t);
        return CTNAS_JOB_FINISHED;
    }
    if (atomic_load(&job->started))
        train_tick(job); /* the last progress, so polls see 100% */
    if (status == 0 && t->publish && !t->warming) {
        t->warming = 1;
        return CTNAS_JOB_REQUEUE;
    }
    int64_t model_id = 0;
    if (status == 0 && store_result(t, st, &model_id, &err) == 0) {
        ctnas_log_info("job %lld: model %lld trained on %d architectures "
                       "in %.1f s", (long long)job->id, (long long)model_id,
                       t->set.n, t->res.seconds);
        if (t->publish) {
            struct ctnas_served *s = ctnas_served_new(
                model_id, t->space->name, t->dataset, t->metric,
                ctnas_store_now(), t->model);
            /* served_new took the model, even if it failed. */
            t->model = NULL;
            if (s)
                ctnas_served_prime(s, t->warm, t->warm_feat, t->n_warm);
            if (s == NULL || ctnas_registry_publish(t->app->registry, s) < 0)
                ctnas_log_warn("job %lld: model %lld is stored but not "
                               "served: out of memory (a restart serves "
                               "it)", (long long)job->id,
                               (long long)model_id);
            ctnas_served_release(s);
        }
    } else if (status == CTNAS_ECANCELED &&
               atomic_load(&job->cancel) == CTNAS_RUNNER_SHUTDOWN) {
        ctnas_store_job_finish(st, job->id, "failed", NULL,
                               "interrupted: the daemon stopped before the "
                               "job finished; submit it again", &err);
        ctnas_log_info("job %lld: interrupted by shutdown",
                       (long long)job->id);
    } else if (status == CTNAS_ECANCELED) {
        ctnas_store_job_finish(st, job->id, "cancelled", NULL,
                               "cancelled by request", &err);
        ctnas_log_info("job %lld: cancelled", (long long)job->id);
    } else {
        /* status 0 here means training worked but storing it failed. */
        const char *why = status == 0 ? err.msg : t->err.msg;
        struct ctnas_err ferr = {0};
        ctnas_store_job_finish(st, job->id, "failed", NULL,
                               why[0] ? why : ctnas_strerror(status), &ferr);
        ctnas_log_warn("job %lld: failed: %s", (long long)job->id, why);
    }
    train_job_free(t);
    return CTNAS_JOB_FINISHED;
}

static const struct ctnas_job_ops train_ops = {train_work, train_tick,
                                               train_done};

/* ---- building a job from a request ---- */

/* Every key a training request may carry, with the training settings of
 * nac_json.c: anything else is a typo the client should hear about
 * (ctnas_nac_json_only), not a silent default. */
static const char *const train_keys[] = {
    "space", "dataset", "metric", "train_size", "ids", "publish", NULL};

/* The error for ids the read did not find (set holds those it found, in
 * id order): the first one's place is the field, and the message names
 * up to five of them. */
static int missing_ids(const struct ctnas_dataset *set, const int64_t *want,
                       size_t n_want, const char *dataset,
                       const char *metric, struct ctnas_err *err)
{
    char list[128] = "", field[32] = "ids";
    size_t n_missing = 0;
    for (size_t i = 0; i < n_want; i++) {
        if (ctnas_dataset_has_id(set, want[i]))
            continue;
        if (n_missing == 0)
            snprintf(field, sizeof field, "ids[%zu]", i);
        if (n_missing < 5) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof list - used, "%s%lld",
                     n_missing ? ", " : "", (long long)want[i]);
        }
        n_missing++;
    }
    return ctnas_err_set(err, CTNAS_EINVAL, field,
                         "%zu of the ids (%s%s) %s not %s architecture%s "
                         "measured on %s with metric %s", n_missing, list,
                         n_missing > 5 ? ", ..." : "",
                         n_missing == 1 ? "is" : "are", set->space->name,
                         n_missing == 1 ? "" : "s", dataset, metric);
}

/* HTTP thread.  Everything that can fail on the request's content is
 * checked before the job row exists, so a 400 leaves no trace in the
 * store.  On any failure t is freed here; after a successful submit the
 * runner owns it. */
int ctnas_job_train_submit(struct ctnas_app *app, struct ctnas_store *st,
                           const json_t *req,
                           const struct ctnas_job_key *key, json_t **out,
                           struct ctnas_err *err)
{
    int rc;
    const char *space_name, *dataset, *metric = NULL;
    int64_t train_size = 0;
    int publish = 1;
    if ((rc = ctnas_nac_json_only(req, "", train_keys, err)) < 0 ||
        (rc = ctnas_jsonv_string(req, "", "space", 1, &space_name, 31,
                                 err)) < 0 ||
        (rc = ctnas_jsonv_string(req, "", "dataset", 1, &dataset, 63,
                                 err)) < 0 ||
        (rc = ctnas_jsonv_string(req, "", "metric", 0, &metric, 63, err)) <
            0 ||
        (rc = ctnas_jsonv_int(req, "", "train_size", 0, &train_size, 2,
                              10000000, err)) < 0 ||
        (rc = ctnas_jsonv_bool(req, "", "publish", 0, &publish, err)) < 0)
        return rc;
    const struct ctnas_space *space = ctnas_space_find(space_name);
    if (space == NULL)
        return ctnas_err_set(err, CTNAS_EINVAL, "space",
                             "unknown space '%s'", space_name);
    const json_t *ids = json_object_get(req, "ids");
    if (ids != NULL) {
        if (!json_is_array(ids) || json_array_size(ids) < 2)
            return ctnas_err_set(err, CTNAS_EINVAL, "ids",
                                 "ids must be an array of at least 2 "
                                 "architecture ids");
        for (size_t i = 0; i < json_array_size(ids); i++)
            if (!json_is_integer(json_array_get(ids, i))) {
                char f[32];
                snprintf(f, sizeof f, "ids[%zu]", i);
                return ctnas_err_set(err, CTNAS_EINVAL, f,
                                     "%s must be an integer", f);
            }
        if (train_size)
            return ctnas_err_set(err, CTNAS_EINVAL, "train_size",
                                 "give ids or train_size, not both");
    }

    struct train_job *t = ctnas_calloc(1, sizeof *t);
    if (t == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    pthread_mutex_init(&t->mu, NULL);
    t->app = app;
    t->space = space;
    t->publish = publish;
    snprintf(t->dataset, sizeof t->dataset, "%s", dataset);
    ctnas_nac_train_config_default(&t->cfg);
    /* The model's input width follows the space, never the request. */
    t->cfg.model.n_types = space->n_node_types;
    if ((rc = ctnas_nac_json_read(req, "", &t->cfg, err)) < 0 ||
        (rc = ctnas_nac_train_config_check(&t->cfg, err)) < 0)
        goto fail;

    if ((rc = ctnas_dataset_store_metric(st, space, dataset, metric,
                                         t->metric, sizeof t->metric,
                                         err)) < 0)
        goto fail;
    /* The ids, checked to be integers above; duplicates are refused by
     * the read, so the count check below spots unknown ones. */
    int64_t *want = NULL;
    size_t n_want = ids ? json_array_size(ids) : 0;
    if (ids && (want = ctnas_malloc(n_want * sizeof *want)) == NULL) {
        rc = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n_want; i++)
        want[i] = json_integer_value(json_array_get(ids, i));
    /* A sample reads and parses only the rows it draws: a hundred of a
     * 20,000-cell catalogue in a few ms, not all of them. */
    int n_all = 0;
    if (train_size)
        rc = ctnas_dataset_sample_store(&t->set, st, space, dataset,
                                        t->metric, (int)train_size,
                                        t->cfg.seed, &n_all, err);
    else
        rc = ctnas_dataset_from_store(&t->set, st, space, dataset,
                                      t->metric, want, n_want, err);
    if (rc == 0 && ids && (size_t)t->set.n != n_want)
        rc = missing_ids(&t->set, want, n_want, dataset, t->metric, err);
    ctnas_free(want);
    if (rc < 0)
        goto fail;
    if ((train_size ? n_all : t->set.n) < 2) {
        rc = ctnas_dataset_too_few(st, space, dataset, t->metric,
                                   metric != NULL,
                                   train_size ? n_all : t->set.n,
                                   "training needs", err);
        goto fail;
    }
    if (train_size && t->set.n < train_size) {
        rc = ctnas_err_set(err, CTNAS_EINVAL, "train_size",
                           "train_size %lld is more than the %d measured "
                           "architectures", (long long)train_size, n_all);
        goto fail;
    }
    /* What the job would find only once it ran: a 400 now. */
    if ((rc = ctnas_nac_train_size_check(&t->cfg, t->set.n, err)) < 0)
        goto fail;

    /* The job row holds the full, normalised request. */
    json_t *params = ctnas_nac_json_write(&t->cfg);
    int bad = params == NULL;
    bad = bad || json_object_set_new(params, "space",
                                     json_string(space->name));
    bad = bad || json_object_set_new(params, "dataset", json_string(dataset));
    bad = bad || json_object_set_new(params, "metric",
                                     json_string(t->metric));
    bad = bad || json_object_set_new(params, "n_train",
                                     json_integer(t->set.n));
    bad = bad || json_object_set_new(params, "train_size",
                                     train_size ? json_integer(train_size)
                                                : json_null());
    bad = bad || json_object_set_new(params, "publish",
                                     json_boolean(publish));
    if (bad) {
        json_decref(params);
        rc = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        goto fail;
    }
    t->job.ops = &train_ops;
    t->job.data = t;
    rc = ctnas_api_job_start(app, st, &t->job, train_drop, "train", params,
                             NULL, key, out, err);
    json_decref(params);
    return rc;
fail:
    train_job_free(t);
    return rc;
}

/* Any thread with its own store connection: the blob is parsed into a
 * fresh model, so the result shares nothing with the registry. */
int ctnas_job_train_load_model(struct ctnas_store *st, int64_t id,
                               struct ctnas_served **out,
                               struct ctnas_err *err)
{
    json_t *row;
    void *blob;
    size_t len;
    int rc = ctnas_store_model_get(st, id, &row, &blob, &len, err);
    if (rc < 0)
        return rc;
    struct ctnas_nac *nac = ctnas_nac_load(blob, len, err);
    ctnas_free(blob);
    if (nac == NULL) {
        json_decref(row);
        return err && err->code ? err->code : CTNAS_EDB;
    }
    *out = ctnas_served_new(
        id, json_string_value(json_object_get(row, "space")),
        json_string_value(json_object_get(row, "dataset")),
        json_string_value(json_object_get(row, "metric")),
        json_real_value(json_object_get(row, "created_at")), nac);
    json_decref(row);
    return *out ? 0 : ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
}

/* Stops at the first model that fails to load: the daemon would rather
 * refuse to start than serve an older model without saying so. */
int ctnas_job_train_load_serving(struct ctnas_app *app,
                                 struct ctnas_store *st, int *n,
                                 struct ctnas_err *err)
{
    int64_t *ids;
    int k;
    int rc = ctnas_store_model_latest(st, &ids, &k, err);
    if (rc < 0)
        return rc;
    *n = 0;
    for (int i = 0; i < k && rc == 0; i++) {
        struct ctnas_served *s;
        if ((rc = ctnas_job_train_load_model(st, ids[i], &s, err)) < 0)
            break;
        struct ctnas_err werr = {0};
        if (ctnas_warmup_publish(app, s, &werr) < 0)
            ctnas_log_warn("model %lld: %s", (long long)ids[i], werr.msg);
        ctnas_served_release(s);
        ++*n;
    }
    ctnas_free(ids);
    return rc;
}
