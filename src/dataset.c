/*
 * dataset.c - benchmark files (CSV, JSON Lines) into architecture and
 * value arrays; seeded splits.  Reads files only; owns the arrays it
 * returns.
 */
#include "config.h"
#include "dataset.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conf.h"
#include "jsonv.h"
#include "mem.h"
#include "rng.h"

/* Make room for one more entry, doubling both arrays.  *cap moves only
 * when both grew, and on ENOMEM the caller destroys ds, which frees
 * whichever arrays exist. */
static int grow(struct ctnas_dataset *ds, int *cap)
{
    if (ds->n < *cap)
        return 0;
    int nc = *cap ? *cap * 2 : 1024;
    struct ctnas_arch *a = ctnas_realloc(ds->archs, (size_t)nc * sizeof *a);
    if (a == NULL)
        return CTNAS_ENOMEM;
    ds->archs = a;
    double *v = ctnas_realloc(ds->values, (size_t)nc * sizeof *v);
    if (v == NULL)
        return CTNAS_ENOMEM;
    ds->values = v;
    *cap = nc;
    return 0;
}

/* Trim trailing CR/LF and surrounding blanks in place. */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Split a CSV line at commas (no quoted commas in our files; surrounding
 * double quotes are stripped).  Returns the field count (<= max). */
static int csv_split(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        char *c = strchr(p, ',');
        if (c != NULL)
            *c = '\0';
        if (n < max) {
            char *t = trim(p);
            size_t k = strlen(t);
            if (k >= 2 && t[0] == '"' && t[k - 1] == '"') {
                t[k - 1] = '\0';
                t++;
            }
            f[n] = t;
        }
        n++;
        if (c == NULL)
            break;
        p = c + 1;
    }
    return n;
}

/* Columns past MAX_COLS are counted but not kept: the `arch` and value
 * columns must lie among the first 64. */
#define MAX_COLS 64

static int load_csv(struct ctnas_dataset *ds, FILE *f, const char *field,
                    char **line, size_t *cap, struct ctnas_err *err)
{
    const struct ctnas_space *sp = ds->space;
    const char *vname = field ? field : "test_accuracy";
    char *cols[MAX_COLS];
    /* line and cap are the caller's getline buffer, reused across lines
     * and freed by the caller once, on every path. */
    int lineno = 1, acap = 0;
    ssize_t len = getline(line, cap, f);
    if (len < 0)
        return ctnas_err_set(err, CTNAS_EINVAL, "data", "line 1: empty file");
    int nc = csv_split(*line, cols, MAX_COLS);
    int ia = -1, iv = -1;
    for (int i = 0; i < nc && i < MAX_COLS; i++) {
        if (strcmp(cols[i], "arch") == 0)
            ia = i;
        if (strcmp(cols[i], vname) == 0)
            iv = i;
    }
    if (ia < 0 || iv < 0)
        return ctnas_err_set(err, CTNAS_EINVAL, ia < 0 ? "arch" : vname,
                             "line 1: the header has no column '%s'",
                             ia < 0 ? "arch" : vname);
    while ((len = getline(line, cap, f)) >= 0) {
        lineno++;
        char *t = trim(*line);
        if (*t == '\0')
            continue;
        int k = csv_split(t, cols, MAX_COLS);
            /* Short rows are errors; extra columns are tolerated. */
        if (k <= ia || k <= iv)
            return ctnas_err_set(err, CTNAS_EINVAL, "data",
                                 "line %d: %d columns, the header has %d",
                                 lineno, k, nc);
        int rc = grow(ds, &acap);
        if (rc != 0)
            return ctnas_err_set(err, rc, "", "out of memory");
        struct ctnas_err perr;
        ctnas_err_clear(&perr);
        rc = sp->parse_string(cols[ia], &ds->archs[ds->n], &perr);
        if (rc != 0)
            return ctnas_err_set(err, rc, "arch", "line %d: %.120s", lineno,
                                 perr.msg);
        /* the whole field one finite number: "0.9x", "", "nan" and
         * "inf" are errors, since one bad value would poison a ranking */
        if (ctnas_conf_parse_double(cols[iv], &ds->values[ds->n]) != 0)
            return ctnas_err_set(err, CTNAS_EINVAL, vname,
                                 "line %d: '%.40s' is not a finite number",
                                 lineno, cols[iv]);
        ds->n++;
    }
    return 0;
}

static int load_jsonl(struct ctnas_dataset *ds, FILE *f, const char *field,
                      char **line, size_t *cap, struct ctnas_err *err)
{
    const struct ctnas_space *sp = ds->space;
    int lineno = 0, acap = 0;
    while (getline(line, cap, f) >= 0) {
        lineno++;
        char *t = trim(*line);
        if (*t == '\0')
            continue;
        json_error_t jerr;
        int oom;
        json_t *obj = ctnas_jsonv_load(t, strlen(t), 0, &jerr, &oom);
        if (oom)
            return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        if (obj == NULL || !json_is_object(obj)) {
            json_decref(obj);
            return ctnas_err_set(err, CTNAS_EINVAL, "data",
                                 "line %d: not a JSON object: %.100s", lineno,
                                 obj ? "" : jerr.text);
        }
        /* The architecture: `arch`, else an object of adjacency + ops. */
        json_t *arch = json_object_get(obj, "arch"), *own = NULL;
        if (arch == NULL) {
            own = json_object();
            json_t *adj = json_object_get(obj, "adjacency");
            json_t *ops = json_object_get(obj, "ops");
            if (own == NULL || adj == NULL || ops == NULL) {
                json_decref(own);
                json_decref(obj);
                return ctnas_err_set(err, CTNAS_EINVAL, "arch",
                                     "line %d: no arch, or adjacency and ops",
                                     lineno);
            }
            json_object_set(own, "adjacency", adj);
            json_object_set(own, "ops", ops);
            arch = own;
        }
        /* Chosen per line, as the header promises: a file may have
         * val_accuracy on some lines and null on others. */
        const char *vname = field;
        if (vname == NULL) {
            json_t *vv = json_object_get(obj, "val_accuracy");
            vname = vv != NULL && !json_is_null(vv) ? "val_accuracy"
                                                    : "test_accuracy";
        }
        json_t *val = json_object_get(obj, vname);
        int rc = grow(ds, &acap);
        if (rc != 0) {
            json_decref(own);
            json_decref(obj);
            return ctnas_err_set(err, rc, "", "out of memory");
        }
        struct ctnas_err perr;
        ctnas_err_clear(&perr);
        /* own held new references to adj and ops (json_object_set),
         * so it can go as soon as the parser is done with it. */
        rc = sp->parse_json(arch, &ds->archs[ds->n], &perr);
        json_decref(own);
        if (rc != 0) {
            json_decref(obj);
            return ctnas_err_set(err, rc, "arch", "line %d: %.120s", lineno,
                                 perr.msg);
        }
        if (!json_is_number(val) || !isfinite(json_number_value(val))) {
            json_decref(obj);
            return ctnas_err_set(err, CTNAS_EINVAL, vname,
                                 "line %d: no finite number '%s'", lineno,
                                 vname);
        }
        ds->values[ds->n] = json_number_value(val);
        json_decref(obj);
        ds->n++;
    }
    return 0;
}

int ctnas_dataset_load(struct ctnas_dataset *ds, const struct ctnas_space *sp,
                       const char *path, const char *field,
                       struct ctnas_err *err)
{
    memset(ds, 0, sizeof *ds);
    ds->space = sp;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return ctnas_err_set(err, CTNAS_EIO, "data", "cannot open %.100s: %s",
                             path, strerror(errno));
    int c;
    /* Sniff the format from the first non-blank byte, then start over:
     * a CSV header never begins with '{'. */
    while ((c = getc(f)) != EOF && isspace(c))
        ;
    int jsonl = c == '{';
    rewind(f);
    char *line = NULL;
    size_t cap = 0;
    int rc = jsonl ? load_jsonl(ds, f, field, &line, &cap, err)
                   : load_csv(ds, f, field, &line, &cap, err);
    if (rc == 0 && ferror(f))
        rc = ctnas_err_set(err, CTNAS_EIO, "data", "reading %.100s failed",
                           path);
    if (rc == 0 && ds->n == 0)
        rc = ctnas_err_set(err, CTNAS_EINVAL, "data",
                           "%.100s holds no architectures", path);
    free(line); /* getline's buffer: libc's, not ours (mem.h) */
    fclose(f);
        /* On failure nothing is handed out: ds is empty again. */
    if (rc != 0)
        ctnas_dataset_destroy(ds);
    return rc;
}

void ctnas_dataset_destroy(struct ctnas_dataset *ds)
{
    if (ds == NULL)
        return;
    ctnas_free(ds->archs);
    ctnas_free(ds->values);
    ctnas_free(ds->ids);
    ds->archs = NULL;
    ds->values = NULL;
    ds->ids = NULL;
    ds->n = 0;
}

int ctnas_dataset_split(const struct ctnas_dataset *ds, int n_train,
                        int n_test, uint64_t seed, int **train, int **test,
                        struct ctnas_err *err)
{
    /* The permutation depends only on (n, seed), not on the sizes asked
     * for, so the training sets of one seed are nested: a larger n_train
     * extends a smaller one. */
    *train = *test = NULL;
    if (n_train < 0 || n_test < 0 || (long)n_train + n_test > ds->n)
        return ctnas_err_set(err, CTNAS_EINVAL, "train",
                             "%d training + %d test architectures, the data "
                             "has %d", n_train, n_test, ds->n);
    int *perm = ctnas_malloc((size_t)(ds->n ? ds->n : 1) * sizeof *perm);
    int *tr = ctnas_malloc((size_t)(n_train ? n_train : 1) * sizeof *tr);
    int *te = ctnas_malloc((size_t)(n_test ? n_test : 1) * sizeof *te);
    if (perm == NULL || tr == NULL || te == NULL) {
        ctnas_free(perm);
        ctnas_free(tr);
        ctnas_free(te);
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }
    for (int i = 0; i < ds->n; i++)
        perm[i] = i;
    struct ctnas_rng rng;
    ctnas_rng_seed(&rng, seed);
    ctnas_rng_shuffle(&rng, perm, ds->n);
    memcpy(tr, perm, (size_t)n_train * sizeof *tr);
    memcpy(te, perm + n_train, (size_t)n_test * sizeof *te);
    ctnas_free(perm);
    *train = tr;
    *test = te;
    return 0;
}
