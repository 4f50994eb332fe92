/*
 * dataset_store.c - the measured set a job learns from, read from the
 * store: the half of dataset.h that reads SQLite rather than files (the
 * training jobs, the search jobs and their resume share it).
 */
#include "config.h"
#include "dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mem.h"
#include "rng.h"
#include "store.h"
#include "store_ml.h"

/* The strings of arr, ", "-separated, into buf (cut short at cap). */
static void join_strings(const json_t *arr, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (size_t i = 0; i < json_array_size(arr); i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, cap - used, "%s%s", i ? ", " : "",
                 json_string_value(json_array_get(arr, i)));
    }
}

int ctnas_dataset_store_metric(struct ctnas_store *st,
                               const struct ctnas_space *sp,
                               const char *dataset, const char *metric,
                               char *out, size_t cap, struct ctnas_err *err)
{
    if (metric != NULL) {
        snprintf(out, cap, "%s", metric);
        return 0;
    }
    json_t *ms;
    int rc = ctnas_store_metrics(st, sp->name, dataset, &ms, err);
    if (rc < 0)
        return rc;
    size_t k = json_array_size(ms);
    if (k == 1) {
        snprintf(out, cap, "%s", json_string_value(json_array_get(ms, 0)));
    } else if (k == 0) {
        rc = ctnas_err_set(err, CTNAS_EINVAL, "dataset",
                           "no %s architecture is measured on %s: upload "
                           "measurements first (POST /v1/architectures)",
                           sp->name, dataset);
    } else {
        /* Averaging accuracy with loss would be nonsense: the caller
         * must choose. */
        char list[256];
        join_strings(ms, list, sizeof list);
        rc = ctnas_err_set(err, CTNAS_EINVAL, "metric",
                           "%s has several metrics (%s): name one", dataset,
                           list);
    }
    json_decref(ms);
    return rc;
}

int ctnas_dataset_too_few(struct ctnas_store *st,
                          const struct ctnas_space *sp, const char *dataset,
                          const char *metric, int named, int n,
                          const char *why, struct ctnas_err *err)
{
    /* A metric the client named and nothing is measured with: say which
     * are, and blame the metric, not the dataset. */
    char list[256] = "";
    json_t *ms = NULL;
    if (named && n == 0 &&
        ctnas_store_metrics(st, sp->name, dataset, &ms, NULL) == 0) {
        join_strings(ms, list, sizeof list);
        json_decref(ms);
    }
    if (list[0])
        return ctnas_err_set(err, CTNAS_EINVAL, "metric",
                             "no %s architecture is measured on %s with "
                             "metric %s (its metrics there: %s)", sp->name,
                             dataset, metric, list);
    return ctnas_err_set(err, CTNAS_EINVAL, "dataset",
                         "%d %s architecture%s measured on %s with metric "
                         "%s; %s at least 2 (upload measurements with "
                         "POST /v1/architectures)", n, sp->name,
                         n == 1 ? " is" : "s are", dataset, metric, why);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The state of the store scan. */
struct scan {
    struct ctnas_dataset *ds;
    int cap;
};

/* One measured architecture.  The arrays grow one by one and cap moves
 * only when all three grew, so a failed realloc never leaves an array
 * shorter than cap; ctnas_dataset_destroy frees them all. */
static int scan_one(void *cls, int64_t id, const char *enc, double value)
{
    struct scan *sc = cls;
    struct ctnas_dataset *ds = sc->ds;
    if (ds->n == sc->cap) {
        int cap = sc->cap ? 2 * sc->cap : 256;
        struct ctnas_arch *a =
            ctnas_realloc(ds->archs, (size_t)cap * sizeof *a);
        if (a)
            ds->archs = a;
        double *v = ctnas_realloc(ds->values, (size_t)cap * sizeof *v);
        if (v)
            ds->values = v;
        int64_t *ids = ctnas_realloc(ds->ids, (size_t)cap * sizeof *ids);
        if (ids)
            ds->ids = ids;
        if (!a || !v || !ids)
            return CTNAS_ENOMEM;
        sc->cap = cap;
    }
    if (ds->space->parse_string(enc, &ds->archs[ds->n], NULL) < 0)
        return 0; /* a row this build cannot read: not learnable, skip */
    ds->values[ds->n] = value;
    ds->ids[ds->n++] = id;
    return 0;
}

int ctnas_dataset_from_store(struct ctnas_dataset *ds,
                             struct ctnas_store *st,
                             const struct ctnas_space *sp,
                             const char *dataset, const char *metric,
                             const int64_t *want, size_t n_want,
                             struct ctnas_err *err)
{
    memset(ds, 0, sizeof *ds);
    ds->space = sp;
    struct scan sc = {ds, 0};
    int64_t *sorted = NULL;
    if (want != NULL) {
        sorted = ctnas_malloc((n_want ? n_want : 1) * sizeof *sorted);
        if (sorted == NULL)
            return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        memcpy(sorted, want, n_want * sizeof *sorted);
        qsort(sorted, n_want, sizeof *sorted, cmp_i64);
        for (size_t i = 1; i < n_want; i++)
            if (sorted[i] == sorted[i - 1]) {
                long long dup = (long long)sorted[i];
                ctnas_free(sorted);
                return ctnas_err_set(err, CTNAS_EINVAL, "ids",
                                     "ids lists architecture %lld twice",
                                     dup);
            }
    }
    int rc = ctnas_store_arch_measured(st, sp->name, dataset, metric, sorted,
                                       (int)n_want, scan_one, &sc, err);
    ctnas_free(sorted);
    if (rc == CTNAS_ENOMEM)
        rc = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    if (rc < 0)
        ctnas_dataset_destroy(ds);
    return rc < 0 ? rc : 0;
}

int ctnas_dataset_since_store(struct ctnas_dataset *ds,
                              struct ctnas_store *st,
                              const struct ctnas_space *sp,
                              const char *dataset, const char *metric,
                              int64_t mark, struct ctnas_err *err)
{
    memset(ds, 0, sizeof *ds);
    ds->space = sp;
    struct scan sc = {ds, 0};
    int rc = ctnas_store_arch_measured_since(st, sp->name, dataset, metric,
                                             mark, scan_one, &sc, err);
    if (rc == CTNAS_ENOMEM)
        rc = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    if (rc < 0)
        ctnas_dataset_destroy(ds);
    return rc < 0 ? rc : 0;
}

int ctnas_dataset_has_id(const struct ctnas_dataset *ds, int64_t id)
{
    return ds->n > 0 && bsearch(&id, ds->ids, (size_t)ds->n,
                                sizeof *ds->ids, cmp_i64) != NULL;
}

/* The first k of a partial Fisher-Yates shuffle of n items, as swaps:
 * step i exchanges items i and pick[i].  Its own stream: the same seed
 * also drives the training, and the choice of subset should not be
 * correlated with it. */
static void shuffle_picks(int n, int k, uint64_t seed, int *pick)
{
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, seed ^ 0x5eed5eedULL);
    for (int i = 0; i < k; i++)
        pick[i] = i + (int)ctnas_rng_below(&rng, (uint32_t)(n - i));
}

#define SWAP(T, a, i, j)                                                     \
    do {                                                                     \
        T t_ = (a)[i];                                                       \
        (a)[i] = (a)[j];                                                     \
        (a)[j] = t_;                                                         \
    } while (0)

/* The k rows of ds that pick chooses, in its order: ds shrinks to k. */
static void apply_picks(struct ctnas_dataset *ds, const int *pick, int k)
{
    for (int i = 0; i < k; i++) {
        SWAP(struct ctnas_arch, ds->archs, i, pick[i]);
        SWAP(double, ds->values, i, pick[i]);
        SWAP(int64_t, ds->ids, i, pick[i]);
    }
    ds->n = k;
}

/* ds holds rows in id order: put them in the order of want (the same
 * ids), as the shuffle chose them. */
static int order_as(struct ctnas_dataset *ds, const int64_t *want)
{
    size_t n = (size_t)ds->n;
    struct ctnas_arch *a = ctnas_malloc((n ? n : 1) * sizeof *a);
    double *v = ctnas_malloc((n ? n : 1) * sizeof *v);
    if (a == NULL || v == NULL) {
        ctnas_free(a);
        ctnas_free(v);
        return CTNAS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const int64_t *at = bsearch(&want[i], ds->ids, n, sizeof *ds->ids,
                                    cmp_i64);
        size_t j = (size_t)(at - ds->ids);
        a[i] = ds->archs[j];
        v[i] = ds->values[j];
    }
    memcpy(ds->ids, want, n * sizeof *ds->ids);
    ctnas_free(ds->archs);
    ctnas_free(ds->values);
    ds->archs = a;
    ds->values = v;
    return 0;
}

int ctnas_dataset_sample_store(struct ctnas_dataset *ds,
                               struct ctnas_store *st,
                               const struct ctnas_space *sp,
                               const char *dataset, const char *metric,
                               int k, uint64_t seed, int *n_all,
                               struct ctnas_err *err)
{
    memset(ds, 0, sizeof *ds);
    ds->space = sp;
    int64_t *ids = NULL;
    int n = 0, *pick = NULL;
    int rc = ctnas_store_arch_measured_ids(st, sp->name, dataset, metric,
                                           &ids, &n, err);
    if (rc < 0)
        return rc;
    *n_all = n;
    if (k > n) {
        ctnas_free(ids);
        return 0;
    }
    if ((pick = ctnas_malloc((size_t)k * sizeof *pick)) == NULL) {
        ctnas_free(ids);
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }
    shuffle_picks(n, k, seed, pick);
    for (int i = 0; i < k; i++)
        SWAP(int64_t, ids, i, pick[i]);
    rc = ctnas_dataset_from_store(ds, st, sp, dataset, metric, ids,
                                  (size_t)k, err);
    if (rc == 0 && ds->n == k) {
        if (order_as(ds, ids) < 0) {
            ctnas_dataset_destroy(ds);
            rc = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        }
    } else if (rc == 0) {
        /* A drawn row no longer parses (or went meanwhile): draw again
         * from a full read, among the rows that do. */
        ctnas_dataset_destroy(ds);
        rc = ctnas_dataset_from_store(ds, st, sp, dataset, metric, NULL, 0,
                                      err);
        if (rc == 0)
            *n_all = ds->n;
        if (rc == 0 && k <= ds->n) {
            shuffle_picks(ds->n, k, seed, pick);
            apply_picks(ds, pick, k);
        } else if (rc == 0) {
            ctnas_dataset_destroy(ds);
        }
    }
    ctnas_free(pick);
    ctnas_free(ids);
    return rc;
}

#undef SWAP
