/*
 * importer.c - CSV and JSON Lines import (see importer.h).  Each line is
 * turned into an API item and goes through arch_json.c, so the import
 * accepts exactly what POST /v1/architectures accepts.
 */
#include "config.h"
#include "importer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch_json.h"
#include "jsonv.h"
#include "mem.h"

/* A header wider than this is refused outright rather than read in part:
 * a metric column silently dropped would be data lost. */
#define MAX_COLS 32

/* Trim spaces, CR and one pair of surrounding double quotes in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' ||
                 s[n - 1] == '\n'))
        s[--n] = '\0';
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

/* Split at commas into at most max columns; max + 1 when there are more
 * (cols then holds the first max). */
static int split_csv(char *line, char **cols, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        char *c = strchr(p, ',');
        if (n == max)
            return max + 1;
        if (c)
            *c = '\0';
        cols[n++] = trim(p);
        if (!c)
            break;
        p = c + 1;
    }
    return n;
}

/* CSV state: which column is the architecture, the names of the others. */
struct csv_header {
    int n_cols, arch_col;
    char names[MAX_COLS][64];
};

/* The first non-blank line of a CSV file.  Column names are copied out
 * because line is the getline buffer, overwritten by the next line.
 * Every column but "arch" is a metric of --dataset. */
static int csv_header_parse(char *line, struct csv_header *hd,
                            struct ctnas_err *err)
{
    char *cols[MAX_COLS];
    hd->n_cols = split_csv(line, cols, MAX_COLS);
    hd->arch_col = -1;
    if (hd->n_cols > MAX_COLS)
        return ctnas_err_set(err, CTNAS_EINVAL, "header",
                             "CSV header has more than %d columns",
                             MAX_COLS);
    for (int i = 0; i < hd->n_cols; i++) {
        if (strlen(cols[i]) == 0 || strlen(cols[i]) >= 64)
            return ctnas_err_set(err, CTNAS_EINVAL, "header",
                                 "CSV header column %d is empty or too long",
                                 i + 1);
        strcpy(hd->names[i], cols[i]);
        if (strcmp(cols[i], "arch") == 0)
            hd->arch_col = i;
    }
    if (hd->arch_col < 0 || hd->n_cols < 2)
        return ctnas_err_set(err, CTNAS_EINVAL, "header",
                             "CSV header must name an 'arch' column and at "
                             "least one metric column (e.g. "
                             "arch,test_accuracy)");
    return 0;
}

/* A CSV data line as an API item (new reference) or NULL with err. */
static json_t *csv_item(char *line, const struct csv_header *hd,
                        const struct ctnas_import_opts *o,
                        struct ctnas_err *err)
{
    char *cols[MAX_COLS];
    int n = split_csv(line, cols, MAX_COLS);
        /* A ragged row is refused whole: which column is which would be
         * a guess. */
    if (n != hd->n_cols) {
        ctnas_err_set(err, CTNAS_EINVAL, "", "expected %d columns, found %s%d",
                      hd->n_cols, n > MAX_COLS ? "more than " : "",
                      n > MAX_COLS ? MAX_COLS : n);
        return NULL;
    }
    json_t *meas = json_array();
    for (int i = 0; i < n; i++) {
        if (i == hd->arch_col)
            continue;
        char *end;
        double v = strtod(cols[i], &end);
        if (end == cols[i] || *end != '\0' || !isfinite(v)) {
            json_decref(meas);
            ctnas_err_set(err, CTNAS_EINVAL, hd->names[i],
                          "column %s: '%.40s' is not a finite number",
                          hd->names[i], cols[i]);
            return NULL;
        }
        /* json_pack refuses text that is not UTF-8: say so, rather than
         * drop the measurement. */
        json_t *m = json_pack("{s:s, s:s, s:f}", "dataset", o->dataset,
                              "metric", hd->names[i], "value", v);
        if (m == NULL || json_array_append_new(meas, m) < 0) {
            json_decref(meas);
            ctnas_err_set(err, CTNAS_EINVAL, hd->names[i],
                          "column %s: the dataset or metric name is not "
                          "UTF-8 text", hd->names[i]);
            return NULL;
        }
    }
    /* s:o steals meas even when packing fails. */
    json_t *item = json_pack("{s:s, s:s, s:o}", "space", o->space, "arch",
                             cols[hd->arch_col], "measurements", meas);
    if (item == NULL)
        ctnas_err_set(err, CTNAS_EINVAL, "arch",
                      "the arch column is not UTF-8 text");
    return item;
}

/* The fields of a NAS-Bench-101 record kept as measurements; any other
 * field (training time, parameter count, ...) is ignored. */
static const char *const nb101_metrics[] = {"val_accuracy", "test_accuracy",
                                            "train_accuracy", NULL};

/* A JSON line as an API item (new reference) or NULL with err. */
static json_t *jsonl_item(const char *line, const struct ctnas_import_opts *o,
                          char expect_hash[CTNAS_HASH_LEN],
                          struct ctnas_err *err)
{
    json_error_t jerr;
    /* Duplicate keys are refused as over HTTP: with two "value" fields
     * a reader could not tell which one was stored. */
    int oom;
    json_t *j = ctnas_jsonv_load(line, strlen(line), JSON_REJECT_DUPLICATES,
                                 &jerr, &oom);
    expect_hash[0] = '\0';
    if (oom) {
        ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        return NULL;
    }
    if (j == NULL) {
        ctnas_err_set(err, CTNAS_EINVAL, "", "malformed JSON at column %d: "
                      "%s", jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(j) || json_object_get(j, "arch") != NULL)
        return j; /* API item (or garbage that item parsing will name) */

    /* A NAS-Bench-101 record: spec at top level, metrics beside it. */
    if (o->dataset == NULL) {
        json_decref(j);
        ctnas_err_set(err, CTNAS_EINVAL, "--dataset",
                      "NAS-Bench-101 records need --dataset");
        return NULL;
    }
    json_t *meas = json_array();
    for (const char *const *m = nb101_metrics; *m; m++) {
        json_t *v = json_object_get(j, *m);
        if (v != NULL)
            json_array_append_new(meas, json_pack("{s:s, s:s, s:O}",
                                                  "dataset", o->dataset,
                                                  "metric", *m, "value", v));
    }
    /* O? packs a missing adjacency or ops as null, so item parsing names
     * the missing field; s:o steals meas even when the pack fails. */
    json_t *item = json_pack(
        "{s:s, s:{s:O?, s:O?}, s:o}", "space",
        o->space ? o->space : "nasbench101", "arch", "adjacency",
        json_object_get(j, "adjacency"), "ops", json_object_get(j, "ops"),
        "measurements", meas);
    if (item == NULL)
        ctnas_err_set(err, CTNAS_EINVAL, "", "cannot turn the NAS-Bench-101 "
                      "record into an item (--space or --dataset not "
                      "UTF-8?)");
    json_t *h = json_object_get(j, "nb101_hash");
        /* Checked against the parsed cell by the caller: a converter
         * that mangled the cell (op order, say) is caught here rather
         * than stored under another architecture's name. */
    if (json_is_string(h))
        snprintf(expect_hash, CTNAS_HASH_LEN, "%s", json_string_value(h));
    json_decref(j);
    return item;
}

int ctnas_import_check(const struct ctnas_import_opts *o, const char *path,
                       struct ctnas_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return ctnas_err_set(err, CTNAS_EIO, "file", "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    while (getline(&line, &cap, f) >= 0) {
        const char *s = trim(line);
        if (*s == '\0')
            continue;
        /* sniffed as ctnas_import_file does */
        if (*s != '{' && (o->space == NULL || o->dataset == NULL))
            rc = ctnas_err_set(err, CTNAS_EINVAL, "--space",
                               "%s is CSV: a CSV import needs --space and "
                               "--dataset", path);
        break;
    }
    free(line); /* getline's buffer: libc's, not ours (mem.h) */
    fclose(f);
    return rc;
}

/* Command-line only (main.c), with the database lock held, so no daemon
 * writes meanwhile.  One transaction for the whole file: SQLite commits
 * are slow one by one, and a database failure then leaves nothing
 * half-imported.  Bad lines are counted and skipped, not fatal. */
int ctnas_import_file(struct ctnas_store *st,
                      const struct ctnas_import_opts *opts, const char *path,
                      struct ctnas_import_stats *stats,
                      ctnas_import_bad_fn bad_fn, void *cls,
                      struct ctnas_err *err)
{
    struct ctnas_import_opts o = *opts;
    if (o.source == NULL)
        o.source = "import";
    memset(stats, 0, sizeof *stats);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return ctnas_err_set(err, CTNAS_EIO, "file", "cannot open %s", path);

    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int is_csv = -1;
    struct csv_header hd;
    int rc = ctnas_store_begin(st, err);
    if (rc < 0)
        goto out;

    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0')
            continue;
        if (is_csv < 0) {
            /* Sniffed from the first non-blank line, as dataset.c does:
             * a CSV header never starts with '{'. */
            is_csv = *s != '{';
            if (is_csv) {
                if (o.space == NULL || o.dataset == NULL) {
                    rc = ctnas_err_set(err, CTNAS_EINVAL, "--space",
                                       "a CSV import needs --space and "
                                       "--dataset");
                    goto fail;
                }
                if ((rc = csv_header_parse(s, &hd, err)) < 0)
                    goto fail;
                continue;
            }
        }
        stats->lines++;
        struct ctnas_err lerr = {0};
        char expect_hash[CTNAS_HASH_LEN] = "";
        json_t *j = is_csv ? csv_item(s, &hd, &o, &lerr)
                           : jsonl_item(s, &o, expect_hash, &lerr);
        if (j == NULL && lerr.code == 0)  /* never count it as stored */
            ctnas_err_set(&lerr, CTNAS_EINVAL, "", "unreadable line");
        struct ctnas_item item;
        int64_t id;
        int is_new = 0, new_meas = 0;
        if (j != NULL) {
            int lrc = ctnas_item_parse(j, "", o.space, &item, &lerr);
            char hash[CTNAS_HASH_LEN];
            if (lrc == 0 && expect_hash[0]) {
                item.space->hash(&item.arch, hash);
                if (strcmp(hash, expect_hash) != 0)
                    lrc = ctnas_err_set(&lerr, CTNAS_EINVAL, "nb101_hash",
                                        "nb101_hash %s does not match the "
                                        "cell's fingerprint %s",
                                        expect_hash, hash);
            }
            if (lrc == 0)
                lrc = ctnas_item_store(st, &item, "", o.source, &id, &is_new,
                                       &new_meas, &lerr);
            /* These three codes blame the line; anything else (EDB,
             * ENOMEM) blames the database or the machine. */
            if (lrc < 0 && lrc != CTNAS_EINVAL && lrc != CTNAS_ENUMERIC &&
                lrc != CTNAS_ETOOLARGE) {
                /* The database failed, not the line: stop, store nothing. */
                *err = lerr;
                rc = lrc;
                json_decref(j);
                goto fail;
            }
        }
        json_decref(j);
        if (lerr.code != 0) {
            stats->bad++;
            if (bad_fn)
                bad_fn(cls, lineno, &lerr);
            continue;
        }
        stats->stored++;
        stats->new_archs += is_new;
        stats->new_meas += new_meas;
    }
    if (ferror(f)) {
        rc = ctnas_err_set(err, CTNAS_EIO, "file", "error reading %s", path);
        goto fail;
    }
    rc = ctnas_store_commit(st, err);
    goto out;
fail:
    ctnas_store_rollback(st);
    /* Rolled back: nothing was stored, whatever the loop counted. */
    stats->stored = stats->new_archs = stats->new_meas = 0;
out:
    free(line); /* getline's buffer: libc's, not ours (mem.h) */
    fclose(f);
    return rc;
}
