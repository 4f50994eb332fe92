/*
 * fuzz_router.c - libFuzzer target: the router and the integer parsing of
 * path parameters and query values.  The input is a request line without
 * the version, "METHOD PATH[?QUERY]" (e.g. "GET /v1/architectures/12" or
 * "GET /v1/jobs?limit=5"): METHOD and PATH go through ctnas_http_route
 * (what on_request does before anything else), each "{x}" parameter of a
 * matched route and each value of QUERY (split on '&' and '=', as
 * libmicrohttpd does, without %-decoding) through ctnas_jsonv_parse_int
 * with the bounds the handlers use.
 */
#include "config.h"

#include <inttypes.h>

#include "fuzz.h"
#include "http.h"
#include "jsonv.h"

#define ALLOW_CAP 64   /* what on_request passes */

static void try_int(const char *s, const char *field)
{
    static const int64_t bounds[][2] = {
        {1, INT64_MAX}, {1, 1000}, {INT64_MIN, INT64_MAX}, {0, 0},
    };
    for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++) {
        int64_t v = 12345;
        struct ctnas_err err = {0};
        int rc = ctnas_jsonv_parse_int(s, field, bounds[b][0], bounds[b][1],
                                       &v, &err);
        if (rc == 0) {
            /* "The whole string" is a decimal integer: an optional minus
             * and digits, nothing else (no blanks, no '+'). */
            const char *p = s + (s[0] == '-');
            FUZZ_CHECK(*p != '\0' && strspn(p, "0123456789") == strlen(p));
            FUZZ_CHECK(v >= bounds[b][0] && v <= bounds[b][1]);
            FUZZ_CHECK(err.code == 0);
        } else {
            FUZZ_CHECK(rc == CTNAS_EINVAL && err.code == rc &&
                       v == 12345);
        }
    }
}

static int route(const char *method, const char *path, struct ctnas_req *req,
                 char *allow, struct ctnas_err *err)
{
    memset(req, 0, sizeof *req);
    req->method = method;
    req->path = path;
    memset(err, 0, sizeof *err);
    memset(allow, 'x', ALLOW_CAP);
    int rc = ctnas_http_route(method, path, req, allow, ALLOW_CAP, err);
    FUZZ_CHECK(memchr(allow, '\0', ALLOW_CAP) != NULL);
    if (rc >= 0) {
        FUZZ_CHECK(err->code == 0);
        FUZZ_CHECK(allow[0] != '\0');
        /* A route that captured a parameter gives a non-empty segment. */
        for (int i = 0; i < CTNAS_ROUTE_MAX_PARAMS; i++)
            if (req->params[i] != NULL) {
                FUZZ_CHECK(req->params[i] == req->param_buf[i]);
                FUZZ_CHECK(req->params[i][0] != '\0');
                FUZZ_CHECK(strchr(req->params[i], '/') == NULL);
                FUZZ_CHECK(strstr(path, req->params[i]) != NULL);
            }
    } else if (rc == CTNAS_EMETHOD) {
        FUZZ_CHECK(err->code == rc && allow[0] != '\0');
    } else {
        FUZZ_CHECK(rc == CTNAS_ENOTFOUND && err->code == rc);
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = fuzz_strndup(data, size);
    char *sp = strchr(line, ' ');
    const char *method = "GET";
    char *target = line;
    if (sp != NULL) {
        *sp = '\0';
        method = line;
        target = sp + 1;
    }
    char *q = strchr(target, '?');
    if (q != NULL)
        *q++ = '\0';

    struct ctnas_req req;
    struct ctnas_err err;
    char allow[ALLOW_CAP];
    int rc = route(method, target, &req, allow, &err);
    for (int i = 0; rc >= 0 && i < CTNAS_ROUTE_MAX_PARAMS; i++)
        if (req.params[i] != NULL)
            try_int(req.params[i], "id");

    /* A trailing slash changes nothing: "/v1/spaces/" is "/v1/spaces". */
    size_t n = strlen(target);
    if (n > 0 && target[n - 1] != '/') {
        char *slashed = malloc(n + 2);
        FUZZ_CHECK(slashed != NULL);
        memcpy(slashed, target, n);
        slashed[n] = '/';
        slashed[n + 1] = '\0';
        struct ctnas_req req2;
        struct ctnas_err err2;
        char allow2[ALLOW_CAP];
        int rc2 = route(method, slashed, &req2, allow2, &err2);
        FUZZ_CHECK(rc2 == rc);
        if (rc >= 0 || rc == CTNAS_EMETHOD)
            FUZZ_CHECK(strcmp(allow, allow2) == 0);
        for (int i = 0; rc >= 0 && i < CTNAS_ROUTE_MAX_PARAMS; i++)
            FUZZ_CHECK((req.params[i] == NULL) == (req2.params[i] == NULL) &&
                       (req.params[i] == NULL ||
                        strcmp(req.params[i], req2.params[i]) == 0));
        free(slashed);
    }

    /* The query: key=value pairs separated by '&'. */
    for (char *kv = q; kv != NULL;) {
        char *amp = strchr(kv, '&');
        if (amp != NULL)
            *amp++ = '\0';
        char *eq = strchr(kv, '=');
        const char *key = kv, *val = "";
        if (eq != NULL) {
            *eq = '\0';
            val = eq + 1;
        }
        try_int(val, key);
        kv = amp;
    }
    free(line);
    return 0;
}
