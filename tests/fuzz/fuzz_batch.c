/*
 * fuzz_batch.c - libFuzzer target: the batch upload parser of
 * POST /v1/architectures and the architecture references of /v1/compare
 * and /v1/rank, without a store.  The input is a request body:
 *   {"items": [...]}   each item through ctnas_item_parse at "items[i]";
 *   any other value    through ctnas_item_parse as a lone item at "";
 * then ctnas_item_meas on each measurement of a parsed item.  References
 * ("a", "b", "pairs": [[a, b]...], "architectures": [...], or the elements
 * of a top-level array) go through ctnas_arch_ref_parse with st = NULL,
 * the space inferred from the first as the handlers do, and again with
 * each space fixed; integer references (stored ids) need the store and
 * are skipped.
 */
#include "config.h"

#include <jansson.h>

#include "arch_json.h"
#include "fuzz.h"
#include "jsonv.h"
#include "space.h"

/* A failure names the culprit under the path it was given
 * ("items[3]..."), within the field's 63 characters. */
static void check_err(int rc, const struct ctnas_err *err, const char *path)
{
    FUZZ_CHECK(rc < 0 && err->code == rc && err->msg[0] != '\0');
    FUZZ_CHECK(memchr(err->field, '\0', sizeof err->field) != NULL);
    size_t n = strlen(path);
    if (n >= sizeof err->field)
        n = sizeof err->field - 1;
    FUZZ_CHECK(strncmp(err->field, path, n) == 0);
    if (path[0] != '\0' && strlen(err->field) > n)
        FUZZ_CHECK(err->field[n] == '.' || err->field[n] == '[');
}

static void try_item(const json_t *it, const char *path)
{
    struct ctnas_item item;
    struct ctnas_err err = {0};
    int rc = ctnas_item_parse(it, path, NULL, &item, &err);
    if (rc < 0) {
        check_err(rc, &err, path);
        /* With a default space, a missing "space" is no error. */
        memset(&err, 0, sizeof err);
        rc = ctnas_item_parse(it, path, "nasbench201", &item, &err);
        if (rc < 0) {
            check_err(rc, &err, path);
            return;
        }
    }
    FUZZ_CHECK(item.space != NULL);
    fuzz_check_arch(item.space, &item.arch);
    FUZZ_CHECK(item.meas == NULL || json_is_array(item.meas));
    for (size_t i = 0; item.meas && i < json_array_size(item.meas); i++) {
        struct ctnas_measurement m;
        memset(&err, 0, sizeof err);
        /* A parsed item has valid measurements only. */
        FUZZ_CHECK(ctnas_item_meas(&item, path, i, "api", &m, &err) == 0);
        FUZZ_CHECK(m.dataset[0] && m.metric[0] && m.source[0]);
        FUZZ_CHECK(m.value >= 0 && m.value <= CTNAS_MEAS_VALUE_MAX);
        FUZZ_CHECK(m.epochs >= 0 && m.epochs <= CTNAS_MEAS_EPOCHS_MAX);
    }
}

/* One reference with *space as the handler's running space. */
static void try_ref(const struct ctnas_space **space, const json_t *ref,
                    const char *path)
{
    if (json_is_integer(ref))
        return; /* a stored id: needs the store */
    const struct ctnas_space *before = *space;
    struct ctnas_arch a;
    int64_t id = -1;
    struct ctnas_err err = {0};
    int rc = ctnas_arch_ref_parse(NULL, space, ref, path, &a, &id, &err);
    FUZZ_CHECK(id == 0);
    if (rc < 0) {
        check_err(rc, &err, path);
        return;
    }
    FUZZ_CHECK(*space != NULL && (before == NULL || *space == before));
    fuzz_check_arch(*space, &a);
}

/* Every reference the body holds, with the space inferred (start NULL)
 * and then fixed to each space. */
static void try_refs(const json_t *body)
{
    for (int k = -1; k < 0 || ctnas_spaces[k] != NULL; k++) {
        const struct ctnas_space *space = k < 0 ? NULL : ctnas_spaces[k];
        char path[48];
        if (json_is_array(body)) {
            for (size_t i = 0; i < json_array_size(body); i++) {
                snprintf(path, sizeof path, "architectures[%zu]", i);
                try_ref(&space, json_array_get(body, i), path);
            }
            continue;
        }
        const char *ab[] = {"a", "b"};
        for (int s = 0; s < 2; s++) {
            const json_t *r = json_object_get(body, ab[s]);
            if (r != NULL)
                try_ref(&space, r, ab[s]);
        }
        const json_t *pairs = json_object_get(body, "pairs");
        for (size_t i = 0; i < json_array_size(pairs); i++) {
            const json_t *pair = json_array_get(pairs, i);
            for (size_t s = 0; s < 2 && s < json_array_size(pair); s++) {
                snprintf(path, sizeof path, "pairs[%zu][%zu]", i, s);
                try_ref(&space, json_array_get(pair, s), path);
            }
        }
        const json_t *list = json_object_get(body, "architectures");
        for (size_t i = 0; i < json_array_size(list); i++) {
            snprintf(path, sizeof path, "architectures[%zu]", i);
            try_ref(&space, json_array_get(list, i), path);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *body = json_loadb((const char *)data, size,
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                              &jerr);
    if (body == NULL)
        return 0;
    const json_t *items = json_object_get(body, "items");
    if (json_is_array(items)) {
        for (size_t i = 0; i < json_array_size(items); i++) {
            char path[32];
            ctnas_jsonv_index(path, sizeof path, "items", i);
            try_item(json_array_get(items, i), path);
        }
    } else {
        try_item(body, "");
    }
    try_refs(body);
    json_decref(body);
    return 0;
}
