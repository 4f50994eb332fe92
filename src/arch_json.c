/*
 * arch_json.c - catalogue item parsing and printing (see arch_json.h).
 */
#include "config.h"
#include "arch_json.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "jsonv.h"

/* The keys an item and a measurement may carry; any other is rejected by
 * name (ctnas_jsonv_only), so a misspelt "epoch" is not silently lost.
 * Those a GET adds (id, hash, created_at) are taken too, so what one
 * daemon answers can be posted to another as it is: checked, then
 * ignored (the store gives its own ids and times). */
static const char *const item_keys[] = {"space", "arch", "measurements",
                                        "id", "hash", "created_at", NULL};
static const char *const meas_keys[] = {"dataset", "metric", "value",
                                        "epochs", "source", "id",
                                        "created_at", NULL};

/* The id and created_at of a GET's answer, in o at path: checked for
 * their type only. */
static int check_read_only(const json_t *o, const char *path,
                           struct ctnas_err *err)
{
    int64_t id;
    const char *when;
    int rc = ctnas_jsonv_int(o, path, "id", 0, &id, 1, INT64_MAX, err);
    if (rc == 0)
        rc = ctnas_jsonv_string(o, path, "created_at", 0, &when, 64, err);
    return rc;
}

/* Parse arch with sp; errors name the field under path (the space's own
 * field names are relative to the architecture). */
static int parse_arch(const struct ctnas_space *sp, const json_t *arch,
                      const char *path, struct ctnas_arch *out,
                      struct ctnas_err *err)
{
    struct ctnas_err aerr = {0};
    int rc = sp->parse_json(arch, out, &aerr);
    if (rc == 0)
        return 0;
    /* Room for a 128-byte item path plus the space's field name; a
     * longer one is truncated, which only shortens the message. */
    char full[192];
    if (aerr.field[0])
        snprintf(full, sizeof full, "%s.%s", path, aerr.field);
    else
        snprintf(full, sizeof full, "%s", path);
    return ctnas_err_set(err, rc, full, "invalid %s architecture: %s",
                         sp->name, aerr.msg);
}

/* Validates everything, measurements included, before anything is
 * stored: a batch can then fail on its first bad item with nothing to
 * undo but the transaction.  out->meas is borrowed from item. */
int ctnas_item_parse(const json_t *item, const char *path,
                     const char *default_space, struct ctnas_item *out,
                     struct ctnas_err *err)
{
    int rc;
    char fp[128];
    if ((rc = ctnas_jsonv_object(item, path, err)) < 0 ||
        (rc = ctnas_jsonv_only(item, path, item_keys, err)) < 0)
        return rc;

    const char *space_name = default_space;
    if ((rc = ctnas_jsonv_string(item, path, "space", default_space == NULL,
                                 &space_name, 31, err)) < 0)
        return rc;
    out->space = ctnas_space_find(space_name);
    if (out->space == NULL)
        return ctnas_err_set(err, CTNAS_EINVAL,
                             ctnas_jsonv_path(fp, sizeof fp, path, "space"),
                             "unknown space '%s'; expected nasbench101 or "
                             "nasbench201", space_name);

    const json_t *arch = json_object_get(item, "arch");
    ctnas_jsonv_path(fp, sizeof fp, path, "arch");
    if (arch == NULL)
        return ctnas_err_set(err, CTNAS_EINVAL, fp, "%s is required", fp);
    if ((rc = parse_arch(out->space, arch, fp, &out->arch, err)) < 0)
        return rc;
    /* A hash that came with the item must be the one it gets here: a
     * copy that does not match is a corrupted copy. */
    const char *given = NULL;
    if ((rc = check_read_only(item, path, err)) < 0 ||
        (rc = ctnas_jsonv_string(item, path, "hash", 0, &given,
                                 CTNAS_HASH_LEN - 1, err)) < 0)
        return rc;
    if (given != NULL) {
        char hash[CTNAS_HASH_LEN];
        out->space->hash(&out->arch, hash);
        if (strcasecmp(given, hash) != 0)
            return ctnas_err_set(err, CTNAS_EINVAL,
                                 ctnas_jsonv_path(fp, sizeof fp, path,
                                                  "hash"),
                                 "%s is not the hash of the architecture "
                                 "(%s)", fp, hash);
    }

    out->meas = json_object_get(item, "measurements");
    if (out->meas != NULL) {
        ctnas_jsonv_path(fp, sizeof fp, path, "measurements");
        if (!json_is_array(out->meas))
            return ctnas_err_set(err, CTNAS_EINVAL, fp,
                                 "%s must be an array", fp);
        if (json_array_size(out->meas) > CTNAS_ITEM_MAX_MEAS)
            return ctnas_err_set(err, CTNAS_ETOOLARGE, fp,
                                 "%s holds more than %d measurements", fp,
                                 CTNAS_ITEM_MAX_MEAS);
        /* Parsed here only to validate; ctnas_item_store parses each
         * again as it stores it, so the item keeps no copies. */
        struct ctnas_measurement m;
        for (size_t i = 0; i < json_array_size(out->meas); i++)
            if ((rc = ctnas_item_meas(out, path, i, "api", &m, err)) < 0)
                return rc;
    }
    return 0;
}

int ctnas_item_meas(const struct ctnas_item *item, const char *path,
                    size_t i, const char *default_source,
                    struct ctnas_measurement *m, struct ctnas_err *err)
{
    char mp[128], ap[128];
    ctnas_jsonv_path(ap, sizeof ap, path, "measurements");
    ctnas_jsonv_index(mp, sizeof mp, ap, i);
    const json_t *o = json_array_get(item->meas, i);
    int rc;
    if ((rc = ctnas_jsonv_object(o, mp, err)) < 0 ||
        (rc = ctnas_jsonv_only(o, mp, meas_keys, err)) < 0 ||
        (rc = check_read_only(o, mp, err)) < 0)
        return rc;
    const char *dataset, *metric, *source = default_source;
    int64_t epochs = 0;
    /* The length limits passed below are the fields' sizes minus the
     * NUL, so the strcpy calls after them cannot overflow. */
    memset(m, 0, sizeof *m);
    if ((rc = ctnas_jsonv_string(o, mp, "dataset", 1, &dataset,
                                 sizeof m->dataset - 1, err)) < 0 ||
        (rc = ctnas_jsonv_string(o, mp, "metric", 1, &metric,
                                 sizeof m->metric - 1, err)) < 0 ||
        (rc = ctnas_jsonv_number(o, mp, "value", 1, &m->value, 0,
                                 CTNAS_MEAS_VALUE_MAX, err)) < 0 ||
        (rc = ctnas_jsonv_int(o, mp, "epochs", 0, &epochs, 0,
                              CTNAS_MEAS_EPOCHS_MAX, err)) < 0 ||
        (rc = ctnas_jsonv_string(o, mp, "source", 0, &source,
                                 sizeof m->source - 1, err)) < 0)
        return rc;
    strcpy(m->dataset, dataset);
    strcpy(m->metric, metric);
    snprintf(m->source, sizeof m->source, "%s", source);
    m->epochs = (int)epochs;
    return 0;
}

/* The architecture is keyed by the space's canonical hash, so the same
 * cell written in two ways is one row; measurements are always added,
 * since one cell may be measured many times.  The caller holds the
 * transaction. */
int ctnas_item_store(struct ctnas_store *st, const struct ctnas_item *item,
                     const char *path, const char *default_source,
                     int64_t *id, int *is_new, int *new_meas,
                     struct ctnas_err *err)
{
    char enc[CTNAS_ENCODING_MAX], hash[CTNAS_HASH_LEN];
    int rc = item->space->encode(&item->arch, enc, sizeof enc);
    if (rc < 0)
        return ctnas_err_set(err, CTNAS_EINVAL, path,
                             "architecture too large to encode");
    item->space->hash(&item->arch, hash);
    if ((rc = ctnas_store_arch_upsert(st, item->space->name, enc, hash, id,
                                      is_new, err)) < 0)
        return rc;
    if (new_meas)
        *new_meas = 0;
    for (size_t i = 0; item->meas && i < json_array_size(item->meas); i++) {
        struct ctnas_measurement m;
        int fresh = 0;
        if ((rc = ctnas_item_meas(item, path, i, default_source, &m,
                                  err)) < 0 ||
            (rc = ctnas_store_meas_add(st, *id, &m, &fresh, err)) < 0)
            return rc;
        if (new_meas)
            *new_meas += fresh;
    }
    return 0;
}

/* The space a reference belongs to by its shape alone, or NULL.  Only
 * nasbench101 has an "adjacency" field or a JSON-object string form;
 * everything else is taken for nasbench201's string or object, whose
 * parser then gives the real error if it is neither. */
static const struct ctnas_space *infer_space(const json_t *ref)
{
    if (json_is_string(ref))
        return json_string_value(ref)[0] == '{' ? &ctnas_space_nb101
                                                : &ctnas_space_nb201;
    if (json_is_object(ref))
        return json_object_get(ref, "adjacency") ? &ctnas_space_nb101
                                                 : &ctnas_space_nb201;
    return NULL;
}

int ctnas_arch_hash_find(struct ctnas_store *st, const char *text,
                         int64_t *id, struct ctnas_err *err)
{
    char hash[CTNAS_HASH_LEN];
    size_t n = strlen(text);
    if (n != CTNAS_HASH_LEN - 1 || strspn(text, "0123456789abcdefABCDEF")
                                       != n)
        return 0;
    for (size_t i = 0; i <= n; i++)
        hash[i] = (char)tolower((unsigned char)text[i]);
    for (int i = 0; ctnas_spaces[i] != NULL; i++) {
        int rc = ctnas_store_arch_find(st, ctnas_spaces[i]->name, hash, id,
                                       err);
        if (rc == 0)
            return 1;
        if (rc != CTNAS_ENOTFOUND)
            return rc;
    }
    return ctnas_err_set(err, CTNAS_ENOTFOUND, "", "no stored "
                         "architecture has the hash %s", hash);
}

int ctnas_arch_ref_parse(struct ctnas_store *st,
                         const struct ctnas_space **space, const json_t *ref,
                         const char *path, struct ctnas_arch *out,
                         int64_t *id_out, struct ctnas_err *err)
{
    if (id_out)
        *id_out = 0;
    int64_t by_hash = 0;
    if (json_is_string(ref)) {
        /* A hash names a stored architecture, as an id does: the id's
         * path below then checks its space. */
        int rc = ctnas_arch_hash_find(st, json_string_value(ref), &by_hash,
                                      err);
        if (rc == CTNAS_ENOTFOUND)
            return ctnas_err_set(err, CTNAS_EINVAL, path,
                                 "%s: no stored architecture has the hash "
                                 "%s", path, json_string_value(ref));
        if (rc < 0)
            return rc;
    }
    if (json_is_integer(ref) || by_hash > 0) {
        int64_t id = by_hash > 0 ? by_hash : json_integer_value(ref);
        struct ctnas_arch_row row;
        int rc = ctnas_store_arch_head(st, id, &row, err);
        if (rc == CTNAS_ENOTFOUND)
            return ctnas_err_set(err, CTNAS_EINVAL, path,
                                 "%s: no stored architecture %lld", path,
                                 (long long)id);
        if (rc < 0)
            return rc;
        const struct ctnas_space *sp = ctnas_space_find(row.space);
        /* destroy frees only the measurements: encoding is inline in the
         * row and still valid below. */
        ctnas_store_row_destroy(&row);
        if (sp == NULL || (*space && *space != sp))
            return ctnas_err_set(err, CTNAS_EINVAL, path,
                                 "%s: architecture %lld is in space %s, "
                                 "not %s", path, (long long)id,
                                 sp ? sp->name : "(unknown)",
                                 *space ? (*space)->name : "");
        *space = sp;
        if (id_out)
            *id_out = id;
        /* The row parsed when it was stored, so failing now is the
         * store's fault (500), not the client's. */
        return sp->parse_string(row.encoding, out, err) < 0
                   ? ctnas_err_set(err, CTNAS_EDB, path,
                                   "stored architecture %lld is unreadable",
                                   (long long)id)
                   : 0;
    }
    if (!json_is_string(ref) && !json_is_object(ref))
        return ctnas_err_set(err, CTNAS_EINVAL, path,
                             "%s must be an architecture id, native string "
                             "or object", path);
    /* Only a nasbench101 cell shows its space by its shape: one among
     * another space's cells is named as such, not as a bad cell. */
    const struct ctnas_space *shape = infer_space(ref);
    if (*space == NULL)
        *space = shape;
    else if (shape == &ctnas_space_nb101 && *space != shape)
        return ctnas_err_set(err, CTNAS_EINVAL, path,
                             "%s is a nasbench101 cell, in a request for "
                             "%s cells: one space at a time", path,
                             (*space)->name);
    return parse_arch(*space, ref, path, out, err);
}

/* UTC, so the answer does not depend on the daemon's time zone. */
void ctnas_iso_time(int64_t t, char buf[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Rows are re-parsed and printed by the space, so the answer shows the
 * space's current canonical form whatever text was uploaded. */
json_t *ctnas_item_row_json(const struct ctnas_arch_row *row)
{
    const struct ctnas_space *sp = ctnas_space_find(row->space);
    json_t *arch = NULL;
    struct ctnas_arch a;
    struct ctnas_err perr = {0};
    int rc = sp ? sp->parse_string(row->encoding, &a, &perr) : CTNAS_EINVAL;
    if (rc == CTNAS_ENOMEM)
        return NULL;
    /* A row this build cannot read is shown raw. */
    arch = rc == 0 ? sp->to_json(&a) : json_string(row->encoding);
    json_t *meas = json_array();
    if (arch == NULL || meas == NULL) {
        json_decref(arch);
        json_decref(meas);
        return NULL;
    }
    char when[32];
    for (int i = 0; i < row->n_meas; i++) {
        const struct ctnas_measurement *m = &row->meas[i];
        ctnas_iso_time(m->created, when);
        meas = ctnas_jsonv_append(
            meas, json_pack("{s:I, s:s, s:s, s:f, s:i, s:s, s:s}", "id",
                            (json_int_t)m->id, "dataset", m->dataset,
                            "metric", m->metric, "value", m->value, "epochs",
                            m->epochs, "source", m->source, "created_at",
                            when));
        if (meas == NULL) {
            json_decref(arch);
            return NULL;
        }
    }
    ctnas_iso_time(row->created, when);
    return json_pack("{s:I, s:s, s:o, s:s, s:s, s:o}", "id",
                     (json_int_t)row->id, "space", row->space, "arch", arch,
                     "hash", row->hash, "created_at", when, "measurements",
                     meas);
}
