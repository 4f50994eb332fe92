/*
 * api_arch.c - the catalogue routes: POST/GET /v1/architectures,
 * GET/DELETE /v1/architectures/{id} and DELETE of one measurement.
 *
 * Handlers run on MHD threads with the thread's own store connection and
 * follow api.h: the success status with *out a new reference, or a
 * negative CTNAS_E* code with err naming the field at fault.
 */
#include "config.h"
#include "api.h"

#include <string.h>

#include "arch_json.h"
#include "jsonv.h"

/* Store items (an array at path "items", or one lone item) in one
 * transaction: a batch is all or nothing. */
static int store_items(struct ctnas_store *st, const json_t *items,
                       const json_t *lone, json_t *result,
                       struct ctnas_err *err)
{
    int rc = ctnas_store_begin(st, err);
    if (rc < 0)
        return rc;
    size_t n = lone ? 1 : json_array_size(items);
    for (size_t i = 0; i < n; i++) {
        char path[32] = "";
        const json_t *it = lone;
        if (!lone) {
            ctnas_jsonv_index(path, sizeof path, "items", i);
            it = json_array_get(items, i);
        }
        struct ctnas_item item;
        int64_t id;
        int is_new;
        /* The first bad item rolls the whole batch back; err names it by
         * its path.  So does a full heap: the answer lists every item. */
        if ((rc = ctnas_item_parse(it, path, NULL, &item, err)) < 0 ||
            (rc = ctnas_item_store(st, &item, path, "api", &id, &is_new,
                                   NULL, err)) < 0 ||
            (json_array_append_new(result, json_pack("{s:I, s:b}", "id",
                                                     (json_int_t)id, "new",
                                                     is_new)) != 0 &&
             (rc = ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory")))) {
            ctnas_store_rollback(st);
            return rc;
        }
    }
    /* On a failed commit the result array may hold ids that were never
     * stored: the caller drops it without answering it. */
    return ctnas_store_commit(st, err);
}

/* 201 with one {"id", "new"} per item, in request order; new is false for
 * an architecture already catalogued (its measurements are still added).
 * The batch limit is checked before any store work. */
int ctnas_api_arch_post(struct ctnas_req *req, json_t **out,
                        struct ctnas_err *err)
{
    json_t *body;
    int rc = ctnas_req_body_object(req, &body, err);
    if (rc < 0)
        return rc;
    const json_t *items = json_object_get(body, "items");
    const json_t *lone = NULL;
    if (items != NULL) {
        /* Otherwise a batch with a stray "space" key would read as a lone
         * item whose fields were silently ignored. */
        if (json_object_size(body) != 1)
            return ctnas_err_set(err, CTNAS_EINVAL, "body",
                                 "a batch is {\"items\": [...]} with no "
                                 "other field");
        if (!json_is_array(items))
            return ctnas_err_set(err, CTNAS_EINVAL, "items",
                                 "items must be an array");
        if (json_array_size(items) == 0)
            return ctnas_err_set(err, CTNAS_EINVAL, "items",
                                 "items must not be empty");
        if (json_array_size(items) > (size_t)req->app->conf->max_batch)
            return ctnas_err_set(err, CTNAS_EINVAL, "items",
                                 "a batch holds at most %d items "
                                 "(--max-batch), not %zu",
                                 req->app->conf->max_batch,
                                 json_array_size(items));
    } else {
        lone = body;
    }

    struct ctnas_store *st;
    if ((rc = ctnas_app_store(req->app, &st, err)) < 0)
        return rc;
    json_t *result = json_array();
    if (result == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    if ((rc = store_items(st, items, lone, result, err)) < 0) {
        json_decref(result);
        return rc;
    }
    *out = json_pack("{s:o}", "items", result);
    if (*out == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "",
                             "out of memory after storing the batch: "
                             "sending it again stores nothing twice");
    return 201;
}

static const char *const list_params[] = {"space", "dataset", "metric",
                                          "order", "limit", "cursor", NULL};

/* A page of the catalogue.  Paging is by an opaque cursor from the store
 * (not an offset), so pages stay consistent while uploads go on; total
 * counts every match regardless of the cursor. */
int ctnas_api_arch_list(struct ctnas_req *req, json_t **out,
                        struct ctnas_err *err)
{
    int rc = ctnas_req_query_only(req, list_params, err);
    if (rc < 0)
        return rc;
    struct ctnas_arch_query q = {0};
    q.space = ctnas_req_query(req, "space");
    q.dataset = ctnas_req_query(req, "dataset");
    q.metric = ctnas_req_query(req, "metric");
    q.cursor = ctnas_req_query(req, "cursor");
    q.limit = 100;
    if (q.space && ctnas_space_find(q.space) == NULL)
        return ctnas_err_set(err, CTNAS_EINVAL, "space",
                             "unknown space '%s'", q.space);
    const char *order = ctnas_req_query(req, "order");
    if (order == NULL || strcmp(order, "id") == 0)
        q.order = CTNAS_ORDER_ID;
    else if (strcmp(order, "metric_desc") == 0)
        q.order = CTNAS_ORDER_METRIC_DESC;
    else if (strcmp(order, "metric_asc") == 0)
        q.order = CTNAS_ORDER_METRIC_ASC;
    else
        return ctnas_err_set(err, CTNAS_EINVAL, "order",
                             "order must be id, metric_desc or metric_asc");
    /* Sorting by a metric needs to know which dataset's values. */
    if (q.order != CTNAS_ORDER_ID && q.dataset == NULL)
        return ctnas_err_set(err, CTNAS_EINVAL, "dataset",
                             "order=%s needs a dataset", order);
    const char *lim = ctnas_req_query(req, "limit");
    if (lim) {
        int64_t v;
        if ((rc = ctnas_jsonv_parse_int(lim, "limit", 1, 1000, &v, err)) < 0)
            return rc;
        q.limit = (int)v;
    }

    struct ctnas_store *st;
    if ((rc = ctnas_app_store(req->app, &st, err)) < 0)
        return rc;
    struct ctnas_arch_row *rows = NULL;
    int n = 0;
    int64_t total = 0;
    char next[128] = "";
    if ((rc = ctnas_store_arch_list(st, &q, &rows, &n, &total, next,
                                    err)) < 0)
        return rc;
    json_t *items = json_array();
    for (int i = 0; items != NULL && i < n; i++)
        items = ctnas_jsonv_append(items, ctnas_item_row_json(&rows[i]));
    ctnas_store_rows_free(rows, n);
    if (items == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    *out = json_pack("{s:o, s:I, s:o}", "items", items, "total",
                     (json_int_t)total, "next_cursor",
                     next[0] ? json_string(next) : json_null());
    return 200;
}

/* A path segment that is not a positive integer is a 404 like an unknown
 * id: as a URL it names no resource. */
/* The architecture id names, with its measurements: 200 and its view. */
static int arch_answer(struct ctnas_store *st, int64_t id, json_t **out,
                       struct ctnas_err *err)
{
    struct ctnas_arch_row row;
    int rc = ctnas_store_arch_get(st, id, &row, err);
    if (rc < 0) {
        if (rc == CTNAS_ENOTFOUND)
            ctnas_err_set(err, rc, "id", "no architecture %lld",
                          (long long)id);
        return rc;
    }
    *out = ctnas_item_row_json(&row);
    ctnas_store_row_destroy(&row);
    return 200;
}

/* The architecture the path names: by its id, or by its hash (as GET
 * answers it, or a published fingerprint: NAS-Bench-101 data is keyed
 * by it). */
static int arch_path_id(struct ctnas_req *req, struct ctnas_store *st,
                        int64_t *id, struct ctnas_err *err)
{
    const char *seg = req->params[0];
    if (ctnas_api_path_id(seg, "id", "architecture", id, NULL) == 0)
        return 0;
    int rc = ctnas_arch_hash_find(st, seg, id, err);
    if (rc == 0 || rc == CTNAS_ENOTFOUND)
        return ctnas_err_set(err, CTNAS_ENOTFOUND, "id",
                             "no architecture '%s' (an id, or a hash of "
                             "32 hex digits)", seg);
    return rc < 0 ? rc : 0;
}

int ctnas_api_arch_get(struct ctnas_req *req, json_t **out,
                       struct ctnas_err *err)
{
    int64_t id;
    struct ctnas_store *st;
    int rc;
    if ((rc = ctnas_app_store(req->app, &st, err)) < 0 ||
        (rc = arch_path_id(req, st, &id, err)) < 0)
        return rc;
    return arch_answer(st, id, out, err);
}

/* 200 with what went.  Jobs and models that used the architecture keep
 * what they copied (a search resumes from its own checkpoint); a search
 * resumed before its first checkpoint starts without it. */
int ctnas_api_arch_delete(struct ctnas_req *req, json_t **out,
                          struct ctnas_err *err)
{
    int64_t id;
    struct ctnas_store *st;
    int rc, n_meas = 0;
    if ((rc = ctnas_app_store(req->app, &st, err)) < 0 ||
        (rc = arch_path_id(req, st, &id, err)) < 0 ||
        (rc = ctnas_store_arch_delete(st, id, &n_meas, err)) < 0)
        return rc;
    *out = json_pack("{s:I, s:b, s:i}", "id", (json_int_t)id, "deleted", 1,
                     "measurements_deleted", n_meas);
    return 200;
}

/* A measurement is immutable: correcting one is deleting it and posting
 * the right value.  200 with the architecture as it is now. */
int ctnas_api_meas_delete(struct ctnas_req *req, json_t **out,
                          struct ctnas_err *err)
{
    int64_t id, mid;
    struct ctnas_store *st;
    int rc;
    if ((rc = ctnas_app_store(req->app, &st, err)) < 0 ||
        (rc = arch_path_id(req, st, &id, err)) < 0)
        return rc;
    if (ctnas_api_path_id(req->params[1], "measurement_id", "measurement",
                          &mid, err) < 0) {
        /* An unknown architecture is named first, as for any id. */
        json_t *row = NULL;
        struct ctnas_err e2 = {0};
        if ((rc = arch_answer(st, id, &row, &e2)) < 0) {
            *err = e2;
            return rc;
        }
        json_decref(row);
        return CTNAS_ENOTFOUND;
    }
    if ((rc = ctnas_store_meas_delete(st, id, mid, err)) < 0)
        return rc;
    return arch_answer(st, id, out, err);
}
