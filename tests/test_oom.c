/*
 * test_oom.c - every allocation failure on the paths the daemon runs,
 * one at a time (jansson's test_chaos, SQLite's OOM tests).
 *
 * A chaos allocator (mem.h hooks) counts calls and live blocks.  Each
 * scenario runs once to count its allocations, note the call path of
 * each and record its result, then once more for each k whose call path
 * is new, with the k-th allocation failing.  Every
 * run must end in success with the recorded result, or in CTNAS_ENOMEM
 * (a scenario may accept other codes where the API maps an allocation
 * failure deeper down, and says so), and must free every block it took.
 * A crash, a wrong result or a leak fails the test; the sanitizer build
 * adds use-after-free and double-free detection on the error paths.
 * A failing k is run again with a backtrace of the failed allocation on
 * stderr; OOM_TRACE_RECOVERED=1 prints one for each k a scenario
 * survived as well.
 */
#include "config.h"

#include <execinfo.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "conf.h"
#include "dataset.h"
#include "http.h"
#include "jsonv.h"
#include "mem.h"
#include "nac.h"
#include "nac_train.h"
#include "registry.h"
#include "rng.h"
#include "runner.h"
#include "search.h"
#include "space.h"
#include "store.h"
#include "store_ml.h"
#include "test.h"

/* ------------------------------------------------------------------ */
/* The chaos allocator */

static atomic_long calls, fail_at, live, injected;

static int trace_fail;

/* While recording, the call path of each allocation (a hash of the six
 * innermost return addresses: the hooks' own frames, the allocation site
 * and its callers), so that the failing runs can skip an allocation
 * whose path an earlier one took: a loop's later turns run the same
 * error path again, and skipping them keeps the sanitizer build fast
 * (the search: 2,764 allocations on a few hundred paths). */
static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static int recording;
static uint64_t *path_of;
static long path_cap;

static void record_path(long n)
{
    void *bt[6];
    int d = backtrace(bt, 6);
    uint64_t h = 14695981039346656037ull;
    for (int i = 0; i < d; i++) {
        h ^= (uint64_t)(uintptr_t)bt[i];
        h *= 1099511628211ull;
    }
    pthread_mutex_lock(&rec_mu);
    if (n > path_cap) {
        long cap = path_cap ? path_cap : 1024;
        while (cap < n)
            cap *= 2;
        uint64_t *p = realloc(path_of, (size_t)cap * sizeof *p);
        if (p == NULL)
            abort(); /* the test's own memory: nothing to test without */
        path_of = p;
        path_cap = cap;
    }
    path_of[n - 1] = h;
    pthread_mutex_unlock(&rec_mu);
}

static int should_fail(void)
{
    long n = atomic_fetch_add(&calls, 1) + 1;
    if (recording)
        record_path(n);
    if (n == atomic_load(&fail_at)) {
        atomic_fetch_add(&injected, 1);
        if (trace_fail) {
            void *bt[16];
            backtrace_symbols_fd(bt, backtrace(bt, 16), 2);
        }
        return 1;
    }
    return 0;
}

static void *chaos_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    void *p = malloc(n);
    if (p != NULL)
        atomic_fetch_add(&live, 1);
    return p;
}

static void *chaos_calloc(size_t c, size_t n)
{
    if (should_fail())
        return NULL;
    void *p = calloc(c, n);
    if (p != NULL)
        atomic_fetch_add(&live, 1);
    return p;
}

static void *chaos_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    void *q = realloc(p, n);
    if (q != NULL && p == NULL)
        atomic_fetch_add(&live, 1);
    return q;
}

static void chaos_free(void *p)
{
    if (p != NULL)
        atomic_fetch_sub(&live, 1);
    free(p);
}

/* A scenario returns 0 when it ran to the end with the expected result,
 * a negative CTNAS_E* code when it stopped on an error (having freed
 * what it took), WRONG when it succeeded with another result.  *ctx
 * holds its inputs and the result of the counting run. */
#define WRONG 1

typedef int (*scenario_fn)(void *ctx, int record);

/* Run fn with no failure (record = 1) then with each allocation failing
 * in turn.  ok_code: a second code accepted besides CTNAS_ENOMEM (0 for
 * none).  On a failure, msg says which k and why. */
static int chaos(const char *name, scenario_fn fn, void *ctx, int ok_code,
                 char *msg, size_t cap)
{
    atomic_store(&fail_at, 0);
    atomic_store(&calls, 0);
    long live0 = atomic_load(&live);
    recording = 1;
    int rc = fn(ctx, 1);
    recording = 0;
    long n = atomic_load(&calls);
    if (rc != 0 || atomic_load(&live) != live0) {
        snprintf(msg, cap, "%s: the run without failures gave %d, %ld "
                 "blocks left", name, rc, atomic_load(&live) - live0);
        return -1;
    }
    long survived = 0, failed = 0, paths = 0;
    for (long k = 1; k <= n; k++) {
        long j = 0;
        while (j < k - 1 && path_of[j] != path_of[k - 1])
            j++;
        if (j < k - 1)
            continue; /* this call path failed already */
        paths++;
        atomic_store(&calls, 0);
        atomic_store(&injected, 0);
        atomic_store(&fail_at, k);
        rc = fn(ctx, 0);
        atomic_store(&fail_at, 0);
        long left = atomic_load(&live) - live0;
        if (left != 0) {
            snprintf(msg, cap, "%s: allocation %ld of %ld failing leaks %ld "
                     "blocks (rc %d)", name, k, n, left, rc);
            return -1;
        }
        if (rc == 0) {
            survived++;
            if (getenv("OOM_TRACE_RECOVERED") != NULL) {
                trace_fail = 1;
                atomic_store(&fail_at, k);
                atomic_store(&calls, 0);
                fn(ctx, 0);
                trace_fail = 0;
                atomic_store(&fail_at, 0);
                fprintf(stderr, "^ %s: recovered from allocation %ld\n",
                        name, k);
            }
        } else if (rc == CTNAS_ENOMEM || (ok_code != 0 && rc == ok_code)) {
            failed++;
        } else {
            trace_fail = 1;
            atomic_store(&fail_at, k);
            atomic_store(&calls, 0);
            fn(ctx, 0);
            trace_fail = 0;
            atomic_store(&fail_at, 0);
            snprintf(msg, cap, "%s: allocation %ld of %ld failing gives %s",
                     name, k, n, rc == WRONG ? "a wrong result"
                                             : ctnas_err_name(rc));
            return -1;
        }
    }
    printf("# %s: %ld allocations on %ld call paths; failing the first "
           "of each: %ld errors, %ld recovered\n", name, n, paths, failed,
           survived);
    return 0;
}

#define CHAOS(name, fn, ctx, ok_code)                                   \
    do {                                                                \
        char msg_[200] = "";                                            \
        ASSERT_MSG(chaos(name, fn, ctx, ok_code, msg_, sizeof msg_) == 0, \
                   "%s", msg_);                                         \
    } while (0)

/* ------------------------------------------------------------------ */
/* Shared inputs */

#define N_LAB 24

struct labelled {
    struct ctnas_arch arch[N_LAB];
    struct ctnas_graph graph[N_LAB];
    double val[N_LAB];
};

/* N_LAB seeded NB201 cells with an additive synthetic score. */
static void labelled_init(struct labelled *l)
{
    static const double w[5] = {-2.0, 0.3, 0.8, 1.2, -0.2};
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 11);
    for (int i = 0; i < N_LAB; i++) {
        ctnas_space_nb201.sample(&rng, &l->arch[i]);
        ctnas_space_nb201.to_graph(&l->arch[i], &l->graph[i]);
        l->val[i] = 0;
        for (int e = 0; e < 6; e++)
            l->val[i] += (1 + 0.1 * e) * w[l->arch[i].ops[e]];
    }
}

static void tiny_train_config(struct ctnas_nac_train_config *tc)
{
    ctnas_nac_train_config_default(tc);
    tc->model.n_types = ctnas_space_nb201.n_node_types;
    tc->model.dim = 8;
    tc->model.layers = 1;
    tc->epochs = 3;
    tc->seed = 5;
}

/* The blob of m in a new buffer (plain malloc: the test's own). */
static unsigned char *blob_of(const struct ctnas_nac *m, size_t *n)
{
    *n = ctnas_nac_blob_size(m);
    unsigned char *b = malloc(*n);
    if (b != NULL && ctnas_nac_save(m, b, *n) != (long)*n) {
        free(b);
        b = NULL;
    }
    return b;
}

/* The blob of a comparator trained (tiny config) on the labelled set, in
 * the test's own memory; NULL on failure. */
static unsigned char *tiny_blob(size_t *n)
{
    struct labelled lab;
    labelled_init(&lab);
    struct ctnas_nac_train_config tc;
    tiny_train_config(&tc);
    struct ctnas_nac *m = NULL;
    if (ctnas_nac_train(&tc, lab.graph, lab.val, N_LAB, NULL, NULL, &m,
                        NULL, NULL) != 0)
        return NULL;
    unsigned char *b = blob_of(m, n);
    ctnas_nac_free(m);
    return b;
}

/* ------------------------------------------------------------------ */
/* Architecture text and JSON (jansson) */

struct arch_ctx {
    struct ctnas_arch in[8];
    char hash[8][CTNAS_HASH_LEN];
};

/* encode -> parse_string -> to_json -> dump -> load -> parse_json, for
 * NB101 (JSON text: encode's own read by its scanner, any other by
 * jansson) and NB201 cells. */
static int sc_arch(void *vctx, int record)
{
    struct arch_ctx *c = vctx;
    for (int i = 0; i < 8; i++) {
        const struct ctnas_space *sp = i < 6 ? &ctnas_space_nb101
                                             : &ctnas_space_nb201;
        char buf[1024];
        struct ctnas_arch a, b;
        struct ctnas_err err;
        if (sp->encode(&c->in[i], buf, sizeof buf) < 0)
            return WRONG;
        int rc = sp->parse_string(buf, &a, &err);
        if (rc != 0)
            return rc;
        if (sp == &ctnas_space_nb101) {
            /* A trailing space: not encode's text, so jansson reads it. */
            struct ctnas_arch a2;
            size_t len = strlen(buf);
            buf[len] = ' ';
            buf[len + 1] = '\0';
            if ((rc = sp->parse_string(buf, &a2, &err)) != 0)
                return rc;
            if (memcmp(&a, &a2, sizeof a) != 0)
                return WRONG;
        }
        json_t *j = sp->to_json(&a);
        if (j == NULL)
            return CTNAS_ENOMEM;
        char *text = ctnas_jsonv_dumps(j, JSON_ENCODE_ANY);
        json_decref(j);
        if (text == NULL)
            return CTNAS_ENOMEM;
        json_error_t jerr;
        int oom;
        j = ctnas_jsonv_load(text, strlen(text), JSON_DECODE_ANY, &jerr,
                             &oom);
        ctnas_free(text);
        if (j == NULL)
            return oom ? CTNAS_ENOMEM : WRONG;
        rc = sp->parse_json(j, &b, &err);
        json_decref(j);
        if (rc != 0)
            return rc;
        char h[CTNAS_HASH_LEN];
        sp->hash(&b, h);
        if (record)
            memcpy(c->hash[i], h, sizeof h);
        else if (memcmp(c->hash[i], h, sizeof h) != 0)
            return WRONG;
    }
    return 0;
}

static void oom_arch_json(void)
{
    static struct arch_ctx c;
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 3);
    for (int i = 0; i < 8; i++)
        (i < 6 ? &ctnas_space_nb101 : &ctnas_space_nb201)
            ->sample(&rng, &c.in[i]);
    CHAOS("arch_json", sc_arch, &c, 0);
}

/* ------------------------------------------------------------------ */
/* Comparator: training, blob, features */

struct train_ctx {
    struct labelled lab;
    unsigned char *blob;
    size_t n;
};

static int sc_train(void *vctx, int record)
{
    struct train_ctx *c = vctx;
    struct ctnas_nac_train_config tc;
    tiny_train_config(&tc);
    tc.members = 2;
    struct ctnas_nac *m = NULL;
    int rc = ctnas_nac_train(&tc, c->lab.graph, c->lab.val, N_LAB, NULL,
                             NULL, &m, NULL, NULL);
    if (rc != 0)
        return rc;
    size_t n;
    unsigned char *b = blob_of(m, &n);
    ctnas_nac_free(m);
    if (b == NULL)
        return WRONG;
    if (record) {
        c->blob = b;
        c->n = n;
        return 0;
    }
    rc = n == c->n && memcmp(b, c->blob, n) == 0 ? 0 : WRONG;
    free(b);
    return rc;
}

static void oom_nac_train(void)
{
    static struct train_ctx c;
    labelled_init(&c.lab);
    CHAOS("nac_train", sc_train, &c, 0);
    free(c.blob);
}

#define N_FEAT 600   /* three chunks: the threaded path */

struct feat_ctx {
    unsigned char *blob;
    size_t n;
    struct ctnas_graph *g;
    ctnas_real *ref;
    int width;
};

static int sc_features(void *vctx, int record)
{
    struct feat_ctx *c = vctx;
    struct ctnas_err err;
    struct ctnas_nac *m = ctnas_nac_load(c->blob, c->n, &err);
    if (m == NULL)
        return err.code;
    int w = ctnas_nac_feature_width(m);
    ctnas_real *f = malloc((size_t)N_FEAT * w * sizeof *f);
    int rc = f ? ctnas_nac_features(m, c->g, N_FEAT, f) : WRONG;
    ctnas_nac_free(m);
    if (rc == 0 && record) {
        c->ref = f;
        c->width = w;
        return 0;
    }
    if (rc == 0)
        rc = memcmp(f, c->ref, (size_t)N_FEAT * w * sizeof *f) == 0 ? 0
                                                                 : WRONG;
    free(f);
    return rc;
}

static void oom_nac_features(void)
{
    static struct feat_ctx c;
    c.blob = tiny_blob(&c.n);
    ASSERT(c.blob != NULL);
    c.g = malloc(N_FEAT * sizeof *c.g);
    ASSERT(c.g != NULL);
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 8);
    for (int i = 0; i < N_FEAT; i++) {
        struct ctnas_arch a;
        ctnas_space_nb201.sample(&rng, &a);
        ctnas_space_nb201.to_graph(&a, &c.g[i]);
    }
    CHAOS("nac_features", sc_features, &c, 0);
    free(c.ref);
    free(c.g);
    free(c.blob);
}

/* ------------------------------------------------------------------ */
/* Registry: served models and their feature caches */

struct reg_ctx {
    unsigned char *blob;
    size_t n;
    struct ctnas_arch arch[40];
    ctnas_real ref[40 * 2];
};

static int sc_registry(void *vctx, int record)
{
    struct reg_ctx *c = vctx;
    struct ctnas_err err;
    struct ctnas_registry *reg = ctnas_registry_new();
    if (reg == NULL)
        return CTNAS_ENOMEM;
    struct ctnas_nac *m = ctnas_nac_load(c->blob, c->n, &err);
    if (m == NULL) {
        ctnas_registry_free(reg);
        return err.code;
    }
    struct ctnas_served *s = ctnas_served_new(1, "nasbench201", "cifar10",
                                              "test_accuracy", 0, m);
    if (s == NULL) {
        ctnas_registry_free(reg);
        return CTNAS_ENOMEM;
    }
    int rc = ctnas_registry_publish(reg, s);
    ctnas_served_release(s);
    if (rc != 0) {
        ctnas_registry_free(reg);
        return rc;
    }
    int amb = 0;
    s = ctnas_registry_get(reg, "nasbench201", NULL, &amb);
    ctnas_real f[40 * 2];
    /* twice: the second call reads what the first one cached */
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        rc = s ? ctnas_served_features(s, &ctnas_space_nb201, c->arch, 40, f)
               : WRONG;
        if (rc == 0 && record)
            memcpy(c->ref, f, sizeof f);
        else if (rc == 0 && memcmp(f, c->ref, sizeof f) != 0)
            rc = WRONG;
    }
    ctnas_served_release(s);
    ctnas_registry_free(reg);
    return rc;
}

static void oom_registry(void)
{
    static struct reg_ctx c;
    c.blob = tiny_blob(&c.n);
    ASSERT(c.blob != NULL);
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 9);
    for (int i = 0; i < 40; i++)
        ctnas_space_nb201.sample(&rng, &c.arch[i]);
    CHAOS("registry", sc_registry, &c, 0);
    free(c.blob);
}

/* ------------------------------------------------------------------ */
/* Search: new, run, checkpoint, load, rounds */

struct search_ctx {
    struct labelled lab;
    struct ctnas_nac *nac;
    void *blob;          /* the finished search's checkpoint */
    size_t n;
};

static void tiny_search_config(struct ctnas_search_config *c)
{
    ctnas_search_config_default(c);
    c->seed = 4;
    c->steps = 24;
    c->rounds = 2;
    c->batch = 4;
    c->update_every = 8;
    c->explore_every = 6;
    c->pseudo_k = 6;
    c->h_size = 4;
    c->ft_iters = 2;
    c->ft_pairs = 16;
    c->pool_cap = 24;   /* small, so the pool trims itself */
    c->top_n = 6;
    c->polish = 2;
    c->polish_tries = 4;
}

/* A two-round search: 10 steps, a checkpoint and a reload, the rest of
 * the round, measurements of two suggestions, a retraining, the second
 * round; the final checkpoint must match the counting run's. */
static int sc_search(void *vctx, int record)
{
    struct search_ctx *c = vctx;
    struct ctnas_search_config cfg;
    tiny_search_config(&cfg);
    struct ctnas_err err;
    struct ctnas_search *s = ctnas_search_new(&ctnas_space_nb201, &cfg,
                                              c->nac, c->lab.arch,
                                              c->lab.val, N_LAB, &err);
    if (s == NULL)
        return err.code;
    void *b = NULL;
    size_t n = 0;
    int rc = ctnas_search_run(s, 10, 0, NULL, NULL);
    if (rc >= 0)
        rc = ctnas_search_save(s, &b, &n);
    ctnas_search_free(s);
    if (rc < 0)
        return rc;
    s = ctnas_search_load(b, n, &err);
    ctnas_free(b);
    b = NULL;
    if (s == NULL)
        return err.code;
    rc = ctnas_search_run(s, 0, 0, NULL, NULL);
    if (rc >= 0 && rc != CTNAS_SEARCH_WAITING)
        rc = WRONG;
    struct ctnas_search_entry sug[2];
    int m = rc < 0 ? 0 : ctnas_search_suggest(s, 2, sug);
    if (rc >= 0 && m > 0) {
        struct ctnas_arch a[2];
        double v[2];
        for (int i = 0; i < m; i++) {
            a[i] = sug[i].arch;
            v[i] = 0.5 * i;
        }
        rc = ctnas_search_add_labels(s, a, v, m);
    }
    if (rc >= 0) {
        struct ctnas_nac_train_config tc;
        tiny_train_config(&tc);
        rc = ctnas_search_retrain(s, &tc, NULL, NULL, NULL);
    }
    if (rc >= 0)
        rc = ctnas_search_next_round(s);
    if (rc >= 0)
        rc = ctnas_search_run(s, 0, 0, NULL, NULL);
    if (rc >= 0)
        rc = rc == CTNAS_SEARCH_FINISHED ? ctnas_search_save(s, &b, &n)
                                         : WRONG;
    ctnas_search_free(s);
    if (rc < 0)
        return rc;
    if (record) {
        /* kept in the test's own memory: the run must leave none of
         * ours */
        c->blob = malloc(n);
        if (c->blob != NULL)
            memcpy(c->blob, b, n);
        c->n = n;
    }
    rc = c->blob != NULL && n == c->n && memcmp(b, c->blob, n) == 0
             ? 0 : WRONG;
    ctnas_free(b);
    return rc;
}

static void oom_search(void)
{
    static struct search_ctx c;
    labelled_init(&c.lab);
    struct ctnas_nac_train_config tc;
    tiny_train_config(&tc);
    ASSERT_EQ(ctnas_nac_train(&tc, c.lab.graph, c.lab.val, N_LAB, NULL,
                              NULL, &c.nac, NULL, NULL), 0);
    CHAOS("search", sc_search, &c, 0);
    free(c.blob);
    ctnas_nac_free(c.nac);
}

/* ------------------------------------------------------------------ */
/* Data file and store */

struct data_ctx {
    char csv[64];
    char db[64];
    int n_train;
    int64_t sample_first;  /* first id of a seeded sample */
    double sum;
};

/* The CSV file: load, split. */
static int sc_dataset(void *vctx, int record)
{
    struct data_ctx *c = vctx;
    struct ctnas_dataset ds;
    struct ctnas_err err;
    int rc = ctnas_dataset_load(&ds, &ctnas_space_nb201, c->csv, NULL, &err);
    if (rc != 0)
        return rc;
    int *tr = NULL, *te = NULL;
    rc = ctnas_dataset_split(&ds, 10, 5, 1, &tr, &te, &err);
    double sum = 0;
    for (int i = 0; rc == 0 && i < 10; i++)
        sum += ds.values[tr[i]];
    ctnas_free(tr);
    ctnas_free(te);
    ctnas_dataset_destroy(&ds);
    if (rc != 0)
        return rc;
    if (record)
        c->sum = sum;
    return sum == c->sum ? 0 : WRONG;
}

static void remove_db(const char *path)
{
    char p[96];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

/* A fresh database: measurements in, the training set out, a model and
 * a checkpoint in and out. */
static int sc_store(void *vctx, int record)
{
    struct data_ctx *c = vctx;
    struct ctnas_store *st = NULL;
    struct ctnas_err err;
    remove_db(c->db);
    int rc = ctnas_store_open(c->db, CTNAS_STORE_MIGRATE, &st, &err);
    if (rc != 0)
        return rc;
    struct ctnas_dataset ds;
    rc = ctnas_dataset_load(&ds, &ctnas_space_nb201, c->csv, NULL, &err);
    if (rc == 0) {
        rc = ctnas_store_begin(st, &err);
        for (int i = 0; rc == 0 && i < ds.n; i++) {
            char enc[256], h[CTNAS_HASH_LEN];
            struct ctnas_measurement m = {.value = ds.values[i]};
            int64_t id;
            int is_new;
            ctnas_space_nb201.encode(&ds.archs[i], enc, sizeof enc);
            ctnas_space_nb201.hash(&ds.archs[i], h);
            snprintf(m.dataset, sizeof m.dataset, "cifar10");
            snprintf(m.metric, sizeof m.metric, "test_accuracy");
            snprintf(m.source, sizeof m.source, "oom");
            rc = ctnas_store_arch_upsert(st, "nasbench201", enc, h, &id,
                                         &is_new, &err);
            if (rc == 0)
                rc = ctnas_store_meas_add(st, id, &m, NULL, &err);
        }
        if (rc == 0)
            rc = ctnas_store_commit(st, &err);
        else
            ctnas_store_rollback(st);
        ctnas_dataset_destroy(&ds);
    }
    if (rc == 0)
        rc = ctnas_dataset_from_store(&ds, st, &ctnas_space_nb201,
                                      "cifar10", "test_accuracy", NULL, 0,
                                      &err);
    if (rc == 0) {
        if (record)
            c->n_train = ds.n;
        else if (ds.n != c->n_train)
            rc = WRONG;
        ctnas_dataset_destroy(&ds);
    }
    /* A training job's sample: the same rows whatever failed before. */
    int n_all = 0;
    if (rc == 0)
        rc = ctnas_dataset_sample_store(&ds, st, &ctnas_space_nb201,
                                        "cifar10", "test_accuracy", 5, 9,
                                        &n_all, &err);
    if (rc == 0) {
        if (record)
            c->sample_first = ds.n == 5 ? ds.ids[0] : -1;
        else if (ds.n != 5 || ds.ids[0] != c->sample_first)
            rc = WRONG;
        ctnas_dataset_destroy(&ds);
    }
    void *blob = NULL;
    size_t len = 0;
    long step = 0;
    json_t *extra = NULL;
    static const unsigned char ck[5] = {1, 2, 3, 4, 5};
    if (rc == 0) {
        json_t *params = json_object();
        int64_t id = 0;
        rc = params ? ctnas_store_job_insert(st, "search", params, NULL,
                                             NULL, &id, &err)
                    : CTNAS_ENOMEM;
        json_decref(params);
        if (rc == 0)
            rc = ctnas_store_checkpoint_put(st, id, 7, ck, sizeof ck, NULL,
                                            &err);
        if (rc == 0)
            rc = ctnas_store_checkpoint_get(st, id, &step, &blob, &len,
                                            &extra, &err);
    }
    if (rc == 0 && (step != 7 || len != sizeof ck ||
                    memcmp(blob, ck, len) != 0))
        rc = WRONG;
    ctnas_free(blob);
    json_decref(extra);
    ctnas_store_close(st);
    return rc;
}

static void oom_data_and_store(void)
{
    static struct data_ctx c;
    snprintf(c.csv, sizeof c.csv, "test_oom.%ld.csv", (long)getpid());
    snprintf(c.db, sizeof c.db, "test_oom.%ld.db", (long)getpid());
    FILE *f = fopen(c.csv, "w");
    ASSERT(f != NULL);
    fprintf(f, "arch,test_accuracy\n");
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 12);
    for (int i = 0; i < 20; i++) {
        struct ctnas_arch a;
        char buf[256];
        ctnas_space_nb201.sample(&rng, &a);
        ctnas_space_nb201.encode(&a, buf, sizeof buf);
        fprintf(f, "\"%s\",%.2f\n", buf, 80 + ctnas_rng_uniform(&rng) * 10);
    }
    fclose(f);
    char m1[200] = "", m2[200] = "";
    int r1 = chaos("dataset", sc_dataset, &c, 0, m1, sizeof m1);
    /* SQLite's own allocations are not ours to fail. */
    int r2 = chaos("store", sc_store, &c, 0, m2, sizeof m2);
    remove_db(c.db);
    unlink(c.csv);
    ASSERT_MSG(r1 == 0, "%s", m1);
    ASSERT_MSG(r2 == 0, "%s", m2);
}

/* ------------------------------------------------------------------ */
/* Route handlers, called as http.c calls them (no connection: no query
 * string), on a fresh database and registry each run; then jobs submitted
 * to a runner, looked at, cancelled, and ended by the runner's shutdown
 * (they never run: the loop turns only in ctnas_runner_free, after every
 * job is flagged). */

static const ctnas_handler handlers[] = {
#define ROUTE(m, p, h, q, s) h,
#include "routes.def"
#undef ROUTE
};

#define N_CALLS 27

struct api_ctx {
    struct ctnas_conf conf;
    char db[64];
    unsigned char *blob;     /* the served comparator */
    size_t n;
    char *body[N_CALLS];
    char *ref[N_CALLS];      /* each answer of the counting run, dumped */
    char *ref_rows;          /* the job rows after the shutdown */
};

static const struct {
    const char *method, *path;
} api_calls[N_CALLS] = {
    {"POST", "/v1/architectures"}, {"GET", "/v1/architectures/2"},
    {"GET", "/v1/architectures"}, {"POST", "/v1/compare"},
    {"POST", "/v1/compare"}, {"POST", "/v1/rank"}, {"POST", "/v1/rank"},
    {"GET", "/v1/spaces"}, {"POST", "/v1/nac/train"},
    {"POST", "/v1/searches"}, {"GET", "/v1/searches/2"},
    {"GET", "/v1/jobs/1"}, {"DELETE", "/v1/jobs/1"}, {"GET", "/v1/nac"},
    {"DELETE", "/v1/architectures/3/measurements/3"},
    {"DELETE", "/v1/architectures/4"},
    /* A keyed submit and its retry, answered from the store. */
    {"POST", "/v1/nac/train"}, {"POST", "/v1/nac/train"},
    /* The search never runs here: no suggestions, and it is not waiting
     * (409), with no body. */
    {"GET", "/v1/searches/2/suggestions"},
    {"POST", "/v1/searches/2/continue"},
    /* Model 1 (stored and serving) and 2 (stored only). */
    {"GET", "/v1/nac/1"}, {"DELETE", "/v1/nac/1"}, {"GET", "/v1/nac/2"},
    {"DELETE", "/v1/nac/2"},
    {"GET", "/v1/searches"}, {"GET", "/v1/searches/2/events"},
    {"DELETE", "/v1/searches/2"},
};

/* The calls that answer an error when nothing fails. */
static const int api_expect[N_CALLS] = {[19] = CTNAS_ECONFLICT,
                                        [21] = CTNAS_ECONFLICT};

static const char *const keyed[] = {"Idempotency-Key", "oom-1", NULL};
static const char *const *const api_headers[N_CALLS] = {
    [16] = keyed, [17] = keyed,
};

/* Drop what differs between two runs of the same calls: the store's
 * clock (and what is computed from it), and how many features the
 * registry holds (a cache that failed to grow holds fewer). */
static void drop_times(json_t *j)
{
    if (json_is_object(j)) {
        json_object_del(j, "cached_features");
        json_object_del(j, "created_at");
        json_object_del(j, "updated_at");
        json_object_del(j, "started_at");
        json_object_del(j, "finished_at");
        json_object_del(j, "elapsed_seconds");
        json_object_del(j, "remaining_seconds");
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
            drop_times(v);
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
            drop_times(v);
    }
}

/* One call of method on path with body (may be NULL): 0 when its answer
 * equals *ref, which the counting run (record) sets, or when it is the
 * error expect (not 0) names. */
static int api_call(struct ctnas_app *app, const char *method,
                    const char *path, const char *const *headers,
                    const char *body_text, int expect, char **ref,
                    int record)
{
    struct ctnas_req req;
    struct ctnas_err err = {0};
    char allow[64];
    memset(&req, 0, sizeof req);
    req.app = app;
    req.method = method;
    req.path = path;
    req.headers = headers;
    int r = ctnas_http_route(req.method, req.path, &req, allow, sizeof allow,
                             &err);
    if (r < 0)
        return WRONG;
    json_t *body = NULL;
    if (body_text != NULL) {
        json_error_t jerr;
        int oom;
        body = ctnas_jsonv_load(body_text, strlen(body_text),
                                JSON_REJECT_DUPLICATES, &jerr, &oom);
        if (body == NULL)
            return oom ? CTNAS_ENOMEM : WRONG;
    }
    req.body = body;
    json_t *out = NULL;
    int rc = handlers[r](&req, &out, &err);
    json_decref(body);
    if (rc < 0 && rc == expect) {
        json_decref(out);
        return 0;
    }
    if (rc < 0) {
        if (record)
            printf("# %s %s: %s (%s)\n", req.method, req.path, err.msg,
                   err.field);
        json_decref(out);
        return rc;
    }
    if (out == NULL)
        return CTNAS_ENOMEM; /* what http.c answers for a body not built */
    drop_times(out);
    /* Six digits: a feature computed in another batch (the registry's
     * cache failed to grow, so a later request recomputes it among other
     * cells) may differ in its last float bits, as BLAS sums differently
     * for other sizes. */
    char *text = ctnas_jsonv_dumps(out, JSON_SORT_KEYS | JSON_COMPACT |
                                            JSON_REAL_PRECISION(6));
    json_decref(out);
    if (text == NULL)
        return CTNAS_ENOMEM;
    if (record) {
        *ref = malloc(strlen(text) + 1);
        if (*ref != NULL)
            strcpy(*ref, text);
    }
    rc = *ref != NULL && strcmp(text, *ref) == 0 ? 0 : WRONG;
    ctnas_free(text);
    return rc;
}

static int sc_api(void *vctx, int record)
{
    struct api_ctx *c = vctx;
    struct ctnas_err err;
    struct ctnas_store *st = NULL;
    remove_db(c->db);
    int rc = ctnas_store_open(c->db, CTNAS_STORE_MIGRATE, &st, &err);
    /* The served comparator as model 1, and an unpublished model 2. */
    json_t *cfg = json_object(), *ids = json_array();
    struct ctnas_model_meta meta = {"nasbench201", "cifar10",
                                    "test_accuracy", 0, 1, cfg, cfg, ids};
    int64_t mid;
    if (rc == 0)
        rc = cfg && ids ? ctnas_store_model_insert(st, &meta, c->blob, c->n,
                                                   &mid, &err)
                        : CTNAS_ENOMEM;
    meta.published = 0;
    if (rc == 0)
        rc = ctnas_store_model_insert(st, &meta, c->blob, c->n, &mid, &err);
    json_decref(cfg);
    json_decref(ids);
    ctnas_store_close(st);
    if (rc != 0)
        return rc;
    struct ctnas_app app;
    memset(&app, 0, sizeof app);
    if ((rc = ctnas_app_init(&app, &c->conf)) != 0)
        return rc;
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        ctnas_app_destroy(&app);
        return CTNAS_ENOMEM;
    }
    app.registry = ctnas_registry_new();
    struct ctnas_nac *m = app.registry ? ctnas_nac_load(c->blob, c->n, &err)
                                       : NULL;
    struct ctnas_served *s =
        m ? ctnas_served_new(1, "nasbench201", "cifar10", "test_accuracy",
                             0, m)
          : NULL;
    rc = s ? ctnas_registry_publish(app.registry, s) : CTNAS_ENOMEM;
    ctnas_served_release(s);
    if (rc == 0)
        rc = ctnas_runner_new(&loop, 4, &app.runner);
    for (int i = 0; rc == 0 && i < N_CALLS; i++)
        rc = api_call(&app, api_calls[i].method, api_calls[i].path,
                      api_headers[i], c->body[i], api_expect[i], &c->ref[i],
                      record);
    ctnas_runner_free(app.runner);
    uv_loop_close(&loop);
    /* What the shutdown wrote: a training job interrupted, the search
     * left to resume. */
    if (rc == 0)
        rc = api_call(&app, "GET", "/v1/jobs", NULL, NULL, 0, &c->ref_rows,
                      record);
    ctnas_registry_free(app.registry);
    ctnas_app_destroy(&app);
    return rc;
}

/* n NB201 cell strings, quoted, comma-separated, into buf. */
static void cell_list(struct ctnas_rng *rng, int n, char *buf, size_t cap)
{
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        struct ctnas_arch a;
        char enc[256];
        ctnas_space_nb201.sample(rng, &a);
        ctnas_space_nb201.encode(&a, enc, sizeof enc);
        used += (size_t)snprintf(buf + used, cap - used, "%s\"%s\"",
                                 i ? ", " : "", enc);
    }
}

static void oom_api(void)
{
    static struct api_ctx c;
    c.blob = tiny_blob(&c.n);
    ASSERT(c.blob != NULL);
    ASSERT_EQ(ctnas_conf_init(&c.conf, NULL), 0);
    snprintf(c.db, sizeof c.db, "test_oom.api.%ld.db", (long)getpid());
    snprintf(c.conf.db, sizeof c.conf.db, "%s", c.db);

    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 21);
    char items[4096] = "", list[4096];
    size_t used = 0;
    for (int i = 0; i < 6; i++) {
        struct ctnas_arch a;
        char enc[256];
        ctnas_space_nb201.sample(&rng, &a);
        ctnas_space_nb201.encode(&a, enc, sizeof enc);
        used += (size_t)snprintf(
            items + used, sizeof items - used,
            "%s{\"space\": \"nasbench201\", \"arch\": \"%s\", "
            "\"measurements\": [{\"dataset\": \"cifar10\", "
            "\"metric\": \"test_accuracy\", \"value\": %.2f}]}",
            i ? ", " : "", enc, 90 + i * 0.5);
    }
    struct ctnas_arch a101;
    char enc101[1024];
    ctnas_space_nb101.sample(&rng, &a101);
    json_t *j101 = ctnas_space_nb101.to_json(&a101);
    char *t101 = ctnas_jsonv_dumps(j101, JSON_COMPACT);
    json_decref(j101);
    ASSERT(t101 != NULL);
    snprintf(enc101, sizeof enc101, "%s", t101);
    ctnas_free(t101);
    char buf[8192];
    snprintf(buf, sizeof buf, "{\"items\": [%s, {\"space\": "
             "\"nasbench101\", \"arch\": %s}]}", items, enc101);
    c.body[0] = strdup(buf);
    cell_list(&rng, 2, list, sizeof list);
    snprintf(buf, sizeof buf, "{\"a\": 1, \"b\": %s}",
             strchr(list, ',') + 2);
    c.body[3] = strdup(buf);
    char list2[1024];
    cell_list(&rng, 2, list, sizeof list);
    cell_list(&rng, 2, list2, sizeof list2);
    snprintf(buf, sizeof buf, "{\"pairs\": [[1, 2], [3, 4], [%s], [%s]]}",
             list, list2);
    c.body[4] = strdup(buf);
    cell_list(&rng, 5, list, sizeof list);
    snprintf(buf, sizeof buf, "{\"architectures\": [1, 2, %s]}", list);
    c.body[5] = strdup(buf);
    c.body[6] = strdup("{\"all\": true, \"space\": \"nasbench201\", "
                       "\"top_k\": 3}");
    c.body[8] = strdup("{\"space\": \"nasbench201\", \"dataset\": "
                       "\"cifar10\", \"epochs\": 2}");
    c.body[16] = strdup("{\"space\": \"nasbench201\", \"dataset\": "
                        "\"cifar10\", \"epochs\": 3}");
    c.body[17] = strdup(c.body[16]);
    c.body[9] = strdup("{\"space\": \"nasbench201\", \"dataset\": "
                       "\"cifar10\", \"steps\": 5, \"comparator\": "
                       "\"train\"}");
    char msg[200] = "";
    int r = chaos("api", sc_api, &c, 0, msg, sizeof msg);
    /* The retry answered the job the keyed submit made. */
    int replayed = c.ref[16] && c.ref[17] && strcmp(c.ref[16], c.ref[17]) == 0;
    remove_db(c.db);
    for (int i = 0; i < N_CALLS; i++) {
        free(c.body[i]);
        free(c.ref[i]);
    }
    free(c.ref_rows);
    free(c.blob);
    ASSERT_MSG(r == 0, "%s", msg);
    ASSERT(replayed);
}

int main(void)
{
    static const struct ctnas_mem_funcs f = {chaos_malloc, chaos_calloc,
                                             chaos_realloc, chaos_free};
    if (ctnas_mem_replace(&f) != 0)
        return 1;
    TEST_RUN(oom_arch_json);
    TEST_RUN(oom_nac_train);
    TEST_RUN(oom_nac_features);
    TEST_RUN(oom_registry);
    TEST_RUN(oom_search);
    TEST_RUN(oom_data_and_store);
    TEST_RUN(oom_api);
    return test_done();
}
