/*
 * main.c - the ctnasd command: subcommand dispatch, the serve life cycle
 * (lock, migrate, serve, drain on SIGTERM/SIGINT), the import and vacuum
 * commands.
 * The only file that exits or prints to the user.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "api.h"
#include "blas.h"
#include "conf.h"
#include "eval_nac.h"
#include "eval_search.h"
#include "ctnas.h"
#include "http.h"
#include "http_tls.h"
#include "importer.h"
#include "job_search.h"
#include "job_train.h"
#include "log.h"
#include "mem.h"
#include "registry.h"
#include "retention.h"
#include "runner.h"
#include "store.h"
#include "store_ml.h"

static const char usage[] =
    "usage: ctnasd [serve] [options]     run the HTTP daemon (default)\n"
    "       ctnasd import [--db FILE] [--space S] [--dataset D] [--source S] "
    "FILE...\n"
    "                                    load measured architectures (CSV "
    "or JSON Lines)\n"
    "       ctnasd vacuum [--db FILE]\n"
    "                                    give the space purged jobs and "
    "deletions freed back\n"
    "                                    to the disk (daemon stopped)\n"
    "       ctnasd eval-nac --space S --data FILE --train N --test M "
    "--seed K [...]\n"
    "                                    train and score a comparator on "
    "benchmark data\n"
    "       ctnasd eval-search --space S --data FILE --budget B [--rounds R] "
    "--seeds 1-10 [...]\n"
    "                                    run searches against benchmark "
    "data\n"
    "       ctnasd --help | --version\n"
    "\nserve options (each also from its environment variable):\n";

/* The serve options' text lives in conf.c, beside the table that parses
 * them, so one edit there updates both. */
static void print_usage(FILE *f)
{
    fputs(usage, f);
    fputs(ctnas_conf_usage, f);
}

/* Tell systemd we are ready (Type=notify), if it is listening. */
/* Tell systemd we are ready (Type=notify), if it is listening.  One
 * datagram is all the protocol needs, so it is written here rather than
 * linking libsystemd.  Failures are ignored: without a listener there is
 * nobody to tell. */
static void sd_notify_ready(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || (path[0] != '/' && path[0] != '@'))
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof sa.sun_path)
        return;
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    static const char msg[] = "READY=1";
    /* The address length covers the path bytes only: for an abstract
     * socket every byte up to that length is part of the name. */
    (void)sendto(fd, msg, sizeof msg - 1, 0, (struct sockaddr *)&sa,
                 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    close(fd);
}

/* Loop thread: libuv delivers signals through the loop, not in signal
 * context, so logging is safe here.  uv_stop only makes uv_run return;
 * cmd_serve then shuts down in order. */
static void on_signal(uv_signal_t *h, int signum)
{
    ctnas_log_info("received %s, shutting down",
                   signum == SIGTERM ? "SIGTERM" : "SIGINT");
    uv_stop(h->loop);
}

/* SIGHUP's default would kill the daemon without its shutdown (no
 * checkpoint, the port file left); there is nothing to reload. */
static void on_hangup(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    ctnas_log_warn("received SIGHUP: ignored (there is no configuration to "
                   "reload; SIGTERM stops the daemon)");
}

/* With --port 0 the kernel picks the port; tests and scripts learn it
 * from this file.  -1 (errno set) or rename's result. */
static int write_port_file(const char *path, int port)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path); /* atomic: readers never see half a file */
}

/* Descriptors for --max-connections connections, the few held to be told
 * 503 (http.c), each worker thread's database and WAL and the rest (the
 * other threads' databases, lock, listener, logs): the soft limit is
 * raised towards the hard one as far as that needs, and a warning says
 * when it cannot be, since running out shows only as connections left
 * waiting in the kernel. */
static void fit_open_files(int max_connections, int threads)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)max_connections + CTNAS_HTTP_OVER_LIMIT_SLOTS +
                  2 * (rlim_t)threads + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need
                      ? need
                      : rl.rlim_max;
    if (want > rl.rlim_cur) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need)
        ctnas_log_warn("the open files limit (%llu) is below the %llu that "
                       "--max-connections (%d) needs: connections beyond it "
                       "wait unanswered; raise it (ulimit -n, systemd "
                       "LimitNOFILE=) or lower --max-connections",
                       (unsigned long long)rl.rlim_cur,
                       (unsigned long long)need, max_connections);
}

/* The daemon's life.  Exit status: 0 after a clean stop, 1 when it could
 * not start or keep going, 2 for a usage error.  Start-up goes TLS
 * credentials -> store -> app -> registry and runner -> restored models
 * and jobs -> signals -> HTTP, so no request arrives before the served
 * models are loaded; the labels below unwind in the reverse order. */
static int cmd_serve(int argc, char **argv, int argi)
{
    struct ctnas_conf conf;
    struct ctnas_err err = {0};
    if (ctnas_conf_init(&conf, &err) < 0 ||
        ctnas_conf_parse_args(&conf, argc, argv, &argi, &err) < 0) {
        fprintf(stderr, "ctnasd: %s\n", err.msg);
        return 2;
    }
    if (argi < argc) {
        fprintf(stderr, "ctnasd: unexpected argument '%s'\n", argv[argi]);
        return 2;
    }
    if (ctnas_conf_finish(&conf, &err) < 0) {
        fprintf(stderr, "ctnasd: %s\n", err.msg);
        return 2;
    }
    ctnas_log_set_level(conf.log_level);
    /* A client closing its socket mid-response must not kill the
     * daemon: the write fails with EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);
    /* Requests and jobs already run in parallel on their own threads;
     * OpenBLAS's own pool would only make them queue for it. */
    if (getenv("OPENBLAS_NUM_THREADS") == NULL)
        ctnas_blas_set_threads(1);

    /* The credentials first: a wrong file is told before anything
     * starts. */
    struct ctnas_tls tls = {0};
    if (conf.tls_cert[0]) {
        if (ctnas_tls_load(conf.tls_cert, conf.tls_key, &tls, &err) < 0 ||
            ctnas_http_tls_check(&tls, &err) < 0) {
            ctnas_log_error("%s", err.msg);
            ctnas_tls_free(&tls);
            return 1;
        }
        if (tls.key_open_to_others)
            ctnas_log_warn("--tls-key: other users can read %s (chmod 600 "
                           "it)", conf.tls_key);
    }

    int status = 1, lock_fd = -1;
    struct ctnas_store *st = NULL;
    struct ctnas_http *http = NULL;
    struct ctnas_app app;
    int app_ok = 0;
    uv_loop_t loop;
    uv_signal_t sigterm, sigint, sighup;

    /* One process per database: SQLite's own locking would let a second
     * daemon (or an import) in, and the two would each think it owns the
     * job rows. */
    long prev_pid = 0;
    if (ctnas_store_lock_ex(conf.db, &lock_fd, &prev_pid, &err) < 0) {
        ctnas_log_error("%s", err.msg);
        ctnas_tls_free(&tls);
        return 1;
    }
    if (prev_pid > 0)
        ctnas_log_warn("the last ctnasd on %s (pid %ld) did not stop "
                       "cleanly (a crash, kill -9 or power loss): its "
                       "training jobs are marked failed, its searches resume "
                       "from their last checkpoint", conf.db, prev_pid);
    fit_open_files(conf.max_connections, conf.threads);
    /* A port file left by a daemon killed on this database would name a
     * dead port until ours is bound: gone now, written once listening,
     * removed again on a clean stop. */
    if (conf.port_file[0])
        unlink(conf.port_file);
    if (ctnas_store_open(conf.db, CTNAS_STORE_MIGRATE, &st, &err) < 0) {
        ctnas_log_error("cannot open database %s: %s", conf.db, err.msg);
        goto out;
    }
    ctnas_log_info("database %s at schema version %d", conf.db,
                   ctnas_store_schema_version(st));
    memset(&app, 0, sizeof app);
    if (ctnas_app_init(&app, &conf) < 0) {
        ctnas_log_error("cannot initialise the application state");
        goto out;
    }
    app_ok = 1;
    if (conf.token_file[0]) {
        if (ctnas_conf_read_token(&conf, app.token, sizeof app.token,
                                  &err) < 0) {
            ctnas_log_error("%s", err.msg);
            goto out;
        }
        ctnas_log_info("bearer token required (from %s)", conf.token_file);
    }
    /* Only warnings: a private network may be protection enough, and
     * that is the operator's call. */
    int loopback = strncmp(conf.listen, "127.", 4) == 0 ||
                   strcmp(conf.listen, "::1") == 0;
    if (!loopback && !conf.token_file[0])
        ctnas_log_warn("listening on %s without --token: anyone who can "
                       "reach this address can use and change the "
                       "daemon", conf.listen);
    else if (!loopback && !conf.tls_cert[0])
        ctnas_log_warn("listening on %s over plain HTTP: the token and "
                       "the data cross the network unencrypted "
                       "(--tls-cert, --tls-key)", conf.listen);

    uv_loop_init(&loop);
    uv_signal_init(&loop, &sigterm);
    uv_signal_init(&loop, &sigint);
    uv_signal_init(&loop, &sighup);
    uv_signal_start(&sighup, on_hangup, SIGHUP);
    if ((app.registry = ctnas_registry_new()) == NULL ||
        ctnas_runner_new(&loop, conf.max_jobs, &app.runner) < 0) {
        ctnas_log_error("out of memory");
        goto out_loop;
    }
    /* A training job has no checkpoint, so one left running by the last
     * stop can only be marked failed; searches checkpoint and resume. */
    int n_failed = 0, n_models = 0;
    if (ctnas_store_job_fail_interrupted(
            st, "train",
            "interrupted: the daemon stopped before the job finished; "
                "submit it again", &n_failed, &err) < 0 ||
        ctnas_job_train_load_serving(&app, st, &n_models, &err) < 0) {
        ctnas_log_error("cannot restore jobs and models: %s", err.msg);
        goto out_loop;
    }
    if (n_failed)
        ctnas_log_warn("%d jobs were interrupted by the last stop", n_failed);
    int n_resumed = 0;
    if (ctnas_job_search_resume(&app, st, &n_resumed, &err) < 0) {
        ctnas_log_error("cannot resume searches: %s", err.msg);
        goto out_loop;
    }
    if (n_resumed)
        ctnas_log_info("resuming %d searches", n_resumed);
    if (ctnas_retention_start(&app, &err) < 0) {
        ctnas_log_error("%s", err.msg);
        goto out_loop;
    }
    ctnas_log_info("serving %d comparators", n_models);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);

    if (ctnas_http_start(&app, conf.tls_cert[0] ? &tls : NULL, &http,
                         &err) < 0) {
        ctnas_log_error("%s", err.msg);
        goto out_loop;
    }
    /* GnuTLS holds its own copy of the key now: wipe ours. */
    ctnas_tls_free(&tls);
    int port = ctnas_http_port(http);
    if (conf.port_file[0] && write_port_file(conf.port_file, port) < 0)
        ctnas_log_warn("cannot write the port file %s", conf.port_file);
    ctnas_log_info("ctnasd %s listening on %s port %d (%s), %d threads",
                   CTNAS_VERSION, conf.listen, port,
                   conf.tls_cert[0] ? "HTTPS" : "HTTP", conf.threads);
    /* Only now: systemd orders dependent units on readiness, which must
     * mean the port accepts connections. */
    sd_notify_ready();

    uv_run(&loop, UV_RUN_DEFAULT);

    /* uv_run returned, so a signal came.  HTTP goes first, with 10 s for
     * requests in flight, so no new job can arrive while the runner
     * stops. */
    int left = ctnas_http_stop(http, 10000);
    http = NULL;
    if (conf.port_file[0])
        unlink(conf.port_file);
    if (left > 0)
        ctnas_log_warn("%d requests still in flight after 10 s: those "
                       "running were finished, those waiting told 503",
                       left);
    status = 0;
out_loop:
    /* HTTP is down, so nothing submits any more: stop the jobs (this
     * runs the loop until they are done, so close the signals first). */
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sighup, NULL);
    ctnas_runner_free(app.runner);
    app.runner = NULL;
    /* Runs any close callback still due (all of them when the runner was
     * never made); with a handle left open uv_loop_close would fail with
     * UV_EBUSY. */
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
out:
    ctnas_http_stop(http, 0);
    if (app_ok) {
        ctnas_registry_free(app.registry);
        ctnas_app_destroy(&app);
    }
    ctnas_store_close(st);
    ctnas_store_unlock(lock_fd, conf.db);
    ctnas_tls_free(&tls);
    if (status == 0)
        ctnas_log_info("stopped cleanly");
    return status;
}

/* Reports one rejected input line as file:line, the form editors jump
 * to; the import goes on with the next line. */
static void import_bad_line(void *cls, long line, const struct ctnas_err *why)
{
    const char *file = cls;
    fprintf(stderr, "%s:%ld: rejected: %s%s%s%s\n", file, line, why->msg,
            why->field[0] ? " (field " : "", why->field,
            why->field[0] ? ")" : "");
}

/* The database of the offline commands without --db: the same default
 * and variable as serve's --db (conf.c would also read every other
 * variable, and refuse a bad one these commands do not use). */
static const char *offline_db(void)
{
    const char *db = getenv("CTNASD_DB");
    return db ? db : "./ctnas.db";
}

/* Offline bulk load into the database, which must not be in use by a
 * daemon (the lock says so).  Exit status 1 when any file failed or any
 * line was rejected, so scripts notice partial imports; 2 for usage. */
static int cmd_import(int argc, char **argv, int argi)
{
    const char *db = offline_db();
    struct ctnas_import_opts o = {0};
    for (; argi < argc && strncmp(argv[argi], "--", 2) == 0; argi++) {
        const char *a = argv[argi];
        const char **dst = strcmp(a, "--db") == 0        ? &db
                           : strcmp(a, "--space") == 0   ? &o.space
                           : strcmp(a, "--dataset") == 0 ? &o.dataset
                           : strcmp(a, "--source") == 0  ? &o.source
                                                         : NULL;
        if (dst == NULL || argi + 1 >= argc) {
            fprintf(stderr, "ctnasd import: %s '%s'\n",
                    dst ? "missing value for" : "unknown option", a);
            return 2;
        }
        *dst = argv[++argi];
    }
    if (argi >= argc) {
        fprintf(stderr, "ctnasd import: no input file\n");
        return 2;
    }
    if (o.space && ctnas_space_find(o.space) == NULL) {
        fprintf(stderr, "ctnasd import: unknown space '%s'\n", o.space);
        return 2;
    }
    /* Every file checked first: a mistake must not leave a new, empty
     * database behind. */
    struct ctnas_err err = {0};
    for (int i = argi; i < argc; i++) {
        int rc = ctnas_import_check(&o, argv[i], &err);
        if (rc < 0) {
            fprintf(stderr, "ctnasd import: %s\n", err.msg);
            return rc == CTNAS_EINVAL ? 2 : 1;
        }
    }

    int lock_fd = -1, status = 1;
    struct ctnas_store *st = NULL;
    if (ctnas_store_lock(db, &lock_fd, &err) < 0) {
        fprintf(stderr, "ctnasd import: %s; stop it, or upload over HTTP "
                "(scripts/import_http.py)\n", err.msg);
        return 1;
    }
    if (ctnas_store_open(db, CTNAS_STORE_MIGRATE, &st, &err) < 0) {
        fprintf(stderr, "ctnasd import: cannot open %s: %s\n", db, err.msg);
        goto out;
    }
    status = 0;
    for (; argi < argc; argi++) {
        struct ctnas_import_stats s;
        if (ctnas_import_file(st, &o, argv[argi], &s, import_bad_line,
                              argv[argi], &err) < 0) {
            fprintf(stderr, "ctnasd import: %s: %s\n", argv[argi], err.msg);
            status = 1;
            continue;
        }
        printf("%s: %ld lines, %ld stored (%ld new architectures, %ld new "
               "measurements), %ld rejected\n", argv[argi], s.lines,
               s.stored, s.new_archs, s.new_meas, s.bad);
        if (s.bad > 0)
            status = 1;
    }
out:
    ctnas_store_close(st);
    ctnas_store_unlock(lock_fd, db);
    return status;
}

/* The database file and its WAL, in bytes (0 for a file absent). */
static double db_bytes(const char *db)
{
    char wal[4200];
    struct stat sb;
    double n = stat(db, &sb) == 0 ? (double)sb.st_size : 0;
    snprintf(wal, sizeof wal, "%s-wal", db);
    return n + (stat(wal, &sb) == 0 ? (double)sb.st_size : 0);
}

/* Offline compaction: the database file does not shrink by itself (freed
 * pages are reused, not returned), so an operator reclaims the space of
 * purged jobs and deleted rows with this, the daemon stopped. */
static int cmd_vacuum(int argc, char **argv, int argi)
{
    const char *db = offline_db();
    for (; argi < argc; argi++) {
        if (strcmp(argv[argi], "--db") != 0 || argi + 1 >= argc) {
            fprintf(stderr, "ctnasd vacuum: %s '%s'\n",
                    strcmp(argv[argi], "--db") == 0 ? "missing value for"
                                                    : "unexpected argument",
                    argv[argi]);
            return 2;
        }
        db = argv[++argi];
    }
    /* An empty file would be made a database (SQLite takes it for an
     * empty one); an absent one is never created. */
    struct stat sb;
    if (stat(db, &sb) != 0) {
        fprintf(stderr, "ctnasd vacuum: %s: %s\n", db,
                errno == ENOENT ? "no database" : strerror(errno));
        return 1;
    }
    if (sb.st_size == 0) {
        fprintf(stderr, "ctnasd vacuum: %s: an empty file, not a "
                "database\n", db);
        return 1;
    }
    struct ctnas_err err = {0};
    int lock_fd = -1, status = 1;
    struct ctnas_store *st = NULL;
    if (ctnas_store_lock(db, &lock_fd, &err) < 0) {
        fprintf(stderr, "ctnasd vacuum: %s; stop it first\n", err.msg);
        return 1;
    }
    double before = db_bytes(db);
    int rc = ctnas_store_open(db, CTNAS_STORE_EXISTING, &st, &err);
    if (rc == 0)
        rc = ctnas_store_vacuum(st, &err);
    if (rc < 0) {
        /* an older schema: the daemon migrates it at its next start */
        fprintf(stderr, "ctnasd vacuum: %s: %s%s\n", db, err.msg,
                rc == CTNAS_ECONFLICT && strstr(err.msg, "older")
                    ? "; start ctnasd on it once first"
                    : "");
    } else {
        printf("%s: %.1f MB -> %.1f MB\n", db, before / 1e6,
               db_bytes(db) / 1e6);
        status = 0;
    }
    ctnas_store_close(st);
    ctnas_store_unlock(lock_fd, db);
    return status;
}

int main(int argc, char **argv)
{
    /* jansson through ctnas_malloc too, so its allocation failures are
     * counted (mem.h) and a full heap answers 500, not 400. */
    ctnas_mem_replace(NULL);
    /* Dispatch order matters: the eval commands see their own --help;
     * then --help and --version anywhere win; then a named command; a
     * first argument that is an option means serve, the default. */
    /* eval-nac parses its own flags, --help included. */
    if (argc > 1 && strcmp(argv[1], "eval-nac") == 0)
        return ctnas_eval_nac_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "eval-search") == 0)
        return ctnas_eval_search_main(argc - 1, argv + 1);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("ctnasd %s\n", CTNAS_VERSION);
            return 0;
        }
    }
    if (argc > 1 && strcmp(argv[1], "import") == 0)
        return cmd_import(argc, argv, 2);
    if (argc > 1 && strcmp(argv[1], "vacuum") == 0)
        return cmd_vacuum(argc, argv, 2);
    if (argc > 1 && strcmp(argv[1], "serve") == 0)
        return cmd_serve(argc, argv, 2);
    if (argc > 1 && strncmp(argv[1], "--", 2) != 0) {
        fprintf(stderr, "ctnasd: unknown command '%s'\n", argv[1]);
        print_usage(stderr);
        return 2;
    }
    return cmd_serve(argc, argv, 1);
}
