/*
 * importer.h - bulk loading of measured architectures from files into the
 * store: the `ctnasd import` command.  Formats:
 *   CSV with a header: an "arch" column holding the native string, and
 *     one numeric column per metric (NAS-Bench-201's arch,test_accuracy);
 *   JSON Lines: one API item per line ({"space", "arch", "measurements"}),
 *     or NAS-Bench-101 records ({"adjacency", "ops", "val_accuracy", ...},
 *     whose "nb101_hash", when present, must match ours).
 * Good lines are stored in one transaction; bad lines are reported by
 * number and skipped.  Re-importing the same file changes nothing.
 */
#ifndef CTNAS_IMPORTER_H
#define CTNAS_IMPORTER_H

#include <stdio.h>

#include "ctnas.h"
#include "store.h"

struct ctnas_import_opts {
    const char *space;     /* default space of items (required for CSV) */
    const char *dataset;   /* dataset of CSV / NB101 measurements */
    const char *source;    /* measurement source, default "import" */
};

struct ctnas_import_stats {
    long lines;            /* data lines read (header and blanks excluded) */
    long stored;           /* lines stored */
    long new_archs;        /* architectures that were not there before */
    long new_meas;         /* measurements that were not there before */
    long bad;              /* lines rejected */
};

/* Called for each rejected line (line numbers count from 1). */
typedef void (*ctnas_import_bad_fn)(void *cls, long line,
                                    const struct ctnas_err *why);

/* Before anything is opened: whether path can be read and has what its
 * format needs from o (a CSV file: space and dataset).  0, CTNAS_EIO or
 * CTNAS_EINVAL. */
int ctnas_import_check(const struct ctnas_import_opts *o, const char *path,
                       struct ctnas_err *err);

/* Import one file.  Fails as a whole (nothing stored) only on I/O or
 * database errors or an unusable header; bad lines go to bad_fn. */
int ctnas_import_file(struct ctnas_store *st,
                      const struct ctnas_import_opts *opts, const char *path,
                      struct ctnas_import_stats *stats,
                      ctnas_import_bad_fn bad_fn, void *cls,
                      struct ctnas_err *err);

#endif
