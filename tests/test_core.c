/*
 * test_core.c - the small shared modules: error table, rng, jsonv, conf,
 * the catalogue item shape of arch_json.c, the runner's accounting and
 * the request workers' queue.
 */
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "arch_json.h"
#include "conf.h"
#include "http_body.h"
#include "ctnas.h"
#include "jsonv.h"
#include "mem.h"
#include "rng.h"
#include "runner.h"
#include "store_ml.h"
#include "test.h"
#include "workq.h"

static void err_table_maps_codes(void)
{
    ASSERT_EQ(ctnas_err_http_status(CTNAS_EINVAL), 400);
    ASSERT_EQ(ctnas_err_http_status(CTNAS_ENOTFOUND), 404);
    ASSERT_EQ(ctnas_err_http_status(CTNAS_EMETHOD), 405);
    ASSERT_EQ(ctnas_err_http_status(CTNAS_ETOOLARGE), 413);
    ASSERT_EQ(ctnas_err_http_status(CTNAS_EMEDIA), 415);
    ASSERT_EQ(ctnas_err_http_status(CTNAS_EREADONLY), 503);
    ASSERT_EQ(ctnas_err_http_status(-999), 500);
    ASSERT_STREQ(ctnas_err_name(CTNAS_ECONFLICT), "ECONFLICT");
    ASSERT_STREQ(ctnas_err_api_code(CTNAS_ENOTFOUND), "not_found");
    struct ctnas_err e;
    ASSERT_EQ(ctnas_err_set(&e, CTNAS_EINVAL, "f", "x=%d", 3), CTNAS_EINVAL);
    ASSERT_STREQ(e.msg, "x=3");
    ASSERT_STREQ(e.field, "f");
    ASSERT_EQ(ctnas_err_set(NULL, CTNAS_EDB, NULL, "ignored"), CTNAS_EDB);
}

static void rng_is_deterministic_and_uniform(void)
{
    struct ctnas_rng a, b;
    ctnas_rng_seed(&a, 42);
    ctnas_rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++)
        ASSERT(ctnas_rng_next(&a) == ctnas_rng_next(&b));
    ctnas_rng_seed(&b, 43);
    ASSERT(ctnas_rng_next(&a) != ctnas_rng_next(&b));
    int counts[5] = {0};
    for (int i = 0; i < 50000; i++)
        counts[ctnas_rng_below(&a, 5)]++;
    for (int k = 0; k < 5; k++)
        ASSERT_MSG(abs(counts[k] - 10000) < 500, "bucket %d: %d", k,
                   counts[k]);
    double s = 0, s2 = 0;
    for (int i = 0; i < 20000; i++) {
        double u = ctnas_rng_uniform(&a);
        ASSERT(u >= 0 && u < 1);
        double z = ctnas_rng_normal(&a);
        s += z;
        s2 += z * z;
    }
    ASSERT_NEAR(s / 20000, 0, 0.05);
    ASSERT_NEAR(s2 / 20000, 1, 0.05);
    int p[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, seen = 0;
    ctnas_rng_shuffle(&a, p, 10);
    for (int i = 0; i < 10; i++)
        seen |= 1 << p[i];
    ASSERT_EQ(seen, 1023);
}

static void jsonv_names_fields(void)
{
    json_t *o = json_loads("{\"a\": 1.5, \"b\": \"x\", \"c\": 7, "
                           "\"d\": true}", 0, NULL);
    struct ctnas_err e = {0};
    double d;
    int64_t i;
    const char *s;
    int bl;
    ASSERT_EQ(ctnas_jsonv_number(o, "p", "a", 1, &d, 0, 2, &e), 0);
    ASSERT_NEAR(d, 1.5, 0);
    ASSERT_EQ(ctnas_jsonv_number(o, "p", "a", 1, &d, 0, 1, &e),
              CTNAS_ENUMERIC);
    ASSERT_STREQ(e.field, "p.a");
    ASSERT_EQ(ctnas_jsonv_int(o, "", "a", 1, &i, 0, 9, &e), CTNAS_EINVAL);
    ASSERT_STREQ(e.field, "a");
    ASSERT_EQ(ctnas_jsonv_int(o, "", "c", 1, &i, 0, 9, &e), 0);
    ASSERT_EQ(i, 7);
    ASSERT_EQ(ctnas_jsonv_string(o, "", "b", 1, &s, 10, &e), 0);
    ASSERT_STREQ(s, "x");
    ASSERT_EQ(ctnas_jsonv_string(o, "", "zz", 1, &s, 10, &e), CTNAS_EINVAL);
    ASSERT(strstr(e.msg, "required") != NULL);
    s = "kept";
    ASSERT_EQ(ctnas_jsonv_string(o, "", "zz", 0, &s, 10, &e), 0);
    ASSERT_STREQ(s, "kept");
    ASSERT_EQ(ctnas_jsonv_bool(o, "", "d", 1, &bl, &e), 0);
    ASSERT_EQ(bl, 1);
    static const char *const allowed[] = {"a", "b", "c", NULL};
    ASSERT_EQ(ctnas_jsonv_only(o, "q", allowed, &e), CTNAS_EINVAL);
    ASSERT_STREQ(e.field, "q.d");
    ASSERT_EQ(ctnas_jsonv_parse_int("12", "n", 1, 20, &i, &e), 0);
    ASSERT_EQ(ctnas_jsonv_parse_int("12x", "n", 1, 20, &i, &e),
              CTNAS_EINVAL);
    ASSERT_EQ(ctnas_jsonv_parse_int("21", "n", 1, 20, &i, &e), CTNAS_EINVAL);
    json_decref(o);
}

/* A real of one of the kinds answers carry. */
static double some_real(struct ctnas_rng *r)
{
    switch ((int)(ctnas_rng_uniform(r) * 6)) {
    case 0: /* a probability: 16-17 digits */
        return ctnas_rng_uniform(r);
    case 1: /* an accuracy with two decimals: 15 digits do */
        return (double)(int)(ctnas_rng_uniform(r) * 10000) / 100;
    case 2: /* any magnitude */
        return (ctnas_rng_uniform(r) - 0.5) *
               pow(10, (int)(ctnas_rng_uniform(r) * 600) - 300);
    case 3: /* integral reals stay reals */
        return (double)(int)(ctnas_rng_uniform(r) * 1e6);
    case 4: /* integral, to 1e19: fixed or with an exponent; zeros */
        if (ctnas_rng_uniform(r) < 0.05)
            return ctnas_rng_uniform(r) < 0.5 ? 0.0 : -0.0;
        return floor(pow(10, ctnas_rng_uniform(r) * 19));
    default: { /* any bit pattern but inf and NaN */
        uint64_t bits = ctnas_rng_next(r);
        double v;
        memcpy(&v, &bits, sizeof v);
        return isfinite(v) ? v : 0.5;
    }
    }
}

/* Answers write each real in its shortest exact form: every double
 * reads back bit for bit, whatever precedes it (the rewrite is in place,
 * so short arrays try every small lag between reading and writing), user
 * values keep their digits, and strings and integers are left. */
static void jsonv_reals_round_trip_short(void)
{
    struct ctnas_rng r;
    ctnas_rng_seed(&r, 7);
    for (int t = 0; t < 5000; t++) {
        json_t *a = json_array();
        for (int i = 0; i < 4; i++)
            json_array_append_new(a, json_real(some_real(&r)));
        json_array_append_new(a, json_integer(42));
        json_array_append_new(a, json_string("0.10000000000000001 \"1e-07"));
        char *text = ctnas_jsonv_dumps_exact(a, JSON_COMPACT);
        ASSERT(text != NULL);
        json_t *b = json_loads(text, 0, NULL);
        ASSERT_MSG(b != NULL, "not JSON: %s", text);
        ASSERT_EQ(json_array_size(b), json_array_size(a));
        for (size_t i = 0; i < json_array_size(a); i++) {
            json_t *x = json_array_get(a, i), *y = json_array_get(b, i);
            ASSERT_EQ(json_typeof(x), json_typeof(y));
            if (json_is_real(x)) /* bit for bit: -0.0 keeps its sign */
                ASSERT_MSG(json_real_value(x) == json_real_value(y) &&
                               !signbit(json_real_value(x)) ==
                                   !signbit(json_real_value(y)),
                           "%.17g read back as %.17g from %s",
                           json_real_value(x), json_real_value(y), text);
            else
                ASSERT(json_equal(x, y));
        }
        ctnas_free(text);
        json_decref(b);
        json_decref(a);
    }

    json_t *a = json_pack("[f,f,f,f,f,f,f]", 93.66, 0.1, 85.74000000000001,
                          1e-7, 2.0, -0.0, 1e300);
    char *text = ctnas_jsonv_dumps_exact(a, JSON_COMPACT);
    ASSERT_STREQ(text, "[93.66,0.1,85.74000000000001,1e-7,2.0,-0.0,1e300]");
    ctnas_free(text);
    json_decref(a);
}

/* remaining_seconds: from the time the job worked (a search's waits for
 * measurements left out), none while it waits or polishes.  The view of
 * a job started 100 s ago, half done: its remaining seconds, -1 for
 * none, -2 when the view failed. */
static double remaining_of(const char *state, const char *phase,
                           double waited)
{
    json_t *row = json_pack("{s:s, s:f, s:n, s:{s:s, s:f, s:f}}", "state",
                            state, "started_at", ctnas_store_now() - 100,
                            "finished_at", "progress", "phase", phase,
                            "fraction", 0.5, "waited_seconds", waited);
    if (row == NULL || ctnas_api_job_view(row) != 0) {
        json_decref(row);
        return -2;
    }
    json_t *r = json_object_get(row, "remaining_seconds");
    double v = json_is_number(r) ? json_number_value(r) : -1;
    json_decref(row);
    return v;
}

static void job_view_leaves_waits_out_of_the_estimate(void)
{
    ASSERT_NEAR(remaining_of("running", "searching", 0), 100, 1);
    ASSERT_NEAR(remaining_of("running", "searching", 90), 10, 1);
    ASSERT_NEAR(remaining_of("running", "training comparator", 90), 10, 1);
    ASSERT_EQ(remaining_of("waiting", "searching", 90), -1);
    ASSERT_EQ(remaining_of("running", "polishing", 0), -1);
}

static void conf_flags_override_environment(void)
{
    struct ctnas_conf c;
    struct ctnas_err e = {0};
    setenv("CTNASD_PORT", "9090", 1);
    setenv("CTNASD_THREADS", "3", 1);
    ASSERT_EQ(ctnas_conf_init(&c, &e), 0);
    ASSERT_EQ(c.port, 9090);
    ASSERT_EQ(c.threads, 3);
    ASSERT_STREQ(c.listen, "127.0.0.1");
    char *argv[] = {"x", "--port", "81", "--db=/tmp/q.db", "rest", NULL};
    int argi = 1;
    ASSERT_EQ(ctnas_conf_parse_args(&c, 5, argv, &argi, &e), 0);
    ASSERT_EQ(argi, 4);
    ASSERT_EQ(c.port, 81);
    ASSERT_STREQ(c.db, "/tmp/q.db");
    char *bad[] = {"x", "--port", "-1", NULL};
    argi = 1;
    ASSERT_EQ(ctnas_conf_parse_args(&c, 3, bad, &argi, &e), CTNAS_EINVAL);
    ASSERT_STREQ(e.field, "--port");
    char *miss[] = {"x", "--db", NULL};
    argi = 1;
    ASSERT_EQ(ctnas_conf_parse_args(&c, 2, miss, &argi, &e), CTNAS_EINVAL);
    setenv("CTNASD_LOG_LEVEL", "shout", 1);
    ASSERT_EQ(ctnas_conf_init(&c, &e), CTNAS_EINVAL);
    ASSERT_STREQ(e.field, "CTNASD_LOG_LEVEL");
    unsetenv("CTNASD_LOG_LEVEL");
    unsetenv("CTNASD_PORT");
    unsetenv("CTNASD_THREADS");
}

/* --job-retention: seconds, or a count of the unit its suffix names. */
static void conf_durations_take_units(void)
{
    struct ctnas_conf c;
    struct ctnas_err e = {0};
    static const struct {
        const char *val;
        long long want; /* -1: refused */
    } cases[] = {
        {"0", 0},     {"45", 45},     {"45s", 45},      {"10m", 600},
        {"12h", 43200}, {"30d", 2592000}, {"36600d", 3162240000LL},
        {"36601d", -1}, {"-5", -1},   {"+5", -1},       {" 5", -1},
        {"5x", -1},   {"5dd", -1},    {"d", -1},        {"", -1},
        {"1.5h", -1}, {"99999999999999999999", -1},
    };
    ASSERT_EQ(ctnas_conf_init(&c, &e), 0);
    ASSERT_EQ(c.job_retention, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {"x", "--job-retention", (char *)cases[i].val, NULL};
        int argi = 1;
        c.job_retention = 7;
        int rc = ctnas_conf_parse_args(&c, 3, argv, &argi, &e);
        if (cases[i].want < 0) {
            ASSERT_EQ(rc, CTNAS_EINVAL);
            ASSERT_STREQ(e.field, "--job-retention");
            ASSERT_EQ(c.job_retention, 7);
        } else {
            ASSERT_EQ(rc, 0);
            ASSERT_EQ(c.job_retention, cases[i].want);
        }
    }
    setenv("CTNASD_JOB_RETENTION", "2h", 1);
    ASSERT_EQ(ctnas_conf_init(&c, &e), 0);
    ASSERT_EQ(c.job_retention, 7200);
    unsetenv("CTNASD_JOB_RETENTION");
}

static void item_shape_round_trips(void)
{
    json_t *j = json_loads(
        "{\"space\": \"nasbench201\", \"arch\": \"|nor_conv_3x3~0|+"
        "|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|"
        "nor_conv_3x3~2|\", \"measurements\": [{\"dataset\": \"c10\", "
        "\"metric\": \"acc\", \"value\": 90.5, \"epochs\": 12}]}",
        0, NULL);
    ASSERT(j != NULL);
    struct ctnas_item it;
    struct ctnas_err e = {0};
    ASSERT_EQ(ctnas_item_parse(j, "items[4]", NULL, &it, &e), 0);
    ASSERT(it.space == &ctnas_space_nb201);
    struct ctnas_measurement m;
    ASSERT_EQ(ctnas_item_meas(&it, "items[4]", 0, "api", &m, &e), 0);
    ASSERT_STREQ(m.dataset, "c10");
    ASSERT_EQ(m.epochs, 12);
    ASSERT_STREQ(m.source, "api");

    /* Errors carry the full path of the field. */
    json_object_set_new(json_array_get(json_object_get(j, "measurements"),
                                       0),
                        "value", json_real(-2));
    ASSERT(ctnas_item_parse(j, "items[4]", NULL, &it, &e) < 0);
    ASSERT_STREQ(e.field, "items[4].measurements[0].value");
    json_object_set_new(j, "arch", json_string("|x~0|"));
    ASSERT_EQ(ctnas_item_parse(j, "items[4]", NULL, &it, &e), CTNAS_EINVAL);
    ASSERT(strncmp(e.field, "items[4].arch", 13) == 0);
    json_object_del(j, "space");
    ASSERT_EQ(ctnas_item_parse(j, "", NULL, &it, &e), CTNAS_EINVAL);
    ASSERT_STREQ(e.field, "space");
    json_decref(j);

    /* A stored row prints in the API shape. */
    struct ctnas_measurement rm = {"c10", "acc", 91.25, 0, "api", 0, 5};
    struct ctnas_arch_row row = {0};
    row.id = 7;
    strcpy(row.space, "nasbench201");
    strcpy(row.encoding, "|nor_conv_3x3~0|+|none~0|skip_connect~1|+"
                         "|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|");
    strcpy(row.hash, "0123456789abcdef0123456789abcdef");
    row.n_meas = 1;
    row.meas = &rm;
    json_t *out = ctnas_item_row_json(&row);
    ASSERT_EQ(json_integer_value(json_object_get(out, "id")), 7);
    ASSERT_STREQ(json_string_value(json_object_get(out, "arch")),
                 row.encoding);
    json_t *m0 = json_array_get(json_object_get(out, "measurements"), 0);
    ASSERT_NEAR(json_real_value(json_object_get(m0, "value")), 91.25, 0);
    ASSERT_EQ(json_integer_value(json_object_get(m0, "id")), 5);
    ASSERT_STREQ(json_string_value(json_object_get(m0, "created_at")),
                 "1970-01-01T00:00:00Z");
    json_decref(out);
}

/* ---- runner: uncounted jobs and submits from a done ---- */

struct rjob {
    struct ctnas_job job;
    int ran, done_status, follow_rc;
    int cancel_seen;      /* job.cancel when done ran */
    struct rjob *follow;  /* submitted by done when set */
};

static int rjob_work(struct ctnas_job *job)
{
    ((struct rjob *)job->data)->ran++;
    return 0;
}

static int rjob_done(struct ctnas_job *job, int status)
{
    struct rjob *j = job->data;
    j->done_status = status;
    j->cancel_seen = atomic_load(&job->cancel);
    if (j->follow)
        j->follow_rc = ctnas_runner_submit(job->runner, &j->follow->job);
    return CTNAS_JOB_FINISHED;
}

static const struct ctnas_job_ops rjob_ops = {rjob_work, NULL, rjob_done};

static void rjob_init(struct rjob *j, int64_t id, int uncounted)
{
    memset(j, 0, sizeof *j);
    j->job.id = id;
    j->job.ops = &rjob_ops;
    j->job.data = j;
    j->job.uncounted = uncounted;
    j->done_status = 1;
}

static void runner_counts_only_client_jobs(void)
{
    uv_loop_t loop;
    ASSERT_EQ(uv_loop_init(&loop), 0);
    struct ctnas_runner *r;
    ASSERT_EQ(ctnas_runner_new(&loop, 1, &r), 0);
    struct rjob a, b, c, d, later;
    rjob_init(&a, 1, 0);
    rjob_init(&b, 0, 1);  /* a's follow-up, submitted from its done */
    rjob_init(&c, 0, 1);
    rjob_init(&d, 2, 0);
    a.follow = &b;
    ASSERT_EQ(ctnas_runner_submit(r, &a.job), 0);
    /* The one place is a's: an uncounted job still goes in, a counted
     * one does not, and the count shows only a. */
    ASSERT_EQ(ctnas_runner_submit(r, &c.job), 0);
    ASSERT_EQ(ctnas_runner_submit(r, &d.job), CTNAS_ELIMIT);
    ASSERT_EQ(ctnas_runner_active(r), 1);
    while (b.done_status || c.done_status)
        uv_run(&loop, UV_RUN_ONCE);
    ASSERT_EQ(a.ran, 1);
    ASSERT_EQ(a.follow_rc, 0);
    ASSERT_EQ(b.ran, 1);
    ASSERT_EQ(c.ran, 1);
    ASSERT_EQ(ctnas_runner_active(r), 0);
    /* The place is free again. */
    ASSERT_EQ(ctnas_runner_submit(r, &d.job), 0);
    ASSERT_EQ(ctnas_runner_active(r), 1);
    /* A done that runs while the runner stops cannot start anything,
     * not even an uncounted job: it is refused and stays the caller's. */
    rjob_init(&later, 0, 1);
    d.follow = &later;
    ctnas_runner_free(r);
    ASSERT_EQ(d.done_status == 0 || d.done_status == CTNAS_ECANCELED, 1);
    ASSERT_EQ(d.follow_rc, CTNAS_ELIMIT);
    ASSERT_EQ(later.ran, 0);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}

/* Jobs still queued when the runner stops end cancelled; one a client
 * cancelled first keeps that reason (done reads it to decide between
 * "cancelled" and "interrupted, to be resumed"). */
static void runner_shutdown_keeps_a_cancel(void)
{
    uv_loop_t loop;
    ASSERT_EQ(uv_loop_init(&loop), 0);
    struct ctnas_runner *r;
    ASSERT_EQ(ctnas_runner_new(&loop, 4, &r), 0);
    struct rjob a, b;
    rjob_init(&a, 1, 0);
    rjob_init(&b, 2, 0);
    ASSERT_EQ(ctnas_runner_submit(r, &a.job), 0);
    ASSERT_EQ(ctnas_runner_submit(r, &b.job), 0);
    ASSERT_EQ(ctnas_runner_cancel(r, 1), 0);
    ctnas_runner_free(r); /* the loop has not turned: neither ran */
    ASSERT_EQ(a.ran + b.ran, 0);
    ASSERT_EQ(a.done_status, CTNAS_ECANCELED);
    ASSERT_EQ(b.done_status, CTNAS_ECANCELED);
    ASSERT_EQ(a.cancel_seen, CTNAS_RUNNER_CANCELLED);
    ASSERT_EQ(b.cancel_seen, CTNAS_RUNNER_SHUTDOWN);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}

/* A job whose slice ends normally while the runner stops (it saw the
 * flag too late to return ECANCELED) and whose done asks to park must
 * not be left parked: nothing would wake it, and it would never be
 * freed.  It is queued again, and ends cancelled. */
static int park_work(struct ctnas_job *job)
{
    struct rjob *j = job->data;
    j->ran++;
    while (!atomic_load(&job->cancel))
        sched_yield();
    return 0;
}

static int park_done(struct ctnas_job *job, int status)
{
    struct rjob *j = job->data;
    j->done_status = status;
    j->follow_rc++; /* done calls */
    return status == CTNAS_ECANCELED ? CTNAS_JOB_FINISHED : CTNAS_JOB_PARK;
}

static void runner_shutdown_ends_a_job_that_parks(void)
{
    static const struct ctnas_job_ops park_ops = {park_work, NULL,
                                                  park_done};
    uv_loop_t loop;
    ASSERT_EQ(uv_loop_init(&loop), 0);
    struct ctnas_runner *r;
    ASSERT_EQ(ctnas_runner_new(&loop, 4, &r), 0);
    struct rjob a;
    rjob_init(&a, 1, 1);
    a.job.ops = &park_ops;
    ASSERT_EQ(ctnas_runner_submit(r, &a.job), 0);
    while (!atomic_load(&a.job.started))
        uv_run(&loop, UV_RUN_NOWAIT);
    ctnas_runner_free(r);
    ASSERT_EQ(a.ran, 1);
    ASSERT_EQ(a.follow_rc, 2);
    ASSERT_EQ(a.done_status, CTNAS_ECANCELED);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}

/* Work queue items: heavy ones (and light ones numbered 100 or more)
 * wait for the gate; every start (and every drop) is recorded in
 * order. */
struct wq_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int gate_open;
    int heavy_now, heavy_peak;
    int started[24], n_started;
    pthread_t thread[24];
    int dropped[8], n_dropped;
};

struct wq_item {
    struct ctnas_workq_item it; /* first */
    int id;
};

static void wq_run(struct ctnas_workq_item *it, void *ctx)
{
    struct wq_state *st = ctx;
    int id = ((struct wq_item *)it)->id;
    pthread_mutex_lock(&st->mu);
    st->thread[st->n_started] = pthread_self();
    st->started[st->n_started++] = id;
    if (it->heavy || id >= 100) {
        st->heavy_now += it->heavy;
        if (st->heavy_now > st->heavy_peak)
            st->heavy_peak = st->heavy_now;
        while (!st->gate_open)
            pthread_cond_wait(&st->cv, &st->mu);
        st->heavy_now -= it->heavy;
    }
    pthread_mutex_unlock(&st->mu);
}

/* The stop hands over the items not started, then waits for the running
 * one: the last drop opens its gate. */
static void wq_drop(struct ctnas_workq_item *it, void *ctx)
{
    struct wq_state *st = ctx;
    pthread_mutex_lock(&st->mu);
    st->dropped[st->n_dropped++] = ((struct wq_item *)it)->id;
    st->gate_open = st->n_dropped == 2;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

/* Wait up to 10 s for n starts; the count seen. */
static int wq_wait_started(struct wq_state *st, int n)
{
    int seen = 0;
    for (int i = 0; i < 10000; i++) {
        pthread_mutex_lock(&st->mu);
        seen = st->n_started;
        pthread_mutex_unlock(&st->mu);
        if (seen >= n)
            break;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return seen;
}

/* Wait up to 10 s until at most n threads are busy; the count seen. */
static int wq_wait_busy(struct ctnas_workq *q, int n)
{
    int busy = 0, queued;
    for (int i = 0; i < 10000; i++) {
        ctnas_workq_load(q, &busy, &queued);
        if (busy <= n)
            break;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return busy;
}

static void workq_puts_light_first_and_bounds_heavy(void)
{
    struct wq_state st = {.mu = PTHREAD_MUTEX_INITIALIZER,
                          .cv = PTHREAD_COND_INITIALIZER};
    struct wq_item it[4] = {{{NULL, 1}, 1}, {{NULL, 1}, 2}, {{NULL, 1}, 3},
                            {{NULL, 0}, 4}};
    struct ctnas_workq *q;
    /* Two threads, one of them at most on heavy items. */
    ASSERT_EQ(ctnas_workq_new(2, 1, wq_run, &st, &q), 0);
    ASSERT_EQ(ctnas_workq_push(q, &it[0].it), 0);
    ASSERT_EQ(wq_wait_started(&st, 1), 1);
    for (int i = 1; i < 3; i++)
        ASSERT_EQ(ctnas_workq_push(q, &it[i].it), 0);
    ASSERT_EQ(wq_wait_busy(q, 1), 1);
    int busy, queued;
    ctnas_workq_load(q, &busy, &queued);
    ASSERT_EQ(queued, 2);
    /* Heavy 2 and 3 were queued first, but the light item runs now, on
     * the thread the heavy limit keeps free. */
    ASSERT_EQ(ctnas_workq_push(q, &it[3].it), 0);
    ASSERT_EQ(wq_wait_started(&st, 2), 2);
    pthread_mutex_lock(&st.mu);
    int started1 = st.started[1], now = st.heavy_now;
    st.gate_open = 1;
    pthread_cond_broadcast(&st.cv);
    pthread_mutex_unlock(&st.mu);
    ASSERT_EQ(started1, 4);
    ASSERT_EQ(now, 1);
    ASSERT_EQ(wq_wait_started(&st, 4), 4);
    ctnas_workq_stop(q, wq_drop);
    ctnas_workq_free(q);
    ASSERT_EQ(st.started[0], 1);
    ASSERT_EQ(st.started[2], 2);
    ASSERT_EQ(st.started[3], 3);
    ASSERT_EQ(st.heavy_peak, 1);
    ASSERT_EQ(st.n_dropped, 0);
}

static void workq_wakes_the_thread_idle_the_shortest_time(void)
{
    struct wq_state st = {.mu = PTHREAD_MUTEX_INITIALIZER,
                          .cv = PTHREAD_COND_INITIALIZER};
    struct wq_item it[6];
    struct ctnas_workq *q;
    ASSERT_EQ(ctnas_workq_new(3, 2, wq_run, &st, &q), 0);
    ASSERT_EQ(wq_wait_busy(q, 0), 0);
    /* One request after another: all on one thread (a shared condition
     * variable wakes the threads in turn). */
    for (int i = 0; i < 6; i++) {
        it[i] = (struct wq_item){{NULL, 0}, i};
        ASSERT_EQ(ctnas_workq_push(q, &it[i].it), 0);
        ASSERT_EQ(wq_wait_started(&st, i + 1), i + 1);
        ASSERT_EQ(wq_wait_busy(q, 0), 0);
    }
    ctnas_workq_free(q);
    for (int i = 1; i < 6; i++)
        ASSERT(pthread_equal(st.thread[i], st.thread[0]));
}

static void workq_lets_a_heavy_item_past_a_stream_of_light_ones(void)
{
    struct wq_state st = {.mu = PTHREAD_MUTEX_INITIALIZER,
                          .cv = PTHREAD_COND_INITIALIZER};
    struct wq_item gate = {{NULL, 0}, 100}, heavy = {{NULL, 1}, 1};
    struct wq_item light[20];
    struct ctnas_workq *q;
    ASSERT_EQ(ctnas_workq_new(1, 1, wq_run, &st, &q), 0);
    ASSERT_EQ(ctnas_workq_push(q, &gate.it), 0);
    ASSERT_EQ(wq_wait_started(&st, 1), 1);
    /* The thread is held: one heavy item, then 20 light ones queue. */
    ASSERT_EQ(ctnas_workq_push(q, &heavy.it), 0);
    for (int i = 0; i < 20; i++) {
        light[i] = (struct wq_item){{NULL, 0}, 2 + i};
        ASSERT_EQ(ctnas_workq_push(q, &light[i].it), 0);
    }
    pthread_mutex_lock(&st.mu);
    st.gate_open = 1;
    pthread_cond_broadcast(&st.cv);
    pthread_mutex_unlock(&st.mu);
    ASSERT_EQ(wq_wait_started(&st, 22), 22);
    ctnas_workq_free(q);
    /* The gate, then a burst of light ones, the heavy one, the rest. */
    ASSERT_EQ(st.started[1 + CTNAS_WORKQ_LIGHT_BURST], 1);
    for (int i = 1; i <= CTNAS_WORKQ_LIGHT_BURST; i++)
        ASSERT_EQ(st.started[i], 1 + i);
    ASSERT_EQ(st.started[21], 21);
}

static void workq_stop_drops_what_has_not_started(void)
{
    struct wq_state st = {.mu = PTHREAD_MUTEX_INITIALIZER,
                          .cv = PTHREAD_COND_INITIALIZER};
    struct wq_item it[3] = {{{NULL, 1}, 1}, {{NULL, 1}, 2}, {{NULL, 0}, 3}};
    struct ctnas_workq *q;
    ASSERT_EQ(ctnas_workq_new(1, 1, wq_run, &st, &q), 0);
    ASSERT_EQ(ctnas_workq_push(q, &it[0].it), 0);
    ASSERT_EQ(wq_wait_started(&st, 1), 1);
    for (int i = 1; i < 3; i++)
        ASSERT_EQ(ctnas_workq_push(q, &it[i].it), 0);
    /* Item 1 runs, held at its gate: the stop drops 3 (light, so first)
     * and 2, and the second drop lets 1 finish. */
    ctnas_workq_stop(q, wq_drop);
    ctnas_workq_free(q);
    ASSERT_EQ(st.n_started, 1);
    ASSERT_EQ(st.started[0], 1);
    ASSERT_EQ(st.n_dropped, 2);
    ASSERT_EQ(st.dropped[0], 3);
    ASSERT_EQ(st.dropped[1], 2);
}

/* The body budget: a length is promised whole; a body that does not
 * fit is refused unless stalled promises make the room (and then only
 * as few as needed); what is refused, freed or given back returns to
 * the count; 1 MiB and more become a mapping that keeps every byte. */
static void body_budget_promises_and_gives_way(void)
{
    struct ctnas_body_budget bb;
    struct ctnas_body a, b, c, d;
    char buf[60000];
    memset(buf, 'x', sizeof buf);
    double now = ctnas_now_seconds();
    ctnas_body_budget_init(&bb, 100000);
    ctnas_body_init(&a, &bb, now);
    ASSERT_EQ(ctnas_body_promise(&a, 60000), 0);
    ASSERT_EQ(ctnas_body_budget_used(&bb), 60000);
    ASSERT_EQ(ctnas_body_append(&a, buf, 1000), 0);
    ASSERT_EQ(ctnas_body_budget_used(&bb), 60000);
    ctnas_body_init(&b, &bb, now);
    ASSERT_EQ(ctnas_body_promise(&b, 50000), -1); /* a is not stalled */
    ASSERT_EQ(ctnas_body_budget_used(&bb), 60000);
    /* b without a length: its bytes count as they come, up to the room */
    ASSERT_EQ(ctnas_body_append(&b, buf, 30000), 0);
    ASSERT_EQ(ctnas_body_budget_used(&bb), 90000);
    ASSERT_EQ(ctnas_body_append(&b, buf, 20000), -1);
    ASSERT_EQ(b.len, 0);
    ASSERT(b.data == NULL);
    ASSERT_EQ(ctnas_body_budget_used(&bb), 60000);
    /* a has sent 1,000 bytes in 3 s: stalled.  45,000 more do not fit
     * but for its promise of 59,000, which is given back; 100,000
     * would not fit even so (1,000 held), and nothing is given back
     * for them. */
    a.t0 = now - 3;
    ctnas_body_init(&c, &bb, now);
    ASSERT_EQ(ctnas_body_promise(&c, 100000), -1);
    ASSERT_EQ(ctnas_body_budget_used(&bb), 60000);
    ASSERT_EQ(a.promise, 59000);
    ASSERT_EQ(ctnas_body_promise(&c, 45000), 0);
    ASSERT_EQ(a.promise, 0);
    ASSERT_EQ(ctnas_body_budget_used(&bb), 1000 + 45000);
    /* a's next bytes count as they come */
    ASSERT_EQ(ctnas_body_append(&a, buf, 4000), 0);
    ASSERT_EQ(ctnas_body_budget_used(&bb), 5000 + 45000);
    ctnas_body_free(&a);
    ctnas_body_free(&c);
    ctnas_body_free(&a); /* twice: nothing more */
    ASSERT_EQ(ctnas_body_budget_used(&bb), 0);
    /* heap buffer, then a mapping past 1 MiB, every byte kept */
    ctnas_body_budget_init(&bb, 8u << 20);
    ctnas_body_init(&d, &bb, now);
    size_t total = 0;
    while (total < (3u << 20)) {
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (char)((total + i) % 251);
        ASSERT_EQ(ctnas_body_append(&d, buf, sizeof buf), 0);
        total += sizeof buf;
    }
    ASSERT_EQ(d.mapped, 1);
    ASSERT_EQ(d.len, total);
    int same = 1;
    for (size_t i = 0; i < total; i++)
        same &= d.data[i] == (char)(i % 251);
    ASSERT(same);
    ASSERT_EQ(ctnas_body_budget_used(&bb), total);
    ctnas_body_free(&d);
    ASSERT_EQ(ctnas_body_budget_used(&bb), 0);
}

int main(void)
{
    TEST_RUN(err_table_maps_codes);
    TEST_RUN(rng_is_deterministic_and_uniform);
    TEST_RUN(jsonv_names_fields);
    TEST_RUN(jsonv_reals_round_trip_short);
    TEST_RUN(job_view_leaves_waits_out_of_the_estimate);
    TEST_RUN(conf_flags_override_environment);
    TEST_RUN(conf_durations_take_units);
    TEST_RUN(item_shape_round_trips);
    TEST_RUN(runner_counts_only_client_jobs);
    TEST_RUN(runner_shutdown_keeps_a_cancel);
    TEST_RUN(runner_shutdown_ends_a_job_that_parks);
    TEST_RUN(workq_puts_light_first_and_bounds_heavy);
    TEST_RUN(workq_wakes_the_thread_idle_the_shortest_time);
    TEST_RUN(workq_lets_a_heavy_item_past_a_stream_of_light_ones);
    TEST_RUN(workq_stop_drops_what_has_not_started);
    TEST_RUN(body_budget_promises_and_gives_way);
    return test_done();
}
