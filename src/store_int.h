/*
 * store_int.h - the inside of struct ctnas_store, shared by the store*.c
 * files only (and tests/test_store.c, a white-box test).  The rest of the
 * daemon sees the opaque handle of store.h and never includes this file
 * or <sqlite3.h>.
 *
 * Statements are prepared on first use and cached on the connection (no
 * global state), and every user of a cached statement resets it before
 * returning: in WAL mode a statement left mid-step pins a read snapshot.
 */
#ifndef CTNAS_STORE_INT_H
#define CTNAS_STORE_INT_H

#include <sqlite3.h>

#include "store.h"

/* Slots of the fixed statements.  Each slot's SQL text lives in the one
 * .c that uses it. */
enum ctnas__store_stmt {
    CTNAS__ST_BEGIN_WRITE,    /* BEGIN IMMEDIATE */
    CTNAS__ST_BEGIN_READ,     /* BEGIN (deferred): a consistent snapshot */
    CTNAS__ST_COMMIT,
    CTNAS__ST_ROLLBACK,
    CTNAS__ST_USER_VERSION,
    CTNAS__ST_ARCH_INSERT,
    CTNAS__ST_ARCH_FIND,
    CTNAS__ST_ARCH_GET,
    CTNAS__ST_ARCH_MEAS,
    CTNAS__ST_MEAS_INSERT,
    CTNAS__ST_MEAS_DELETE,
    CTNAS__ST_ARCH_MEAS_DELETE,
    CTNAS__ST_ARCH_DELETE,
    CTNAS__ST_COUNT_ALL,
    CTNAS__ST_COUNT_SPACE,
    CTNAS__ST_SOLE_METRIC,
    CTNAS__ST_COUNT_          /* number of slots */
};

/* ctnas_store_arch_list builds its SQL from fixed fragments chosen by the
 * query's shape; one cached statement per shape.  Page shapes: order (3)
 * x space x dataset x metric x cursor; count shapes: space x dataset x
 * metric. */
#define CTNAS__LIST_PAGE_SHAPES (3 * 16)
#define CTNAS__LIST_COUNT_SHAPES 8

struct ctnas_store {
    sqlite3 *db;                                  /* owned */
    char *path;                                   /* owned; for messages */
    sqlite3_stmt *stmt[CTNAS__ST_COUNT_];         /* owned, lazily prepared */
    sqlite3_stmt *list_page[CTNAS__LIST_PAGE_SHAPES];
    sqlite3_stmt *list_count[CTNAS__LIST_COUNT_SHAPES];
    double busy_since;     /* when the statement now waiting first met a
                            * locked database (store.c's busy handler) */
};

/* SQL for the id of a new row of tbl: above every id ever deleted from
 * it (sql/006, sql/008), so a stale id never names another row. */
#define CTNAS__NEXT_ID(tbl)                                               \
    "(SELECT max(coalesce((SELECT max(id) FROM " tbl "), 0), "            \
    "coalesce((SELECT hw FROM id_floor WHERE tbl = '" tbl "'), 0)) + 1)"

/* The cached statement of slot, preparing sql into it on first use.
 * Returns 0 with *out set (borrowed: reset it, never finalize it) or a
 * negative code. */
int ctnas__store_stmt(struct ctnas_store *st, int slot, const char *sql,
                      sqlite3_stmt **out, struct ctnas_err *err);
/* Prepare sql into *slot unless it is already there (the arch_list shape
 * caches use this directly). */
int ctnas__store_prepare(struct ctnas_store *st, sqlite3_stmt **slot,
                         const char *sql, struct ctnas_err *err);

/* Turn a failed SQLite result code into a CTNAS_E* code and message.
 * what says what we were doing ("insert an architecture").  Call it before
 * resetting the statement, while sqlite3_errmsg still describes rc. */
int ctnas__store_fail(struct ctnas_store *st, int rc, const char *what,
                      struct ctnas_err *err);

/* Several reads that must agree (a page and its total) run in one read
 * transaction.  *own is set when this call opened it (the caller was in
 * autocommit); pass it to read_end, which closes only what it opened. */
int ctnas__store_read_begin(struct ctnas_store *st, int *own,
                            struct ctnas_err *err);
void ctnas__store_read_end(struct ctnas_store *st, int own);

#endif
