/*
 * test_store.c - the SQLite store on real temporary files: migrations and
 * version refusal, idempotent upserts, transactions, foreign keys, the
 * lock file, error mapping, and keyset paging checked against an order
 * computed here.
 *
 * It is a white-box test: it includes store_int.h to reach the sqlite3
 * handle for the two cases the API cannot provoke honestly (a short busy
 * timeout, a full database), and reads the files with plain sqlite3
 * connections to check what the store wrote (schema version, WAL, the
 * trigger-kept arch_scores).
 */
#include "config.h"
#include "store.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "dataset.h"
#include "migrations.h"
#include "rng.h"
#include "space.h"
#include "store_ml.h"
#include "store_int.h"
#include "test.h"

/* ---- helpers ---- */

struct tmpdb {
    char path[256];
};

/* A new empty file in $TMPDIR (else /tmp); tmpdb_remove deletes it and
 * SQLite's companions. */
static int tmpdb_make(struct tmpdb *t)
{
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    if ((size_t)snprintf(t->path, sizeof t->path,
                         "%s/ctnas_test_store_XXXXXX", dir) >= sizeof t->path)
        return -1;
    int fd = mkstemp(t->path);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static void tmpdb_remove(struct tmpdb *t)
{
    static const char *const sfx[] = { "", "-wal", "-shm", "-journal",
                                       ".lock" };
    char p[sizeof t->path + 16];
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        snprintf(p, sizeof p, "%s%s", t->path, sfx[i]);
        unlink(p);
    }
}

/* Run SQL on the file through a plain sqlite3 connection (to build
 * databases the store would refuse to make). */
static int raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

static int raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int v = -1000;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static struct ctnas_measurement meas(const char *dataset, const char *metric,
                                     double value, int epochs,
                                     const char *source)
{
    struct ctnas_measurement m;
    memset(&m, 0, sizeof m);
    snprintf(m.dataset, sizeof m.dataset, "%s", dataset);
    snprintf(m.metric, sizeof m.metric, "%s", metric);
    m.value = value;
    m.epochs = epochs;
    snprintf(m.source, sizeof m.source, "%s", source);
    return m;
}

/* Architecture i of a synthetic catalogue: hash and encoding from i. */
static int add_arch(struct ctnas_store *st, const char *space, int i,
                    int64_t *id)
{
    char enc[64], hash[CTNAS_HASH_LEN];
    snprintf(enc, sizeof enc, "arch-%d", i);
    snprintf(hash, sizeof hash, "%032x", (unsigned)i);
    int is_new;
    return ctnas_store_arch_upsert(st, space, enc, hash, id, &is_new, NULL);
}

/* ---- migrations and opening ---- */

static void test_migrate_from_empty(void)
{
    struct tmpdb t;
    ASSERT(tmpdb_make(&t) == 0);
    struct ctnas_store *st = NULL;
    struct ctnas_err err = { 0 };
    int r = ctnas_store_open(t.path, CTNAS_STORE_MIGRATE, &st, &err);
    ASSERT_MSG(r == 0, "open: %s", err.msg);
    ASSERT(ctnas_store_schema_latest() == ctnas_n_migrations);
    ASSERT(ctnas_store_schema_latest() >= 1);
    ASSERT_EQ(ctnas_store_schema_version(st), ctnas_store_schema_latest());
    ASSERT_EQ(ctnas_store_ping(st, &err), 0);
    int64_t n = -1;
    ASSERT_EQ(ctnas_store_arch_count(st, NULL, &n, &err), 0);
    ASSERT_EQ(n, 0);
    /* The connection's own settings: a WAL cut back past 64 MiB. */
    sqlite3_stmt *q;
    ASSERT(sqlite3_prepare_v2(st->db, "PRAGMA journal_size_limit", -1, &q,
                              NULL) == SQLITE_OK);
    ASSERT(sqlite3_step(q) == SQLITE_ROW);
    ASSERT_EQ(sqlite3_column_int64(q, 0), 67108864);
    sqlite3_finalize(q);
    ctnas_store_close(st);

    /* Persistent settings, seen by an outside connection. */
    ASSERT_EQ(raw_int(t.path, "PRAGMA user_version"), ctnas_n_migrations);
    ASSERT_EQ(raw_int(t.path, "SELECT count(*) FROM sqlite_master WHERE "
                              "name IN ('architectures', 'measurements')"),
              2);
    sqlite3 *db;
    ASSERT(sqlite3_open(t.path, &db) == SQLITE_OK);
    sqlite3_stmt *s;
    ASSERT(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL) ==
           SQLITE_OK);
    ASSERT(sqlite3_step(s) == SQLITE_ROW);
    char mode[16];
    snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
    ASSERT_STREQ(mode, "wal");
    tmpdb_remove(&t);
}

static void test_reopen_is_noop(void)
{
    struct tmpdb t;
    ASSERT(tmpdb_make(&t) == 0);
    struct ctnas_store *st = NULL;
    struct ctnas_err err = { 0 };
    ASSERT_EQ(ctnas_store_open(t.path, CTNAS_STORE_MIGRATE, &st, &err), 0);
    int64_t id;
    ASSERT_EQ(add_arch(st, "nasbench201", 1, &id), 0);
    ctnas_store_close(st);

    /* Again with MIGRATE, then as a later (non-migrating) connection. */
    ASSERT_EQ(ctnas_store_open(t.path, CTNAS_STORE_MIGRATE, &st, &err), 0);
    ASSERT_EQ(ctnas_store_schema_version(st), ctnas_n_migrations);
    int64_t n;
    ASSERT_EQ(ctnas_store_arch_count(st, NULL, &n, &err), 0);
    ASSERT_EQ(n, 1);
    struct ctnas_store *st2 = NULL;
    int r = ctnas_store_open(t.path, 0, &st2, &err);
    ctnas_store_close(st2);
    ctnas_store_close(st);
    ASSERT_MSG(r == 0, "plain open of a current db: %s", err.msg);
    tmpdb_remove(&t);
}

static void test_newer_refused(void)
{
    struct tmpdb t;
    ASSERT(tmpdb_make(&t) == 0);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d",
             ctnas_n_migrations + 1);
    ASSERT(raw_exec(t.path, sql) == SQLITE_OK);

    char want[160];
    snprintf(want, sizeof want,
             "database schema version %d is newer than this ctnasd "
             "supports (%d)", ctnas_n_migrations + 1, ctnas_n_migrations);
    for (int flags = 0; flags <= CTNAS_STORE_MIGRATE; flags++) {
        struct ctnas_store *st = (struct ctnas_store *)&t;  /* poison */
        struct ctnas_err err = { 0 };
        int r = ctnas_store_open(t.path, flags, &st, &err);
        ASSERT_EQ(r, CTNAS_ECONFLICT);
        ASSERT(st == NULL);
        ASSERT_STREQ(err.msg, want);
    }
    /* Refusing must not have touched it. */
    ASSERT_EQ(raw_int(t.path, "PRAGMA user_version"), ctnas_n_migrations + 1);
    tmpdb_remove(&t);
}

/* A database at version latest-1, built by applying the first latest-1
 * migrations by hand (with one migration today that is the empty db at
 * version 0), is refused without MIGRATE and upgraded with it. */
static void test_upgrade_from_previous(void)
{
    struct tmpdb t;
    ASSERT(tmpdb_make(&t) == 0);
    int prev = ctnas_n_migrations - 1;
    for (int i = 0; i < prev; i++) {
        ASSERT(raw_exec(t.path, ctnas_migrations[i].sql) == SQLITE_OK);
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d",
                 ctnas_migrations[i].version);
        ASSERT(raw_exec(t.path, sql) == SQLITE_OK);
    }
    ASSERT_EQ(raw_int(t.path, "PRAGMA user_version"), prev);

    struct ctnas_store *st = NULL;
    struct ctnas_err err = { 0 };
    ASSERT_EQ(ctnas_store_open(t.path, 0, &st, &err), CTNAS_ECONFLICT);
    ASSERT(st == NULL);
    ASSERT(strstr(err.msg, "older") != NULL);
    ASSERT_EQ(raw_int(t.path, "PRAGMA user_version"), prev);

    ASSERT_EQ(ctnas_store_open(t.path, CTNAS_STORE_MIGRATE, &st, &err), 0);
    ASSERT_EQ(ctnas_store_schema_version(st), ctnas_n_migrations);
    int64_t id;
    ASSERT_EQ(add_arch(st, "nasbench201", 7, &id), 0);
    ctnas_store_close(st);
    tmpdb_remove(&t);
}

/* The upgrade to sql/007 frees the checkpoints of jobs that had ended
 * and keeps those a restart resumes from. */
static void test_upgrade_drops_finished_checkpoints(void)
{
    struct tmpdb t;
    ASSERT(tmpdb_make(&t) == 0);
    int v = -1;
    for (int i = 0; i < ctnas_n_migrations; i++) {
        if (strstr(ctnas_migrations[i].name, "drop_finished_checkpoints"))
            break;
        ASSERT(raw_exec(t.path, ctnas_migrations[i].sql) == SQLITE_OK);
        v = ctnas_migrations[i].version;
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v);
    ASSERT(raw_exec(t.path, sql) == SQLITE_OK);
    ASSERT(raw_exec(t.path,
                    "INSERT INTO jobs (id, kind, state, params, created_at,"
                    " updated_at) VALUES (1, 'search', 'succeeded', '{}', 0,"
                    " 0), (2, 'search', 'running', '{}', 0, 0);"
                    "INSERT INTO search_checkpoints (job_id, step, state,"
                    " updated_at) VALUES (1, 5, x'00', 0), (2, 5, x'00', 0)")
           == SQLITE_OK);
    struct ctnas_store *st = NULL;
    struct ctnas_err err = { 0 };
    ASSERT_EQ(ctnas_store_open(t.path, CTNAS_STORE_MIGRATE, &st, &err), 0);
    ctnas_store_close(st);
    int kept = raw_int(t.path, "SELECT group_concat(job_id) FROM "
                               "search_checkpoints");
    tmpdb_remove(&t);
    ASSERT(v >= 6);
    ASSERT_EQ(kept, 2);
}

static void test_not_a_database(void)
{
    struct tmpdb t;
    ASSERT(tmpdb_make(&t) == 0);
    FILE *f = fopen(t.path, "w");
    ASSERT(f != NULL);
    for (int i = 0; i < 200; i++)
        fputs("this is not an sqlite database\n", f);
    fclose(f);
    struct ctnas_store *st = NULL;
    struct ctnas_err err = { 0 };
    int r = ctnas_store_open(t.path, CTNAS_STORE_MIGRATE, &st, &err);
    ASSERT(st == NULL);
    ASSERT_EQ(r, CTNAS_EDB);
    ASSERT(strstr(err.msg, t.path) != NULL);
    tmpdb_remove(&t);

    /* A directory that does not exist: storage unavailable. */
    r = ctnas_store_open("/nonexistent-ctnas-dir/x.db", CTNAS_STORE_MIGRATE,
                         &st, &err);
    ASSERT(st == NULL);
    ASSERT_EQ(r, CTNAS_EREADONLY);
}

/* ":memory:" works too (no WAL there), for tests of other modules. */
static void test_memory_db(void)
{
    struct ctnas_store *st = NULL;
    struct ctnas_err err = { 0 };
    int r = ctnas_store_open(":memory:", CTNAS_STORE_MIGRATE, &st, &err);
    ASSERT_MSG(r == 0, "open :memory: %s", err.msg);
    int64_t id = 0, n = 0;
    int ra = add_arch(st, "s1", 1, &id);
    int rc = ctnas_store_arch_count(st, "s1", &n, &err);
    int rp = ctnas_store_ping(st, &err);
    int v = ctnas_store_schema_version(st);
    ctnas_store_close(st);
    ASSERT_EQ(ra, 0);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(n, 1);
    ASSERT_EQ(rp, 0);
    ASSERT_EQ(v, ctnas_n_migrations);
}

/* ---- catalogue writes ---- */

/* Every test below runs on a fresh migrated file. */
#define WITH_STORE(st, t)                                               \
    struct tmpdb t;                                                     \
    ASSERT(tmpdb_make(&t) == 0);                                        \
    struct ctnas_store *st = NULL;                                      \
    {                                                                   \
        struct ctnas_err oe_ = { 0 };                                   \
        int or_ = ctnas_store_open(t.path, CTNAS_STORE_MIGRATE, &st,    \
                                   &oe_);                               \
        if (or_ != 0) {                                                 \
            tmpdb_remove(&t);                                           \
            TEST_FAIL_("open: %s", oe_.msg);                            \
        }                                                               \
    }

static void test_upsert_idempotent(void)
{
    WITH_STORE(st, t);
    struct ctnas_err err = { 0 };
    int64_t id1 = 0, id2 = 0, id3 = 0;
    int is_new = -1;
    const char *h = "0123456789abcdef0123456789abcdef";
    int r = ctnas_store_arch_upsert(st, "nasbench201", "|a~0|", h, &id1,
                                    &is_new, &err);
    int ok1 = r == 0 && is_new == 1 && id1 > 0;
    r = ctnas_store_arch_upsert(st, "nasbench201", "|a~0|", h, &id2, &is_new,
                                &err);
    int ok2 = r == 0 && is_new == 0 && id2 == id1;
    /* The same hash in another space is another architecture. */
    r = ctnas_store_arch_upsert(st, "nasbench101", "x", h, &id3, &is_new,
                                &err);
    int ok3 = r == 0 && is_new == 1 && id3 != id1;
    int64_t found = 0, n = 0;
    int rf = ctnas_store_arch_find(st, "nasbench201", h, &found, &err);
    int rn = ctnas_store_arch_count(st, "nasbench201", &n, &err);
    int64_t nall = 0;
    ctnas_store_arch_count(st, NULL, &nall, &err);
    int64_t none;
    int rmiss = ctnas_store_arch_find(st, "nasbench201", "ffff", &none, &err);
    /* Input checks name the field. */
    struct ctnas_err e2 = { 0 };
    int rbad = ctnas_store_arch_upsert(st, "nasbench201", "", h, &id2, NULL,
                                       &e2);
    ctnas_store_close(st);
    tmpdb_remove(&t);
    ASSERT(ok1);
    ASSERT(ok2);
    ASSERT(ok3);
    ASSERT_EQ(rf, 0);
    ASSERT_EQ(found, id1);
    ASSERT_EQ(rn, 0);
    ASSERT_EQ(n, 1);
    ASSERT_EQ(nall, 2);
    ASSERT_EQ(rmiss, CTNAS_ENOTFOUND);
    ASSERT_EQ(rbad, CTNAS_EINVAL);
    ASSERT_STREQ(e2.field, "encoding");
}

static void test_meas_idempotent(void)
{
    WITH_STORE(st, t);
    struct ctnas_err err = { 0 };
    int64_t id;
    int r = add_arch(st, "nasbench201", 1, &id);
    struct ctnas_measurement m = meas("cifar10", "test_accuracy", 93.5, 200,
                                      "import");
    int n1 = -1, n2 = -1, n3 = -1, n4 = -1;
    if (r == 0)
        r = ctnas_store_meas_add(st, id, &m, &n1, &err);
    if (r == 0)
        r = ctnas_store_meas_add(st, id, &m, &n2, &err);
    m.epochs = 12;   /* another budget: another measurement */
    if (r == 0)
        r = ctnas_store_meas_add(st, id, &m, &n3, &err);
    /* Empty source means "api". */
    struct ctnas_measurement m2 = meas("cifar100", "test_accuracy", 70.25, 0,
                                       "");
    if (r == 0)
        r = ctnas_store_meas_add(st, id, &m2, &n4, &err);
    if (r == 0)
        r = ctnas_store_meas_add(st, id, &m2, NULL, &err);

    struct ctnas_measurement bad = m;
    bad.value = NAN;
    struct ctnas_err e_nan = { 0 }, e_inf = { 0 }, e_ep = { 0 },
                     e_ds = { 0 };
    int r_nan = ctnas_store_meas_add(st, id, &bad, NULL, &e_nan);
    bad.value = INFINITY;
    int r_inf = ctnas_store_meas_add(st, id, &bad, NULL, &e_inf);
    bad = m;
    bad.epochs = -1;
    int r_ep = ctnas_store_meas_add(st, id, &bad, NULL, &e_ep);
    bad = m;
    bad.dataset[0] = '\0';
    int r_ds = ctnas_store_meas_add(st, id, &bad, NULL, &e_ds);

    struct ctnas_arch_row row;
    int rg = ctnas_store_arch_get(st, id, &row, &err);
    ctnas_store_close(st);
    tmpdb_remove(&t);

    ASSERT_MSG(r == 0, "meas_add: %s", err.msg);
    ASSERT_EQ(n1, 1);
    ASSERT_EQ(n2, 0);
    ASSERT_EQ(n3, 1);
    ASSERT_EQ(n4, 1);
    ASSERT_EQ(r_nan, CTNAS_ENUMERIC);
    ASSERT_STREQ(e_nan.field, "value");
    ASSERT_EQ(r_inf, CTNAS_ENUMERIC);
    ASSERT_EQ(r_ep, CTNAS_EINVAL);
    ASSERT_STREQ(e_ep.field, "epochs");
    ASSERT_EQ(r_ds, CTNAS_EINVAL);
    ASSERT_STREQ(e_ds.field, "dataset");

    ASSERT_EQ(rg, 0);
    int ok = row.n_meas == 3 && row.id == id &&
             strcmp(row.space, "nasbench201") == 0 &&
             strcmp(row.encoding, "arch-1") == 0 && row.created > 0 &&
             row.meas[0].epochs == 200 && row.meas[1].epochs == 12 &&
             strcmp(row.meas[0].source, "import") == 0 &&
             strcmp(row.meas[2].source, "api") == 0 &&
             strcmp(row.meas[2].dataset, "cifar100") == 0 &&
             row.meas[2].value == 70.25 && row.meas[0].created > 0;
    ctnas_store_row_destroy(&row);
    ASSERT(ok);
}

static void test_foreign_key(void)
{
    WITH_STORE(st, t);
    struct ctnas_err err = { 0 };
    struct ctnas_measurement m = meas("cifar10", "acc", 1.0, 0, "api");
    int r = ctnas_store_meas_add(st, 424242, &m, NULL, &err);
    struct ctnas_arch_row row;
    int rg = ctnas_store_arch_get(st, 424242, &row, NULL);
    ctnas_store_close(st);
    int raw = raw_int(t.path, "SELECT count(*) FROM measurements");
    tmpdb_remove(&t);
    ASSERT_EQ(r, CTNAS_ENOTFOUND);
    ASSERT_STREQ(err.field, "arch_id");
    ASSERT_EQ(rg, CTNAS_ENOTFOUND);
    ASSERT_EQ(raw, 0);
}

/* A search job's labelled set lives beside its params (sql/004): the row
 * that polls read does not carry it, the resume path reads it back. */
static void test_job_labels(void)
{
    WITH_STORE(st, t);
    struct ctnas_err err = { 0 };
    json_t *params = json_pack("{s:s}", "space", "nasbench201");
    json_t *ids = json_pack("[I,I,I]", (json_int_t)3, (json_int_t)1,
                            (json_int_t)7);
    int64_t with = 0, without = 0;
    int r1 = ctnas_store_job_insert(st, "search", params, ids, NULL, &with,
                                    &err);
    int r2 = ctnas_store_job_insert(st, "train", params, NULL, NULL,
                                    &without, &err);
    json_t *row = NULL, *back = NULL, *none = json_true();
    int r3 = ctnas_store_job_get(st, with, &row, &err);
    int r4 = ctnas_store_job_labels(st, with, &back, &err);
    int r5 = ctnas_store_job_labels(st, without, &none, &err);
    int r6 = ctnas_store_job_labels(st, with + without + 1, &none, &err);
    ctnas_store_close(st);
    tmpdb_remove(&t);
    ASSERT_EQ(r1, 0);
    ASSERT_EQ(r2, 0);
    ASSERT_EQ(r3, 0);
    ASSERT_EQ(r4, 0);
    ASSERT_EQ(r5, 0);
    ASSERT_EQ(r6, CTNAS_ENOTFOUND);
    ASSERT(json_equal(back, ids));
    ASSERT(none == NULL);
    ASSERT(json_object_get(row, "label_ids") == NULL);
    ASSERT(json_object_get(json_object_get(row, "params"), "label_ids") ==
           NULL);
    json_decref(params);
    json_decref(ids);
    json_decref(row);
    json_decref(back);
}

/* Idempotency keys (sql/005): one job per key, found again with the
 * fingerprint stored beside it; a forgotten key can be used again. */
static void test_job_keys(void)
{
    WITH_STORE(st, t);
    struct ctnas_err err = { 0 }, e2 = { 0 };
    json_t *params = json_pack("{s:s}", "space", "nasbench201");
    struct ctnas_job_key k = { "retry-1", "0123456789abcdef" },
                         other = { "retry-1", "fedcba9876543210" };
    int64_t a = 0, b = 0, found = 0, c = 0, again = 0;
    char hash[33] = "";
    int r1 = ctnas_store_job_insert(st, "train", params, NULL, &k, &a, &err);
    int r2 = ctnas_store_job_insert(st, "search", params, NULL, &other, &b,
                                    &e2);
    int r3 = ctnas_store_job_by_key(st, "retry-1", &found, hash, &err);
    int r4 = ctnas_store_job_by_key(st, "retry-2", &found, hash, NULL);
    int r5 = ctnas_store_job_forget_key(st, a, &err);
    int r6 = ctnas_store_job_by_key(st, "retry-1", &again, hash, NULL);
    int r7 = ctnas_store_job_insert(st, "train", params, NULL, &other, &c,
                                    &err);
    int r8 = ctnas_store_job_by_key(st, "retry-1", &again, hash, &err);
    ctnas_store_close(st);
    tmpdb_remove(&t);
    json_decref(params);
    ASSERT_EQ(r1, 0);
    ASSERT_EQ(r2, CTNAS_ECONFLICT);
    ASSERT_STREQ(e2.field, "Idempotency-Key");
    ASSERT_EQ(b, 0);
    ASSERT_EQ(r3, 0);
    ASSERT_EQ(found, a);
    ASSERT_EQ(r4, CTNAS_ENOTFOUND);
    ASSERT_EQ(r5, 0);
    ASSERT_EQ(r6, CTNAS_ENOTFOUND);
    ASSERT_EQ(r7, 0);
    ASSERT(c > a);
    ASSERT_EQ(r8, 0);
    ASSERT_EQ(again, c);
    ASSERT_STREQ(hash, other.hash);
}

/* --job-retention's sweep: only ended jobs, only those that ended before
 * the cut, at most limit at a time. */
static void test_job_purge_ended(void)
{
    WITH_STORE(st, t);
    struct ctnas_err err = { 0 };
    json_t *params = json_pack("{s:s}", "space", "nasbench201");
    static const char *const ends[] = {"succeeded", "failed", "cancelled"};
    int64_t id[5] = { 0 };
    int r = 0, early = -1, n1 = -1, n2 = -1, n3 = -1;
    for (int i = 0; i < 5; i++)
        r |= ctnas_store_job_insert(st, "train", params, NULL, NULL, &id[i],
                                    &err);
    for (int i = 0; i < 3; i++)
        r |= ctnas_store_job_finish(st, id[i], ends[i], NULL, NULL, &err);
    /* id[3] stays queued; id[4] waits (a search between rounds). */
    r |= ctnas_store_job_finish(st, id[4], "waiting", NULL, NULL, &err);
    double now = ctnas_store_now();
    r |= ctnas_store_job_purge_ended(st, now - 60, 2, &early, &err);
    r |= ctnas_store_job_purge_ended(st, now + 1, 2, &n1, &err);
    r |= ctnas_store_job_purge_ended(st, now + 1, 2, &n2, &err);
    r |= ctnas_store_job_purge_ended(st, now + 1, 2, &n3, &err);
    json_t *row = NULL;
    int left[5];
    for (int i = 0; i < 5; i++) {
        left[i] = ctnas_store_job_get(st, id[i], &row, NULL) == 0;
        json_decref(row);
        row = NULL;
    }
    ctnas_store_close(st);
    tmpdb_remove(&t);
    json_decref(params);
    ASSERT_EQ(r, 0);
    ASSERT_EQ(early, 0);
    ASSERT_EQ(n1, 2);
    ASSERT_EQ(n2, 1);
    ASSERT_EQ(n3, 0);
    ASSERT_EQ(left[0] + left[1] + left[2], 0);
    ASSERT_EQ(left[3], 1);
    ASSERT_EQ(left[4], 1);
}

/* Store NB201 cell i (ops from i's base-5 digits) measured at value. */
static int add_nb201(struct ctnas_store *st, int i, double value,
                     int64_t *id)
{
    struct ctnas_arch a;
    memset(&a, 0, sizeof a);
    a.n = 6;
    for (int e = 0, x = i; e < 6; e++, x /= 5)
        a.ops[e] = (uint8_t)(x % 5);
    char enc[256], h[CTNAS_HASH_LEN];
    ctnas_space_nb201.encode(&a, enc, sizeof enc);
    ctnas_space_nb201.hash(&a, h);
    struct ctnas_measurement m = meas("c10", "acc", value, 0, "t");
    int is_new;
    int rc = ctnas_store_arch_upsert(st, "nasbench201", enc, h, id, &is_new,
                                     NULL);
    return rc < 0 ? rc : ctnas_store_meas_add(st, *id, &m, NULL, NULL);
}

/* A sample of the measured set is the first k of a seeded partial
 * Fisher-Yates shuffle of the whole set in id order (what a training
 * job drew before the sample read only its own rows), values and cells
 * with it; too large a k leaves it empty with the count; rows that do
 * not parse are never drawn: one not drawn leaves the draw over all the
 * ids, one drawn makes it again over the rows that parse. */
static void test_dataset_sample(void)
{
    WITH_STORE(st, t);
    struct ctnas_err err = { 0 };
    int r = 0, n_all = -1, n_big = -1, n_bad = -1;
    int64_t id;
    for (int i = 0; i < 60; i++)
        r |= add_nb201(st, 7 * i + 3, 50.0 + 0.5 * i, &id);
    struct ctnas_dataset all, got, again, big, bad;
    r |= ctnas_dataset_from_store(&all, st, &ctnas_space_nb201, "c10", "acc",
                                  NULL, 0, &err);
    r |= ctnas_dataset_sample_store(&got, st, &ctnas_space_nb201, "c10",
                                    "acc", 12, 42, &n_all, &err);
    r |= ctnas_dataset_sample_store(&again, st, &ctnas_space_nb201, "c10",
                                    "acc", 12, 43, &n_all, &err);
    r |= ctnas_dataset_sample_store(&big, st, &ctnas_space_nb201, "c10",
                                    "acc", 61, 42, &n_big, &err);
    /* One row this build cannot parse (as after a downgrade), id 61. */
    struct ctnas_measurement m = meas("c10", "acc", 99.0, 0, "t");
    struct ctnas_dataset one_bad;
    int n_one = -1;
    r |= add_arch(st, "nasbench201", 999, &id);
    r |= ctnas_store_meas_add(st, id, &m, NULL, NULL);
    int64_t bad_id = id;
    r |= ctnas_dataset_sample_store(&one_bad, st, &ctnas_space_nb201, "c10",
                                    "acc", 5, 1, &n_one, &err);
    for (int i = 0; i < 30; i++) {
        r |= add_arch(st, "nasbench201", 1000 + i, &id);
        r |= ctnas_store_meas_add(st, id, &m, NULL, NULL);
    }
    r |= ctnas_dataset_sample_store(&bad, st, &ctnas_space_nb201, "c10",
                                    "acc", 50, 42, &n_bad, &err);
    ctnas_store_close(st);
    tmpdb_remove(&t);
    ASSERT_EQ(r, 0);
    ASSERT_EQ(all.n, 60);
    ASSERT_EQ(n_all, 60);
    int64_t all_ids[60];
    memcpy(all_ids, all.ids, sizeof all_ids);
    /* The expected draw, on the whole set. */
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, 42 ^ 0x5eed5eedULL);
    for (int i = 0; i < 12; i++) {
        int j = i + (int)ctnas_rng_below(&rng, (uint32_t)(60 - i));
        int64_t tid = all.ids[i];
        double tv = all.values[i];
        struct ctnas_arch ta = all.archs[i];
        all.ids[i] = all.ids[j];
        all.values[i] = all.values[j];
        all.archs[i] = all.archs[j];
        all.ids[j] = tid;
        all.values[j] = tv;
        all.archs[j] = ta;
    }
    ASSERT_EQ(got.n, 12);
    int same_seed_other = 1;
    for (int i = 0; i < 12; i++) {
        ASSERT_EQ(got.ids[i], all.ids[i]);
        ASSERT(got.values[i] == all.values[i]);
        ASSERT(memcmp(got.archs[i].ops, all.archs[i].ops, 6) == 0);
        same_seed_other &= again.ids[i] == got.ids[i];
    }
    ASSERT(!same_seed_other);
    ASSERT_EQ(big.n, 0);
    ASSERT_EQ(n_big, 60);
    /* Seed 1 draws 5 of the 61 ids without the bad one: the draw over
     * all 61, parsed rows only. */
    ASSERT_EQ(n_one, 61);
    ASSERT_EQ(one_bad.n, 5);
    ctnas_rng_seed(&rng, 1 ^ 0x5eed5eedULL);
    int64_t ids61[61];
    for (int i = 0; i < 61; i++)
        ids61[i] = i < 60 ? all_ids[i] : bad_id;
    for (int i = 0; i < 5; i++) {
        int j = i + (int)ctnas_rng_below(&rng, (uint32_t)(61 - i));
        int64_t tmp = ids61[i];
        ids61[i] = ids61[j];
        ids61[j] = tmp;
        ASSERT_EQ(one_bad.ids[i], ids61[i]);
        ASSERT(one_bad.ids[i] != bad_id);
    }
    ASSERT_EQ(bad.n, 50);
    ASSERT_EQ(n_bad, 60);
    for (int i = 0; i < bad.n; i++)
        ASSERT(bad.values[i] < 99.0);
    for (int i = 1; i < bad.n; i++)
        for (int j = 0; j < i; j++)
            ASSERT(bad.ids[i] != bad.ids[j]);
    ctnas_dataset_destroy(&all);
    ctnas_dataset_destroy(&got);
    ctnas_dataset_destroy(&again);
    ctnas_dataset_destroy(&big);
    ctnas_dataset_destroy(&bad);
    ctnas_dataset_destroy(&one_bad);
}

/* What arrived after a mark: the architectures with a measurement on the
 * dataset and metric stored since, each with the mean of all of them (an
 * older one included), in id order; a measurement deleted after the mark
 * is not stored since, and the next one, whose id the mark never covers,
 * is (sql/006). */
static void test_measured_since_mark(void)
{
    WITH_STORE(st, t);
    struct ctnas_err err = { 0 };
    int r = 0;
    int64_t id[4], m0 = -1, m1 = -1, m2 = -1;
    for (int i = 0; i < 3; i++)
        r |= add_nb201(st, i + 1, 50.0 + i, &id[i]);
    r |= ctnas_store_measurement_mark(st, &m0, &err);
    struct ctnas_dataset none, two, after_delete, last;
    r |= ctnas_dataset_since_store(&none, st, &ctnas_space_nb201, "c10",
                                   "acc", m0, &err);
    r |= add_nb201(st, 9, 60.0, &id[3]);
    struct ctnas_measurement again = meas("c10", "acc", 70.0, 0, "t");
    struct ctnas_measurement other = meas("c100", "acc", 10.0, 0, "t");
    r |= ctnas_store_meas_add(st, id[0], &again, NULL, &err);
    r |= ctnas_store_meas_add(st, id[1], &other, NULL, &err);
    r |= ctnas_dataset_since_store(&two, st, &ctnas_space_nb201, "c10",
                                   "acc", m0, &err);
    r |= ctnas_store_measurement_mark(st, &m1, &err);
    /* the newest measurement deleted: its id stays taken */
    struct ctnas_arch_row row;
    r |= ctnas_store_arch_get(st, id[3], &row, &err);
    int64_t newest = row.n_meas == 1 ? row.meas[0].id : 0;
    ctnas_store_row_destroy(&row);
    r |= ctnas_store_meas_delete(st, id[3], newest, &err);
    r |= ctnas_store_measurement_mark(st, &m2, &err);
    r |= ctnas_dataset_since_store(&after_delete, st, &ctnas_space_nb201,
                                   "c10", "acc", m1, &err);
    struct ctnas_measurement back = meas("c10", "acc", 61.0, 0, "t");
    r |= ctnas_store_meas_add(st, id[3], &back, NULL, &err);
    r |= ctnas_dataset_since_store(&last, st, &ctnas_space_nb201, "c10",
                                   "acc", m1, &err);
    ctnas_store_close(st);
    tmpdb_remove(&t);
    ASSERT_EQ(r, 0);
    ASSERT(m0 >= 3);
    ASSERT_EQ(none.n, 0);
    ASSERT_EQ(two.n, 2);
    ASSERT_EQ(two.ids[0], id[0]);
    ASSERT(two.values[0] == 60.0); /* (50 + 70) / 2 */
    ASSERT_EQ(two.ids[1], id[3]);
    ASSERT(two.values[1] == 60.0);
    ASSERT(m1 > m0);
    ASSERT_EQ(m2, m1);
    ASSERT_EQ(after_delete.n, 0);
    ASSERT_EQ(last.n, 1);
    ASSERT_EQ(last.ids[0], id[3]);
    ASSERT(last.values[0] == 61.0);
    ctnas_dataset_destroy(&none);
    ctnas_dataset_destroy(&two);
    ctnas_dataset_destroy(&after_delete);
    ctnas_dataset_destroy(&last);
}

/* Deleting: a measurement (the mean follows), a whole architecture (its
 * measurements go with it), and no id is ever handed out again (sql/006),
 * even when the newest row is the one deleted. */
static void test_delete(void)
{
    WITH_STORE(st, t);
    struct ctnas_err err = { 0 }, e1 = { 0 }, e2 = { 0 }, e3 = { 0 };
    int64_t a, b, c = 0;
    struct ctnas_measurement good = meas("c10", "acc", 90.0, 0, "api");
    struct ctnas_measurement typo = meas("c10", "acc", 9.0, 0, "api");
    struct ctnas_measurement more = meas("c10", "acc", 92.0, 0, "api");
    int r = add_arch(st, "nasbench201", 1, &a);
    r |= add_arch(st, "nasbench201", 2, &b);
    r |= ctnas_store_meas_add(st, a, &good, NULL, &err);
    r |= ctnas_store_meas_add(st, a, &typo, NULL, &err);
    r |= ctnas_store_meas_add(st, b, &more, NULL, &err);
    struct ctnas_arch_row row;
    r |= ctnas_store_arch_get(st, a, &row, &err);
    int n0 = row.n_meas;
    int64_t typo_id = row.n_meas == 2 ? row.meas[1].id : 0;
    int64_t good_id = row.n_meas == 2 ? row.meas[0].id : 0;
    ctnas_store_row_destroy(&row);
    int rd = ctnas_store_meas_delete(st, a, typo_id, &err);
    int again = ctnas_store_meas_delete(st, a, typo_id, &e1);
    int other = ctnas_store_meas_delete(st, b, good_id, NULL);
    int noarch = ctnas_store_meas_delete(st, 999, good_id, &e2);
    r |= ctnas_store_arch_get(st, a, &row, &err);
    int n1 = row.n_meas;
    ctnas_store_row_destroy(&row);
    /* The newest measurement and architecture go; new rows get new ids. */
    int n_meas = -1;
    struct ctnas_measurement last = meas("c10", "acc", 50.0, 0, "api");
    r |= ctnas_store_meas_add(st, b, &last, NULL, &err);
    r |= ctnas_store_arch_get(st, b, &row, &err);
    int64_t last_id = row.n_meas == 2 ? row.meas[1].id : 0;
    ctnas_store_row_destroy(&row);
    int rdl = ctnas_store_meas_delete(st, b, last_id, &err);
    int ra = ctnas_store_arch_delete(st, b, &n_meas, &err);
    int ra2 = ctnas_store_arch_delete(st, b, NULL, &e3);
    int rn = add_arch(st, "nasbench201", 3, &c);
    rn |= ctnas_store_meas_add(st, c, &last, NULL, &err);
    int64_t new_meas = 0;
    rn |= ctnas_store_arch_get(st, c, &row, &err);
    if (row.n_meas == 1)
        new_meas = row.meas[0].id;
    ctnas_store_row_destroy(&row);
    ctnas_store_close(st);
    double mean = -1;
    {
        sqlite3 *db = NULL;
        sqlite3_stmt *s = NULL;
        if (sqlite3_open(t.path, &db) == SQLITE_OK &&
            sqlite3_prepare_v2(db, "SELECT mean FROM arch_scores WHERE "
                               "arch_id = 1", -1, &s, NULL) == SQLITE_OK &&
            sqlite3_step(s) == SQLITE_ROW)
            mean = sqlite3_column_double(s, 0);
        sqlite3_finalize(s);
        sqlite3_close(db);
    }
    int left = raw_int(t.path, "SELECT count(*) FROM measurements WHERE "
                               "arch_id NOT IN (SELECT id FROM "
                               "architectures)");
    tmpdb_remove(&t);
    ASSERT_EQ(r, 0);
    ASSERT_EQ(n0, 2);
    ASSERT(typo_id > good_id);
    ASSERT_EQ(rd, 0);
    ASSERT_EQ(again, CTNAS_ENOTFOUND);
    ASSERT_STREQ(e1.field, "measurement_id");
    ASSERT_EQ(other, CTNAS_ENOTFOUND);   /* not b's measurement */
    ASSERT_EQ(noarch, CTNAS_ENOTFOUND);
    ASSERT_STREQ(e2.field, "id");
    ASSERT_EQ(n1, 1);
    ASSERT(mean > 89.99 && mean < 90.01);
    ASSERT_EQ(rdl, 0);
    ASSERT_EQ(ra, 0);
    ASSERT_EQ(n_meas, 1);
    ASSERT_EQ(ra2, CTNAS_ENOTFOUND);
    ASSERT_STREQ(e3.field, "id");
    ASSERT_EQ(rn, 0);
    ASSERT(a == 1 && b == 2);
    ASSERT_EQ(c, 3);            /* not 2, the deleted newest */
    ASSERT(new_meas > last_id);
    ASSERT_EQ(left, 0);
}

/* sql/007: a job's checkpoint goes when the job ends, whatever path
 * ends it, and stays while the job waits or runs again. */
static void test_checkpoint_dropped(void)
{
    WITH_STORE(st, t);
    struct ctnas_err err = { 0 };
    json_t *params = json_object(), *extra = json_object();
    static const unsigned char blob[4] = {1, 2, 3, 4};
    int64_t a = 0, b = 0, c = 0;
    int r = ctnas_store_job_insert(st, "search", params, NULL, NULL, &a,
                                   &err);
    r |= ctnas_store_job_insert(st, "search", params, NULL, NULL, &b, &err);
    r |= ctnas_store_job_insert(st, "search", params, NULL, NULL, &c, &err);
    for (int64_t id = a; id <= c; id++)
        r |= ctnas_store_checkpoint_put(st, id, 10, blob, sizeof blob,
                                        extra, &err);
    r |= ctnas_store_job_finish(st, a, "waiting", NULL, NULL, &err);
    r |= ctnas_store_job_finish(st, a, "running", NULL, NULL, &err);
    r |= ctnas_store_job_finish(st, a, "waiting", NULL, NULL, &err);
    int kept = raw_int(t.path, "SELECT count(*) FROM search_checkpoints");
    r |= ctnas_store_job_finish(st, b, "succeeded", NULL, NULL, &err);
    int after_b = raw_int(t.path, "SELECT group_concat(job_id, '') FROM "
                                  "search_checkpoints");
    int n_failed = 0;
    r |= ctnas_store_job_fail_interrupted(st, "search", "stopped",
                                          &n_failed, &err);
    ctnas_store_close(st);
    int left = raw_int(t.path, "SELECT count(*) FROM search_checkpoints");
    tmpdb_remove(&t);
    json_decref(params);
    json_decref(extra);
    ASSERT_MSG(r == 0, "%s", err.msg);
    ASSERT_EQ(kept, 3);
    ASSERT_EQ(after_b, 13);          /* a and c */
    ASSERT_EQ(n_failed, 2);          /* a (waiting) and c (queued) */
    ASSERT_EQ(left, 0);
}

static void test_rollback(void)
{
    WITH_STORE(st, t);
    struct ctnas_err err = { 0 };
    int64_t keep, id;
    int r = add_arch(st, "nasbench201", 1, &keep);
    int rb = ctnas_store_begin(st, &err);
    int rb2 = ctnas_store_begin(st, NULL);   /* no nesting */
    for (int i = 2; r == 0 && i < 20; i++) {
        r = add_arch(st, "nasbench201", i, &id);
        struct ctnas_measurement m = meas("cifar10", "acc", i, 0, "api");
        if (r == 0)
            r = ctnas_store_meas_add(st, id, &m, NULL, &err);
    }
    ctnas_store_rollback(st);
    ctnas_store_rollback(st);   /* harmless when none is open */
    int64_t n = -1;
    ctnas_store_arch_count(st, NULL, &n, &err);
    int64_t gone;
    int rf = ctnas_store_arch_find(st, "nasbench201",
                                   "00000000000000000000000000000005", &gone,
                                   NULL);
    /* And a committed one stays. */
    int rc1 = ctnas_store_begin(st, &err);
    int64_t id2;
    int ra = add_arch(st, "nasbench201", 99, &id2);
    int rc2 = ctnas_store_commit(st, &err);
    int rc3 = ctnas_store_commit(st, NULL);  /* nothing open */
    int64_t n2 = -1;
    ctnas_store_arch_count(st, NULL, &n2, &err);
    ctnas_store_close(st);
    int raw = raw_int(t.path, "SELECT count(*) FROM measurements");
    tmpdb_remove(&t);
    ASSERT_EQ(r, 0);
    ASSERT_EQ(rb, 0);
    ASSERT(rb2 != 0);
    ASSERT_EQ(n, 1);
    ASSERT_EQ(rf, CTNAS_ENOTFOUND);
    ASSERT_EQ(raw, 0);
    ASSERT_EQ(rc1, 0);
    ASSERT_EQ(ra, 0);
    ASSERT_EQ(rc2, 0);
    ASSERT(rc3 != 0);
    ASSERT_EQ(n2, 2);
}

/* ---- listing ---- */

struct expect {
    int64_t id;
    double mean;   /* of the measurements that order the listing */
};

static int by_mean_desc(const void *pa, const void *pb)
{
    const struct expect *a = pa, *b = pb;
    if (a->mean != b->mean)
        return a->mean > b->mean ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static int by_mean_asc(const void *pa, const void *pb)
{
    const struct expect *a = pa, *b = pb;
    if (a->mean != b->mean)
        return a->mean < b->mean ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Walk every page of q and compare the ids, in order, with want[0..n).
 * Returns 0 or prints the first difference. */
static int walk(struct ctnas_store *st, struct ctnas_arch_query q,
                const struct expect *want, int n, int check_meas)
{
    char cursor[128] = "";
    int seen = 0, pages = 0;
    for (;;) {
        struct ctnas_arch_row *rows;
        int cnt;
        int64_t total;
        char next[128];
        struct ctnas_err err = { 0 };
        q.cursor = cursor[0] ? cursor : NULL;
        int r = ctnas_store_arch_list(st, &q, &rows, &cnt, &total, next,
                                      &err);
        if (r != 0) {
            printf("# list: %s\n", err.msg);
            return -1;
        }
        pages++;
        int bad = total != n || cnt > q.limit ||
                  (next[0] != '\0') != (seen + cnt < n) ||
                  (next[0] != '\0' && cnt != q.limit);
        for (int i = 0; !bad && i < cnt; i++) {
            if (seen + i >= n || rows[i].id != want[seen + i].id) {
                printf("# position %d: got id %" PRId64 ", want %" PRId64
                       "\n", seen + i, rows[i].id,
                       seen + i < n ? want[seen + i].id : -1);
                bad = 1;
            }
            if (check_meas && rows[i].n_meas < 1)
                bad = 1;
        }
        ctnas_store_rows_free(rows, cnt);
        if (bad) {
            printf("# page %d: cnt %d total %" PRId64 " next '%s' seen %d\n",
                   pages, cnt, total, next, seen);
            return -1;
        }
        seen += cnt;
        if (next[0] == '\0')
            break;
        snprintf(cursor, sizeof cursor, "%s", next);
    }
    if (seen != n) {
        printf("# saw %d of %d\n", seen, n);
        return -1;
    }
    return 0;
}

#define N_LIST 250

/* What fill_catalogue stored about architecture i. */
struct cat_arch {
    int64_t id;
    int s1;           /* in space "s1" (else "s2") */
    int on_c10;       /* measured on cifar10 */
    double c10_acc;   /* mean of cifar10/acc */
    double c10_any;   /* mean of every cifar10 measurement */
    double c100;      /* its one cifar100/acc value */
};

/* 250 architectures in two spaces.  On cifar10/acc most have one or two
 * measurements whose mean takes few distinct values (ties across page
 * boundaries); every 10th has none there; some also have a cifar10/loss,
 * so "any metric" of cifar10 differs from acc.  All have one cifar100/acc
 * (a single-metric dataset).  Values are multiples of 1/8, so sums are
 * exact and C and SQLite agree on every mean. */
static int fill_catalogue(struct ctnas_store *st, struct cat_arch *cat)
{
    struct ctnas_err err;
    if (ctnas_store_begin(st, &err) != 0)
        return -1;
    for (int i = 0; i < N_LIST; i++) {
        struct cat_arch *c = &cat[i];
        memset(c, 0, sizeof *c);
        c->s1 = i % 3 == 0;
        if (add_arch(st, c->s1 ? "s1" : "s2", i, &c->id) != 0)
            return -1;
        c->c100 = (i * 7) % 13;
        struct ctnas_measurement m = meas("cifar100", "acc", c->c100, 0,
                                          "api");
        if (ctnas_store_meas_add(st, c->id, &m, NULL, &err) != 0)
            return -1;
        if (i % 10 == 0)
            continue;
        c->on_c10 = 1;
        double v1 = (i % 9) * 0.125, sum = v1;
        int cnt = 1;
        m = meas("cifar10", "acc", v1, 0, "api");
        if (ctnas_store_meas_add(st, c->id, &m, NULL, &err) != 0)
            return -1;
        if (i % 4 == 1) {
            /* A second seed: mean (v1 + v2) / 2, another tie value. */
            m = meas("cifar10", "acc", v1 + 0.25, 1, "api");
            if (ctnas_store_meas_add(st, c->id, &m, NULL, &err) != 0)
                return -1;
            sum += v1 + 0.25;
            cnt++;
        }
        c->c10_acc = sum / cnt;
        if (i % 5 == 1) {
            m = meas("cifar10", "loss", 0.5, 0, "api");
            if (ctnas_store_meas_add(st, c->id, &m, NULL, &err) != 0)
                return -1;
            sum += 0.5;
            cnt++;
        }
        c->c10_any = sum / cnt;
    }
    return ctnas_store_commit(st, &err);
}

enum cat_key { KEY_ID, KEY_C10_ACC, KEY_C10_ANY, KEY_C100 };

/* The expected listing: the architectures passing the filters (on_c10
 * when need_c10, space s1 when only_s1) in the given order. */
static int expected(const struct cat_arch *cat, int need_c10, int only_s1,
                    enum cat_key key, int order, struct expect *out)
{
    int n = 0;
    for (int i = 0; i < N_LIST; i++) {
        if ((need_c10 && !cat[i].on_c10) || (only_s1 && !cat[i].s1))
            continue;
        out[n].id = cat[i].id;
        out[n].mean = key == KEY_C10_ACC ? cat[i].c10_acc
                      : key == KEY_C10_ANY ? cat[i].c10_any
                      : key == KEY_C100 ? cat[i].c100 : 0;
        n++;
    }
    if (order == CTNAS_ORDER_METRIC_DESC)
        qsort(out, (size_t)n, sizeof *out, by_mean_desc);
    else if (order == CTNAS_ORDER_METRIC_ASC)
        qsort(out, (size_t)n, sizeof *out, by_mean_asc);
    return n;
}

static void test_list_id_pages(void)
{
    WITH_STORE(st, t);
    struct cat_arch cat[N_LIST];
    struct expect want[N_LIST];
    int rfill = fill_catalogue(st, cat);
    int rs[6] = { -1, -1, -1, -1, -1, -1 };
    if (rfill == 0) {
        struct ctnas_arch_query q = { .order = CTNAS_ORDER_ID, .limit = 7 };
        int n = expected(cat, 0, 0, KEY_ID, CTNAS_ORDER_ID, want);
        rs[0] = walk(st, q, want, n, 1);
        /* With a dataset filter: only archs measured on it. */
        q.dataset = "cifar10";
        n = expected(cat, 1, 0, KEY_ID, CTNAS_ORDER_ID, want);
        rs[1] = walk(st, q, want, n, 1);
        q.metric = "acc";
        rs[2] = walk(st, q, want, n, 1);
        q.space = "s1";
        n = expected(cat, 1, 1, KEY_ID, CTNAS_ORDER_ID, want);
        rs[3] = walk(st, q, want, n, 1);
        /* One page holding everything has no next cursor; nor has a page
         * exactly as long as what is left. */
        struct ctnas_arch_query q2 = { .order = CTNAS_ORDER_ID,
                                       .limit = 1000 };
        n = expected(cat, 0, 0, KEY_ID, CTNAS_ORDER_ID, want);
        rs[4] = walk(st, q2, want, n, 1);
        q2.limit = N_LIST;
        rs[5] = walk(st, q2, want, n, 1);
    }
    ctnas_store_close(st);
    tmpdb_remove(&t);
    ASSERT_EQ(rfill, 0);
    for (int i = 0; i < 6; i++)
        ASSERT_MSG(rs[i] == 0, "walk %d failed", i);
}

static void test_list_metric_pages(void)
{
    WITH_STORE(st, t);
    struct cat_arch cat[N_LIST];
    struct expect want[N_LIST];
    int rfill = fill_catalogue(st, cat);
    /* dataset, metric, only s1, key, order, limit */
    static const struct {
        const char *dataset, *metric;
        int s1;
        enum cat_key key;
        int order, limit;
    } cases[] = {
        { "cifar10", "acc", 0, KEY_C10_ACC, CTNAS_ORDER_METRIC_DESC, 7 },
        { "cifar10", "acc", 0, KEY_C10_ACC, CTNAS_ORDER_METRIC_ASC, 7 },
        { "cifar10", "acc", 1, KEY_C10_ACC, CTNAS_ORDER_METRIC_ASC, 7 },
        { "cifar10", "acc", 1, KEY_C10_ACC, CTNAS_ORDER_METRIC_DESC, 4 },
        /* Page sizes 1 and 3 cross every tie boundary differently. */
        { "cifar10", "acc", 0, KEY_C10_ACC, CTNAS_ORDER_METRIC_DESC, 1 },
        { "cifar10", "acc", 0, KEY_C10_ACC, CTNAS_ORDER_METRIC_DESC, 3 },
        /* Every metric of cifar10 (acc and loss): the GROUP BY path. */
        { "cifar10", NULL, 0, KEY_C10_ANY, CTNAS_ORDER_METRIC_DESC, 7 },
        { "cifar10", NULL, 0, KEY_C10_ANY, CTNAS_ORDER_METRIC_ASC, 5 },
        { "cifar10", NULL, 1, KEY_C10_ANY, CTNAS_ORDER_METRIC_DESC, 7 },
        /* Every metric of cifar100, which has one: the stored means. */
        { "cifar100", NULL, 0, KEY_C100, CTNAS_ORDER_METRIC_DESC, 7 },
        { "cifar100", NULL, 1, KEY_C100, CTNAS_ORDER_METRIC_ASC, 6 },
        { "cifar100", "acc", 0, KEY_C100, CTNAS_ORDER_METRIC_ASC, 9 },
    };
    enum { NC = sizeof cases / sizeof cases[0] };
    int rs[NC];
    for (int i = 0; i < NC; i++) {
        rs[i] = -1;
        if (rfill != 0)
            continue;
        struct ctnas_arch_query q = {
            .space = cases[i].s1 ? "s1" : NULL,
            .dataset = cases[i].dataset, .metric = cases[i].metric,
            .order = cases[i].order, .limit = cases[i].limit,
        };
        int n = expected(cat, cases[i].key != KEY_C100, cases[i].s1,
                         cases[i].key, cases[i].order, want);
        rs[i] = walk(st, q, want, n, 1);
    }
    ctnas_store_close(st);
    tmpdb_remove(&t);
    ASSERT_EQ(rfill, 0);
    for (int i = 0; i < NC; i++)
        ASSERT_MSG(rs[i] == 0, "case %d failed", i);
}

/* Rows carry all their measurements, and "any metric" of a dataset means
 * the mean over every metric there. */
static void test_list_rows_and_any_metric(void)
{
    WITH_STORE(st, t);
    struct ctnas_err err = { 0 };
    int64_t a, b;
    int r = add_arch(st, "s1", 1, &a);
    if (r == 0)
        r = add_arch(st, "s1", 2, &b);
    struct ctnas_measurement ms[] = {
        meas("cifar10", "acc", 0.5, 0, "api"),     /* a */
        meas("imagenet", "acc", 0.9, 0, "api"),    /* a */
        meas("cifar10", "loss", 3.0, 0, "api"),    /* a: any-metric 1.75 */
        meas("cifar10", "acc", 0.75, 0, "api"),    /* b: any-metric 0.75 */
    };
    for (int i = 0; r == 0 && i < 4; i++)
        r = ctnas_store_meas_add(st, i < 3 ? a : b, &ms[i], NULL, &err);

    struct ctnas_arch_row *rows = NULL;
    int n = 0;
    int64_t total = 0;
    char next[128];
    struct ctnas_arch_query q = { .dataset = "cifar10", .metric = "acc",
                                  .order = CTNAS_ORDER_METRIC_DESC,
                                  .limit = 10 };
    int r1 = r ? r : ctnas_store_arch_list(st, &q, &rows, &n, &total, next,
                                           &err);
    int ok1 = r1 == 0 && n == 2 && total == 2 && next[0] == '\0' &&
              rows[0].id == b && rows[1].id == a && rows[1].n_meas == 3 &&
              strcmp(rows[1].meas[1].dataset, "imagenet") == 0 &&
              rows[0].n_meas == 1;
    ctnas_store_rows_free(rows, n);
    q.metric = NULL;
    int r2 = r ? r : ctnas_store_arch_list(st, &q, &rows, &n, &total, next,
                                           &err);
    int ok2 = r2 == 0 && n == 2 && total == 2 && rows[0].id == a &&
              rows[1].id == b;
    ctnas_store_rows_free(rows, n);
    /* A metric filter alone (no dataset) in id order. */
    struct ctnas_arch_query q3 = { .metric = "loss", .limit = 10 };
    int r3 = r ? r : ctnas_store_arch_list(st, &q3, &rows, &n, &total, next,
                                           &err);
    int ok3 = r3 == 0 && n == 1 && total == 1 && rows[0].id == a;
    ctnas_store_rows_free(rows, n);
    /* An unknown dataset: an empty page, not an error. */
    q.dataset = "nope";
    int r4 = r ? r : ctnas_store_arch_list(st, &q, &rows, &n, &total, next,
                                           &err);
    int ok4 = r4 == 0 && n == 0 && total == 0 && next[0] == '\0';
    ctnas_store_rows_free(rows, n);
    ctnas_store_close(st);
    tmpdb_remove(&t);
    ASSERT_MSG(r == 0, "setup: %s", err.msg);
    ASSERT(ok1);
    ASSERT(ok2);
    ASSERT(ok3);
    ASSERT(ok4);
}

/* arch_scores, kept by triggers, always equals a fresh aggregate of
 * measurements: after inserts, after a cascade delete of an architecture
 * and a delete of single measurements; updates are refused. */
static void test_scores_follow_measurements(void)
{
    WITH_STORE(st, t);
    struct cat_arch cat[N_LIST];
    int rfill = fill_catalogue(st, cat);
    ctnas_store_close(st);
    static const char diff[] =
        "SELECT count(*) FROM (SELECT arch_id, dataset, metric, mean"
        " FROM arch_scores EXCEPT SELECT m.arch_id, m.dataset, m.metric,"
        " avg(m.value) FROM measurements m GROUP BY 1, 2, 3) ";
    static const char diff2[] =
        "SELECT (SELECT count(*) FROM arch_scores) - (SELECT count(*) FROM"
        " (SELECT DISTINCT arch_id, dataset, metric FROM measurements))";
    int d0 = raw_int(t.path, diff), c0 = raw_int(t.path, diff2);
    int n0 = raw_int(t.path, "SELECT count(*) FROM arch_scores");
    int rd = raw_exec(t.path, "PRAGMA foreign_keys = ON;"
                              " DELETE FROM architectures WHERE id % 7 = 3;"
                              " DELETE FROM measurements WHERE id % 5 = 0;");
    int d1 = raw_int(t.path, diff), c1 = raw_int(t.path, diff2);
    int orphans = raw_int(t.path, "SELECT count(*) FROM arch_scores WHERE"
                                  " arch_id NOT IN (SELECT id FROM"
                                  " architectures)");
    int n1 = raw_int(t.path, "SELECT count(*) FROM arch_scores");
    int ru = raw_exec(t.path, "UPDATE measurements SET value = 1");
    tmpdb_remove(&t);
    ASSERT_EQ(rfill, 0);
    ASSERT(n0 > N_LIST);
    ASSERT_EQ(d0, 0);
    ASSERT_EQ(c0, 0);
    ASSERT_EQ(rd, SQLITE_OK);
    ASSERT(n1 < n0);
    ASSERT_EQ(d1, 0);
    ASSERT_EQ(c1, 0);
    ASSERT_EQ(orphans, 0);
    ASSERT(ru != SQLITE_OK);
}

static int list_err(struct ctnas_store *st, struct ctnas_arch_query q,
                    struct ctnas_err *err)
{
    struct ctnas_arch_row *rows = (struct ctnas_arch_row *)err;  /* poison */
    int n = -1;
    int64_t total = -1;
    char next[128] = "x";
    int r = ctnas_store_arch_list(st, &q, &rows, &n, &total, next, err);
    if (r != 0 && (rows != NULL || n != 0 || next[0] != '\0'))
        return 999;   /* failure must leave clean outputs */
    ctnas_store_rows_free(rows, n);
    return r;
}

static void test_list_bad_input(void)
{
    WITH_STORE(st, t);
    struct cat_arch cat[N_LIST];
    int rfill = fill_catalogue(st, cat);

    /* A real cursor of a metric_desc listing on cifar10/acc. */
    struct ctnas_arch_query q = { .dataset = "cifar10", .metric = "acc",
                                  .order = CTNAS_ORDER_METRIC_DESC,
                                  .limit = 5 };
    struct ctnas_arch_row *rows = NULL;
    int n = 0;
    int64_t total;
    char good[128] = "";
    struct ctnas_err err = { 0 };
    int r0 = ctnas_store_arch_list(st, &q, &rows, &n, &total, good, &err);
    ctnas_store_rows_free(rows, n);

    struct ctnas_err e[12];
    memset(e, 0, sizeof e);
    int rs[12];
    struct ctnas_arch_query b = q;
    b.limit = 0;
    rs[0] = list_err(st, b, &e[0]);
    b.limit = 1001;
    rs[1] = list_err(st, b, &e[1]);
    b = q;
    b.dataset = NULL;
    rs[2] = list_err(st, b, &e[2]);
    b = q;
    b.cursor = "zzz";
    rs[3] = list_err(st, b, &e[3]);
    /* Same cursor, other order. */
    b = q;
    b.cursor = good;
    b.order = CTNAS_ORDER_METRIC_ASC;
    rs[4] = list_err(st, b, &e[4]);
    b.order = CTNAS_ORDER_ID;
    rs[5] = list_err(st, b, &e[5]);
    /* Same cursor, other filters. */
    b = q;
    b.cursor = good;
    b.dataset = "cifar100";
    rs[6] = list_err(st, b, &e[6]);
    /* Non-canonical spellings of a valid cursor. */
    char upper[128];
    snprintf(upper, sizeof upper, "%s", good);
    for (char *p = upper; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    b = q;
    b.cursor = upper;
    rs[7] = list_err(st, b, &e[7]);
    char trailing[140];
    snprintf(trailing, sizeof trailing, "%s ", good);
    b.cursor = trailing;
    rs[8] = list_err(st, b, &e[8]);
    b.order = 7;
    b.cursor = NULL;
    rs[9] = list_err(st, b, &e[9]);
    /* Hand-made variants: unknown tag, id with a leading zero, id past
     * int64, a NaN mean. */
    char bad[4][160];
    snprintf(bad[0], sizeof bad[0], "x%s", good + 1);
    snprintf(bad[1], sizeof bad[1], "%.28s0%s", good, good + 28);
    snprintf(bad[2], sizeof bad[2], "%.28s9223372036854775808", good);
    snprintf(bad[3], sizeof bad[3], "%.11s7ff8000000000000%s", good,
             good + 27);
    int rbad[4];
    struct ctnas_err ebad[4];
    b = q;
    for (int i = 0; i < 4; i++) {
        b.cursor = bad[i];
        rbad[i] = list_err(st, b, &ebad[i]);
    }
    /* The same with an int64-sized id is well-formed (an empty page). */
    char big[160];
    snprintf(big, sizeof big, "%.28s9223372036854775807", good);
    b.cursor = big;
    int rbig = list_err(st, b, &e[11]);
    /* The untouched cursor still works. */
    b = q;
    b.cursor = good;
    rs[10] = list_err(st, b, &e[10]);
    ctnas_store_close(st);
    tmpdb_remove(&t);

    ASSERT_EQ(rfill, 0);
    ASSERT_MSG(r0 == 0 && good[0] != '\0', "first page: %s", err.msg);
    for (int i = 0; i <= 1; i++) {
        ASSERT_EQ(rs[i], CTNAS_EINVAL);
        ASSERT_STREQ(e[i].field, "limit");
    }
    ASSERT_EQ(rs[2], CTNAS_EINVAL);
    ASSERT_STREQ(e[2].field, "dataset");
    for (int i = 3; i <= 8; i++) {
        ASSERT_MSG(rs[i] == CTNAS_EINVAL, "case %d: %d", i, rs[i]);
        ASSERT_STREQ(e[i].field, "cursor");
    }
    ASSERT_EQ(rs[9], CTNAS_EINVAL);
    ASSERT_STREQ(e[9].field, "order");
    ASSERT_EQ(rs[10], 0);
    for (int i = 0; i < 4; i++) {
        ASSERT_MSG(rbad[i] == CTNAS_EINVAL, "bad cursor %d (%s): %d", i,
                   bad[i], rbad[i]);
        ASSERT_STREQ(ebad[i].field, "cursor");
    }
    ASSERT_EQ(rbig, 0);
}

/* ---- concurrency, locks and failures ---- */

static void test_lock(void)
{
    struct tmpdb t;
    ASSERT(tmpdb_make(&t) == 0);
    struct ctnas_err err = { 0 };
    int fd1 = -1, fd2 = -1, fd3 = -1;
    int r1 = ctnas_store_lock(t.path, &fd1, &err);
    struct ctnas_err e2 = { 0 };
    int r2 = ctnas_store_lock(t.path, &fd2, &e2);
    /* And from another process, the real case: exit 0 when refused with
     * our pid named. */
    char pidtxt[32];
    snprintf(pidtxt, sizeof pidtxt, "(pid %ld)", (long)getpid());
    int child_ok = 0;
    pid_t pid = fork();
    if (pid == 0) {
        struct ctnas_err ce = { 0 };
        int cfd = -1;
        int cr = ctnas_store_lock(t.path, &cfd, &ce);
        _exit(cr == CTNAS_ECONFLICT && strstr(ce.msg, pidtxt) ? 0 : 1);
    }
    if (pid > 0) {
        int status = 0;
        child_ok = waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
                   WEXITSTATUS(status) == 0;
    }
    ctnas_store_unlock(fd1, t.path);
    int r3 = ctnas_store_lock(t.path, &fd3, &err);
    ctnas_store_unlock(fd3, t.path);
    ctnas_store_unlock(-1, t.path);   /* a no-op */
    char lockp[sizeof t.path + 8];
    snprintf(lockp, sizeof lockp, "%s.lock", t.path);
    int exists = access(lockp, F_OK) == 0;
    tmpdb_remove(&t);

    ASSERT_EQ(r1, 0);
    ASSERT(fd1 >= 0);
    ASSERT_EQ(r2, CTNAS_ECONFLICT);
    ASSERT_EQ(fd2, -1);
    char want[sizeof t.path + 64];
    snprintf(want, sizeof want,
             "database %s is in use by another ctnasd (pid %ld)", t.path,
             (long)getpid());
    want[sizeof e2.msg - 1] = '\0';   /* msg is truncated the same way */
    ASSERT_STREQ(e2.msg, want);
    ASSERT(child_ok);
    ASSERT_EQ(r3, 0);
    ASSERT(exists);
}

/* A second writer gets EBUSY once the busy timeout runs out, and a reader
 * keeps working beside the writer (WAL). */
static void test_busy(void)
{
    WITH_STORE(st, t);
    struct ctnas_store *st2 = NULL;
    struct ctnas_err err = { 0 };
    int r = ctnas_store_open(t.path, 0, &st2, &err);
    int64_t id;
    if (r == 0)
        r = add_arch(st, "s1", 1, &id);
    if (r == 0) {
        sqlite3_busy_timeout(st2->db, 50);
        r = ctnas_store_begin(st, &err);
    }
    int64_t id2;
    if (r == 0)
        r = add_arch(st, "s1", 2, &id2);
    struct ctnas_err e2 = { 0 };
    int rb = r ? r : ctnas_store_begin(st2, &e2);
    int64_t n = -1;
    int rn = ctnas_store_arch_count(st2, NULL, &n, &err);
    ctnas_store_rollback(st2);
    ctnas_store_rollback(st);
    ctnas_store_close(st2);
    ctnas_store_close(st);
    tmpdb_remove(&t);
    ASSERT_MSG(r == 0, "setup: %s", err.msg);
    ASSERT_EQ(rb, CTNAS_EBUSY);
    ASSERT_EQ(rn, 0);
    ASSERT_EQ(n, 1);   /* the committed row, not the pending one */
}

/* A second writer in the process waits for the first one's commit and
 * then goes on (store.c's busy handler); held longer than the busy
 * timeout (5 s), the lock makes it give up with EBUSY. */
struct second_writer {
    const char *path;
    int rc;
    double waited;
};

static void *write_second(void *arg)
{
    struct second_writer *w = arg;
    struct ctnas_store *st;
    double t0 = ctnas_now_seconds();
    w->rc = ctnas_store_open(w->path, 0, &st, NULL);
    if (w->rc == 0) {
        int64_t id;
        w->rc = add_arch(st, "s1", 2, &id);
        ctnas_store_close(st);
    }
    w->waited = ctnas_now_seconds() - t0;
    return NULL;
}

static void test_busy_handler_waits_for_the_commit(void)
{
    WITH_STORE(st, t);
    struct ctnas_err err = { 0 };
    struct second_writer w[2] = { { t.path, -1, 0 }, { t.path, -1, 0 } };
    int r = ctnas_store_begin(st, &err);
    pthread_t th;
    for (int k = 0; r == 0 && k < 2; k++) {
        if (pthread_create(&th, NULL, write_second, &w[k]) != 0) {
            r = -1;
            break;
        }
        /* held 0.2 s, then 5.5 s (past the busy timeout) */
        nanosleep(&(struct timespec){ k ? 5 : 0, k ? 500000000 : 200000000 },
                  NULL);
        int64_t id;
        r = add_arch(st, "s1", 10 + k, &id);
        if (r == 0)
            r = ctnas_store_commit(st, &err);
        pthread_join(th, NULL);
        if (r == 0 && k == 0)
            r = ctnas_store_begin(st, &err);
    }
    int64_t n = -1;
    if (r == 0)
        r = ctnas_store_arch_count(st, NULL, &n, &err);
    ctnas_store_rollback(st);
    ctnas_store_close(st);
    tmpdb_remove(&t);
    ASSERT_MSG(r == 0, "setup: %s", err.msg);
    ASSERT_EQ(w[0].rc, 0);
    ASSERT_EQ(w[1].rc, CTNAS_EBUSY);
    ASSERT(w[1].waited >= 4.9);
    ASSERT_EQ(n, 3); /* 10, 2, 11: the second writer's first try only */
}

/* Models: the newest published one of a space and dataset serves them
 * (or is about to, between a training job's commit and its publishing),
 * so it cannot be deleted; older or unpublished ones can. */
static void test_model_delete_keeps_the_newest_published(void)
{
    WITH_STORE(st, t);
    json_t *cfg = json_object(), *fig = json_object(), *ids = json_array();
    struct ctnas_err err = { 0 };
    int64_t id[4] = { 0 };
    /* A, B published on (s, d); C unpublished, newer; D published on
     * (s, e), the newest of its own dataset. */
    struct ctnas_model_meta m[4] = {
        { "s", "d", "acc", 0, 1, cfg, fig, ids },
        { "s", "d", "acc", 0, 1, cfg, fig, ids },
        { "s", "d", "acc", 0, 0, cfg, fig, ids },
        { "s", "e", "acc", 0, 1, cfg, fig, ids },
    };
    int r = 0;
    for (int i = 0; r == 0 && i < 4; i++)
        r = ctnas_store_model_insert(st, &m[i], "w", 1, &id[i], &err);
    struct ctnas_err eb = { 0 }, ed = { 0 }, ea = { 0 };
    int rb = r ? r : ctnas_store_model_delete(st, id[1], &eb);
    int rd = r ? r : ctnas_store_model_delete(st, id[3], &ed);
    int rc = r ? r : ctnas_store_model_delete(st, id[2], &err);
    int ra = r ? r : ctnas_store_model_delete(st, id[0], &ea);
    int ra2 = r ? r : ctnas_store_model_delete(st, id[0], NULL);
    /* with A gone, B is still the newest */
    int rb2 = r ? r : ctnas_store_model_delete(st, id[1], NULL);
    json_decref(cfg);
    json_decref(fig);
    json_decref(ids);
    ctnas_store_close(st);
    tmpdb_remove(&t);
    ASSERT_MSG(r == 0, "setup: %s", err.msg);
    ASSERT_EQ(rb, CTNAS_ECONFLICT);
    ASSERT(strstr(eb.msg, "newest published") != NULL);
    ASSERT_STREQ(eb.field, "id");
    ASSERT_EQ(rd, CTNAS_ECONFLICT);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(ra, 0);
    ASSERT_EQ(ra2, CTNAS_ENOTFOUND);
    ASSERT_EQ(rb2, CTNAS_ECONFLICT);
}

/* SQLITE_FULL, provoked by capping the file at its current size. */
static void test_disk_full(void)
{
    WITH_STORE(st, t);
    struct ctnas_err err = { 0 };
    int r = sqlite3_exec(st->db, "PRAGMA max_page_count = 1", NULL, NULL,
                         NULL);
    int rw = 0;
    char enc[CTNAS_ENCODING_MAX];
    memset(enc, 'x', sizeof enc - 1);
    enc[sizeof enc - 1] = '\0';
    for (int i = 0; r == SQLITE_OK && rw == 0 && i < 1000; i++) {
        char hash[CTNAS_HASH_LEN];
        snprintf(hash, sizeof hash, "%032x", (unsigned)i);
        rw = ctnas_store_arch_upsert(st, "s1", enc, hash, &(int64_t){0},
                                     NULL, &err);
    }
    int64_t n = -1;
    int rp = ctnas_store_ping(st, NULL);
    ctnas_store_arch_count(st, NULL, &n, NULL);
    ctnas_store_close(st);
    tmpdb_remove(&t);
    ASSERT_EQ(r, SQLITE_OK);
    ASSERT_EQ(rw, CTNAS_EREADONLY);
    ASSERT(strstr(err.msg, "disk full") != NULL);
    ASSERT_EQ(rp, 0);   /* reads still work */
    ASSERT(n >= 0);
}

static void test_readonly_file(void)
{
    struct tmpdb t;
    ASSERT(tmpdb_make(&t) == 0);
    struct ctnas_store *st = NULL;
    struct ctnas_err err = { 0 };
    int r = ctnas_store_open(t.path, CTNAS_STORE_MIGRATE, &st, &err);
    int64_t id;
    if (r == 0)
        r = add_arch(st, "s1", 1, &id);
    ctnas_store_close(st);
    st = NULL;
    int rc = chmod(t.path, 0444);
    int ro = r == 0 && rc == 0
             ? ctnas_store_open(t.path, CTNAS_STORE_MIGRATE, &st, &err) : 0;
    ctnas_store_close(st);
    chmod(t.path, 0600);
    tmpdb_remove(&t);
    ASSERT_EQ(r, 0);
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(ro, CTNAS_EREADONLY);
    ASSERT(strstr(err.msg, "read-only") != NULL);
}

/* ---- speed ---- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Time one listing call; returns its ms or -1 on error. */
static double time_list(struct ctnas_store *st,
                        const struct ctnas_arch_query *q, int64_t *total)
{
    struct ctnas_arch_row *rows;
    int n;
    char next[128];
    double a = now_ms();
    int r = ctnas_store_arch_list(st, q, &rows, &n, total, next, NULL);
    double dt = now_ms() - a;
    ctnas_store_rows_free(rows, n);
    return r == 0 ? dt : -1;
}

/* The NAS-Bench-201 scale: 15,625 architectures; cifar10 carries one
 * metric (like an import of nb201_cifar10.csv), cifar100 and imagenet16
 * two.  Prints listing times (a TAP comment, not a pass/fail: sanitizer
 * and valgrind builds are slow) and checks the pages' content. */
static void test_list_large(void)
{
    WITH_STORE(st, t);
    enum { N = 15625 };
    static const char *const ds[] = { "cifar10", "cifar100", "imagenet16" };
    struct ctnas_err err = { 0 };
    struct expect *want = calloc(N, sizeof *want);
    struct expect *want10 = calloc(N, sizeof *want10);
    int r = want && want10 ? ctnas_store_begin(st, &err) : -1;
    double t0 = now_ms();
    for (int i = 0; r == 0 && i < N; i++) {
        int64_t id;
        r = add_arch(st, "nasbench201", i, &id);
        for (int d = 0; r == 0 && d < 3; d++) {
            /* Deterministic scatter with many ties: 1000 values. */
            double v = ((i * 7919 + d * 104729) % 1000) / 8.0;
            struct ctnas_measurement m = meas(ds[d], "test_accuracy", v, 200,
                                              "import");
            r = ctnas_store_meas_add(st, id, &m, NULL, &err);
            m = meas(ds[d], "valid_accuracy", v / 2, 200, "import");
            if (r == 0 && d > 0)
                r = ctnas_store_meas_add(st, id, &m, NULL, &err);
            struct expect *w = d == 0 ? want10 : d == 1 ? want : NULL;
            if (w != NULL) {
                w[i].id = id;
                w[i].mean = v;
            }
        }
    }
    if (r == 0)
        r = ctnas_store_commit(st, &err);
    double t_fill = now_ms() - t0;
    if (r == 0) {
        qsort(want, N, sizeof *want, by_mean_desc);
        qsort(want10, N, sizeof *want10, by_mean_desc);
    }

    /* Walk the first 20 pages (2,000 rows) of cifar100/test_accuracy. */
    struct ctnas_arch_query q = { .dataset = "cifar100",
                                  .metric = "test_accuracy",
                                  .order = CTNAS_ORDER_METRIC_DESC,
                                  .limit = 100 };
    char cursor[128] = "", next[128] = "";
    int pages = 0, bad = 0, seen = 0;
    double best = 1e9, worst = 0, sum = 0;
    while (r == 0 && pages < 20) {
        struct ctnas_arch_row *rows;
        int n;
        int64_t total;
        q.cursor = cursor[0] ? cursor : NULL;
        double a = now_ms();
        r = ctnas_store_arch_list(st, &q, &rows, &n, &total, next, &err);
        double dt = now_ms() - a;
        if (r != 0)
            break;
        best = dt < best ? dt : best;
        worst = dt > worst ? dt : worst;
        sum += dt;
        for (int i = 0; i < n; i++)
            bad |= rows[i].id != want[seen + i].id || rows[i].n_meas != 5;
        bad |= total != N || n != 100;
        ctnas_store_rows_free(rows, n);
        seen += n;
        pages++;
        snprintf(cursor, sizeof cursor, "%s", next);
    }

    /* cifar10 without a metric: its only metric's stored means. */
    struct ctnas_arch_query q10 = { .dataset = "cifar10",
                                    .order = CTNAS_ORDER_METRIC_DESC,
                                    .limit = 100 };
    struct ctnas_arch_row *rows = NULL;
    int n = 0;
    int64_t total = 0, t2 = 0, t3 = 0, t4 = 0;
    double a = now_ms();
    int r10 = r ? r : ctnas_store_arch_list(st, &q10, &rows, &n, &total,
                                            next, &err);
    double t_any1 = now_ms() - a;
    for (int i = 0; r10 == 0 && i < n; i++)
        bad |= rows[i].id != want10[i].id;
    ctnas_store_rows_free(rows, n);
    /* Id order filtered by dataset; and the GROUP BY path (every metric
     * of a dataset that has two). */
    struct ctnas_arch_query qi = { .dataset = "cifar10", .limit = 100 };
    double t_id1 = r ? -1 : time_list(st, &qi, &t2);
    qi.dataset = "cifar100";
    double t_id2 = r ? -1 : time_list(st, &qi, &t3);
    q10.dataset = "cifar100";
    double t_any2 = r ? -1 : time_list(st, &q10, &t4);

    printf("# %d archs, %d measurements: filled in %.0f ms\n", N, N * 5,
           t_fill);
    printf("# metric_desc page of 100, cifar100/test_accuracy: best %.2f ms,"
           " mean %.2f ms, worst %.2f ms over %d pages\n", best,
           pages ? sum / pages : 0.0, worst, pages);
    printf("# metric_desc page of 100, cifar10 (one metric, no metric "
           "given): %.2f ms\n", t_any1);
    printf("# id page of 100, dataset filter: cifar10 %.2f ms, cifar100 "
           "(two metrics) %.2f ms\n", t_id1, t_id2);
    printf("# metric_desc page of 100, cifar100 over both metrics "
           "(GROUP BY): %.2f ms\n", t_any2);
    ctnas_store_close(st);
    tmpdb_remove(&t);
    free(want);
    free(want10);
    ASSERT_MSG(r == 0, "large: %s", err.msg);
    ASSERT_EQ(r10, 0);
    ASSERT_EQ(total, N);
    ASSERT_EQ(t2, N);
    ASSERT_EQ(t3, N);
    ASSERT_EQ(t4, N);
    ASSERT(t_id1 >= 0 && t_id2 >= 0 && t_any2 >= 0);
    ASSERT_EQ(bad, 0);
    ASSERT_EQ(pages, 20);
}

int main(void)
{
    TEST_RUN(test_migrate_from_empty);
    TEST_RUN(test_reopen_is_noop);
    TEST_RUN(test_newer_refused);
    TEST_RUN(test_upgrade_from_previous);
    TEST_RUN(test_upgrade_drops_finished_checkpoints);
    TEST_RUN(test_not_a_database);
    TEST_RUN(test_memory_db);
    TEST_RUN(test_upsert_idempotent);
    TEST_RUN(test_meas_idempotent);
    TEST_RUN(test_foreign_key);
    TEST_RUN(test_rollback);
    TEST_RUN(test_job_labels);
    TEST_RUN(test_job_keys);
    TEST_RUN(test_job_purge_ended);
    TEST_RUN(test_dataset_sample);
    TEST_RUN(test_measured_since_mark);
    TEST_RUN(test_delete);
    TEST_RUN(test_checkpoint_dropped);
    TEST_RUN(test_list_id_pages);
    TEST_RUN(test_list_metric_pages);
    TEST_RUN(test_list_rows_and_any_metric);
    TEST_RUN(test_list_bad_input);
    TEST_RUN(test_scores_follow_measurements);
    TEST_RUN(test_lock);
    TEST_RUN(test_busy);
    TEST_RUN(test_busy_handler_waits_for_the_commit);
    TEST_RUN(test_model_delete_keeps_the_newest_published);
    TEST_RUN(test_disk_full);
    /* Root writes through file modes, so 0444 proves nothing there. */
    if (geteuid() == 0)
        TEST_SKIP(test_readonly_file, "running as root: file modes do not "
                                      "stop writes");
    else
        TEST_RUN(test_readonly_file);
    TEST_RUN(test_list_large);
    return test_done();
}
