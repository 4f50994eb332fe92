/*
 * job_search.c - see job_search.h.
 *
 * Threads: the pool thread runs one slice (work) on the job's own search
 * state and publishes a progress snapshot under the job's mutex; the loop
 * thread (tick, done) writes rows, events, pseudo-labels and checkpoints
 * and decides whether the job runs again, waits for measurements (parked)
 * or ends.  HTTP threads only build jobs and read rows.
 */
#include "config.h"
#include "job_search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "jsonv.h"
#include "log.h"
#include "mem.h"
#include "nac_json.h"
#include "registry.h"
#include "runner.h"
#include "search.h"
#include "space.h"
#include "store_ml.h"
#include "warmup.h"

#define SLICE_SECONDS 0.5       /* one work call */
#define CHECKPOINT_SECONDS 2.0  /* between checkpoints of a running job */
#define PROGRESS_TOP 10         /* best architectures in the job row */
#define PROGRESS_SUGGEST 50     /* suggestions kept in the job row */

/* ---- the request ---- */


#define S(f) offsetof(struct ctnas_search_config, f)
#define C(f) (offsetof(struct ctnas_search_config, ctrl) + \
              offsetof(struct ctnas_ctrl_config, f))

static const struct ctnas_jsonv_field fields[] = {
    {"steps", CTNAS_JV_LONG, S(steps), 1, 10000000, NULL},
    {"rounds", CTNAS_JV_INT, S(rounds), 1, 100, NULL},
    {"batch", CTNAS_JV_INT, S(batch), 1, 1024, NULL},
    {"lr", CTNAS_JV_REAL, S(lr), 1e-8, 1, NULL},
    {"entropy_weight", CTNAS_JV_REAL, S(entropy_weight), 0, 10, NULL},
    {"grad_clip", CTNAS_JV_REAL, S(grad_clip), 0, 1e6, NULL},
    {"advantage", CTNAS_JV_ENUM, S(advantage), 0, 0,
     ctnas_search_advantage_names},
    {"ema_decay", CTNAS_JV_REAL, S(ema_decay), 0, 0.9999, NULL},
    {"baseline", CTNAS_JV_ENUM, S(baseline_mode), 0, 0,
     ctnas_search_baseline_names},
    {"update_every", CTNAS_JV_INT, S(update_every), 1, 10000000, NULL},
    {"h_size", CTNAS_JV_INT, S(h_size), 2, 1000, NULL},
    {"h_keep", CTNAS_JV_INT, S(h_keep), 0, 1000, NULL},
    {"pseudo_ratio", CTNAS_JV_REAL, S(pseudo_ratio), 0, 0.95, NULL},
    {"pseudo_k", CTNAS_JV_INT, S(pseudo_k), 1, 100000, NULL},
    {"explore_every", CTNAS_JV_INT, S(explore_every), 1, 10000000, NULL},
    {"ft_iters", CTNAS_JV_INT, S(ft_iters), 0, 100000, NULL},
    {"ft_pairs", CTNAS_JV_INT, S(ft_pairs), 1, 4096, NULL},
    {"ft_lr", CTNAS_JV_REAL, S(ft_lr), 1e-8, 1, NULL},
    {"ft_top_weight", CTNAS_JV_REAL, S(ft_top_weight), 0, 1e6, NULL},
    {"ft_top_scale", CTNAS_JV_REAL, S(ft_top_scale), 1e-6, 1, NULL},
    {"polish", CTNAS_JV_INT, S(polish), 0, 1000, NULL},
    {"polish_tries", CTNAS_JV_INT, S(polish_tries), 1, 10000, NULL},
    {"sizes", CTNAS_JV_ENUM, S(sizes), 0, 0, ctnas_search_sizes_names},
    {"pool_cap", CTNAS_JV_INT, S(pool_cap), 2, 1000000, NULL},
    {"top_n", CTNAS_JV_INT, S(top_n), 1, 10000, NULL},
    {"hidden", CTNAS_JV_INT, C(hidden), 1, 512, NULL},
    {"temperature", CTNAS_JV_REAL, C(temperature), 1e-3, 100, NULL},
    {"tanh_c", CTNAS_JV_REAL, C(tanh_c), 0, 100, NULL},
    {"seed", CTNAS_JV_U64, S(seed), 0, 9007199254740991.0, NULL},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

/* The request's keys besides the search settings of fields. */
static const char *const route_keys[] = {
    "space", "dataset", "metric", "comparator", "train", "suggestions",
    "publish", NULL};

/* ---- the job ---- */

struct search_job {
    struct ctnas_job job;
    struct ctnas_app *app;
    const struct ctnas_space *space;
    char dataset[64], metric[64];
    struct ctnas_search_config cfg;
    struct ctnas_nac_train_config tc;  /* "train" and between rounds */
    int suggestions;                   /* measurements asked per round */
    int publish;
    /* Until the first slice: what the search starts from. */
    struct ctnas_nac *nac;             /* NULL: train it first */
    struct ctnas_dataset set;          /* the labelled set */
    /* The search (pool thread during work, loop thread otherwise). */
    struct ctnas_search *s;
    /* Set by the tick when the next round is due (tick -> work): the
     * labels that arrived while waiting, n_new of them (maybe 0: told to
     * go on without).  new_archs is not NULL exactly while it is due. */
    int n_new;
    struct ctnas_arch *new_archs;
    double *new_values;
    /* Ask/tell bookkeeping, kept in the checkpoint's extra.  Measurements
     * stored after label_mark are new to the search; skip holds the
     * hashes of the suggestions a continue went on without, which are not
     * suggested again (but learned, like any other, once measured).  The
     * due round's values of both wait in next_* beside new_archs, so a
     * checkpoint never pairs a search with bookkeeping ahead of it. */
    int64_t label_mark, next_mark;
    char (*skip)[CTNAS_HASH_LEN], (*next_skip)[CTNAS_HASH_LEN];
    int n_skip, n_next_skip;
    /* Progress snapshot: work writes, tick reads. */
    pthread_mutex_t mu;
    struct ctnas_search_progress prog;
    /* 0 training a comparator (the first, or between rounds), 1
     * searching */
    int phase;
    /* Loop thread only. */
    long events;                       /* events written */
    /* Seconds parked in the rounds past (the client's time, left out of
     * the remaining time's estimate), and when it last parked (0: it
     * is not parked).  Both in the checkpoint's extra. */
    double waited, parked_at;
    int pseudo_stored;                 /* pseudo-labels written */
    double last_checkpoint;
    int started_row;
    struct ctnas_err err;
};

static void search_job_free(struct search_job *j)
{
    if (j == NULL)
        return;
    pthread_mutex_destroy(&j->mu);
    ctnas_nac_free(j->nac);
    ctnas_search_free(j->s);
    ctnas_dataset_destroy(&j->set);
    ctnas_free(j->new_archs);
    ctnas_free(j->new_values);
    ctnas_free(j->skip);
    ctnas_free(j->next_skip);
    ctnas_free(j);
}

/* For ctnas_api_job_start. */
static void search_drop(struct ctnas_job *job)
{
    search_job_free(job->data);
}

static struct search_job *search_job_new(struct ctnas_app *app)
{
    struct search_job *j = ctnas_calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    pthread_mutex_init(&j->mu, NULL);
    j->app = app;
    ctnas_search_config_default(&j->cfg);
    /* A search's own comparator ("train" and between rounds) uses
     * the search recipe: pairs weighted towards the best measured cells,
     * whose first choice is what a search answers (nac_train.h). */
    ctnas_nac_train_config_search(&j->tc);
    j->suggestions = 4;
    return j;
}

static int skipped(void *cls, const struct ctnas_arch *a)
{
    const struct search_job *j = cls;
    char hash[CTNAS_HASH_LEN];
    if (j->n_skip == 0)
        return 0;
    j->space->hash(a, hash);
    for (int i = 0; i < j->n_skip; i++)
        if (strcmp(j->skip[i], hash) == 0)
            return 1;
    return 0;
}

/* The job's suggestions: up to n of the search's best unmeasured cells,
 * less those skipped. */
static int job_suggest(struct search_job *j, int n,
                       struct ctnas_search_entry *e)
{
    return ctnas_search_suggest_except(j->s, n, e, skipped, j);
}

static int on_progress(const struct ctnas_search_progress *p, void *user)
{
    struct search_job *j = user;
    pthread_mutex_lock(&j->mu);
    j->prog = *p;
    j->phase = 1;
    pthread_mutex_unlock(&j->mu);
    return atomic_load(&j->job.cancel);
}

static int on_train_progress(const struct ctnas_nac_progress *p, void *user)
{
    (void)p;
    struct search_job *j = user;
    return atomic_load(&j->job.cancel);
}

/* Pool thread: one slice. */
static int search_work(struct ctnas_job *job)
{
    struct search_job *j = job->data;
    int rc;
    if (atomic_load(&job->cancel))
        return CTNAS_ECANCELED; /* e.g. woken from waiting to end */
    if (j->s == NULL) {
        struct ctnas_nac *nac = j->nac;
        if (nac == NULL &&
            (rc = ctnas_nac_train_archs(&j->tc, j->space, j->set.archs,
                                        j->set.values, j->set.n,
                                        on_train_progress, j, &nac, NULL,
                                        &j->err)) < 0)
            return rc;
        j->s = ctnas_search_new(j->space, &j->cfg, nac, j->set.archs,
                                j->set.values, j->set.n, &j->err);
        if (nac != j->nac)
            ctnas_nac_free(nac);
        if (j->s == NULL)
            return j->err.code ? j->err.code : CTNAS_ENOMEM;
        ctnas_nac_free(j->nac);
        j->nac = NULL;
    }
    if (j->new_archs != NULL) {
        /* Measurements of the last round's suggestions (maybe none, if
         * told to go on without): learn from every label, then search
         * again. */
        if (j->n_new > 0 &&
            (rc = ctnas_search_add_labels(j->s, j->new_archs, j->new_values,
                                          j->n_new)) < 0)
            return rc;
        if ((rc = ctnas_search_retrain(j->s, &j->tc, on_train_progress, j,
                                       &j->err)) < 0)
            return rc;
        if ((rc = ctnas_search_next_round(j->s)) < 0)
            return rc;
        ctnas_free(j->new_archs);
        ctnas_free(j->new_values);
        j->new_archs = NULL;
        j->new_values = NULL;
        j->n_new = 0;
        j->label_mark = j->next_mark;
        if (j->next_skip != NULL) {
            ctnas_free(j->skip);
            j->skip = j->next_skip;
            j->n_skip = j->n_next_skip;
            j->next_skip = NULL;
        }
    }
    return ctnas_search_run(j->s, 0, SLICE_SECONDS, on_progress, j);
}

static json_t *entry_json(const struct ctnas_space *sp,
                          const struct ctnas_search_entry *e)
{
    char hash[CTNAS_HASH_LEN];
    sp->hash(&e->arch, hash);
    return json_pack("{s:o, s:s, s:o, s:i, s:I, s:o}", "arch",
                     sp->to_json(&e->arch), "hash", hash, "score",
                     ctnas_jsonv_real_or_null(e->score), "samples",
                     e->count, "first_step", (json_int_t)e->first_step,
                     "label",
                     e->measured ? ctnas_jsonv_real_or_null(e->value)
                                 : json_null());
}

/* A new array of up to n of the entries e; NULL when out of memory. */
static json_t *entries_json(const struct ctnas_space *sp,
                            const struct ctnas_search_entry *e, int n)
{
    json_t *a = json_array();
    for (int i = 0; a != NULL && i < n; i++)
        a = ctnas_jsonv_append(a, entry_json(sp, &e[i]));
    return a;
}

/* The job row's progress document, with the search's own part only
 * when with_search (the caller then owns j->s: not while a pool thread
 * may be making it); NULL when out of memory. */
static json_t *progress_json(struct search_job *j, int with_search)
{
    struct ctnas_search_progress p;
    pthread_mutex_lock(&j->mu);
    p = j->prog;
    int phase = j->phase;
    pthread_mutex_unlock(&j->mu);
    long total = j->cfg.steps * j->cfg.rounds;
    /* While a comparator trains, the round it trains for (1-based). */
    int round = p.round;
    if (!phase && round < j->cfg.rounds)
        round++;
    json_t *o = json_pack(
        "{s:s, s:I, s:I, s:f, s:i, s:i, s:o, s:o, s:o, s:i, s:i, s:i, "
        "s:i}",
        "phase",
        !phase ? "training comparator"
               : p.polish_left > 0 ? "polishing" : "searching", "step",
        (json_int_t)p.step, "steps", (json_int_t)total, "fraction",
        total > 0 ? (double)p.step / (double)total : 0.0, "round", round,
        "rounds", j->cfg.rounds,
        "reward_avg", ctnas_jsonv_real_or_null(p.reward_avg),
        "entropy_avg", ctnas_jsonv_real_or_null(p.entropy_avg),
        "baseline_score", ctnas_jsonv_real_or_null(p.baseline_score),
        "pseudo_labels", p.n_pseudo, "pool_size", p.pool_size,
        "explorations", p.explorations,
        "baseline_updates", p.baseline_updates);
    if (o != NULL &&
        json_object_set_new(o, "waited_seconds", json_real(j->waited))) {
        json_decref(o);
        return NULL;
    }
    if (o != NULL && with_search && j->s != NULL) {
        const struct ctnas_arch *b = ctnas_search_baseline(j->s);
        const struct ctnas_arch *la;
        const double *lv;
        struct ctnas_search_entry e[PROGRESS_SUGGEST];
        int n_best = ctnas_search_best(j->s, PROGRESS_TOP, e);
        int bad = json_object_set_new(o, "baseline",
                                      b ? j->space->to_json(b) : json_null());
        bad |= json_object_set_new(
            o, "labels", json_integer(ctnas_search_labels(j->s, &la, &lv)));
        bad |= json_object_set_new(o, "best",
                                   entries_json(j->space, e, n_best));
        int n_sug = job_suggest(j, PROGRESS_SUGGEST, e);
        bad |= json_object_set_new(o, "suggestions",
                                   entries_json(j->space, e, n_sug));
        bad |= json_object_set_new(o, "skipped", json_integer(j->n_skip));
        if (bad) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

/* Loop thread: write the progress row (with_search as progress_json)
 * and, with event, an event: the progress without the long lists.  Out
 * of memory, the row keeps its last progress (the next write tries
 * again) rather than losing it to null. */
static int write_progress(struct search_job *j, struct ctnas_store *st,
                          int with_search, int event, struct ctnas_err *err)
{
    json_t *pj = progress_json(j, with_search);
    int rc = pj ? ctnas_store_job_progress(st, j->job.id, pj, err)
                : ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    if (rc == 0 && event) {
        json_t *ev = json_deep_copy(pj);
        json_object_del(ev, "suggestions");
        json_object_del(ev, "best");
        rc = ev ? ctnas_store_event_put(st, j->job.id, j->events + 1, ev,
                                        err)
                : ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        if (rc == 0)
            j->events++;
        json_decref(ev);
    }
    json_decref(pj);
    return rc;
}

/* Loop thread: write the progress row, an event, the new pseudo-labels
 * and a checkpoint: when due (ck 0), always (1) or never (-1: the job
 * ends, and its checkpoint goes with it, sql/007). */
static int flush(struct search_job *j, struct ctnas_store *st, int ck,
                 struct ctnas_err *err)
{
    int rc;
    if (!j->started_row) {
        if ((rc = ctnas_store_job_start(st, j->job.id,
                                        atomic_load(&j->job.started_at),
                                        err)) < 0)
            return rc;
        j->started_row = 1;
    }
    /* One event per flush. */
    rc = write_progress(j, st, 1, 1, err);
    if (rc < 0 || j->s == NULL)
        return rc;

    int n;
    const struct ctnas_search_pseudo *ps = ctnas_search_pseudo_labels(j->s,
                                                                      &n);
    if (n > j->pseudo_stored) {
        if ((rc = ctnas_store_begin(st, err)) < 0)
            return rc;
        for (int i = j->pseudo_stored; i < n && rc == 0; i++) {
            char a[CTNAS_ENCODING_MAX], b[CTNAS_ENCODING_MAX];
            j->space->encode(&ps[i].a, a, sizeof a);
            j->space->encode(&ps[i].b, b, sizeof b);
            rc = ctnas_store_pseudo_put(st, j->job.id, i + 1, a, b,
                                        ps[i].label, ps[i].confidence,
                                        ps[i].step, err);
        }
        if (rc == 0 && (rc = ctnas_store_commit(st, err)) == 0)
            j->pseudo_stored = n;
        else
            ctnas_store_rollback(st);
        if (rc < 0)
            return rc;
    }
    double now = ctnas_store_now();
    if (ck > 0 ||
        (ck == 0 && now - j->last_checkpoint >= CHECKPOINT_SECONDS)) {
        void *blob;
        size_t len;
        if ((rc = ctnas_search_save(j->s, &blob, &len)) < 0)
            return ctnas_err_set(err, rc, "", "cannot save the search");
        json_t *skip = json_array();
        for (int i = 0; skip != NULL && i < j->n_skip; i++)
            skip = ctnas_jsonv_append(skip, json_string(j->skip[i]));
        json_t *extra = json_pack("{s:I, s:i, s:I, s:o, s:f, s:f}",
                                  "events", (json_int_t)j->events,
                                  "pseudo_stored", j->pseudo_stored,
                                  "label_mark", (json_int_t)j->label_mark,
                                  "skipped", skip, "waited", j->waited,
                                  "parked_at", j->parked_at);
        struct ctnas_search_progress p;
        ctnas_search_progress_get(j->s, &p);
        /* without extra the resumed job would count its events from 0 */
        rc = extra ? ctnas_store_checkpoint_put(st, j->job.id, p.step, blob,
                                                len, extra, err)
                   : ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        json_decref(extra);
        ctnas_free(blob);
        if (rc == 0)
            j->last_checkpoint = now;
    }
    return rc;
}

/* Loop thread: the answer, once the last round is over; NULL when out
 * of memory. */
static json_t *result_json(struct search_job *j)
{
    struct ctnas_search_entry e;
    json_t *answer = json_null();
    if (ctnas_search_answer(j->s, &e) == 0 &&
        (answer = entry_json(j->space, &e)) == NULL)
        return NULL;
    struct ctnas_search_progress p;
    ctnas_search_progress_get(j->s, &p);
    return json_pack("{s:o, s:I, s:i}", "answer", answer, "steps",
                     (json_int_t)p.step, "pseudo_labels", p.n_pseudo);
}

/* Store the search's fine-tuned comparator as a new model and serve it. */
static int publish_model(struct search_job *j, struct ctnas_store *st,
                         json_t *result, struct ctnas_err *err)
{
    const struct ctnas_nac *nac = ctnas_search_comparator(j->s);
    size_t len = ctnas_nac_blob_size(nac);
    void *blob = ctnas_malloc(len);
    if (blob == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    ctnas_nac_save(nac, blob, len);
    json_t *cfg = ctnas_nac_json_write(&j->tc);
    /* Its labels are cells, not store ids (a round may have learned a
     * cell deleted since): n_train stays 0 and figures say how many. */
    const struct ctnas_arch *la;
    const double *lv;
    json_t *figures = json_pack("{s:s, s:I, s:i}", "source", "search",
                                "search_job", (json_int_t)j->job.id,
                                "labels",
                                ctnas_search_labels(j->s, &la, &lv));
    json_t *ids = json_array();
    struct ctnas_model_meta meta = {j->space->name, j->dataset, j->metric,
                                    j->job.id, 1, cfg, figures, ids};
    int64_t id;
    int rc = cfg && figures && ids
                 ? ctnas_store_model_insert(st, &meta, blob, len, &id, err)
                 : ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    json_decref(cfg);
    json_decref(figures);
    json_decref(ids);
    struct ctnas_nac *copy = rc == 0 ? ctnas_nac_load(blob, len, err) : NULL;
    ctnas_free(blob);
    if (rc < 0)
        return rc;
    if (json_object_set_new(result, "model_id", json_integer(id)) != 0)
        return ctnas_err_set(err, CTNAS_ENOMEM, "",
                             "out of memory after storing model %lld",
                             (long long)id);
    struct ctnas_served *sv =
        copy ? ctnas_served_new(id, j->space->name, j->dataset, j->metric,
                                ctnas_store_now(), copy)
             : NULL;
    if (sv) {
        struct ctnas_err werr = {0};
        if (ctnas_warmup_publish(j->app, sv, &werr) < 0)
            ctnas_log_warn("model %lld: %s", (long long)id, werr.msg);
        ctnas_served_release(sv);
    }
    return 0;
}

static int search_tick(struct ctnas_job *job);

static int search_done(struct ctnas_job *job, int status)
{
    struct search_job *j = job->data;
    struct ctnas_store *st;
    struct ctnas_err err = {0};
    int cancel = atomic_load(&job->cancel);
    if (ctnas_app_store(j->app, &st, &err) < 0) {
        ctnas_log_error("search %lld: %s", (long long)job->id, err.msg);
        search_job_free(j);
        return CTNAS_JOB_FINISHED;
    }
    if (status == CTNAS_ECANCELED && cancel == CTNAS_RUNNER_SHUTDOWN) {
        /* Keep the row unfinished: the next start resumes from here.
         * Not while a round is due: the work may have added its labels
         * and been stopped in the retraining, a search ahead of its
         * bookkeeping; the checkpoint taken when it parked is the
         * consistent one, and the round is made again from there. */
        if (j->s && j->new_archs == NULL && flush(j, st, 1, &err) < 0)
            ctnas_log_warn("search %lld: last checkpoint failed: %s",
                           (long long)job->id, err.msg);
        ctnas_log_info("search %lld: paused by shutdown",
                       (long long)job->id);
        search_job_free(j);
        return CTNAS_JOB_FINISHED;
    }
    if (status == CTNAS_ECANCELED) {
        if (j->s)
            flush(j, st, -1, &err);
        ctnas_store_job_finish(st, job->id, "cancelled", NULL,
                               "cancelled by request", &err);
        ctnas_log_info("search %lld: cancelled", (long long)job->id);
        search_job_free(j);
        return CTNAS_JOB_FINISHED;
    }
    if (status < 0) {
        const char *why = j->err.msg[0] ? j->err.msg : ctnas_strerror(status);
        ctnas_store_job_finish(st, job->id, "failed", NULL, why, &err);
        ctnas_log_warn("search %lld: failed: %s", (long long)job->id, why);
        search_job_free(j);
        return CTNAS_JOB_FINISHED;
    }
    int state = status;
    /* A finished search needs no checkpoint: a crash before its row says
     * so resumes from the last one and ends the same. */
    int ck = state == CTNAS_SEARCH_RUNNING ? 0
             : state == CTNAS_SEARCH_WAITING ? 1 : -1;
    /* The wait starts now (the checkpoint below records when). */
    if (state == CTNAS_SEARCH_WAITING)
        j->parked_at = ctnas_store_now();
    if (flush(j, st, ck, &err) < 0)
        ctnas_log_warn("search %lld: cannot record progress: %s",
                       (long long)job->id, err.msg);
    if (state == CTNAS_SEARCH_RUNNING)
        return CTNAS_JOB_REQUEUE;
    if (state == CTNAS_SEARCH_WAITING) {
        ctnas_store_job_finish(st, job->id, "waiting", NULL, NULL, &err);
        return CTNAS_JOB_PARK;
    }
    /* A result that cannot be built fails the job rather than let it
     * succeed without its answer. */
    json_t *result = result_json(j);
    int rc = result ? 0
                    : ctnas_err_set(&err, CTNAS_ENOMEM, "",
                                    "out of memory recording the answer");
    if (rc == 0 && j->publish)
        rc = publish_model(j, st, result, &err);
    if (rc == 0)
        rc = ctnas_store_job_finish(st, job->id, "succeeded", result, NULL,
                                    &err);
    if (rc < 0)
        ctnas_store_job_finish(st, job->id, "failed", NULL, err.msg, &err);
    json_decref(result);
    ctnas_log_info("search %lld: finished", (long long)job->id);
    search_job_free(j);
    return CTNAS_JOB_FINISHED;
}

/* Loop thread, when the round is due: put into j->new_* the labels it
 * brings, the got measured suggestions (archs, values; taken over) and
 * everything else measured since label_mark, and into j->next_* the
 * bookkeeping after it, with the n_miss suggestions left unmeasured (their
 * hashes, miss) skipped from now on.  0, or a code with nothing changed. */
static int round_due(struct search_job *j, struct ctnas_store *st,
                     struct ctnas_arch *archs, double *values, int got,
                     char (*miss)[CTNAS_HASH_LEN], int n_miss,
                     struct ctnas_err *err)
{
    /* The mark first: what arrives while the rows are read is read again
     * next round, never lost. */
    int64_t mark;
    struct ctnas_dataset ds = {0};
    int rc = ctnas_store_measurement_mark(st, &mark, err);
    if (rc == 0)
        rc = ctnas_dataset_since_store(&ds, st, j->space, j->dataset,
                                       j->metric, j->label_mark, err);
    if (rc < 0) {
        ctnas_free(archs);
        ctnas_free(values);
        return rc;
    }
    int total = got + ds.n, n_skip = j->n_skip + n_miss;
    struct ctnas_arch *a =
        ctnas_realloc(archs, (size_t)(total ? total : 1) * sizeof *a);
    if (a != NULL)
        archs = a;
    double *v =
        ctnas_realloc(values, (size_t)(total ? total : 1) * sizeof *v);
    if (v != NULL)
        values = v;
    char (*skip)[CTNAS_HASH_LEN] =
        n_skip > j->n_skip
            ? ctnas_malloc((size_t)n_skip * sizeof *skip)
            : NULL;
    if (a == NULL || v == NULL || (n_skip > j->n_skip && skip == NULL)) {
        ctnas_dataset_destroy(&ds);
        ctnas_free(archs);
        ctnas_free(values);
        ctnas_free(skip);
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }
    /* (memcpy from NULL is undefined even for 0 bytes) */
    if (ds.n > 0) {
        memcpy(archs + got, ds.archs, (size_t)ds.n * sizeof *archs);
        memcpy(values + got, ds.values, (size_t)ds.n * sizeof *values);
    }
    if (skip != NULL) {
        if (j->n_skip > 0)
            memcpy(skip, j->skip, (size_t)j->n_skip * sizeof *skip);
        memcpy(skip + j->n_skip, miss, (size_t)n_miss * sizeof *skip);
    }
    ctnas_dataset_destroy(&ds);
    j->new_archs = archs;
    j->new_values = values;
    j->n_new = total;
    j->next_mark = mark;
    j->next_skip = skip;
    j->n_next_skip = n_skip;
    return 0;
}

/* Loop thread.  While running: nothing (done writes after each slice).
 * While parked: 1 when every suggestion of the round has a measurement in
 * the store (they become new labels). */
static int search_tick(struct ctnas_job *job)
{
    struct search_job *j = job->data;
    struct ctnas_store *st;
    struct ctnas_err err = {0};
    if (ctnas_app_store(j->app, &st, &err) < 0)
        return 0;
    if (!job->parked && !j->started_row) {
        /* Show "running" from the first moment, and the phase: the
         * comparator may train for a while before the first slice ends. */
        if (ctnas_store_job_start(st, job->id,
                                  atomic_load(&job->started_at), &err) == 0)
            j->started_row = 1;
        /* The work may be making j->s this very moment: the phase is
         * all there is to show yet, and a comparator in training is
         * worth an event (a resumed search shows where it resumes). */
        pthread_mutex_lock(&j->mu);
        int training = !j->phase;
        pthread_mutex_unlock(&j->mu);
        write_progress(j, st, 0, training, &err);
        return 0;
    }
    if (!job->parked || j->s == NULL || j->new_archs != NULL)
        return 0;
    struct ctnas_search_entry e[PROGRESS_SUGGEST];
    char miss[PROGRESS_SUGGEST][CTNAS_HASH_LEN]; /* the unmeasured ones */
    int n = job_suggest(j, j->suggestions, e), n_miss = 0;
    struct ctnas_arch *archs =
        ctnas_malloc((size_t)(n ? n : 1) * sizeof *archs);
    double *values = ctnas_malloc((size_t)(n ? n : 1) * sizeof *values);
    int got = 0, failed = archs == NULL || values == NULL;
    for (int i = 0; !failed && i < n; i++) {
        int found = 0;
        int64_t id, rank;
        double v;
        j->space->hash(&e[i].arch, miss[n_miss]);
        failed = ctnas_store_arch_standing(st, j->space->name, miss[n_miss],
                                           j->dataset, j->metric, &found,
                                           &id, &v, &rank, &err) < 0;
        if (!failed && found) {
            archs[got] = e[i].arch;
            values[got++] = v;
        } else if (!failed) {
            n_miss++;
        }
    }
    /* All measured (none to wait for, too, when every cell of the space
     * is labelled), or told to go on after this round. */
    struct ctnas_search_progress p = {0};
    int told = 0;
    if (!failed && got < n) {
        ctnas_search_progress_get(j->s, &p);
        failed = ctnas_store_search_continue_round(st, job->id, &told,
                                                   &err) < 0;
    }
    if (failed || (got < n && told != p.round)) {
        ctnas_free(archs);
        ctnas_free(values);
        return 0; /* not yet, or a store error: the next tick looks */
    }
    if (round_due(j, st, archs, values, got, miss, n_miss, &err) < 0) {
        ctnas_log_debug("search %lld: cannot read the new measurements: "
                        "%s", (long long)job->id, err.msg);
        return 0; /* the next tick tries again */
    }
    if (got < n)
        ctnas_log_info("search %lld: round %d goes on, as told, with %d "
                       "of %d suggestions measured", (long long)job->id,
                       p.round, got, n);
    ctnas_store_job_finish(st, job->id, "running", NULL, NULL, &err);
    if (j->parked_at > 0) {
        double w = ctnas_store_now() - j->parked_at;
        j->waited += w > 0 ? w : 0;
        j->parked_at = 0;
    }
    /* The next slice retrains the comparator on every label first: say
     * so now, as that may take a while.  The search is still parked
     * here, so its lists may be read.  The checkpoint (of the parked
     * search) counts the event, so a stop during the retraining resumes
     * after it rather than writing its number again. */
    pthread_mutex_lock(&j->mu);
    j->phase = 0;
    pthread_mutex_unlock(&j->mu);
    if (write_progress(j, st, 1, 1, &err) == 0)
        ctnas_store_checkpoint_events(st, job->id, j->events, &err);
    return 1;
}

static const struct ctnas_job_ops search_ops = {search_work, search_tick,
                                                search_done};

/* ---- building a job ---- */

/* Fill j from a request (resume = 0) or from the params of its job row
 * (resume = 1; want_ids then names the labelled set by id, or is NULL for
 * a job stored without one).  On success *params is the normalised
 * request to store and, when label_ids is not NULL, *label_ids the ids
 * of the labelled set (new references; a resume needs neither kept). */
static int build_job(struct search_job *j, struct ctnas_store *st,
                     const json_t *req, int resume, const json_t *want_ids,
                     json_t **params, json_t **label_ids,
                     struct ctnas_err *err)
{
    int rc;
    const char *space_name, *dataset, *metric = NULL;
    int64_t suggestions = j->suggestions;
    int publish = 0;
    /* A job stored before "sizes" existed proposed any size: resumed
     * without a checkpoint, it goes on as it was made. */
    if (resume && json_object_get(req, "sizes") == NULL)
        j->cfg.sizes = CTNAS_SEARCH_SIZES_ANY;
    if ((!resume &&
         (rc = ctnas_jsonv_only_fields(req, "", fields, N_FIELDS, route_keys,
                                       err)) < 0) ||
        (rc = ctnas_jsonv_string(req, "", "space", 1, &space_name, 31,
                                 err)) < 0 ||
        (rc = ctnas_jsonv_string(req, "", "dataset", 1, &dataset, 63,
                                 err)) < 0 ||
        (rc = ctnas_jsonv_string(req, "", "metric", 0, &metric, 63, err)) <
            0 ||
        (rc = ctnas_jsonv_int(req, "", "suggestions", 0, &suggestions, 1,
                              PROGRESS_SUGGEST, err)) < 0 ||
        (rc = ctnas_jsonv_bool(req, "", "publish", 0, &publish, err)) < 0 ||
        (rc = ctnas_jsonv_read_fields(req, "", fields, N_FIELDS, &j->cfg,
                                      err)) < 0 ||
        (rc = ctnas_search_config_check(&j->cfg, err)) < 0)
        return rc;
    if ((j->space = ctnas_space_find(space_name)) == NULL)
        return ctnas_err_set(err, CTNAS_EINVAL, "space",
                             "unknown space '%s'", space_name);
    snprintf(j->dataset, sizeof j->dataset, "%s", dataset);
    j->suggestions = (int)suggestions;
    j->publish = publish;
    const json_t *train = json_object_get(req, "train");
    if (train != NULL) {
        if ((rc = ctnas_jsonv_object(train, "train", err)) < 0 ||
            (rc = ctnas_nac_json_only(train, "train", NULL, err)) < 0 ||
            (rc = ctnas_nac_json_read(train, "train", &j->tc, err)) < 0)
            return rc;
    }
    j->tc.model.n_types = j->space->n_node_types;
    struct ctnas_err terr = {0};
    if ((rc = ctnas_nac_train_config_check(&j->tc, &terr)) < 0) {
        char f[96];
        snprintf(f, sizeof f, "train.%s", terr.field);
        return ctnas_err_set(err, rc, f, "train: %s", terr.msg);
    }

    /* The metric: named, or the dataset's only one. */
    if ((rc = ctnas_dataset_store_metric(st, j->space, dataset, metric,
                                         j->metric, sizeof j->metric,
                                         err)) < 0)
        return rc;

    /* Measurements stored after the mark are new to the search (each
     * round learns them): read before the labelled set, so none falls
     * between the two.  A job made before there was a mark learns what
     * arrives after its resume. */
    const json_t *mark_j = json_object_get(req, "label_mark");
    if (resume && json_is_integer(mark_j))
        j->label_mark = json_integer_value(mark_j);
    else if ((rc = ctnas_store_measurement_mark(st, &j->label_mark,
                                                err)) < 0)
        return rc;

    /* The labelled set: on a resume, exactly the one the job started
     * with (measurements that arrived later are not in it). */
    int64_t *want = NULL;
    size_t n_want = json_is_array(want_ids) ? json_array_size(want_ids) : 0;
    if (json_is_array(want_ids) &&
        (want = ctnas_malloc((n_want ? n_want : 1) * sizeof *want)) == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    for (size_t i = 0; i < n_want; i++)
        want[i] = json_integer_value(json_array_get(want_ids, i));
    rc = ctnas_dataset_from_store(&j->set, st, j->space, j->dataset,
                                  j->metric, want, n_want, err);
    ctnas_free(want);
    if (rc < 0)
        return rc;
    json_t *ids = NULL;
    if (label_ids) {
        /* The job resumes on exactly this set: all of it, or an error. */
        ids = ctnas_jsonv_int64_array(j->set.ids, j->set.n);
        if (ids == NULL)
            return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }

    /* The comparator to start from. */
    const json_t *cmp = json_object_get(req, "comparator");
    int64_t model_id = 0;
    int train_first = 0;
    if (cmp == NULL || (json_is_string(cmp) &&
                        strcmp(json_string_value(cmp), "latest") == 0)) {
        struct ctnas_served *sv = ctnas_registry_get(
            j->app->registry, j->space->name, j->dataset, NULL);
        if (sv == NULL) {
            json_decref(ids);
            return ctnas_err_set(err, CTNAS_ECONFLICT, "comparator",
                                 "no comparator serves %s on %s: train one "
                                 "(POST /v1/nac/train) or pass "
                                 "\"comparator\": \"train\"",
                                 j->space->name, j->dataset);
        }
        model_id = sv->id;
        ctnas_served_release(sv);
    } else if (json_is_string(cmp) &&
               strcmp(json_string_value(cmp), "train") == 0) {
        train_first = 1;
    } else if (json_is_integer(cmp) && json_integer_value(cmp) >= 1) {
        model_id = json_integer_value(cmp);
    } else {
        json_decref(ids);
        return ctnas_err_set(err, CTNAS_EINVAL, "comparator",
                             "comparator must be \"latest\", \"train\" or "
                             "a model id");
    }
    if (model_id) {
        json_t *row;
        void *blob;
        size_t len;
        rc = ctnas_store_model_get(st, model_id, &row, &blob, &len, err);
        if (rc == 0) {
            const char *sp = json_string_value(json_object_get(row,
                                                               "space"));
            if (strcmp(sp, j->space->name) != 0)
                rc = ctnas_err_set(err, CTNAS_EINVAL, "comparator",
                                   "model %lld compares %s architectures",
                                   (long long)model_id, sp);
            else if ((j->nac = ctnas_nac_load(blob, len, err)) == NULL)
                rc = CTNAS_EDB;
            json_decref(row);
            ctnas_free(blob);
        } else if (rc == CTNAS_ENOTFOUND) {
            rc = ctnas_err_set(err, CTNAS_EINVAL, "comparator",
                               "no model %lld", (long long)model_id);
        }
        if (rc < 0) {
            json_decref(ids);
            return rc;
        }
    }
    /* Not on a resume: a search resumes from its checkpoint, which holds
     * its own labelled set, whatever was deleted from the store since. */
    if (!resume &&
        (train_first || j->cfg.pseudo_ratio > 0 || j->cfg.rounds > 1) &&
        j->set.n < 2) {
        json_decref(ids);
        return ctnas_dataset_too_few(st, j->space, j->dataset, j->metric,
                                     metric != NULL, j->set.n,
                                     "training and exploration need", err);
    }

    /* Its comparator trains on the labelled set first ("train") or
     * between rounds: a hold-out that leaves too few is refused now, not
     * found by the job later. */
    if (!resume && (train_first || j->cfg.rounds > 1) &&
        ctnas_nac_train_size_check(&j->tc, j->set.n, &terr) < 0) {
        char f[96];
        json_decref(ids);
        snprintf(f, sizeof f, "train.%s", terr.field);
        return ctnas_err_set(err, CTNAS_EINVAL, f, "train: %s", terr.msg);
    }

    /* The job resumes from these params: all of them, or an error. */
    json_t *p = ctnas_jsonv_write_fields(fields, N_FIELDS, &j->cfg);
    int bad = p == NULL;
    bad = bad || json_object_set_new(p, "space",
                                     json_string(j->space->name));
    bad = bad || json_object_set_new(p, "dataset", json_string(j->dataset));
    bad = bad || json_object_set_new(p, "metric", json_string(j->metric));
    bad = bad || json_object_set_new(p, "comparator",
                                     train_first ? json_string("train")
                                                 : json_integer(model_id));
    bad = bad || json_object_set_new(p, "train",
                                     ctnas_nac_json_write(&j->tc));
    bad = bad || json_object_set_new(p, "suggestions",
                                     json_integer(j->suggestions));
    bad = bad || json_object_set_new(p, "publish",
                                     json_boolean(j->publish));
    bad = bad || json_object_set_new(p, "n_labels", json_integer(j->set.n));
    bad = bad || json_object_set_new(p, "label_mark",
                                     json_integer(j->label_mark));
    if (bad) {
        json_decref(p);
        json_decref(ids);
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }
    *params = p;
    if (label_ids)
        *label_ids = ids;
    /* A stored comparator needs no training: the search starts at
     * once. */
    j->phase = !train_first;
    return 0;
}

int ctnas_job_search_submit(struct ctnas_app *app, struct ctnas_store *st,
                            const json_t *req,
                            const struct ctnas_job_key *key, json_t **out,
                            struct ctnas_err *err)
{
    struct search_job *j = search_job_new(app);
    if (j == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    json_t *params = NULL, *label_ids = NULL;
    int rc = build_job(j, st, req, 0, NULL, &params, &label_ids, err);
    j->job.ops = &search_ops;
    j->job.data = j;
    if (rc == 0)
        rc = ctnas_api_job_start(app, st, &j->job, search_drop, "search",
                                 params, label_ids, key, out, err);
    else
        search_job_free(j);
    json_decref(params);
    json_decref(label_ids);
    return rc;
}

/* The ask/tell bookkeeping in a checkpoint's extra (checkpoints made
 * before it have none: the params' mark stays, nothing is skipped). */
static int resume_bookkeeping(struct search_job *j, const json_t *extra,
                              struct ctnas_err *err)
{
    const json_t *mark = json_object_get(extra, "label_mark");
    const json_t *skip = json_object_get(extra, "skipped");
    if (json_is_integer(mark))
        j->label_mark = json_integer_value(mark);
    /* Absent from checkpoints older than them: 0, as was shown then. */
    j->waited = json_number_value(json_object_get(extra, "waited"));
    j->parked_at = json_number_value(json_object_get(extra, "parked_at"));
    size_t n = json_is_array(skip) ? json_array_size(skip) : 0;
    if (n == 0)
        return 0;
    if ((j->skip = ctnas_malloc(n * sizeof *j->skip)) == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *h = json_string_value(json_array_get(skip, i));
        if (h == NULL || strlen(h) != CTNAS_HASH_LEN - 1)
            return ctnas_err_set(err, CTNAS_EINVAL, "",
                                 "search checkpoint with a bad skip list");
        memcpy(j->skip[i], h, CTNAS_HASH_LEN);
    }
    j->n_skip = (int)n;
    return 0;
}

int ctnas_job_search_resume(struct ctnas_app *app, struct ctnas_store *st,
                            int *n, struct ctnas_err *err)
{
    json_t *rows;
    int rc = ctnas_store_jobs_unfinished(st, "search", &rows, err);
    if (rc < 0)
        return rc;
    *n = 0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        int64_t id = json_integer_value(json_object_get(row, "id"));
        struct ctnas_err jerr = {0};
        struct search_job *j = search_job_new(app);
        json_t *params = NULL;
        if (j == NULL) {
            rc = CTNAS_ENOMEM;
            break;
        }
        j->job.id = id;
        /* A row that was running or waiting keeps its state (and start
         * time) until the job's first slice says otherwise: a waiting
         * search does not show "running" for a moment after a restart. */
        j->started_row = strcmp(json_string_value(json_object_get(
                                    row, "state")), "queued") != 0;
        /* The stored params name the comparator by id: "latest" was
         * resolved when the job was made.  The labelled set is in its own
         * column (sql/004), or in params for jobs made before it. */
        const json_t *p0 = json_object_get(row, "params");
        json_t *want = json_incref(json_object_get(p0, "label_ids"));
        int brc = want != NULL
                      ? 0
                      : ctnas_store_job_labels(st, id, &want, &jerr);
        if (brc == 0)
            brc = build_job(j, st, p0, 1, want, &params, NULL, &jerr);
        json_decref(want);
        json_decref(params);
        long step;
        void *blob = NULL;
        size_t len;
        json_t *extra = NULL;
        if (brc == 0 &&
            ctnas_store_checkpoint_get(st, id, &step, &blob, &len, &extra,
                                       &jerr) == 0) {
            j->s = ctnas_search_load(blob, len, &jerr);
            ctnas_free(blob);
            if (j->s == NULL)
                brc = CTNAS_EINVAL;
            j->events = (long)json_integer_value(json_object_get(extra,
                                                                 "events"));
            j->pseudo_stored = (int)json_integer_value(
                json_object_get(extra, "pseudo_stored"));
            if (brc == 0)
                brc = resume_bookkeeping(j, extra, &jerr);
            json_decref(extra);
            ctnas_nac_free(j->nac);
            j->nac = NULL;
        }
        /* The row may show progress beyond the checkpoint (it is written
         * after every slice, the checkpoint every few seconds): show
         * where the job really resumes, and forget the lost records.  A
         * failure here only delays that to the first slice's flush, so it
         * must not fail a job that can run. */
        if (brc == 0) {
            struct ctnas_err werr = {0};
            if (j->s != NULL) {
                ctnas_search_progress_get(j->s, &j->prog);
                j->phase = 1;
            }
            json_t *pj = progress_json(j, 1);
            if (ctnas_store_events_trim(st, id, j->events, &werr) < 0 ||
                ctnas_store_job_progress(st, id, pj, &werr) < 0)
                ctnas_log_warn("search %lld: cannot reset its progress on "
                               "resuming: %s", (long long)id, werr.msg);
            json_decref(pj);
        }
        if (brc == 0) {
            j->job.ops = &search_ops;
            j->job.data = j;
            j->last_checkpoint = ctnas_store_now();
            brc = ctnas_runner_submit(app->runner, &j->job);
        }
        if (brc < 0) {
            struct ctnas_err e2;
            ctnas_store_job_finish(st, id, "failed", NULL,
                                   jerr.msg[0] ? jerr.msg
                                               : "cannot resume the search",
                                   &e2);
            search_job_free(j);
            continue;
        }
        ++*n;
    }
    json_decref(rows);
    return rc;
}
