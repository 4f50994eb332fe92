/*
 * jsonv.h - typed getters for request JSON that fill struct ctnas_err
 * with the full path of the field at fault ("items[3].measurements[0].value").
 *
 * A field path is built by the caller into a small buffer with
 * ctnas_jsonv_path; getters take the path prefix of the containing object.
 * Numbers must be finite; integers must be exact and in range.
 */
#ifndef CTNAS_JSONV_H
#define CTNAS_JSONV_H

#include <jansson.h>
#include <stdint.h>

#include "ctnas.h"

/* Write "prefix.key" (or "key" when prefix is empty) into buf. */
const char *ctnas_jsonv_path(char *buf, size_t cap, const char *prefix,
                             const char *key);
/* Write "prefix[i]" into buf. */
const char *ctnas_jsonv_index(char *buf, size_t cap, const char *prefix,
                              size_t i);

/* Require obj to be an object. */
int ctnas_jsonv_object(const json_t *obj, const char *path,
                       struct ctnas_err *err);

/* Getters: if the key is absent and required, EINVAL "is required"; if
 * absent and optional, leave *out untouched and return 0.  A present
 * value of the wrong type is always an error. */
int ctnas_jsonv_string(const json_t *obj, const char *prefix,
                       const char *key, int required, const char **out,
                       size_t max_len, struct ctnas_err *err);
int ctnas_jsonv_number(const json_t *obj, const char *prefix,
                       const char *key, int required, double *out,
                       double min, double max, struct ctnas_err *err);
int ctnas_jsonv_int(const json_t *obj, const char *prefix, const char *key,
                    int required, int64_t *out, int64_t min, int64_t max,
                    struct ctnas_err *err);
int ctnas_jsonv_bool(const json_t *obj, const char *prefix, const char *key,
                     int required, int *out, struct ctnas_err *err);

/* Reject keys of obj that are not in the NULL-terminated allowed list, so
 * a typo ("measurments") is an error, not silently ignored. */
int ctnas_jsonv_only(const json_t *obj, const char *prefix,
                     const char *const *allowed, struct ctnas_err *err);

/* Settings structs read from and written to JSON by one table, so the
 * two cannot drift apart.  Each field names a member at offset off of
 * the struct: INT is int, LONG long, U64 uint64_t, REAL double, BOOL int
 * (0/1), ENUM int indexing names (a NULL-terminated list, written by
 * name).  Numbers are bounded by [min, max]. */
enum ctnas_jsonv_kind {
    CTNAS_JV_INT,
    CTNAS_JV_LONG,
    CTNAS_JV_U64,
    CTNAS_JV_REAL,
    CTNAS_JV_BOOL,
    CTNAS_JV_ENUM,
};

struct ctnas_jsonv_field {
    const char *name;
    enum ctnas_jsonv_kind kind;
    size_t off;
    double min, max;
    const char *const *names;  /* CTNAS_JV_ENUM */
};

/* Override the members of base whose keys obj has. */
int ctnas_jsonv_read_fields(const json_t *obj, const char *prefix,
                            const struct ctnas_jsonv_field *fields,
                            size_t n, void *base, struct ctnas_err *err);
/* New object with every field of base; NULL when out of memory (never
 * an object with a field missing or null). */
json_t *ctnas_jsonv_write_fields(const struct ctnas_jsonv_field *fields,
                                 size_t n, const void *base);
/* ctnas_jsonv_only for an object that holds the settings of a table plus
 * keys of its own (also, NULL-terminated, may be NULL): the names are
 * read from the table, never copied into a second list. */
int ctnas_jsonv_only_fields(const json_t *obj, const char *prefix,
                            const struct ctnas_jsonv_field *fields,
                            size_t n, const char *const *also,
                            struct ctnas_err *err);

/* v as a JSON number, or null when it is NaN or infinite (JSON has
 * neither: a figure not computed yet, say). */
json_t *ctnas_jsonv_real_or_null(double v);

/* arr with v appended (v is taken in every case), or NULL with arr
 * released when arr or v is NULL or the append fails, so a loop of
 * "arr = ctnas_jsonv_append(arr, ...)" builds the whole array or none. */
json_t *ctnas_jsonv_append(json_t *arr, json_t *v);
/* A new array of the n integers v; NULL when out of memory. */
json_t *ctnas_jsonv_int64_array(const int64_t *v, int n);

/* json_loadb of buf[0 .. len), which also tells a failure for memory
 * (*oom = 1: answer 500, not a client's 400) from a syntax error.
 * jansson 2.14 flags some of its allocation failures, leaves others
 * without a message, reports some as syntax errors and survives others
 * with a string cut short, so the allocator's failure count (mem.h)
 * decides: any failed allocation fails the load. */
json_t *ctnas_jsonv_load(const char *buf, size_t len, size_t flags,
                         json_error_t *jerr, int *oom);

/* json_dumps, failing (NULL) on any failed allocation: jansson 2.14 can
 * survive one inside a dump with a key left out ("{:2, ...}"), and such
 * text must never be sent or stored.  Free the text with ctnas_free. */
char *ctnas_jsonv_dumps(const json_t *j, size_t flags);
/* ctnas_jsonv_dumps for answers: every real written with the fewest
 * significant digits (15 to 17) that read back as the same double, so
 * 93.66 stays 93.66 and what a client posts back is what was stored.
 * flags must not carry JSON_REAL_PRECISION. */
char *ctnas_jsonv_dumps_exact(const json_t *j, size_t flags);

/* Parse a decimal integer from text (query strings): whole string. */
int ctnas_jsonv_parse_int(const char *s, const char *field, int64_t min,
                          int64_t max, int64_t *out, struct ctnas_err *err);

#endif
