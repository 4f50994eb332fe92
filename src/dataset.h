/*
 * dataset.h - measured architectures read from benchmark files into
 * (architecture, value) arrays, and seeded train/test splits.
 *
 * Formats (see ../shared/data/README.md):
 *   CSV         a header naming the columns `arch` (the space's native
 *               string) and the value column (default `test_accuracy`);
 *   JSON Lines  one object per line with `adjacency` and `ops` (or `arch`,
 *               a string or object the space parses) and the value field
 *               (default `val_accuracy` when the line has it, else
 *               `test_accuracy`).
 * A file whose first non-blank character is '{' is JSON Lines.  Every
 * architecture goes through the space's parser, so it is validated and
 * canonical.  The first bad line stops the load, reported by number.
 */
#ifndef CTNAS_DATASET_H
#define CTNAS_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "ctnas.h"
#include "space.h"

struct ctnas_dataset {
    const struct ctnas_space *space;
    int n;
    struct ctnas_arch *archs;  /* n */
    double *values;            /* n */
    int64_t *ids;              /* n store ids (from the store), or NULL */
};

struct ctnas_store;

/* Read path with space sp.  field: the value column/field, or NULL for the
 * default above.  On success ds owns arrays to release with
 * ctnas_dataset_destroy.  Errors: CTNAS_EIO (cannot open or read),
 * CTNAS_EINVAL (a bad line: err->msg says "line N: ...", err->field the
 * column or field), CTNAS_ENOMEM. */
int ctnas_dataset_load(struct ctnas_dataset *ds, const struct ctnas_space *sp,
                       const char *path, const char *field,
                       struct ctnas_err *err);
/* From the store (dataset_store.c): every architecture of sp measured on
 * dataset (with metric, or any metric when NULL; each value the mean of
 * its measurements), oldest first, with its id in ds->ids; only those
 * whose id is in want[0 .. n_want) when want is not NULL.  Rows that no
 * longer parse are skipped.  Errors: CTNAS_EINVAL field "ids" when want
 * lists an id twice, CTNAS_ENOMEM, the store's codes. */
int ctnas_dataset_from_store(struct ctnas_dataset *ds,
                             struct ctnas_store *st,
                             const struct ctnas_space *sp,
                             const char *dataset, const char *metric,
                             const int64_t *want, size_t n_want,
                             struct ctnas_err *err);
/* Whether id is one of ds->ids, which must be in id order (as
 * ctnas_dataset_from_store reads them, not as a sample draws them). */
int ctnas_dataset_has_id(const struct ctnas_dataset *ds, int64_t id);
/* As ctnas_dataset_from_store (want NULL), but only the architectures
 * with a measurement stored after mark (ctnas_store_measurement_mark). */
int ctnas_dataset_since_store(struct ctnas_dataset *ds,
                              struct ctnas_store *st,
                              const struct ctnas_space *sp,
                              const char *dataset, const char *metric,
                              int64_t mark, struct ctnas_err *err);
/* A seeded random k of the measured rows (k >= 1): the first k of a
 * partial Fisher-Yates shuffle by seed of their ids in id order, and only
 * those k rows are parsed, so a small sample of a large catalogue costs
 * little.  When every row parses (rows this build cannot read come only
 * from another build) that is the draw from what ctnas_dataset_from_store
 * reads; when a drawn row does not parse, the draw is made again among
 * the rows that do, which are then all parsed.  *n_all is the number of
 * rows drawn from: when k exceeds it, ds is left empty and the caller
 * says so.  Errors as ctnas_dataset_from_store. */
int ctnas_dataset_sample_store(struct ctnas_dataset *ds,
                               struct ctnas_store *st,
                               const struct ctnas_space *sp,
                               const char *dataset, const char *metric,
                               int k, uint64_t seed, int *n_all,
                               struct ctnas_err *err);
/* The error for a job with n (< 2) architectures measured on dataset
 * with metric (named: the client gave it): why says what needs 2.  When
 * a named metric has none but the dataset has others, the message lists
 * them and the field is "metric"; else it is "dataset".  Returns
 * CTNAS_EINVAL. */
int ctnas_dataset_too_few(struct ctnas_store *st,
                          const struct ctnas_space *sp, const char *dataset,
                          const char *metric, int named, int n,
                          const char *why, struct ctnas_err *err);
/* The metric a job learns from into out (cap bytes): metric when given,
 * else the dataset's only one.  Errors: CTNAS_EINVAL with field "dataset"
 * when nothing of sp is measured on it, field "metric" (naming them) when
 * it has several; the store's codes. */
int ctnas_dataset_store_metric(struct ctnas_store *st,
                               const struct ctnas_space *sp,
                               const char *dataset, const char *metric,
                               char *out, size_t cap, struct ctnas_err *err);

/* Accepts a zeroed or destroyed ds. */
void ctnas_dataset_destroy(struct ctnas_dataset *ds);

/* A seeded split: a permutation of 0..n-1 drawn from seed; its first
 * n_train entries are the training set, the next n_test the test set
 * (disjoint).  *train and *test are new arrays (free them).  CTNAS_EINVAL
 * when n_train + n_test > ds->n. */
int ctnas_dataset_split(const struct ctnas_dataset *ds, int n_train,
                        int n_test, uint64_t seed, int **train, int **test,
                        struct ctnas_err *err);

#endif
