/*
 * http.h - the HTTP server: libmicrohttpd life cycle, body buffering,
 * routing by routes.def, and the mapping of error codes to statuses and
 * JSON error bodies.  The only file that includes microhttpd.h.
 */
#ifndef CTNAS_HTTP_H
#define CTNAS_HTTP_H

#include <stdio.h>

#include "api.h"
#include "ctnas.h"
#include "http_tls.h"

struct ctnas_http;

/* Connections over --max-connections held open at once to be told 503
 * (any more wait in the listen queue): they need descriptors too. */
#define CTNAS_HTTP_OVER_LIMIT_SLOTS 8

/* Bind and start serving (worker threads from app->conf), HTTPS with
 * tls's credentials (ctnas_tls_load; the caller keeps them, until the
 * stop) or plain HTTP when tls is NULL.  *out is new; stop it with
 * ctnas_http_stop. */
int ctnas_http_start(struct ctnas_app *app, const struct ctnas_tls *tls,
                     struct ctnas_http **out, struct ctnas_err *err);
/* Whether libmicrohttpd (GnuTLS) takes tls's certificate and key, a
 * key that is not the certificate's above all, without binding
 * anything: 0, or CTNAS_EINVAL naming --tls-key with its reason. */
int ctnas_http_tls_check(const struct ctnas_tls *tls, struct ctnas_err *err);
/* The port actually bound (useful with --port 0). */
int ctnas_http_port(const struct ctnas_http *h);
/* What health reports of the requests. */
struct ctnas_http_load {
    int workers;     /* worker threads */
    int busy;        /* of them running a request */
    int queued;      /* requests waiting for one */
    size_t buffered; /* request body bytes held (--max-buffered) */
};
void ctnas_http_load(struct ctnas_http *h, struct ctnas_http_load *out);
/* The request metrics in Prometheus' text format, to f: the load above
 * and the open connections as gauges, answers by route and status, and
 * a histogram of their seconds.  0, or CTNAS_ENOMEM when f failed. */
int ctnas_http_write_metrics(struct ctnas_http *h, FILE *f);
/* Stop accepting, wait up to grace_ms for requests in flight, then
 * answer 503 to those still waiting for a worker, let the running ones
 * finish, stop the threads and free h (accepts NULL).  Returns the
 * requests still in flight when the grace period ran out. */
int ctnas_http_stop(struct ctnas_http *h, int grace_ms);

/* Route method + path (no query string) by routes.def, without I/O: the
 * route's index, with its "{x}" parameters copied into req (may be NULL),
 * or CTNAS_ENOTFOUND (404) or CTNAS_EMETHOD (405, allow_cap >= 1 bytes of
 * allow then list the path's methods, ", "-separated) with err filled. */
int ctnas_http_route(const char *method, const char *path,
                     struct ctnas_req *req, char *allow, size_t allow_cap,
                     struct ctnas_err *err);

#endif
