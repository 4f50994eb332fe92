/*
 * store.c - the SQLite connection: open and PRAGMAs, schema migrations,
 * transactions, the health probe, the statement cache, error mapping, and
 * the "<db>.lock" file that keeps a second ctnasd off the same database.
 *
 * It owns no table: the catalogue's SQL is in store_arch.c, the schema in
 * the sql/ directory (embedded as ctnas_migrations[]).  Errors are
 * returned, never printed.
 */
#include "config.h"
#include "store.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "mem.h"
#include "migrations.h"
#include "store_int.h"

/* Writers wait this long for the write lock before reporting EBUSY. */
#define BUSY_TIMEOUT_MS 5000

static const char *st_path(const struct ctnas_store *st)
{
    return st && st->path ? st->path : "(no database)";
}

int ctnas__store_fail(struct ctnas_store *st, int rc, const char *what,
                      struct ctnas_err *err)
{
    const char *msg = st && st->db ? sqlite3_errmsg(st->db)
                                   : sqlite3_errstr(rc);
    const char *path = st_path(st);

    switch (rc & 0xff) {
    case SQLITE_FULL:
        return ctnas_err_set(err, CTNAS_EREADONLY, "",
                             "disk full: cannot %s in %s", what, path);
    case SQLITE_READONLY:
        return ctnas_err_set(err, CTNAS_EREADONLY, "",
                             "database %s is read-only: cannot %s", path,
                             what);
    case SQLITE_CANTOPEN:
        return ctnas_err_set(err, CTNAS_EREADONLY, "",
                             "cannot open database %s: %s", path, msg);
    case SQLITE_IOERR:
        return ctnas_err_set(err, CTNAS_EREADONLY, "",
                             "I/O error on %s (disk full or failing?): %s",
                             path, msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ctnas_err_set(err, CTNAS_EBUSY, "",
                             "database busy: cannot %s: %s", what, msg);
    case SQLITE_NOMEM:
        return ctnas_err_set(err, CTNAS_ENOMEM, "",
                             "out of memory: cannot %s", what);
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return ctnas_err_set(err, CTNAS_EDB, "",
                             "%s is not a usable ctnasd database: %s", path,
                             msg);
    case SQLITE_CONSTRAINT:
        return ctnas_err_set(err, CTNAS_EINVAL, "",
                             "cannot %s: rejected by the schema: %s", what,
                             msg);
    }
    return ctnas_err_set(err, CTNAS_EDB, "", "cannot %s: %s", what, msg);
}

int ctnas__store_prepare(struct ctnas_store *st, sqlite3_stmt **slot,
                         const char *sql, struct ctnas_err *err)
{
    if (*slot != NULL)
        return 0;
    /* PERSISTENT: these live as long as the connection. */
    int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                slot, NULL);
    if (rc != SQLITE_OK) {
        *slot = NULL;
        return ctnas__store_fail(st, rc, "prepare a statement", err);
    }
    return 0;
}

int ctnas__store_stmt(struct ctnas_store *st, int slot, const char *sql,
                      sqlite3_stmt **out, struct ctnas_err *err)
{
    assert(slot >= 0 && slot < CTNAS__ST_COUNT_);
    int r = ctnas__store_prepare(st, &st->stmt[slot], sql, err);
    *out = st->stmt[slot];
    return r;
}

/* Step a statement that returns no row (BEGIN, COMMIT, ...) and reset it. */
static int step_done(struct ctnas_store *st, int slot, const char *sql,
                     const char *what, struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int r = ctnas__store_stmt(st, slot, sql, &s, err);
    if (r != 0)
        return r;
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        r = ctnas__store_fail(st, rc, what, err);
    sqlite3_reset(s);
    return r;
}

/* Writers in this process wait for each other on a condition variable,
 * each commit waking one of them, instead of SQLite's bare sleeps,
 * between which a stream of other writers could keep taking the lock:
 * at --threads 32 and 40 uploading clients, some waited past the busy
 * timeout and got 503 (bench_writers.py).  Waking them all cost more
 * throughput.  The lock is also released without a wake-up (a statement
 * that changed nothing, another process) and a wake-up can come just
 * before the wait: so the waits still back off as SQLite's do, 1, 2, 5,
 * 10, 20, then 50 ms, and a wake-up only cuts them short. */
static pthread_mutex_t commit_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t commit_cv;
static pthread_once_t commit_once = PTHREAD_ONCE_INIT;

/* On the monotonic clock: a wall clock set back must not stretch a
 * wait. */
static void commit_cv_init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&commit_cv, &a);
    pthread_condattr_destroy(&a);
}

/* The write lock was released: wake one waiting writer. */
static void wake_writer(void)
{
    pthread_mutex_lock(&commit_mu);
    pthread_cond_signal(&commit_cv);
    pthread_mutex_unlock(&commit_mu);
}

static int on_busy(void *arg, int n)
{
    static const double backoff[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05};
    enum { LAST = sizeof backoff / sizeof backoff[0] - 1 };
    struct ctnas_store *st = arg;
    double now = ctnas_now_seconds();
    if (n == 0)
        st->busy_since = now;
    double left = BUSY_TIMEOUT_MS / 1e3 - (now - st->busy_since);
    if (left <= 0)
        return 0; /* SQLITE_BUSY to the caller */
    double wait = backoff[n < LAST ? n : LAST];
    if (wait > left)
        wait = left;
    /* now is on the monotonic clock too (ctnas_now_seconds) */
    double until = now + wait;
    struct timespec ts;
    ts.tv_sec = (time_t)until;
    ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
    pthread_mutex_lock(&commit_mu);
    pthread_cond_timedwait(&commit_cv, &commit_mu, &ts);
    pthread_mutex_unlock(&commit_mu);
    return 1;
}

/* Called after each commit that wrote pages, the write lock released. */
static int on_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)arg;
    wake_writer();
    /* What SQLite's own hook does, which this one replaces
     * (wal_autocheckpoint's default 1,000 pages). */
    if (frames >= 1000)
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                  NULL);
    return SQLITE_OK;
}

static const char SQL_BEGIN_WRITE[] = "BEGIN IMMEDIATE";
static const char SQL_BEGIN_READ[] = "BEGIN";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";
static const char SQL_USER_VERSION[] = "PRAGMA user_version";

int ctnas_store_begin(struct ctnas_store *st, struct ctnas_err *err)
{
    if (!sqlite3_get_autocommit(st->db))
        return ctnas_err_set(err, CTNAS_EDB, "",
                             "a transaction is already open on this "
                             "connection");
    return step_done(st, CTNAS__ST_BEGIN_WRITE, SQL_BEGIN_WRITE,
                     "begin a transaction", err);
}

int ctnas_store_commit(struct ctnas_store *st, struct ctnas_err *err)
{
    /* SQLite may already have rolled back (after a full disk, say): then
     * there is nothing durable to report. */
    if (sqlite3_get_autocommit(st->db))
        return ctnas_err_set(err, CTNAS_EDB, "",
                             "no transaction to commit (it was rolled back "
                             "after an earlier error)");
    int r = step_done(st, CTNAS__ST_COMMIT, SQL_COMMIT,
                      "commit the transaction", err);
    wake_writer(); /* on_commit does too, but not for a commit of nothing */
    return r;
}

void ctnas_store_rollback(struct ctnas_store *st)
{
    if (st == NULL || sqlite3_get_autocommit(st->db))
        return;
    /* The statement was prepared at open, so this cannot fail for memory. */
    if (step_done(st, CTNAS__ST_ROLLBACK, SQL_ROLLBACK, "roll back",
                  NULL) != 0)
        sqlite3_exec(st->db, SQL_ROLLBACK, NULL, NULL, NULL);
    wake_writer();
}

int ctnas__store_read_begin(struct ctnas_store *st, int *own,
                            struct ctnas_err *err)
{
    *own = 0;
    if (!sqlite3_get_autocommit(st->db))
        return 0;   /* the caller's transaction already gives a snapshot */
    int r = step_done(st, CTNAS__ST_BEGIN_READ, SQL_BEGIN_READ,
                      "begin a read", err);
    if (r == 0)
        *own = 1;
    return r;
}

void ctnas__store_read_end(struct ctnas_store *st, int own)
{
    /* Nothing was written, so ending a read by rollback loses nothing. */
    if (own)
        ctnas_store_rollback(st);
}

/* The database's user_version into *v. */
static int read_user_version(struct ctnas_store *st, int *v,
                             struct ctnas_err *err)
{
    sqlite3_stmt *s;
    int r = ctnas__store_stmt(st, CTNAS__ST_USER_VERSION, SQL_USER_VERSION,
                              &s, err);
    if (r != 0)
        return r;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int(s, 0);
    else
        r = ctnas__store_fail(st, rc, "read the schema version", err);
    sqlite3_reset(s);
    return r;
}

int ctnas_store_schema_latest(void)
{
    return ctnas_n_migrations;
}

int ctnas_store_schema_version(struct ctnas_store *st)
{
    int v;
    int r = read_user_version(st, &v, NULL);
    return r != 0 ? r : v;
}

int ctnas_store_vacuum(struct ctnas_store *st, struct ctnas_err *err)
{
    int rc = sqlite3_exec(st->db, "VACUUM", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(st->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL,
                          NULL, NULL);
    return rc == SQLITE_OK ? 0 : ctnas__store_fail(st, rc, "vacuum", err);
}

int ctnas_store_ping(struct ctnas_store *st, struct ctnas_err *err)
{
    /* Reading user_version touches the database header: a real read. */
    int v;
    int r = read_user_version(st, &v, err);
    if (r != 0)
        return r;
    if (v != ctnas_n_migrations)
        return ctnas_err_set(err, CTNAS_ECONFLICT, "",
                             "database schema version %d, expected %d", v,
                             ctnas_n_migrations);
    return 0;
}

/* Apply migrations from+1 .. latest, each in its own transaction that also
 * bumps user_version, so the version always names the schema on disk. */
static int migrate(struct ctnas_store *st, int from, struct ctnas_err *err)
{
    for (int i = from; i < ctnas_n_migrations; i++) {
        const struct ctnas_migration *m = &ctnas_migrations[i];
        assert(m->version == i + 1);
        int r = ctnas_store_begin(st, err);
        if (r != 0)
            return r;
        /* Re-read under the write lock: another process (an import
         * without the lock file, say) may have migrated meanwhile. */
        int v;
        r = read_user_version(st, &v, err);
        if (r != 0) {
            ctnas_store_rollback(st);
            return r;
        }
        if (v >= m->version) {
            ctnas_store_rollback(st);
            continue;
        }
        char what[96];
        snprintf(what, sizeof what, "apply migration %s", m->name);
        int rc = sqlite3_exec(st->db, m->sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            /* PRAGMA takes no parameters; the version is our own int. */
            char sql[48];
            snprintf(sql, sizeof sql, "PRAGMA user_version = %d",
                     m->version);
            rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
        }
        if (rc != SQLITE_OK) {
            r = ctnas__store_fail(st, rc, what, err);
            ctnas_store_rollback(st);
            return r;
        }
        r = ctnas_store_commit(st, err);
        if (r != 0) {
            ctnas_store_rollback(st);
            return r;
        }
    }
    return 0;
}

/* Run a PRAGMA that answers one row and copy its first column. */
static int pragma_text(struct ctnas_store *st, const char *sql, char *out,
                       size_t cap, struct ctnas_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    int r = 0;
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(s, 0);
        snprintf(out, cap, "%s", t ? (const char *)t : "");
    } else if (rc == SQLITE_DONE) {
        out[0] = '\0';      /* the PRAGMA is compiled out */
    } else {
        r = ctnas__store_fail(st, rc, "configure the connection", err);
    }
    sqlite3_finalize(s);
    return r;
}

static int configure(struct ctnas_store *st, struct ctnas_err *err)
{
    char buf[32];
    pthread_once(&commit_once, commit_cv_init);
    sqlite3_busy_handler(st->db, on_busy, st);
    sqlite3_wal_hook(st->db, on_commit, NULL);

    int r = pragma_text(st, "PRAGMA journal_mode = WAL", buf, sizeof buf,
                        err);
    if (r != 0)
        return r;
    /* In-memory databases answer "memory"; files must really be in WAL,
     * which lets readers run beside the writer. */
    if (strcmp(buf, "wal") != 0 && strcmp(buf, "memory") != 0)
        return ctnas_err_set(err, CTNAS_EDB, "",
                             "cannot put %s in WAL mode (journal mode %s)",
                             st_path(st), buf);

    /* FULL in WAL: a commit is on disk (WAL fsynced) when it returns. */
    int rc = sqlite3_exec(st->db, "PRAGMA synchronous = FULL", NULL, NULL,
                          NULL);
    if (rc != SQLITE_OK)
        return ctnas__store_fail(st, rc, "configure the connection", err);

    /* The catalogue's triggers make every insert inside a transaction keep
     * a statement journal; in memory it costs a copy, on disk (SQLite's
     * default past 64 KiB) a temp-file write per page, 8x slower imports. */
    rc = sqlite3_exec(st->db, "PRAGMA temp_store = MEMORY", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return ctnas__store_fail(st, rc, "configure the connection", err);

    /* The WAL grows to hold what readers keep from being checkpointed (a
     * burst of uploads beside a long read) and SQLite keeps that size
     * for ever; past 64 MiB it is cut back when the log restarts. */
    rc = sqlite3_exec(st->db, "PRAGMA journal_size_limit = 67108864", NULL,
                      NULL, NULL);
    if (rc != SQLITE_OK)
        return ctnas__store_fail(st, rc, "configure the connection", err);

    r = pragma_text(st, "PRAGMA foreign_keys = ON", buf, sizeof buf, err);
    if (r == 0)
        r = pragma_text(st, "PRAGMA foreign_keys", buf, sizeof buf, err);
    if (r != 0)
        return r;
    if (strcmp(buf, "1") != 0)
        return ctnas_err_set(err, CTNAS_EDB, "",
                             "this SQLite cannot enforce foreign keys");

    /* Prepared now so that rollback never has to allocate. */
    sqlite3_stmt *s;
    r = ctnas__store_stmt(st, CTNAS__ST_ROLLBACK, SQL_ROLLBACK, &s, err);
    if (r == 0)
        r = ctnas__store_stmt(st, CTNAS__ST_BEGIN_WRITE, SQL_BEGIN_WRITE, &s,
                              err);
    if (r == 0)
        r = ctnas__store_stmt(st, CTNAS__ST_COMMIT, SQL_COMMIT, &s, err);
    return r;
}

int ctnas_store_open(const char *path, int flags, struct ctnas_store **out,
                     struct ctnas_err *err)
{
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return ctnas_err_set(err, CTNAS_EINVAL, "path",
                             "no database path given");

    struct ctnas_store *st = ctnas_calloc(1, sizeof *st);
    if (st != NULL)
        st->path = ctnas_strdup(path);
    if (st == NULL || st->path == NULL) {
        ctnas_free(st);
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }

    int rc = sqlite3_open_v2(path, &st->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                                 (flags & CTNAS_STORE_EXISTING
                                      ? 0
                                      : SQLITE_OPEN_CREATE),
                             NULL);
    if (st->db == NULL) {
        ctnas_free(st->path);
        ctnas_free(st);
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }
    sqlite3_extended_result_codes(st->db, 1);
    int r;
    if (rc != SQLITE_OK) {
        r = ctnas__store_fail(st, rc, "open the database", err);
        goto fail;
    }
    /* SQLite silently falls back to read-only when it cannot write the
     * file; the daemon needs to write, so say so now, not at first POST. */
    if (sqlite3_db_readonly(st->db, "main") == 1) {
        r = ctnas_err_set(err, CTNAS_EREADONLY, "",
                          "database %s is read-only (check the file's and "
                          "its directory's permissions)", path);
        goto fail;
    }
    r = configure(st, err);
    if (r != 0)
        goto fail;

    int v;
    r = read_user_version(st, &v, err);
    if (r != 0)
        goto fail;
    if (v < 0 || v > ctnas_n_migrations) {
        r = ctnas_err_set(err, CTNAS_ECONFLICT, "",
                          "database schema version %d is newer than this "
                          "ctnasd supports (%d)", v, ctnas_n_migrations);
        goto fail;
    }
    if (v < ctnas_n_migrations) {
        if (!(flags & CTNAS_STORE_MIGRATE)) {
            r = ctnas_err_set(err, CTNAS_ECONFLICT, "",
                              "database schema version %d is older than "
                              "this ctnasd needs (%d) and this connection "
                              "may not migrate it", v, ctnas_n_migrations);
            goto fail;
        }
        r = migrate(st, v, err);
        if (r != 0)
            goto fail;
    }
    *out = st;
    return 0;

fail:
    ctnas_store_close(st);
    return r;
}

void ctnas_store_close(struct ctnas_store *st)
{
    if (st == NULL)
        return;
    for (int i = 0; i < CTNAS__ST_COUNT_; i++)
        sqlite3_finalize(st->stmt[i]);
    for (int i = 0; i < CTNAS__LIST_PAGE_SHAPES; i++)
        sqlite3_finalize(st->list_page[i]);
    for (int i = 0; i < CTNAS__LIST_COUNT_SHAPES; i++)
        sqlite3_finalize(st->list_count[i]);
    if (!sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, SQL_ROLLBACK, NULL, NULL, NULL);
    /* Keeps the WAL short for the next opener; failure (a read-only or
     * unopened file) changes nothing. */
    sqlite3_exec(st->db, "PRAGMA wal_checkpoint(PASSIVE)", NULL, NULL, NULL);
    /* Every statement is finalized, so close cannot be busy; close_v2 is
     * only a guard against leaking the handle if that ever breaks. */
    if (sqlite3_close(st->db) != SQLITE_OK)
        sqlite3_close_v2(st->db);
    ctnas_free(st->path);
    ctnas_free(st);
}

/* ---- the lock file ---- */

/* The pid written in a lock file, or 0 when there is none yet. */
/* The pid the lock file holds, or 0. */
static long pid_in(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    return end != buf && pid > 0 ? pid : 0;
}

static long read_lock_pid(int fd)
{
    /* The holder writes its pid right after taking the lock; give a
     * contender that raced it a moment to see it. */
    for (int tries = 0; tries < 5; tries++) {
        long pid = pid_in(fd);
        if (pid > 0)
            return pid;
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int lock_errno_code(int e)
{
    return e == EROFS || e == EACCES || e == EPERM || e == ENOSPC ||
           e == EDQUOT || e == ENOENT || e == ENOTDIR ? CTNAS_EREADONLY
                                                       : CTNAS_EIO;
}

int ctnas_store_lock(const char *db_path, int *fd_out,
                     struct ctnas_err *err)
{
    return ctnas_store_lock_ex(db_path, fd_out, NULL, err);
}

int ctnas_store_lock_ex(const char *db_path, int *fd_out, long *prev_pid,
                        struct ctnas_err *err)
{
    *fd_out = -1;
    if (prev_pid)
        *prev_pid = 0;
    char lp[PATH_MAX];
    if (db_path == NULL || db_path[0] == '\0')
        return ctnas_err_set(err, CTNAS_EINVAL, "path",
                             "no database path given");
    if ((size_t)snprintf(lp, sizeof lp, "%s.lock", db_path) >= sizeof lp)
        return ctnas_err_set(err, CTNAS_EINVAL, "path",
                             "database path too long");

    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        return ctnas_err_set(err, lock_errno_code(e), "",
                             "cannot open lock file %s: %s", lp,
                             strerror(e));
    }
    /* flock, not fcntl: its lock belongs to this open file description,
     * so it also excludes a second open in the same process. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            long pid = read_lock_pid(fd);
            close(fd);
            if (pid > 0)
                return ctnas_err_set(err, CTNAS_ECONFLICT, "",
                                     "database %s is in use by another "
                                     "ctnasd (pid %ld)", db_path, pid);
            return ctnas_err_set(err, CTNAS_ECONFLICT, "",
                                 "database %s is in use by another ctnasd "
                                 "(pid unknown)", db_path);
        }
        close(fd);
        return ctnas_err_set(err, CTNAS_EIO, "", "cannot lock %s: %s", lp,
                             strerror(e));
    }
    /* A clean unlock empties the file: a pid still there is a holder
     * that died with the lock (crash, kill -9, power loss). */
    if (prev_pid)
        *prev_pid = pid_in(fd);
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        int e = errno;
        close(fd);
        return ctnas_err_set(err, lock_errno_code(e), "",
                             "cannot write lock file %s: %s", lp,
                             strerror(e));
    }
    *fd_out = fd;
    return 0;
}

void ctnas_store_unlock(int fd, const char *db_path)
{
    /* The file stays: unlinking it would let a newcomer lock a fresh
     * inode while a third process still holds the old one. */
    (void)db_path;
    if (fd < 0)
        return;
    /* Still ours: clear the pid so it cannot mislead anyone. */
    if (ftruncate(fd, 0) != 0) {
        /* harmless: the next holder rewrites it */
    }
    close(fd);
}
