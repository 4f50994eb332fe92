/*
 * fuzz_import.c - libFuzzer target: the import readers (CSV, JSON Lines)
 * of `ctnasd import`, into a fresh in-memory store per input.  The first
 * byte picks the options, the rest is the file:
 *   odd            --space nasbench201 --dataset d
 *   even, bit 1    --dataset d (no default space)
 *   even, no bit 1 neither (CSV then fails as a whole; NB101 records are
 *                  bad lines)
 * Afterwards every stored row must read back through its space.
 *
 * The store is ":memory:", opened and migrated once (migrating costs ten
 * times the import of a small file) and emptied after each input, which
 * leaves it as a fresh one: no transaction open, no rows, so ids restart
 * at 1.  Set FUZZ_IMPORT_FRESH=1 in the environment to open a new store
 * for every input instead.
 */
#include "config.h"

#include <jansson.h>
#include <unistd.h>

#include "arch_json.h"
#include "fuzz.h"
#include "importer.h"
#include "store.h"
#include "store_int.h"

static void on_bad(void *cls, long line, const struct ctnas_err *why)
{
    (void)cls;
    (void)line;
    (void)why;
}

/* Write data to a new temporary file; its path goes to path. */
static void write_temp(const uint8_t *data, size_t size, char *path,
                       size_t cap)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, cap, "%s/ctnas-fuzz-import-XXXXXX",
             dir && dir[0] ? dir : "/tmp");
    int fd = mkstemp(path);
    FUZZ_CHECK(fd >= 0);
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        FUZZ_CHECK(w > 0);
        off += (size_t)w;
    }
    close(fd);
}

static struct ctnas_store *shared;

static int count_cb(void *cls, int n, char **vals, char **names)
{
    (void)names;
    *(long *)cls = n == 1 && vals[0] ? atol(vals[0]) : -1;
    return 0;
}

/* A migrated store with no rows: the shared one, or a new one when
 * FUZZ_IMPORT_FRESH is set. */
static struct ctnas_store *store_get(void)
{
    static int fresh = -1;
    if (fresh < 0) {
        const char *e = getenv("FUZZ_IMPORT_FRESH");
        fresh = e != NULL && e[0] == '1';
    }
    if (!fresh && shared != NULL)
        return shared;
    struct ctnas_store *st = NULL;
    struct ctnas_err err = {0};
    FUZZ_CHECK(ctnas_store_open(":memory:", CTNAS_STORE_MIGRATE, &st,
                                &err) == 0);
    if (!fresh)
        shared = st;
    return st;
}

/* Hand the store back: empty it (the measurement trigger empties
 * arch_scores), or close it. */
static void store_put(struct ctnas_store *st)
{
    /* Whatever happened, the importer left no transaction open. */
    FUZZ_CHECK(sqlite3_get_autocommit(st->db));
    if (st != shared) {
        ctnas_store_close(st);
        return;
    }
    FUZZ_CHECK(sqlite3_exec(st->db, "DELETE FROM measurements; "
                            "DELETE FROM architectures;", NULL, NULL,
                            NULL) == SQLITE_OK);
    long n = -1;
    FUZZ_CHECK(sqlite3_exec(st->db, "SELECT (SELECT count(*) FROM "
                            "architectures) + (SELECT count(*) FROM "
                            "arch_scores)", count_cb, &n, NULL) ==
                   SQLITE_OK &&
               n == 0);
}

/* Whether the importer reads file as CSV: its first line that is not
 * blank after trimming (spaces, tabs, CR, one pair of quotes; up to a
 * NUL, as the importer's strlen sees it) does not start with '{'. */
static int is_csv(const uint8_t *file, size_t size)
{
    size_t i = 0;
    while (i < size) {
        size_t end = i;
        while (end < size && file[end] != '\n')
            end++;
        size_t next = end + 1, b = i, e = end;
        for (size_t k = b; k < e; k++)
            if (file[k] == '\0') {
                e = k;
                break;
            }
        while (b < e && (file[b] == ' ' || file[b] == '\t'))
            b++;
        while (e > b && (file[e - 1] == ' ' || file[e - 1] == '\t' ||
                         file[e - 1] == '\r'))
            e--;
        if (e - b >= 2 && file[b] == '"' && file[e - 1] == '"') {
            b++;
            e--;
        }
        if (e > b)
            return file[b] != '{';
        i = next;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct ctnas_import_opts opts = {0};
    if (data[0] & 1) {
        opts.space = "nasbench201";
        opts.dataset = "d";
    } else if (data[0] & 2) {
        opts.dataset = "d";
    }

    int csv = is_csv(data + 1, size - 1);
    char path[4096];
    write_temp(data + 1, size - 1, path, sizeof path);

    struct ctnas_store *st = store_get();
    struct ctnas_err err = {0};
    struct ctnas_import_stats stats;
    int rc = ctnas_import_file(st, &opts, path, &stats, on_bad, NULL, &err);
    unlink(path);
    if (rc < 0) {
        FUZZ_CHECK(err.code == rc && err.msg[0] != '\0');
        FUZZ_CHECK(stats.stored == 0 && stats.new_archs == 0);
    } else {
        FUZZ_CHECK(rc == 0);
        FUZZ_CHECK(stats.lines >= 0 && stats.bad >= 0 &&
                   stats.stored + stats.bad == stats.lines);
        FUZZ_CHECK(stats.new_archs <= stats.stored);
        /* The store starts empty: the first line stored is new. */
        FUZZ_CHECK(stats.stored == 0 || stats.new_archs >= 1);
    }

    /* What was stored reads back: ids 1..new_archs, each parsable by its
     * space, with a hash equal to the recomputed one. */
    for (int64_t id = 1; rc == 0 && id <= stats.new_archs; id++) {
        struct ctnas_arch_row row;
        memset(&err, 0, sizeof err);
        FUZZ_CHECK(ctnas_store_arch_get(st, id, &row, &err) == 0);
        const struct ctnas_space *sp = ctnas_space_find(row.space);
        FUZZ_CHECK(sp != NULL);
        struct ctnas_arch a;
        FUZZ_CHECK(sp->parse_string(row.encoding, &a, &err) == 0);
        char h[CTNAS_HASH_LEN];
        sp->hash(&a, h);
        FUZZ_CHECK(strcmp(h, row.hash) == 0);
        fuzz_check_arch(sp, &a);
        /* A CSV line has at least one metric column, and each is kept. */
        if (csv)
            FUZZ_CHECK(row.n_meas >= 1);
        json_t *j = ctnas_item_row_json(&row);
        FUZZ_CHECK(j != NULL);
        json_decref(j);
        ctnas_store_row_destroy(&row);
    }
    /* Nothing beyond them. */
    if (rc == 0) {
        struct ctnas_arch_row row;
        FUZZ_CHECK(ctnas_store_arch_get(st, stats.new_archs + 1, &row,
                                        NULL) == CTNAS_ENOTFOUND);
    }
    store_put(st);
    return 0;
}
