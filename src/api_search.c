/*
 * api_search.c - /v1/searches: start, poll, list, follow (events), ask
 * (suggestions) and cancel contrastive search jobs.  Reads job rows and
 * events from the store; the search itself runs in job_search.c.
 */
#include "config.h"
#include "api.h"

#include <string.h>

#include "job_search.h"
#include "jsonv.h"
#include "space.h"
#include "store_ml.h"

/* The search job of the {id} parameter (new reference in *row). */
static int get_search(struct ctnas_req *req, struct ctnas_store **st,
                      int64_t *id, json_t **row, struct ctnas_err *err)
{
    int rc;
    if ((rc = ctnas_api_path_id(req->params[0], "id", "search", id,
                                err)) < 0 ||
        (rc = ctnas_app_store(req->app, st, err)) < 0)
        return rc;
    rc = ctnas_store_job_get(*st, *id, row, err);
    if (rc == 0 && strcmp(json_string_value(json_object_get(*row, "kind")),
                          "search") != 0) {
        json_decref(*row);
        rc = CTNAS_ENOTFOUND;
    }
    if (rc == CTNAS_ENOTFOUND)
        ctnas_err_set(err, rc, "id", "no search %lld", (long long)*id);
    return rc;
}

/* For each entry of list (objects with "hash"), add what the store knows:
 * "id", "measured" value and "rank" among the stored architectures. */
static int add_standing(struct ctnas_store *st, const json_t *params,
                        json_t *list)
{
    const char *space = json_string_value(json_object_get(params, "space"));
    const char *dataset = json_string_value(json_object_get(params,
                                                            "dataset"));
    const char *metric = json_string_value(json_object_get(params,
                                                           "metric"));
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        const char *hash = json_string_value(json_object_get(e, "hash"));
        int found = 0;
        int64_t id = 0, rank = 0; /* id: stored, measured there or not */
        double v = 0;
        struct ctnas_err err;
        if (space && dataset && metric && hash)
            ctnas_store_arch_standing(st, space, hash, dataset, metric,
                                      &found, &id, &v, &rank, &err);
        if (json_object_set_new(e, "id",
                                id > 0 ? json_integer(id) : json_null()) ||
            json_object_set_new(e, "measured",
                                found ? json_real(v) : json_null()) ||
            json_object_set_new(e, "rank",
                                found ? json_integer(rank) : json_null()))
            return CTNAS_ENOMEM;
    }
    return 0;
}

int ctnas_api_search_post(struct ctnas_req *req, json_t **out,
                          struct ctnas_err *err)
{
    return ctnas_api_job_submit(req, ctnas_job_search_submit, out, err);
}

int ctnas_api_search_list(struct ctnas_req *req, json_t **out,
                          struct ctnas_err *err)
{
    return ctnas_api_job_list_kind(req, "search", out, err);
}

int ctnas_api_search_get(struct ctnas_req *req, json_t **out,
                         struct ctnas_err *err)
{
    struct ctnas_store *st;
    int64_t id;
    json_t *row;
    int rc = get_search(req, &st, &id, &row, err);
    if (rc < 0)
        return rc;
    json_t *params = json_object_get(row, "params");
    json_t *progress = json_object_get(row, "progress");
    rc = ctnas_api_job_view(row);
    if (rc == 0)
        rc = add_standing(st, params, json_object_get(progress, "best"));
    json_t *answer = json_object_get(json_object_get(row, "result"),
                                     "answer");
    if (rc == 0 && json_is_object(answer)) {
        json_t *one = json_pack("[O]", answer);
        rc = one ? add_standing(st, params, one) : CTNAS_ENOMEM;
        json_decref(one);
    }
    int64_t n_pseudo = 0;
    if (rc == 0 && ctnas_store_pseudo_count(st, id, &n_pseudo, err) == 0 &&
        json_object_set_new(row, "pseudo_labels_stored",
                            json_integer(n_pseudo)) != 0)
        rc = CTNAS_ENOMEM;
    if (rc != 0) {
        json_decref(row);
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    }
    *out = row;
    return 200;
}

int ctnas_api_search_events(struct ctnas_req *req, json_t **out,
                            struct ctnas_err *err)
{
    static const char *const params[] = {"since", "limit", NULL};
    int rc = ctnas_req_query_only(req, params, err);
    if (rc < 0)
        return rc;
    int64_t since = 0, limit = 1000;
    const char *q = ctnas_req_query(req, "since");
    if (q && (rc = ctnas_jsonv_parse_int(q, "since", 0, INT64_MAX, &since,
                                         err)) < 0)
        return rc;
    q = ctnas_req_query(req, "limit");
    if (q && (rc = ctnas_jsonv_parse_int(q, "limit", 1, 10000, &limit,
                                         err)) < 0)
        return rc;
    struct ctnas_store *st;
    int64_t id;
    json_t *row, *events;
    if ((rc = get_search(req, &st, &id, &row, err)) < 0)
        return rc;
    const char *state = json_string_value(json_object_get(row, "state"));
    json_t *st_json = json_string(state);
    json_decref(row);
    if ((rc = ctnas_store_events(st, id, (long)since, (int)limit, &events,
                                 err)) < 0) {
        json_decref(st_json);
        return rc;
    }
    json_int_t last = since;
    if (json_array_size(events) > 0)
        last = json_integer_value(json_object_get(
            json_array_get(events, json_array_size(events) - 1), "seq"));
    *out = json_pack("{s:o, s:I, s:o}", "items", events, "last", last,
                     "state", st_json);
    return 200;
}

int ctnas_api_search_suggestions(struct ctnas_req *req, json_t **out,
                                 struct ctnas_err *err)
{
    static const char *const params[] = {"n", NULL};
    int rc = ctnas_req_query_only(req, params, err);
    if (rc < 0)
        return rc;
    int64_t n = 0;
    const char *q = ctnas_req_query(req, "n");
    if (q && (rc = ctnas_jsonv_parse_int(q, "n", 1, 50, &n, err)) < 0)
        return rc;
    struct ctnas_store *st;
    int64_t id;
    json_t *row;
    if ((rc = get_search(req, &st, &id, &row, err)) < 0)
        return rc;
    json_t *params_j = json_object_get(row, "params");
    if (n == 0) /* as many as the job waits for */
        n = json_integer_value(json_object_get(params_j, "suggestions"));
    json_t *all = json_object_get(json_object_get(row, "progress"),
                                  "suggestions");
    json_t *items = json_array();
    if (json_is_array(all)) {
        add_standing(st, params_j, all);
        size_t i;
        json_t *e;
        json_array_foreach(all, i, e) {
            /* Measured since the job last looked: not a suggestion. */
            if (!json_is_null(json_object_get(e, "measured")))
                continue;
            if (json_array_size(items) >= (size_t)n)
                break;
            json_object_del(e, "measured");
            json_object_del(e, "rank");
            json_object_del(e, "label");
            json_array_append(items, e);
        }
    }
    *out = json_pack("{s:o, s:O, s:O}", "items", items, "state",
                     json_object_get(row, "state"), "space",
                     json_object_get(params_j, "space"));
    json_decref(row);
    return 200;
}

int ctnas_api_search_cancel(struct ctnas_req *req, json_t **out,
                            struct ctnas_err *err)
{
    struct ctnas_store *st;
    int64_t id;
    json_t *row;
    int rc = get_search(req, &st, &id, &row, err);
    if (rc < 0)
        return rc;
    json_decref(row);
    return ctnas_api_job_cancel(req, out, err);
}

int ctnas_api_search_continue(struct ctnas_req *req, json_t **out,
                              struct ctnas_err *err)
{
    struct ctnas_store *st;
    int64_t id;
    json_t *row;
    if (req->body != NULL &&
        (!json_is_object(req->body) || json_object_size(req->body) > 0)) {
        const char *key = json_is_object(req->body)
                              ? json_object_iter_key(
                                    json_object_iter(req->body))
                              : "";
        return ctnas_err_set(err, CTNAS_EINVAL, key,
                             "continue takes no parameters: send no body, "
                             "or {}");
    }
    int rc = get_search(req, &st, &id, &row, err);
    if (rc < 0)
        return rc;
    rc = ctnas_store_search_continue(st, id, err);
    if (rc == CTNAS_ECONFLICT)
        ctnas_err_set(err, rc, "id", "search %lld is %s: only a waiting "
                      "search can be told to go on", (long long)id,
                      json_string_value(json_object_get(row, "state")));
    json_decref(row);
    if (rc < 0)
        return rc;
    /* The search as GET shows it: it goes on at its next tick (within a
     * quarter of a second), so it still says waiting. */
    rc = ctnas_api_search_get(req, out, err);
    return rc == 200 ? 202 : rc;
}
