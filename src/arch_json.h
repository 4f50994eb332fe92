/*
 * arch_json.h - the JSON shape of catalogue items, shared by the HTTP API
 * (POST/GET /v1/architectures) and the importer, so both accept and print
 * exactly the same thing:
 *
 *   {"space": "nasbench201", "arch": <native string or object>,
 *    "measurements": [{"dataset", "metric", "value", "epochs"?, "source"?}]}
 */
#ifndef CTNAS_ARCH_JSON_H
#define CTNAS_ARCH_JSON_H

#include <jansson.h>

#include "ctnas.h"
#include "space.h"
#include "store.h"

/* Limits of one item. */
#define CTNAS_ITEM_MAX_MEAS 1000
#define CTNAS_MEAS_VALUE_MAX 1e9
#define CTNAS_MEAS_EPOCHS_MAX 100000

/* A parsed, validated item.  meas is borrowed from the JSON it came from. */
struct ctnas_item {
    const struct ctnas_space *space;
    struct ctnas_arch arch;
    const json_t *meas;      /* array or NULL */
};

/* Parse one item at path (e.g. "items[3]", or "" for a lone item).
 * default_space (may be NULL) is used when the item has no "space".
 * Every measurement is validated too, so a parsed item can be stored
 * without further checks.  Errors: CTNAS_EINVAL (CTNAS_ETOOLARGE for
 * too many measurements) with err->field the full path of the offending
 * value. */
int ctnas_item_parse(const json_t *item, const char *path,
                     const char *default_space, struct ctnas_item *out,
                     struct ctnas_err *err);

/* Parse measurement i of a parsed item into m (source defaults to
 * default_source). */
int ctnas_item_meas(const struct ctnas_item *item, const char *path,
                    size_t i, const char *default_source,
                    struct ctnas_measurement *m, struct ctnas_err *err);

/* Store a parsed item: upsert the architecture (*is_new: it was not
 * there), add its measurements (*new_meas, may be NULL: how many were
 * not there).  Call inside a transaction. */
int ctnas_item_store(struct ctnas_store *st, const struct ctnas_item *item,
                     const char *path, const char *default_source,
                     int64_t *id, int *is_new, int *new_meas,
                     struct ctnas_err *err);

/* New reference: a stored row as the API answers it,
 * {"id", "space", "arch", "hash", "created_at", "measurements": [...]}.
 * A row this build cannot parse is shown with its raw encoding rather
 * than failing the listing it is part of.  NULL when out of memory. */
json_t *ctnas_item_row_json(const struct ctnas_arch_row *row);

/* The stored architecture, of any space, whose hash is text (32 hex
 * digits, either case): 1 with *id; 0 when text is no hash;
 * CTNAS_ENOTFOUND when nothing stored has it; another error of the
 * store. */
int ctnas_arch_hash_find(struct ctnas_store *st, const char *text,
                         int64_t *id, struct ctnas_err *err);

/* Resolve an architecture reference of /v1/compare and /v1/rank: a
 * stored id (integer) or hash (a string of 32 hex digits), a native
 * string, or the object form.  *space may be NULL on entry: it is then
 * inferred (a stored architecture's space; an object with "adjacency" or
 * a string holding a JSON object is nasbench101, any other string or
 * object nasbench201) and set.  A reference of another
 * space than *space is an error.  *id_out (may be NULL) is the stored id
 * or 0.  Errors: CTNAS_EINVAL naming path (an unknown id included, as
 * the request is at fault), CTNAS_EDB for an unreadable stored row. */
int ctnas_arch_ref_parse(struct ctnas_store *st,
                         const struct ctnas_space **space, const json_t *ref,
                         const char *path, struct ctnas_arch *out,
                         int64_t *id_out, struct ctnas_err *err);

/* Format unix seconds as "2026-11-27T22:10:00Z". */
void ctnas_iso_time(int64_t t, char buf[32]);

#endif
