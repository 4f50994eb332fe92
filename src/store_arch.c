/*
 * store_arch.c - the catalogue: architectures, their measurements, and the
 * keyset-paged listing.  Owns every SQL statement on architectures,
 * measurements and arch_scores (the per-architecture means that triggers
 * of sql/001_init.sql keep; this file only reads them).  Callers pass and
 * receive plain structs of store.h; rows returned here own their
 * measurement arrays.
 */
#include "config.h"
#include "store.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "mem.h"
#include "store_int.h"

#define LIST_LIMIT_MAX 1000

/* s must be set, non-empty and fit a buffer of cap bytes with its NUL. */
static int check_text(const char *s, size_t cap, const char *field,
                      struct ctnas_err *err)
{
    if (s == NULL || s[0] == '\0')
        return ctnas_err_set(err, CTNAS_EINVAL, field, "%s is required",
                             field);
    if (strnlen(s, cap) >= cap)
        return ctnas_err_set(err, CTNAS_EINVAL, field,
                             "%s is longer than %zu bytes", field, cap - 1);
    return 0;
}

static void col_text(sqlite3_stmt *s, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

/* Bind by name when the statement's shape has that parameter.  The text
 * outlives the step (we reset before returning), hence SQLITE_STATIC. */
static int bind_text_opt(sqlite3_stmt *s, const char *name, const char *v)
{
    int i = sqlite3_bind_parameter_index(s, name);
    return i > 0 ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) : SQLITE_OK;
}

static int bind_int64_opt(sqlite3_stmt *s, const char *name, int64_t v)
{
    int i = sqlite3_bind_parameter_index(s, name);
    return i > 0 ? sqlite3_bind_int64(s, i, v) : SQLITE_OK;
}

static int bind_double_opt(sqlite3_stmt *s, const char *name, double v)
{
    int i = sqlite3_bind_parameter_index(s, name);
    return i > 0 ? sqlite3_bind_double(s, i, v) : SQLITE_OK;
}

/* Reset for the next user and drop pointers to the caller's strings. */
static void done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

/* ---- single architectures ---- */

static const char SQL_ARCH_INSERT[] =
    "INSERT INTO architectures (id, space, encoding, hash, created_at) "
    "VALUES (" CTNAS__NEXT_ID("architectures") ", ?1, ?2, ?3, ?4) "
    "ON CONFLICT (space, hash) DO NOTHING";
static const char SQL_ARCH_FIND[] =
    "SELECT id FROM architectures WHERE space = ?1 AND hash = ?2";
static const char SQL_ARCH_GET[] =
    "SELECT id, space, encoding, hash, created_at FROM architectures "
    "WHERE id = ?1";
static const char SQL_ARCH_MEAS[] =
    "SELECT id, dataset, metric, value, epochs, source, created_at "
    "FROM measurements WHERE arch_id = ?1";
static const char SQL_MEAS_INSERT[] =
    "INSERT INTO measurements "
    "(id, arch_id, dataset, metric, value, epochs, source, created_at) "
    "VALUES (" CTNAS__NEXT_ID("measurements") ", ?1, ?2, ?3, ?4, ?5, ?6, "
    "?7) "
    "ON CONFLICT (arch_id, dataset, metric, value, epochs, source) "
    "DO NOTHING";
static const char SQL_MEAS_DELETE[] =
    "DELETE FROM measurements WHERE id = ?2 AND arch_id = ?1";
static const char SQL_ARCH_MEAS_DELETE[] =
    "DELETE FROM measurements WHERE arch_id = ?1";
static const char SQL_ARCH_DELETE[] = "DELETE FROM architectures WHERE id = ?1";
static const char SQL_COUNT_ALL[] = "SELECT count(*) FROM architectures";
static const char SQL_COUNT_SPACE[] =
    "SELECT count(*) FROM architectures WHERE space = ?1";

static int check_arch_key(const char *space, const char *hash,
                          struct ctnas_err *err)
{
    int r = check_text(space, sizeof ((struct ctnas_arch_row *)0)->space,
                       "space", err);
    if (r == 0)
        r = check_text(hash, CTNAS_HASH_LEN, "hash", err);
    return r;
}

int ctnas_store_arch_find(struct ctnas_store *st, const char *space,
                          const char *hash, int64_t *id,
                          struct ctnas_err *err)
{
    int r = check_arch_key(space, hash, err);
    if (r != 0)
        return r;
    sqlite3_stmt *s;
    r = ctnas__store_stmt(st, CTNAS__ST_ARCH_FIND, SQL_ARCH_FIND, &s, err);
    if (r != 0)
        return r;
    sqlite3_bind_text(s, 1, space, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, hash, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(s, 0);
    else if (rc == SQLITE_DONE)
        r = ctnas_err_set(err, CTNAS_ENOTFOUND, "hash",
                          "no %s architecture with hash %s", space, hash);
    else
        r = ctnas__store_fail(st, rc, "look up an architecture", err);
    done(s);
    return r;
}

int ctnas_store_arch_upsert(struct ctnas_store *st, const char *space,
                            const char *encoding, const char *hash,
                            int64_t *id, int *is_new, struct ctnas_err *err)
{
    int r = check_arch_key(space, hash, err);
    if (r == 0)
        r = check_text(encoding, CTNAS_ENCODING_MAX, "encoding", err);
    if (r != 0)
        return r;
    sqlite3_stmt *s;
    r = ctnas__store_stmt(st, CTNAS__ST_ARCH_INSERT, SQL_ARCH_INSERT, &s,
                          err);
    if (r != 0)
        return r;
    sqlite3_bind_text(s, 1, space, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, encoding, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, (int64_t)time(NULL));
    int rc = sqlite3_step(s);
    /* DO NOTHING completes the INSERT with no change, so changes() is 0
     * exactly when the row was already there. */
    int inserted = rc == SQLITE_DONE && sqlite3_changes(st->db) > 0;
    if (rc != SQLITE_DONE)
        r = ctnas__store_fail(st, rc, "insert an architecture", err);
    else if (inserted)
        *id = sqlite3_last_insert_rowid(st->db);
    done(s);
    if (r == 0 && !inserted) {
        /* We are inside the caller's write transaction or autocommit; in
         * both the row we conflicted with is visible to this find. */
        r = ctnas_store_arch_find(st, space, hash, id, err);
        if (r == CTNAS_ENOTFOUND)
            r = ctnas_err_set(err, CTNAS_EDB, "",
                              "architecture vanished during upsert");
    }
    if (r == 0 && is_new != NULL)
        *is_new = inserted;
    return r;
}

int ctnas_store_meas_add(struct ctnas_store *st, int64_t arch_id,
                         const struct ctnas_measurement *m, int *is_new,
                         struct ctnas_err *err)
{
    int r = check_text(m->dataset, sizeof m->dataset, "dataset", err);
    if (r == 0)
        r = check_text(m->metric, sizeof m->metric, "metric", err);
    /* An empty source is the schema's default, "api". */
    const char *source = m->source[0] ? m->source : "api";
    if (r == 0)
        r = check_text(source, sizeof m->source, "source", err);
    if (r != 0)
        return r;
    /* SQLite stores NaN as NULL and infinities compare badly in means. */
    if (!isfinite(m->value))
        return ctnas_err_set(err, CTNAS_ENUMERIC, "value",
                             "value must be a finite number");
    if (m->epochs < 0)
        return ctnas_err_set(err, CTNAS_EINVAL, "epochs",
                             "epochs must be 0 or more");

    sqlite3_stmt *s;
    r = ctnas__store_stmt(st, CTNAS__ST_MEAS_INSERT, SQL_MEAS_INSERT, &s,
                          err);
    if (r != 0)
        return r;
    sqlite3_bind_int64(s, 1, arch_id);
    sqlite3_bind_text(s, 2, m->dataset, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, m->metric, -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 4, m->value);
    sqlite3_bind_int(s, 5, m->epochs);
    sqlite3_bind_text(s, 6, source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, (int64_t)time(NULL));
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        if (is_new != NULL)
            *is_new = sqlite3_changes(st->db) > 0;
    } else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
        r = ctnas_err_set(err, CTNAS_ENOTFOUND, "arch_id",
                          "architecture %" PRId64 " not found", arch_id);
    } else {
        r = ctnas__store_fail(st, rc, "insert a measurement", err);
    }
    done(s);
    return r;
}

/* Append every measurement of row->id to row, ordered by measurement id.
 * The identity index finds them; sorting the handful here is cheaper than
 * a sorter in SQLite per row (half the time of a 100-row page). */
static int load_meas(struct ctnas_store *st, struct ctnas_arch_row *row,
                     struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int r = ctnas__store_stmt(st, CTNAS__ST_ARCH_MEAS, SQL_ARCH_MEAS, &s,
                              err);
    if (r != 0)
        return r;
    sqlite3_bind_int64(s, 1, row->id);
    int cap = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (row->n_meas == cap) {
            int ncap = cap ? 2 * cap : 8;
            struct ctnas_measurement *p =
                ctnas_realloc(row->meas, (size_t)ncap * sizeof *p);
            if (p == NULL) {
                r = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
                break;
            }
            row->meas = p;
            cap = ncap;
        }
        struct ctnas_measurement *m = &row->meas[row->n_meas++];
        memset(m, 0, sizeof *m);
        m->id = sqlite3_column_int64(s, 0);
        col_text(s, 1, m->dataset, sizeof m->dataset);
        col_text(s, 2, m->metric, sizeof m->metric);
        m->value = sqlite3_column_double(s, 3);
        m->epochs = sqlite3_column_int(s, 4);
        col_text(s, 5, m->source, sizeof m->source);
        m->created = sqlite3_column_int64(s, 6);
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = ctnas__store_fail(st, rc, "read measurements", err);
    done(s);
    /* Insertion sort by id: a few rows, usually nearly in order. */
    for (int i = 1; r == 0 && i < row->n_meas; i++) {
        struct ctnas_measurement m = row->meas[i];
        int j = i;
        for (; j > 0 && row->meas[j - 1].id > m.id; j--)
            row->meas[j] = row->meas[j - 1];
        row->meas[j] = m;
    }
    return r;
}

/* Run the cached statement of slot with ?1 = a (and ?2 = b when the
 * statement has it); *changed the rows it deleted. */
static int run_delete(struct ctnas_store *st, int slot, const char *sql,
                      int64_t a, int64_t b, int *changed, const char *what,
                      struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int r = ctnas__store_stmt(st, slot, sql, &s, err);
    if (r != 0)
        return r;
    sqlite3_bind_int64(s, 1, a);
    if (sqlite3_bind_parameter_count(s) > 1)
        sqlite3_bind_int64(s, 2, b);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        *changed = sqlite3_changes(st->db);
    else
        r = ctnas__store_fail(st, rc, what, err);
    done(s);
    return r;
}

int ctnas_store_meas_delete(struct ctnas_store *st, int64_t arch_id,
                            int64_t meas_id, struct ctnas_err *err)
{
    int n = 0;
    int r = run_delete(st, CTNAS__ST_MEAS_DELETE, SQL_MEAS_DELETE, arch_id,
                       meas_id, &n, "delete a measurement", err);
    if (r != 0 || n > 0)
        return r;
    /* Nothing deleted: say which id is unknown. */
    struct ctnas_arch_row row;
    r = ctnas_store_arch_get(st, arch_id, &row, err);
    if (r != 0)
        return r;
    ctnas_store_row_destroy(&row);
    return ctnas_err_set(err, CTNAS_ENOTFOUND, "measurement_id",
                         "architecture %" PRId64 " has no measurement %"
                         PRId64, arch_id, meas_id);
}

int ctnas_store_arch_delete(struct ctnas_store *st, int64_t id, int *n_meas,
                            struct ctnas_err *err)
{
    int r = ctnas_store_begin(st, err);
    if (r != 0)
        return r;
    int nm = 0, na = 0;
    /* The measurements first, to count them (a cascade is not counted). */
    r = run_delete(st, CTNAS__ST_ARCH_MEAS_DELETE, SQL_ARCH_MEAS_DELETE, id,
                   0, &nm, "delete measurements", err);
    if (r == 0)
        r = run_delete(st, CTNAS__ST_ARCH_DELETE, SQL_ARCH_DELETE, id, 0,
                       &na, "delete an architecture", err);
    if (r == 0 && na == 0)
        r = ctnas_err_set(err, CTNAS_ENOTFOUND, "id",
                          "architecture %" PRId64 " not found", id);
    if (r != 0) {
        ctnas_store_rollback(st);
        return r;
    }
    if ((r = ctnas_store_commit(st, err)) == 0 && n_meas != NULL)
        *n_meas = nm;
    return r;
}

/* Fill the architecture columns (id, space, encoding, hash, created_at)
 * that every row query selects first. */
static void fill_arch(sqlite3_stmt *s, struct ctnas_arch_row *row)
{
    memset(row, 0, sizeof *row);
    row->id = sqlite3_column_int64(s, 0);
    col_text(s, 1, row->space, sizeof row->space);
    col_text(s, 2, row->encoding, sizeof row->encoding);
    col_text(s, 3, row->hash, sizeof row->hash);
    row->created = sqlite3_column_int64(s, 4);
}

/* The row of id, with its measurements when with_meas. */
static int arch_get(struct ctnas_store *st, int64_t id,
                    struct ctnas_arch_row *row, int with_meas,
                    struct ctnas_err *err)
{
    memset(row, 0, sizeof *row);
    int own;
    int r = ctnas__store_read_begin(st, &own, err);
    if (r != 0)
        return r;
    sqlite3_stmt *s;
    r = ctnas__store_stmt(st, CTNAS__ST_ARCH_GET, SQL_ARCH_GET, &s, err);
    if (r == 0) {
        sqlite3_bind_int64(s, 1, id);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
            fill_arch(s, row);
        else if (rc == SQLITE_DONE)
            r = ctnas_err_set(err, CTNAS_ENOTFOUND, "id",
                              "architecture %" PRId64 " not found", id);
        else
            r = ctnas__store_fail(st, rc, "read an architecture", err);
        done(s);
    }
    if (r == 0 && with_meas)
        r = load_meas(st, row, err);
    ctnas__store_read_end(st, own);
    if (r != 0)
        ctnas_store_row_destroy(row);
    return r;
}

int ctnas_store_arch_get(struct ctnas_store *st, int64_t id,
                         struct ctnas_arch_row *row, struct ctnas_err *err)
{
    return arch_get(st, id, row, 1, err);
}

int ctnas_store_arch_head(struct ctnas_store *st, int64_t id,
                          struct ctnas_arch_row *row, struct ctnas_err *err)
{
    return arch_get(st, id, row, 0, err);
}

int ctnas_store_arch_count(struct ctnas_store *st, const char *space,
                           int64_t *count, struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int r = space ? ctnas__store_stmt(st, CTNAS__ST_COUNT_SPACE,
                                      SQL_COUNT_SPACE, &s, err)
                  : ctnas__store_stmt(st, CTNAS__ST_COUNT_ALL, SQL_COUNT_ALL,
                                      &s, err);
    if (r != 0)
        return r;
    if (space)
        sqlite3_bind_text(s, 1, space, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *count = sqlite3_column_int64(s, 0);
    else
        r = ctnas__store_fail(st, rc, "count architectures", err);
    done(s);
    return r;
}

void ctnas_store_row_destroy(struct ctnas_arch_row *row)
{
    if (row == NULL)
        return;
    ctnas_free(row->meas);
    row->meas = NULL;
    row->n_meas = 0;
}

void ctnas_store_rows_free(struct ctnas_arch_row *rows, int n)
{
    if (rows == NULL)
        return;
    for (int i = 0; i < n; i++)
        ctnas_store_row_destroy(&rows[i]);
    ctnas_free(rows);
}

/* ---- listing ---- */

/*
 * Keyset pagination.  A cursor names the last row of the previous page by
 * its sort key and says which listing it belongs to:
 *
 *     <order>.<filters>.<mean>.<id>     e.g. d.8c1f03aa.3fe8000000000000.42
 *
 * order is i (id), d (metric_desc) or a (metric_asc); filters is a 32-bit
 * FNV-1a of space, dataset and metric, so a cursor cannot silently be
 * replayed on another listing; mean is the IEEE-754 bits of the last row's
 * mean in hex (exact and locale-free, unlike "%.17g"), 0 for order i.
 * Everything is [0-9a-z.], so it is URL-safe as is.  Clients treat it as
 * opaque; we accept only the exact canonical form we print.
 */
struct list_cursor {
    char order;
    uint32_t filters;
    uint64_t bits;
    int64_t id;
};

static const char order_tag[] = { 'i', 'd', 'a' };

static uint32_t fnv1a(uint32_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t filters_hash(const struct ctnas_arch_query *q)
{
    const char *f[3] = { q->space, q->dataset, q->metric };
    uint32_t h = 2166136261u;
    for (int i = 0; i < 3; i++) {
        /* "absent" and "" must differ, and fields must not run together. */
        unsigned char set = f[i] != NULL;
        h = fnv1a(h, &set, 1);
        if (f[i] != NULL)
            h = fnv1a(h, f[i], strlen(f[i]) + 1);
    }
    return h;
}

static void cursor_format(const struct list_cursor *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%c.%08" PRIx32 ".%016" PRIx64 ".%" PRId64, c->order,
             c->filters, c->bits, c->id);
}

/* n lowercase hex digits at s (what cursor_format prints). */
static int parse_hex(const char *s, int n, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        int d;
        if (s[i] >= '0' && s[i] <= '9')
            d = s[i] - '0';
        else if (s[i] >= 'a' && s[i] <= 'f')
            d = s[i] - 'a' + 10;
        else
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* A decimal id as cursor_format prints it: no sign, no leading zero. */
static int parse_id(const char *s, int64_t *out)
{
    if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
        return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        uint64_t d = (uint64_t)(*s - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = (int64_t)v;
    return 0;
}

/* Strict: a cursor has exactly one spelling, the one we print. */
static int cursor_parse(const char *s, const struct ctnas_arch_query *q,
                        struct list_cursor *c, struct ctnas_err *err)
{
    uint64_t filters, bits;
    size_t len = strnlen(s, 128);
    if (len < 29 || len >= 128 || strchr("ida", s[0]) == NULL ||
        s[1] != '.' || s[10] != '.' || s[27] != '.' ||
        parse_hex(s + 2, 8, &filters) != 0 ||
        parse_hex(s + 11, 16, &bits) != 0 || parse_id(s + 28, &c->id) != 0)
        goto malformed;
    c->order = s[0];
    c->filters = (uint32_t)filters;
    c->bits = bits;
    double v;
    memcpy(&v, &c->bits, sizeof v);
    if (isnan(v) || (c->order == 'i' && c->bits != 0))
        goto malformed;
    if (c->order != order_tag[q->order])
        return ctnas_err_set(err, CTNAS_EINVAL, "cursor",
                             "cursor belongs to a listing in another order");
    if (c->filters != filters_hash(q))
        return ctnas_err_set(err, CTNAS_EINVAL, "cursor",
                             "cursor belongs to a listing with other "
                             "filters");
    return 0;
malformed:
    return ctnas_err_set(err, CTNAS_EINVAL, "cursor", "malformed cursor");
}

/* A small append-only string for SQL built from fixed fragments. */
struct sqlbuf {
    char s[1024];
    size_t n;
};

static void sql_add(struct sqlbuf *b, const char *frag)
{
    size_t k = strlen(frag);
    /* Fragments are ours and bounded; overflow is a bug, not input. */
    if (b->n + k >= sizeof b->s)
        abort();
    memcpy(b->s + b->n, frag, k + 1);
    b->n += k;
}

enum {
    SHAPE_CURSOR = 1,
    SHAPE_METRIC = 2,
    SHAPE_DATASET = 4,
    SHAPE_SPACE = 8,
};

/* Filters of the id-ordered listing and of most totals: arch_scores has a
 * row per (architecture, dataset, metric) measured, so "measured on" is a
 * primary-key probe. */
static void filter_sql(int shape, struct sqlbuf *b)
{
    if (shape & SHAPE_SPACE)
        sql_add(b, " AND a.space = :space");
    if (shape & (SHAPE_DATASET | SHAPE_METRIC)) {
        sql_add(b, " AND EXISTS (SELECT 1 FROM arch_scores AS s"
                   " WHERE s.arch_id = a.id");
        if (shape & SHAPE_DATASET)
            sql_add(b, " AND s.dataset = :dataset");
        if (shape & SHAPE_METRIC)
            sql_add(b, " AND s.metric = :metric");
        sql_add(b, ")");
    }
}

/* The page query of a shape.  Columns: the five of fill_arch, then the
 * sort mean (0 for id order).  :limit is one more than the page, to know
 * whether another page follows. */
static void page_sql(int order, int shape, struct sqlbuf *b)
{
    int desc = order == CTNAS_ORDER_METRIC_DESC;
    if (order == CTNAS_ORDER_ID) {
        sql_add(b, "SELECT a.id, a.space, a.encoding, a.hash, a.created_at,"
                   " 0.0 FROM architectures AS a WHERE 1");
        filter_sql(shape, b);
        if (shape & SHAPE_CURSOR)
            sql_add(b, " AND a.id > :cid");
        sql_add(b, " ORDER BY a.id LIMIT :limit");
    } else if (shape & SHAPE_METRIC) {
        /* The common case: a range of arch_scores_order from the cursor
         * on, the outer loop (CROSS JOIN); "<= :cv" bounds the range and
         * the OR only skips ties already shown. */
        sql_add(b, "SELECT a.id, a.space, a.encoding, a.hash, a.created_at,"
                   " s.mean FROM arch_scores AS s"
                   " CROSS JOIN architectures AS a ON a.id = s.arch_id"
                   " WHERE s.dataset = :dataset AND s.metric = :metric");
        if (shape & SHAPE_SPACE)
            sql_add(b, " AND s.space = :space");
        if (shape & SHAPE_CURSOR)
            sql_add(b, desc ? " AND s.mean <= :cv"
                              " AND (s.mean < :cv OR s.arch_id > :cid)"
                            : " AND s.mean >= :cv"
                              " AND (s.mean > :cv OR s.arch_id > :cid)");
        sql_add(b, desc ? " ORDER BY s.mean DESC, s.arch_id LIMIT :limit"
                        : " ORDER BY s.mean ASC, s.arch_id LIMIT :limit");
    } else {
        /* The mean over every metric of a dataset has no stored form: a
         * GROUP BY over the identity index, sorted to the page by
         * (mean, id) alone, then joined for the page's rows only. */
        sql_add(b, "SELECT a.id, a.space, a.encoding, a.hash, a.created_at,"
                   " p.score FROM (SELECT g.arch_id AS arch_id,"
                   " g.score AS score FROM (SELECT m.arch_id AS arch_id,"
                   " avg(m.value) AS score FROM measurements AS m"
                   " WHERE m.dataset = :dataset GROUP BY m.arch_id) AS g");
        if (shape & SHAPE_SPACE)
            sql_add(b, " CROSS JOIN architectures AS f ON f.id = g.arch_id"
                       " AND f.space = :space");
        sql_add(b, " WHERE 1");
        if (shape & SHAPE_CURSOR)
            sql_add(b, desc ? " AND (g.score < :cv OR"
                              " (g.score = :cv AND g.arch_id > :cid))"
                            : " AND (g.score > :cv OR"
                              " (g.score = :cv AND g.arch_id > :cid))");
        sql_add(b, desc ? " ORDER BY g.score DESC, g.arch_id LIMIT :limit"
                        : " ORDER BY g.score ASC, g.arch_id LIMIT :limit");
        sql_add(b, ") AS p CROSS JOIN architectures AS a ON a.id = p.arch_id");
        sql_add(b, desc ? " ORDER BY p.score DESC, p.arch_id"
                        : " ORDER BY p.score ASC, p.arch_id");
    }
}

/* The total of a shape (its cursor bit ignored): architectures matching
 * the filters, whatever the order. */
static void count_sql(int shape, struct sqlbuf *b)
{
    if ((shape & SHAPE_DATASET) && (shape & SHAPE_METRIC)) {
        /* A covering-index range of arch_scores; no table is read. */
        sql_add(b, "SELECT count(*) FROM arch_scores AS s"
                   " WHERE s.dataset = :dataset AND s.metric = :metric");
        if (shape & SHAPE_SPACE)
            sql_add(b, " AND s.space = :space");
        return;
    }
    sql_add(b, "SELECT count(*) FROM architectures AS a WHERE 1");
    filter_sql(shape, b);
}

static int bind_query(sqlite3_stmt *s, const struct ctnas_arch_query *q,
                      const struct list_cursor *c, int limit)
{
    int rc = SQLITE_OK;
    if (q->space)
        rc = bind_text_opt(s, ":space", q->space);
    if (rc == SQLITE_OK && q->dataset)
        rc = bind_text_opt(s, ":dataset", q->dataset);
    if (rc == SQLITE_OK && q->metric)
        rc = bind_text_opt(s, ":metric", q->metric);
    if (rc == SQLITE_OK && c != NULL) {
        double v;
        memcpy(&v, &c->bits, sizeof v);
        rc = bind_double_opt(s, ":cv", v);
        if (rc == SQLITE_OK)
            rc = bind_int64_opt(s, ":cid", c->id);
    }
    if (rc == SQLITE_OK)
        rc = bind_int64_opt(s, ":limit", limit);
    return rc;
}

static int list_total(struct ctnas_store *st, const struct ctnas_arch_query *q,
                      int shape, int64_t *total, struct ctnas_err *err)
{
    int cshape = (shape & ~SHAPE_CURSOR) >> 1;
    sqlite3_stmt **slot = &st->list_count[cshape];
    if (*slot == NULL) {
        struct sqlbuf b = { .n = 0 };
        count_sql(shape, &b);
        int r = ctnas__store_prepare(st, slot, b.s, err);
        if (r != 0)
            return r;
    }
    sqlite3_stmt *s = *slot;
    int r = 0;
    int rc = bind_query(s, q, NULL, 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *total = sqlite3_column_int64(s, 0);
    else
        r = ctnas__store_fail(st, rc, "count the listing", err);
    done(s);
    return r;
}

/* Step the page query into a new array of at most limit rows; *more says
 * whether a row beyond them exists, *last_score is the last row's mean. */
static int list_page(struct ctnas_store *st, sqlite3_stmt *s, int limit,
                     struct ctnas_arch_row **out, int *n, int *more,
                     double *last_score, struct ctnas_err *err)
{
    struct ctnas_arch_row *rows = NULL;
    int cap = 0, cnt = 0, rc, r = 0;
    *more = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (cnt == limit) {
            *more = 1;
            rc = SQLITE_DONE;
            break;
        }
        if (cnt == cap) {
            int ncap = cap ? 2 * cap : (limit < 32 ? limit : 32);
            if (ncap > limit)
                ncap = limit;
            struct ctnas_arch_row *p =
                ctnas_realloc(rows, (size_t)ncap * sizeof *p);
            if (p == NULL) {
                r = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
                break;
            }
            rows = p;
            cap = ncap;
        }
        fill_arch(s, &rows[cnt]);
        *last_score = sqlite3_column_double(s, 5);
        cnt++;
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = ctnas__store_fail(st, rc, "list architectures", err);
    done(s);
    if (r != 0) {
        ctnas_store_rows_free(rows, cnt);
        return r;
    }
    *out = rows;
    *n = cnt;
    return 0;
}

static const char SQL_SOLE_METRIC[] =
    "SELECT (SELECT metric FROM arch_scores WHERE dataset = ?1"
    " ORDER BY metric LIMIT 1),"
    " (SELECT metric FROM arch_scores WHERE dataset = ?1"
    " ORDER BY metric DESC LIMIT 1)";

/* Most datasets carry a single metric (an import of one benchmark
 * column).  Then "every metric of the dataset" is that metric, and the
 * stored means serve the listing instead of a GROUP BY over all
 * measurements.  *found says whether out names it.  Two index seeks. */
static int sole_metric(struct ctnas_store *st, const char *dataset,
                       char *out, int *found, struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int r = ctnas__store_stmt(st, CTNAS__ST_SOLE_METRIC, SQL_SOLE_METRIC,
                              &s, err);
    if (r != 0)
        return r;
    sqlite3_bind_text(s, 1, dataset, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *found = 0;
    if (rc == SQLITE_ROW) {
        const unsigned char *lo = sqlite3_column_text(s, 0);
        const unsigned char *hi = sqlite3_column_text(s, 1);
        if (lo != NULL && hi != NULL &&
            strcmp((const char *)lo, (const char *)hi) == 0) {
            snprintf(out, sizeof ((struct ctnas_measurement *)0)->metric,
                     "%s", (const char *)lo);
            *found = 1;
        }
    } else {
        r = ctnas__store_fail(st, rc, "list architectures", err);
    }
    done(s);
    return r;
}

int ctnas_store_arch_list(struct ctnas_store *st,
                          const struct ctnas_arch_query *q,
                          struct ctnas_arch_row **rows, int *n,
                          int64_t *total, char next_cursor[128],
                          struct ctnas_err *err)
{
    *rows = NULL;
    *n = 0;
    *total = 0;
    next_cursor[0] = '\0';

    if (q->order < CTNAS_ORDER_ID || q->order > CTNAS_ORDER_METRIC_ASC)
        return ctnas_err_set(err, CTNAS_EINVAL, "order", "unknown order %d",
                             q->order);
    if (q->limit < 1 || q->limit > LIST_LIMIT_MAX)
        return ctnas_err_set(err, CTNAS_EINVAL, "limit",
                             "limit must be 1..%d", LIST_LIMIT_MAX);
    /* "" is a filter nothing can match (the schema forbids empty
     * names): say so rather than answer an empty page. */
    const char *const filt[3] = { q->space, q->dataset, q->metric };
    static const char *const filt_name[3] = { "space", "dataset", "metric" };
    for (int i = 0; i < 3; i++)
        if (filt[i] != NULL && filt[i][0] == '\0')
            return ctnas_err_set(err, CTNAS_EINVAL, filt_name[i],
                                 "%s filter is empty", filt_name[i]);
    if (q->order != CTNAS_ORDER_ID && q->dataset == NULL)
        return ctnas_err_set(err, CTNAS_EINVAL, "dataset",
                             "ordering by a metric needs a dataset");
    struct list_cursor cur;
    int has_cursor = q->cursor != NULL && q->cursor[0] != '\0';
    if (has_cursor) {
        int r = cursor_parse(q->cursor, q, &cur, err);
        if (r != 0)
            return r;
    }

    /* The page, its rows' measurements and the total from one snapshot. */
    int own;
    int r = ctnas__store_read_begin(st, &own, err);
    if (r != 0)
        return r;
    struct ctnas_arch_query eq = *q;     /* the query as run */
    char sole[sizeof ((struct ctnas_measurement *)0)->metric];
    if (q->dataset != NULL && q->metric == NULL) {
        int found = 0;
        r = sole_metric(st, q->dataset, sole, &found, err);
        if (r == 0 && found)
            eq.metric = sole;
    }

    int shape = (eq.space ? SHAPE_SPACE : 0) |
                (eq.dataset ? SHAPE_DATASET : 0) |
                (eq.metric ? SHAPE_METRIC : 0) |
                (has_cursor ? SHAPE_CURSOR : 0);
    sqlite3_stmt **slot = &st->list_page[eq.order * 16 + shape];
    if (r == 0 && *slot == NULL) {
        struct sqlbuf b = { .n = 0 };
        page_sql(eq.order, shape, &b);
        r = ctnas__store_prepare(st, slot, b.s, err);
    }
    struct ctnas_arch_row *page = NULL;
    int cnt = 0, more = 0;
    double last_score = 0.0;
    if (r == 0) {
        int rc = bind_query(*slot, &eq, has_cursor ? &cur : NULL,
                            eq.limit + 1);
        if (rc != SQLITE_OK) {
            r = ctnas__store_fail(st, rc, "list architectures", err);
            done(*slot);
        } else {
            r = list_page(st, *slot, eq.limit, &page, &cnt, &more,
                          &last_score, err);
        }
    }
    for (int i = 0; r == 0 && i < cnt; i++)
        r = load_meas(st, &page[i], err);
    int64_t tot = 0;
    if (r == 0)
        r = list_total(st, &eq, shape, &tot, err);
    ctnas__store_read_end(st, own);
    if (r != 0) {
        ctnas_store_rows_free(page, cnt);
        return r;
    }

    if (more) {
        struct list_cursor next = {
            .order = order_tag[q->order],
            .filters = filters_hash(q),
            .id = page[cnt - 1].id,
        };
        if (q->order != CTNAS_ORDER_ID)
            memcpy(&next.bits, &last_score, sizeof next.bits);
        cursor_format(&next, next_cursor, 128);
    }
    *rows = page;
    *n = cnt;
    *total = tot;
    return 0;
}
