/*
 * store.h - the SQLite store: opening, migrations, transactions, and the
 * architecture catalogue (architectures and their measurements).
 *
 * One struct ctnas_store is one sqlite3 connection and must be used by one
 * thread at a time; every thread that touches the database opens its own
 * (WAL lets readers run beside the single writer).  Only store*.c hold
 * SQL, and only with prepared statements and bound parameters.
 */
#ifndef CTNAS_STORE_H
#define CTNAS_STORE_H

#include <stdint.h>

#include "ctnas.h"
#include "space.h"

struct ctnas_store;

/* Flags of ctnas_store_open. */
enum {
    /* Apply pending migrations (the daemon's first connection and the
     * import command do this; later connections only check the version). */
    CTNAS_STORE_MIGRATE = 1 << 0,
    /* Open only a database that exists (vacuum): never create one. */
    CTNAS_STORE_EXISTING = 1 << 1,
};

/* Open (creating if needed, unless CTNAS_STORE_EXISTING) the database
 * at path, set WAL, foreign keys,
 * busy timeout; with CTNAS_STORE_MIGRATE apply the migrations of sql/ in
 * order.  A database whose user_version is newer than this build knows is
 * refused (CTNAS_ECONFLICT).  On success *out is a new connection to free
 * with ctnas_store_close. */
int ctnas_store_open(const char *path, int flags, struct ctnas_store **out,
                     struct ctnas_err *err);
/* Close; accepts NULL.  Runs a passive WAL checkpoint first. */
void ctnas_store_close(struct ctnas_store *st);

/* Highest migration this build knows, and the database's user_version. */
int ctnas_store_schema_latest(void);
int ctnas_store_schema_version(struct ctnas_store *st);

/* Rebuild the file without its free pages (VACUUM) and empty the WAL:
 * what jobs, checkpoints and deletions freed goes back to the disk.  Needs
 * the database to itself (run offline, under the lock file) and up to
 * the database's size again in temporary space. */
int ctnas_store_vacuum(struct ctnas_store *st, struct ctnas_err *err);

/* Cheap liveness probe for /v1/health (SELECT 1 and a read of the schema). */
int ctnas_store_ping(struct ctnas_store *st, struct ctnas_err *err);

/* Transactions: begin takes the write lock at once (BEGIN IMMEDIATE), so
 * a batch never fails half-way on a lock upgrade.  commit returns only when
 * the data is durable (synchronous=FULL in WAL). */
int ctnas_store_begin(struct ctnas_store *st, struct ctnas_err *err);
int ctnas_store_commit(struct ctnas_store *st, struct ctnas_err *err);
void ctnas_store_rollback(struct ctnas_store *st);

/* Exclusive advisory lock on "<db>.lock" so a second daemon (or an import)
 * on the same file refuses to start: CTNAS_ECONFLICT with the holder's pid
 * in err->msg.  *fd_out is the lock; release with ctnas_store_unlock. */
int ctnas_store_lock(const char *db_path, int *fd_out, struct ctnas_err *err);
/* The same; *prev_pid (when not NULL) is the pid of the last holder if
 * it ended without ctnas_store_unlock, else 0. */
int ctnas_store_lock_ex(const char *db_path, int *fd_out, long *prev_pid,
                        struct ctnas_err *err);
void ctnas_store_unlock(int fd, const char *db_path);

/* ---- the catalogue ---- */

struct ctnas_measurement {
    char dataset[64];
    char metric[64];
    double value;
    int epochs;          /* training epochs, 0 when unknown */
    char source[64];     /* "api", "import", ... */
    int64_t created;     /* unix seconds, filled by the store */
    int64_t id;          /* the store's id, filled on reads */
};

struct ctnas_arch_row {
    int64_t id;
    char space[32];
    char encoding[CTNAS_ENCODING_MAX];   /* the space's canonical text */
    char hash[CTNAS_HASH_LEN];
    int64_t created;
    int n_meas;
    struct ctnas_measurement *meas;      /* owned; ctnas_store_rows_free */
};

/* Insert the architecture unless (space, hash) exists; *id its row id,
 * *is_new 1 when inserted now.  Call inside a transaction for batches. */
int ctnas_store_arch_upsert(struct ctnas_store *st, const char *space,
                            const char *encoding, const char *hash,
                            int64_t *id, int *is_new, struct ctnas_err *err);

/* Add a measurement to an architecture.  Idempotent: the same (dataset,
 * metric, value, epochs, source) twice is stored once; *is_new (may be
 * NULL) says which. */
int ctnas_store_meas_add(struct ctnas_store *st, int64_t arch_id,
                         const struct ctnas_measurement *m, int *is_new,
                         struct ctnas_err *err);

/* Delete measurement meas_id of architecture arch_id (the schema's
 * triggers update the means).  CTNAS_ENOTFOUND, field "id" when there is
 * no such architecture, "measurement_id" when it has no such
 * measurement. */
int ctnas_store_meas_delete(struct ctnas_store *st, int64_t arch_id,
                            int64_t meas_id, struct ctnas_err *err);
/* Delete architecture id and its measurements, *n_meas (may be NULL) of
 * them, in one transaction; CTNAS_ENOTFOUND (field "id") if absent. */
int ctnas_store_arch_delete(struct ctnas_store *st, int64_t id, int *n_meas,
                            struct ctnas_err *err);

/* One architecture with its measurements; CTNAS_ENOTFOUND if absent.
 * Free row->meas with ctnas_store_row_destroy. */
int ctnas_store_arch_get(struct ctnas_store *st, int64_t id,
                         struct ctnas_arch_row *row, struct ctnas_err *err);
/* The same without the measurements (row->n_meas 0): one indexed read,
 * for a reference to a stored architecture. */
int ctnas_store_arch_head(struct ctnas_store *st, int64_t id,
                          struct ctnas_arch_row *row, struct ctnas_err *err);
/* Look an architecture up by (space, hash); CTNAS_ENOTFOUND if absent. */
int ctnas_store_arch_find(struct ctnas_store *st, const char *space,
                          const char *hash, int64_t *id,
                          struct ctnas_err *err);

enum ctnas_arch_order {
    CTNAS_ORDER_ID = 0,       /* oldest first */
    CTNAS_ORDER_METRIC_DESC,  /* by the mean value for dataset (and metric) */
    CTNAS_ORDER_METRIC_ASC,
};

struct ctnas_arch_query {
    const char *space;    /* NULL: every space */
    const char *dataset;  /* NULL: any; else only archs measured on it */
    const char *metric;   /* NULL: any metric of dataset */
    int order;            /* enum ctnas_arch_order; METRIC_* need dataset */
    int limit;            /* 1..1000 */
    const char *cursor;   /* NULL or a next_cursor from an earlier page */
};

/* A page of architectures.  *rows is a new array of *n rows (free with
 * ctnas_store_rows_free); *total counts every match of the query ignoring
 * the cursor; next_cursor is "" on the last page.  A malformed cursor is
 * CTNAS_EINVAL on field "cursor". */
int ctnas_store_arch_list(struct ctnas_store *st,
                          const struct ctnas_arch_query *q,
                          struct ctnas_arch_row **rows, int *n,
                          int64_t *total, char next_cursor[128],
                          struct ctnas_err *err);

void ctnas_store_row_destroy(struct ctnas_arch_row *row);
void ctnas_store_rows_free(struct ctnas_arch_row *rows, int n);

/* Count architectures of a space (all spaces when space is NULL). */
int ctnas_store_arch_count(struct ctnas_store *st, const char *space,
                           int64_t *count, struct ctnas_err *err);

#endif
