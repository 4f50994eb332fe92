/*
 * api_model.c - the comparator routes: /v1/nac (models), /v1/nac/train,
 * /v1/compare and /v1/rank.  Each request takes a reference to the model
 * it uses, so a model published meanwhile never pulls weights from under
 * it.  Graph features are computed once per distinct architecture.
 */
#include "config.h"
#include "api.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arch_json.h"
#include "job_train.h"
#include "jsonv.h"
#include "mem.h"
#include "nac.h"
#include "registry.h"
#include "space.h"
#include "store_ml.h"

/* Handlers here run on MHD threads and follow api.h: the HTTP status on
 * success with *out a new reference, or a negative CTNAS_E* code with err
 * filled; the store connection from ctnas_app_store is the thread's own. */
/* Mark a model row "serving" (and, when it is, how many features its
 * cache holds: how far the warm-up, then requests, filled it).  0, or -1
 * when out of memory. */
static int mark_serving(struct ctnas_registry *reg, json_t *row)
{
    struct ctnas_served *s = ctnas_registry_get(
        reg, json_string_value(json_object_get(row, "space")),
        json_string_value(json_object_get(row, "dataset")), NULL);
    int serving =
        s && s->id == json_integer_value(json_object_get(row, "id"));
    int bad = json_object_set_new(row, "serving", json_boolean(serving));
    if (serving)
        bad |= json_object_set_new(row, "cached_features",
                                   json_integer(ctnas_served_cached(s)));
    ctnas_served_release(s);
    return bad ? -1 : 0;
}

int ctnas_api_nac_list(struct ctnas_req *req, json_t **out,
                       struct ctnas_err *err)
{
    static const char *const params[] = {"space", "dataset", "limit",
                                         "cursor", NULL};
    int rc = ctnas_req_query_only(req, params, err);
    if (rc < 0)
        return rc;
    const char *space = ctnas_req_query(req, "space");
    const char *dataset = ctnas_req_query(req, "dataset");
    int64_t limit = 100, before;
    const char *lim = ctnas_req_query(req, "limit");
    if (lim && (rc = ctnas_jsonv_parse_int(lim, "limit", 1, 1000, &limit,
                                           err)) < 0)
        return rc;
    if ((rc = ctnas_api_cursor_read(req, &before, err)) < 0)
        return rc;
    if (space && ctnas_space_find(space) == NULL)
        return ctnas_err_set(err, CTNAS_EINVAL, "space",
                             "unknown space '%s'", space);
    struct ctnas_store *st;
    json_t *rows;
    if ((rc = ctnas_app_store(req->app, &st, err)) < 0 ||
        (rc = ctnas_store_model_list(st, space, dataset, before,
                                     (int)limit + 1, &rows, err)) < 0)
        return rc;
    json_t *next = ctnas_api_cursor_cut(rows, (size_t)limit);
    if (next == NULL) {
        json_decref(rows);
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }
    /* One registry lookup per row, each a mutex and a pointer copy: with
     * at most 1000 rows that is cheaper than anything cleverer. */
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        if (mark_serving(req->app->registry, row) != 0) {
            json_decref(rows);
            json_decref(next);
            return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        }
    }
    *out = json_pack("{s:o, s:o}", "items", rows, "next_cursor", next);
    return 200;
}

int ctnas_api_nac_get(struct ctnas_req *req, json_t **out,
                      struct ctnas_err *err)
{
    int64_t id;
    struct ctnas_store *st;
    json_t *row;
    int rc;
    if ((rc = ctnas_api_path_id(req->params[0], "id", "model", &id,
                                err)) < 0)
        return rc;
    if ((rc = ctnas_app_store(req->app, &st, err)) < 0)
        return rc;
    rc = ctnas_store_model_get(st, id, &row, NULL, NULL, err);
    if (rc == CTNAS_ENOTFOUND)
        return ctnas_err_set(err, rc, "id", "no model %lld", (long long)id);
    if (rc < 0)
        return rc;
    if (mark_serving(req->app->registry, row) != 0) {
        json_decref(row);
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }
    *out = row;
    return 200;
}

int ctnas_api_nac_delete(struct ctnas_req *req, json_t **out,
                         struct ctnas_err *err)
{
    int64_t id;
    struct ctnas_store *st;
    int rc;
    if ((rc = ctnas_api_path_id(req->params[0], "id", "model", &id,
                                err)) < 0)
        return rc;
    /* The serving one stays: only a newer published model replaces it
     * (so none can start serving between this look and the delete). */
    struct ctnas_served *sv = ctnas_registry_find(req->app->registry, id);
    if (sv != NULL) {
        ctnas_err_set(err, CTNAS_ECONFLICT, "id",
                      "model %lld serves %s on %s: publish a newer one for "
                      "them first", (long long)id, sv->space, sv->dataset);
        ctnas_served_release(sv);
        return CTNAS_ECONFLICT;
    }
    if ((rc = ctnas_app_store(req->app, &st, err)) < 0 ||
        (rc = ctnas_store_model_delete(st, id, err)) < 0)
        return rc;
    *out = json_pack("{s:I, s:b}", "id", (json_int_t)id, "deleted", 1);
    return 200;
}

int ctnas_api_nac_train(struct ctnas_req *req, json_t **out,
                        struct ctnas_err *err)
{
    return ctnas_api_job_submit(req, ctnas_job_train_submit, out, err);
}

/* ---- shared by compare and rank ---- */

/* The architectures of a request and their features.  compare dedupes,
 * so a batch of pairs over few architectures runs the GCN once per
 * architecture; rank does not, so index i stays request position i.
 * table is kept at most half full (tcap = 2 cap), so probes end. */
struct arch_set {
    const struct ctnas_space *space;
    int n, cap;
    struct ctnas_arch *archs;
    int64_t *ids;
    /* open-addressing tables of indices into archs, for dedupe: by
     * cell, and by stored id (so a repeated id is read from the store
     * once, not once per pair) */
    int *table, *idtable, tcap;
    ctnas_real *feat;
};

static size_t id_slot(int64_t id, size_t mask)
{
    return ((uint64_t)id * 0x9e3779b97f4a7c15ULL >> 17) & mask;
}

/* Index of stored id in the set, or -1. */
static int arch_set_find_id(const struct arch_set *s, int64_t id)
{
    if (s->idtable == NULL)
        return -1;
    size_t mask = (size_t)s->tcap - 1;
    for (size_t h = id_slot(id, mask); s->idtable[h] >= 0;
         h = (h + 1) & mask)
        if (s->ids[s->idtable[h]] == id)
            return s->idtable[h];
    return -1;
}

static void arch_set_put_id(struct arch_set *s, int index)
{
    size_t mask = (size_t)s->tcap - 1;
    size_t h = id_slot(s->ids[index], mask);
    while (s->idtable[h] >= 0)
        h = (h + 1) & mask;
    s->idtable[h] = index;
}

static void arch_set_destroy(struct arch_set *s)
{
    ctnas_free(s->archs);
    ctnas_free(s->ids);
    ctnas_free(s->table);
    ctnas_free(s->idtable);
    ctnas_free(s->feat);
}

/* On ENOMEM the set is left consistent enough to destroy, not to use:
 * every caller fails the request at once. */
static int arch_set_grow(struct arch_set *s)
{
    int cap = s->cap ? s->cap * 2 : 64;
    struct ctnas_arch *a = ctnas_realloc(s->archs, (size_t)cap * sizeof *a);
    if (a == NULL)
        return CTNAS_ENOMEM;
    s->archs = a;
    int64_t *ids = ctnas_realloc(s->ids, (size_t)cap * sizeof *ids);
    if (ids == NULL)
        return CTNAS_ENOMEM;
    s->ids = ids;
    s->cap = cap;
    /* Rehash into tables twice the capacity. */
    ctnas_free(s->table);
    ctnas_free(s->idtable);
    s->tcap = cap * 2;
    s->table = ctnas_malloc((size_t)s->tcap * sizeof *s->table);
    s->idtable = ctnas_malloc((size_t)s->tcap * sizeof *s->idtable);
    if (s->table == NULL || s->idtable == NULL)
        return CTNAS_ENOMEM;
    memset(s->table, -1, (size_t)s->tcap * sizeof *s->table);
    memset(s->idtable, -1, (size_t)s->tcap * sizeof *s->idtable);
    for (int i = 0; i < s->n; i++) {
        size_t h = ctnas_arch_hash64(&s->archs[i]) & (size_t)(s->tcap - 1);
        while (s->table[h] >= 0)
            h = (h + 1) & (size_t)(s->tcap - 1);
        s->table[h] = i;
        if (s->ids[i])
            arch_set_put_id(s, i);
    }
    return 0;
}

/* Index of a in the set, adding it unless dedupe finds it there. */
static int arch_set_add(struct arch_set *s, const struct ctnas_arch *a,
                        int64_t id, int dedupe, int *index)
{
    if (s->n == s->cap && arch_set_grow(s) < 0)
        return CTNAS_ENOMEM;
    size_t mask = (size_t)s->tcap - 1, h = ctnas_arch_hash64(a) & mask;
    for (; s->table[h] >= 0; h = (h + 1) & mask)
        if (dedupe && memcmp(&s->archs[s->table[h]], a, sizeof *a) == 0) {
            *index = s->table[h];
                /* A literal and a stored id of the same cell: keep the
                 * id, so the answer can name the stored row. */
            if (id && !s->ids[*index]) {
                s->ids[*index] = id;
                arch_set_put_id(s, *index);
            }
            return 0;
        }
    s->archs[s->n] = *a;
    s->ids[s->n] = id;
    s->table[h] = s->n;
    if (id)
        arch_set_put_id(s, s->n);
    *index = s->n++;
    return 0;
}

/* Features of every architecture in the set with model m. */
static int arch_set_features(struct arch_set *s, struct ctnas_served *m,
                             struct ctnas_err *err)
{
    int w = ctnas_nac_feature_width(m->nac);
    s->feat = ctnas_malloc((size_t)(s->n ? s->n : 1) * (size_t)w *
                           sizeof *s->feat);
    /* served_features fails only for want of memory, hence one message. */
    if (s->feat == NULL ||
        ctnas_served_features(m, s->space, s->archs, s->n, s->feat) < 0)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    return 0;
}

/* The model a request asks for: "model" id, else the one serving
 * (space, "dataset"). New reference in *out. */
static int pick_model(struct ctnas_req *req, struct ctnas_store *st,
                      const json_t *body, const struct ctnas_space *space,
                      struct ctnas_served **out, struct ctnas_err *err)
{
    int64_t model_id = 0;
    const char *dataset = NULL;
    int rc;
    if ((rc = ctnas_jsonv_int(body, "", "model", 0, &model_id, 1, INT64_MAX,
                              err)) < 0 ||
        (rc = ctnas_jsonv_string(body, "", "dataset", 0, &dataset, 63,
                                 err)) < 0)
        return rc;
    /* An explicit id may name a model that is not serving (an older one,
     * or one trained with publish false): it is loaded from the store for
     * this request only and freed with its reference. */
    if (model_id) {
        if (dataset)
            return ctnas_err_set(err, CTNAS_EINVAL, "dataset",
                                 "give a model id or a dataset, not both");
        rc = ctnas_job_train_load_model(st, model_id, out, err);
        if (rc == CTNAS_ENOTFOUND)
            return ctnas_err_set(err, CTNAS_EINVAL, "model", "no model %lld",
                                 (long long)model_id);
        if (rc == 0 && strcmp((*out)->space, space->name) != 0) {
            ctnas_err_set(err, CTNAS_EINVAL, "model",
                          "model %lld compares %s architectures, not %s",
                          (long long)model_id, (*out)->space, space->name);
            ctnas_served_release(*out);
            *out = NULL; /* the caller releases *out too */
            return CTNAS_EINVAL;
        }
        return rc;
    }
    int ambiguous;
    *out = ctnas_registry_get(req->app->registry, space->name, dataset,
                              &ambiguous);
    if (*out)
        return 0;
    if (ambiguous) {
        char list[200];
        ctnas_registry_datasets(req->app->registry, space->name, list,
                                sizeof list);
        return ctnas_err_set(err, CTNAS_EINVAL, "dataset",
                             "several comparators serve %s, for datasets "
                             "%s: name the dataset (or a model id)",
                             space->name, list);
    }
    /* 409, not 404: the request is fine, the daemon's state is not ready
     * for it yet. */
    return ctnas_err_set(err, CTNAS_ECONFLICT, "",
                         "no comparator is trained for %s%s%s yet: train "
                         "one with POST /v1/nac/train {\"space\": \"%s\", "
                         "\"dataset\": ...}", space->name,
                         dataset ? " on " : "", dataset ? dataset : "",
                         space->name);
}

/* Names the model that answered, so a client can tell when a newly
 * published model changed its answers. */
static json_t *model_json(const struct ctnas_served *s)
{
    return json_pack("{s:I, s:s, s:s, s:s*}", "id", (json_int_t)s->id,
                     "space", s->space, "dataset", s->dataset, "metric",
                     s->metric[0] ? s->metric : NULL);
}

/* The request's "space", if any. */
static int body_space(const json_t *body, const struct ctnas_space **space,
                      struct ctnas_err *err)
{
    const char *name = NULL;
    int rc = ctnas_jsonv_string(body, "", "space", 0, &name, 31, err);
    if (rc < 0)
        return rc;
    *space = NULL;
    if (name && (*space = ctnas_space_find(name)) == NULL)
        return ctnas_err_set(err, CTNAS_EINVAL, "space",
                             "unknown space '%s'", name);
    return 0;
}

/* ctnas_arch_ref_parse for the reference at name, name[i] or name[i][j]
 * (i or j < 0 leaves that index out).  The path is printed only when
 * there is an error to name it in, by a second call: printing it for
 * each of the 20,000 references of a batch took ~5% of the request. */
static int ref_parse_at(struct ctnas_store *st,
                        const struct ctnas_space **space, const json_t *ref,
                        const char *name, long i, int j,
                        struct ctnas_arch *a, int64_t *id,
                        struct ctnas_err *err)
{
    const struct ctnas_space *given = *space;
    if (i < 0)
        return ctnas_arch_ref_parse(st, space, ref, name, a, id, err);
    if (ctnas_arch_ref_parse(st, space, ref, "", a, id, NULL) >= 0)
        return 0;
    char path[64];
    if (j < 0)
        snprintf(path, sizeof path, "%s[%ld]", name, i);
    else
        snprintf(path, sizeof path, "%s[%ld][%d]", name, i, j);
    *space = given;
    return ctnas_arch_ref_parse(st, space, ref, path, a, id, err);
}

int ctnas_api_compare(struct ctnas_req *req, json_t **out,
                      struct ctnas_err *err)
{
    static const char *const keys[] = {"a", "b", "pairs", "space",
                                       "dataset", "model", NULL};
    json_t *body;
    struct ctnas_store *st;
    int rc;
    if ((rc = ctnas_req_body_object(req, &body, err)) < 0 ||
        (rc = ctnas_jsonv_only(body, "", keys, err)) < 0 ||
        (rc = ctnas_app_store(req->app, &st, err)) < 0)
        return rc;
    const json_t *pairs = json_object_get(body, "pairs");
    int single = pairs == NULL;
    size_t n_pairs = 1;
    if (single) {
        if (!json_object_get(body, "a") || !json_object_get(body, "b"))
            return ctnas_err_set(err, CTNAS_EINVAL,
                                 json_object_get(body, "a") ? "b" : "a",
                                 "give \"a\" and \"b\", or \"pairs\": "
                                 "[[a, b], ...]");
    } else {
        if (json_object_get(body, "a") || json_object_get(body, "b"))
            return ctnas_err_set(err, CTNAS_EINVAL, "pairs",
                                 "give \"pairs\" or \"a\" and \"b\", not "
                                 "both");
        if (!json_is_array(pairs) || json_array_size(pairs) == 0)
            return ctnas_err_set(err, CTNAS_EINVAL, "pairs",
                                 "pairs must be a non-empty array of "
                                 "[a, b] pairs");
        n_pairs = json_array_size(pairs);
        if (n_pairs > (size_t)req->app->conf->max_pairs)
            return ctnas_err_set(err, CTNAS_EINVAL, "pairs",
                                 "at most %d pairs per request "
                                 "(--max-pairs), not %zu",
                                 req->app->conf->max_pairs, n_pairs);
    }

    struct arch_set set = {0};
    struct ctnas_served *model = NULL;
    /* idx[2k + side]: the set index of pair k's a (side 0) or b. */
    int *idx = ctnas_malloc(n_pairs * 2 * sizeof *idx);
    if (idx == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    if ((rc = body_space(body, &set.space, err)) < 0)
        goto out;
    for (size_t k = 0; k < n_pairs; k++) {
        for (int side = 0; side < 2; side++) {
            const char *name = side ? "b" : "a";
            const json_t *ref;
            if (single) {
                ref = json_object_get(body, name);
            } else {
                const json_t *pair = json_array_get(pairs, k);
                if (!json_is_array(pair) || json_array_size(pair) != 2) {
                    char path[48];
                    snprintf(path, sizeof path, "pairs[%zu]", k);
                    rc = ctnas_err_set(err, CTNAS_EINVAL, path,
                                       "%s must be [a, b]", path);
                    goto out;
                }
                ref = json_array_get(pair, (size_t)side);
            }
            /* An id already read for this request: no store read. */
            int seen = json_is_integer(ref)
                           ? arch_set_find_id(&set, json_integer_value(ref))
                           : -1;
            if (seen >= 0) {
                idx[2 * k + side] = seen;
                continue;
            }
            struct ctnas_arch a;
            int64_t id;
            if ((rc = ref_parse_at(st, &set.space, ref,
                                   single ? name : "pairs",
                                   single ? -1 : (long)k, side, &a, &id,
                                   err)) < 0 ||
                (rc = arch_set_add(&set, &a, id, 1, &idx[2 * k + side])) <
                    0)
                goto out;
        }
    }
    if ((rc = pick_model(req, st, body, set.space, &model, err)) < 0 ||
        (rc = arch_set_features(&set, model, err)) < 0)
        goto out;
    int w = ctnas_nac_feature_width(model->nac);
    json_t *ps = single ? NULL : json_array();
    if (!single && ps == NULL) {
        rc = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        goto out;
    }
    double p = 0;
    for (size_t k = 0; k < n_pairs; k++) {
        p = ctnas_nac_feature_prob(model->nac, set.feat + idx[2 * k] * w,
                                   set.feat + idx[2 * k + 1] * w);
        /* A diverged model must answer an error, not NaN (which JSON
         * cannot carry) nor a made-up 0.5. */
        if (!isfinite(p)) {
            json_decref(ps);
            rc = ctnas_err_set(err, CTNAS_EDB, "model",
                               "model %lld gives a non-finite probability: "
                               "its weights are unusable; train another",
                               (long long)model->id);
            goto out;
        }
        if (ps && (ps = ctnas_jsonv_append(ps, json_real(p))) == NULL) {
            rc = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
            goto out;
        }
    }
    /* A single pair answers a bare number, pairs an array in order. */
    *out = json_pack("{s:o, s:o}", "p", ps ? ps : json_real(p), "model",
                     model_json(model));
    rc = 200;
out:
    ctnas_served_release(model);
    arch_set_destroy(&set);
    ctnas_free(idx);
    return rc;
}

struct scan_ctx {
    struct arch_set *set;
    struct ctnas_err *err;
};

/* A stored architecture for "all": true.  A row that does not parse is
 * skipped rather than failing the whole ranking. */
static int scan_one(void *cls, int64_t id, const char *enc)
{
    struct scan_ctx *c = cls;
    struct ctnas_arch a;
    int index;
    if (c->set->space->parse_string(enc, &a, NULL) < 0)
        return 0; /* unreadable row: skip */
    if (arch_set_add(c->set, &a, id, 0, &index) < 0)
        return ctnas_err_set(c->err, CTNAS_ENOMEM, "", "out of memory");
    return 0;
}

struct ranked {
    double score;
    int index;
};

/* Best first; equal scores keep request order. */
/* The index tie-break makes the order total, so qsort (not stable)
 * still gives one answer for one request. */
static int by_score_desc(const void *x, const void *y)
{
    const struct ranked *a = x, *b = y;
    if (a->score != b->score)
        return a->score < b->score ? 1 : -1;
    return a->index - b->index;
}

int ctnas_api_rank(struct ctnas_req *req, json_t **out,
                   struct ctnas_err *err)
{
    static const char *const keys[] = {"architectures", "all", "space",
                                       "dataset", "model", "top_k", NULL};
    json_t *body;
    struct ctnas_store *st;
    int rc, all = 0;
    int64_t top_k = 0;
    if ((rc = ctnas_req_body_object(req, &body, err)) < 0 ||
        (rc = ctnas_jsonv_only(body, "", keys, err)) < 0 ||
        (rc = ctnas_jsonv_bool(body, "", "all", 0, &all, err)) < 0 ||
        (rc = ctnas_jsonv_int(body, "", "top_k", 0, &top_k, 1, 10000000,
                              err)) < 0 ||
        (rc = ctnas_app_store(req->app, &st, err)) < 0)
        return rc;
    const json_t *list = json_object_get(body, "architectures");
    if (all && list)
        return ctnas_err_set(err, CTNAS_EINVAL, "architectures",
                             "give \"architectures\" or \"all\": true, not "
                             "both");
    if (!all) {
        if (!json_is_array(list) || json_array_size(list) < 2)
            return ctnas_err_set(err, CTNAS_EINVAL, "architectures",
                                 "architectures must be an array of at "
                                 "least 2 (or give \"all\": true)");
        if (json_array_size(list) > (size_t)req->app->conf->max_rank)
            return ctnas_err_set(err, CTNAS_EINVAL, "architectures",
                                 "at most %d architectures per request "
                                 "(--max-rank), not %zu",
                                 req->app->conf->max_rank,
                                 json_array_size(list));
    }

    struct arch_set set = {0};
    struct ctnas_served *model = NULL;
    double *score = NULL;
    struct ranked *order = NULL;
    if ((rc = body_space(body, &set.space, err)) < 0)
        goto out;
    if (all) {
        if (set.space == NULL) {
            rc = ctnas_err_set(err, CTNAS_EINVAL, "space",
                               "\"all\": true needs a space");
            goto out;
        }
        struct scan_ctx c = {&set, err};
        if ((rc = ctnas_store_arch_scan(st, set.space->name, scan_one, &c,
                                        err)) < 0)
            goto out;
        if (set.n < 2) {
            rc = ctnas_err_set(err, CTNAS_EINVAL, "all",
                               "%d %s architectures are stored: nothing to "
                               "rank", set.n, set.space->name);
            goto out;
        }
        if (set.n > req->app->conf->max_rank) {
            /* Scoring is quadratic: bound the work of one request. */
            rc = ctnas_err_set(err, CTNAS_EINVAL, "all",
                               "%d %s architectures are stored, more than "
                               "--max-rank (%d) ranks at once",
                               set.n, set.space->name,
                               req->app->conf->max_rank);
            goto out;
        }
    } else {
        for (size_t i = 0; i < json_array_size(list); i++) {
            struct ctnas_arch a;
            int64_t id;
            int index;
            if ((rc = ref_parse_at(st, &set.space, json_array_get(list, i),
                                   "architectures", (long)i, -1, &a, &id,
                                   err)) < 0 ||
                (rc = arch_set_add(&set, &a, id, 0, &index)) < 0)
                goto out;
        }
    }
    if ((rc = pick_model(req, st, body, set.space, &model, err)) < 0 ||
        (rc = arch_set_features(&set, model, err)) < 0)
        goto out;
    score = ctnas_malloc((size_t)set.n * sizeof *score);
    order = ctnas_malloc((size_t)set.n * sizeof *order);
    if (score == NULL || order == NULL) {
        rc = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        goto out;
    }
    /* score[i]: mean over j != i of p(i beats j).  O(n^2) pair
     * evaluations from the cached features, which is why --max-rank
     * bounds n. */
    if (ctnas_nac_mean_win(model->nac, set.feat, set.n, score) != 0) {
        rc = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        goto out;
    }
    for (int i = 0; i < set.n; i++)
        if (!isfinite(score[i])) {
            rc = ctnas_err_set(err, CTNAS_EDB, "model",
                               "model %lld gives non-finite scores: its "
                               "weights are unusable; train another",
                               (long long)model->id);
            goto out;
        }
    for (int i = 0; i < set.n; i++)
        order[i] = (struct ranked){score[i], i};
    qsort(order, (size_t)set.n, sizeof *order, by_score_desc);
    int k = set.n;
    /* A whole catalogue by default would be a huge answer nobody reads:
     * without top_k, "all" returns the best 100 (total says how many were
     * ranked). */
    if (top_k > 0 && top_k < k)
        k = (int)top_k;
    else if (all && top_k == 0 && k > 100)
        k = 100;
    json_t *items = json_array();
    for (int r = 0; items != NULL && r < k; r++) {
        int i = order[r].index;
        json_t *it = json_pack("{s:i, s:f, s:o, s:o}", "rank", r + 1,
                               "score", score[i], "id",
                               set.ids[i] ? json_integer(set.ids[i])
                                          : json_null(),
                               "arch", set.space->to_json(&set.archs[i]));
        if (it != NULL && !all &&
            json_object_set_new(it, "index", json_integer(i)) != 0) {
            json_decref(it);
            it = NULL;
        }
        items = ctnas_jsonv_append(items, it);
    }
    if (items == NULL) {
        rc = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
        goto out;
    }
    *out = json_pack("{s:o, s:i, s:o}", "items", items, "total", set.n,
                     "model", model_json(model));
    rc = 200;
out:
    ctnas_served_release(model);
    arch_set_destroy(&set);
    ctnas_free(score);
    ctnas_free(order);
    return rc;
}
