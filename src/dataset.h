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

#include <stdint.h>

#include "ctnas.h"
#include "space.h"

struct ctnas_dataset {
    const struct ctnas_space *space;
    int n;
    struct ctnas_arch *archs;  /* n */
    double *values;            /* n */
};

/* Read path with space sp.  field: the value column/field, or NULL for the
 * default above.  On success ds owns arrays to release with
 * ctnas_dataset_destroy.  Errors: CTNAS_EIO (cannot open or read),
 * CTNAS_EINVAL (a bad line: err->msg says "line N: ...", err->field the
 * column or field), CTNAS_ENOMEM. */
int ctnas_dataset_load(struct ctnas_dataset *ds, const struct ctnas_space *sp,
                       const char *path, const char *field,
                       struct ctnas_err *err);
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
