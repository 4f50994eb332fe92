/*
 * ctnas.h - what every module of ctnasd shares: the error table, the error
 * detail struct, the version, enum names and the clock.  Nothing here
 * allocates (mem.h does).
 *
 * Fallible functions return 0 or a negative CTNAS_E* code and, when the
 * caller passes one, fill a struct ctnas_err with a message and the name
 * of the offending field.  Codes map to HTTP statuses once, in http.c.
 */
#ifndef CTNAS_H
#define CTNAS_H

#include <stddef.h>
#include <stdint.h>

#ifndef CTNAS_VERSION
#define CTNAS_VERSION PACKAGE_VERSION
#endif

/* X(name, value, http status, message) */
#define CTNAS_ERRNO_MAP(X)                                              \
    X(EINVAL, -1, 400, "invalid argument")                              \
    X(ENOMEM, -2, 500, "out of memory")                                 \
    X(ENOTFOUND, -3, 404, "not found")                                  \
    X(ECONFLICT, -4, 409, "conflict")                                   \
    X(EBUSY, -5, 503, "busy")                                           \
    X(ECANCELED, -6, 409, "cancelled")                                  \
    X(EDB, -7, 500, "database error")                                   \
    X(ENUMERIC, -8, 400, "numeric value out of range")                  \
    X(ETOOLARGE, -9, 413, "too large")                                  \
    X(EIO, -10, 500, "input/output error")                              \
    X(ELIMIT, -11, 429, "limit reached")                                \
    X(EREADONLY, -12, 503, "storage unavailable")                       \
    X(EMETHOD, -13, 405, "method not allowed")                          \
    X(EMEDIA, -14, 415, "unsupported media type")                       \
    X(EAUTH, -15, 401, "unauthorized")

enum {
    CTNAS_OK = 0,
#define X(name, val, status, msg) CTNAS_##name = (val),
    CTNAS_ERRNO_MAP(X)
#undef X
};

/* Detail of an error; fixed size, no allocation (like json_error_t). */
struct ctnas_err {
    int code;        /* a CTNAS_E* value, or 0 */
    char msg[160];   /* a sentence for a human */
    char field[64];  /* the request field at fault, or "" */
};

/* Fill err (which may be NULL) and return code, so callers can write
 *   return ctnas_err_set(err, CTNAS_EINVAL, "space", "unknown space %s",
 *                        s); */
int ctnas_err_set(struct ctnas_err *err, int code, const char *field,
                  const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ctnas_err_clear(struct ctnas_err *err);

/* Stable short name of a code ("EINVAL") and its generic message. */
const char *ctnas_err_name(int code);
const char *ctnas_strerror(int code);
/* HTTP status a code maps to (500 for unknown codes). */
int ctnas_err_http_status(int code);
/* Code names as the API spells them in error.code ("invalid_argument"). */
const char *ctnas_err_api_code(int code);

/* Enum names: names is NULL-terminated and indexed by the enum's value,
 * one list per enum, shared by its name/parse functions and its JSON
 * table.  ctnas_name_of: names[v], or "?" when v is out of range;
 * ctnas_name_index: the value named name, or -1. */
const char *ctnas_name_of(const char *const *names, int v);
int ctnas_name_index(const char *const *names, const char *name);

/* Seconds on the monotonic clock: for durations and deadlines, which a
 * step of the wall clock must not corrupt. */
double ctnas_now_seconds(void);

#endif
