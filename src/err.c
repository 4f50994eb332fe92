/*
 * err.c - the error table: names, messages and HTTP statuses of CTNAS_E*;
 * and the enum-name lookups and the monotonic clock of ctnas.h.
 */
#include "config.h"
#include "ctnas.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int ctnas_err_set(struct ctnas_err *err, int code, const char *field,
                  const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

void ctnas_err_clear(struct ctnas_err *err)
{
    if (err != NULL)
        memset(err, 0, sizeof *err);
}

const char *ctnas_err_name(int code)
{
    switch (code) {
    case 0: return "OK";
#define X(name, val, status, msg) case val: return #name;
    CTNAS_ERRNO_MAP(X)
#undef X
    }
    return "EUNKNOWN";
}

const char *ctnas_strerror(int code)
{
    switch (code) {
    case 0: return "success";
#define X(name, val, status, msg) case val: return msg;
    CTNAS_ERRNO_MAP(X)
#undef X
    }
    return "unknown error";
}

int ctnas_err_http_status(int code)
{
    switch (code) {
    case 0: return 200;
#define X(name, val, status, msg) case val: return status;
    CTNAS_ERRNO_MAP(X)
#undef X
    }
    return 500;
}

const char *ctnas_err_api_code(int code)
{
    switch (code) {
    case CTNAS_EINVAL: return "invalid_argument";
    case CTNAS_ENOMEM: return "out_of_memory";
    case CTNAS_ENOTFOUND: return "not_found";
    case CTNAS_ECONFLICT: return "conflict";
    case CTNAS_EBUSY: return "busy";
    case CTNAS_ECANCELED: return "cancelled";
    case CTNAS_EDB: return "database_error";
    case CTNAS_ENUMERIC: return "invalid_number";
    case CTNAS_ETOOLARGE: return "payload_too_large";
    case CTNAS_EIO: return "io_error";
    case CTNAS_ELIMIT: return "limit_reached";
    case CTNAS_EREADONLY: return "storage_unavailable";
    case CTNAS_EMETHOD: return "method_not_allowed";
    case CTNAS_EMEDIA: return "unsupported_media_type";
    case CTNAS_EAUTH: return "unauthorized";
    }
    return "internal_error";
}

const char *ctnas_name_of(const char *const *names, int v)
{
    for (int i = 0; names[i] != NULL; i++)
        if (i == v)
            return names[i];
    return "?";
}

int ctnas_name_index(const char *const *names, const char *name)
{
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

double ctnas_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
