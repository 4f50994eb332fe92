/*
 * http.c - libmicrohttpd adapter, over HTTP or HTTPS (the credentials
 * are http_tls.c's).  Owns: connection state, body limits (the bodies
 * and their budget are http_body.c's), routing, JSON error bodies, the
 * access log, the gauges of /metrics (the per-route counters are
 * http_metrics.c's).
 * Must not touch: SQL (handlers go through store.h), job memory.
 *
 * One thread (libmicrohttpd's) reads and writes every connection and
 * never runs a handler but the health route's: a complete request is
 * suspended and handed to the --threads workers (workq.h), which parse
 * its body, run its handler and build the answer, then resume it.  So a
 * long compare or rank holds up only its own connection: the others are
 * read, answered and kept alive meanwhile (a suspended connection does
 * not time out).  POSTs take at most threads - 1 workers and GETs go
 * ahead of them, so polls are answered while long requests run.  A
 * handler may block on SQLite; slow work goes to background jobs.
 */
#include "config.h"
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_body.h"
#include "http_metrics.h"
#include "http_tls.h"
#include "jsonv.h"
#include "log.h"
#include "mem.h"
#include "workq.h"

/* What libmicrohttpd logs, for the error of a failed start: it names a
 * key that does not match its certificate only there. */
struct mhd_msgs {
    pthread_mutex_t mu;
    char first_tls[256]; /* the first message about TLS, or "" */
};

struct ctnas_http {
    struct MHD_Daemon *mhd;
    struct ctnas_workq *workers;
    struct ctnas_app *app;
    atomic_int in_flight;
    atomic_int admitted;  /* open connections within --max-connections */
    struct ctnas_body_budget bodies; /* --max-buffered */
    int max_connections;
    int port;
    struct ctnas_http_metrics *metrics;
    struct mhd_msgs msgs;
};

/* A body over --max-body but within this many times it is read and
 * dropped before the 413 goes out, so the client sees the answer. */
#define CTNAS_HTTP_DISCARD_FACTOR 4

/* Socket contexts of connections: admitted, or over --max-connections
 * (answered 503 and closed). */
static char conn_admitted, conn_over_limit;

struct route {
    const char *method;
    const char *path;
    ctnas_handler handler;
    int query;  /* 1: the handler reads (and checks) query parameters */
};

#define Q 1
#define NOQ 0

static const struct route routes[] = {
#define ROUTE(m, p, h, q, s) {#m, p, h, q},
#include "routes.def"
#undef ROUTE
};
#undef Q
#undef NOQ
#define N_ROUTES (sizeof routes / sizeof routes[0])

/* Per-request state, from the first access call to the completion
 * callback. */
struct conn_state {
    struct ctnas_workq_item work; /* first: the item is the state */
    struct ctnas_http *http;
    struct ctnas_body body;
    const struct route *route;
    struct ctnas_req req;
    double t0;
    int responded;        /* a response is queued (early error) */
    int too_large;        /* body went over --max-body: discarding it */
    int over_budget;      /* over --max-buffered: discarding it */
    int suspended;        /* with a worker; resumed with resp built */
    int no_body;          /* none announced: early errors wait for the
                           * last call */
    struct MHD_Response *resp; /* the answer, until queued */
    unsigned status;
};

/* Match path against a pattern segment by segment; "{x}" captures. */
static int path_match(const char *pattern, const char *path,
                      struct ctnas_req *req)
{
    int np = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == '{') {
            const char *pe = strchr(p, '}');
            size_t n = strcspn(s, "/");
            if (n == 0 || n >= sizeof req->param_buf[0] ||
                np >= CTNAS_ROUTE_MAX_PARAMS)
                return 0;
            if (req) {
                memcpy(req->param_buf[np], s, n);
                req->param_buf[np][n] = '\0';
                req->params[np] = req->param_buf[np];
            }
            np++;
            p = pe + 1;
            s += n;
            continue;
        }
        if (*p != *s)
            return 0;
        p++;
        s++;
    }
    /* A trailing slash is tolerated: "/v1/spaces/" is "/v1/spaces". */
    if (*p == '\0' && s[0] == '/' && s[1] == '\0')
        return 1;
    return *p == '\0' && *s == '\0';
}

/* The answer (cs->resp, cs->status) of the len bytes of buf (taken:
 * freed with the response, or now on failure), of type ctype; any
 * thread.  Out of memory leaves resp NULL, and the connection is then
 * closed unanswered.  The response, or NULL. */
static struct MHD_Response *make_response(struct conn_state *cs, int status,
                                          char *buf, size_t len,
                                          const char *ctype)
{
    cs->resp = NULL;
    cs->status = (unsigned)status;
    if (buf == NULL)
        return NULL;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(len, buf,
                                                           ctnas_free);
    if (resp == NULL) {
        ctnas_free(buf);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    cs->resp = resp;
    return resp;
}

/* Build the answer (cs->resp, cs->status) from body, on any thread;
 * hname/hval: one extra header, or NULL. */
static void make_json(struct conn_state *cs, int status, json_t *body,
                      const char *hname, const char *hval)
{
    char *text = ctnas_jsonv_dumps_exact(body, JSON_COMPACT);
    size_t len = text ? strlen(text) : 0;
    /* Terminate the document with a newline: friendlier for curl. */
    char *buf = text ? ctnas_realloc(text, len + 2) : NULL;
    if (buf == NULL)
        ctnas_free(text);
    else
        buf[len++] = '\n';
    struct MHD_Response *resp =
        make_response(cs, status, buf, len, "application/json");
    if (resp == NULL)
        return;
    if (hname)
        MHD_add_response_header(resp, hname, hval);
    /* When to try again: a busy daemon or database soon, a full job
     * table once a job has had time to end. */
    if (status == 503 || status == 429)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER,
                                status == 503 ? "1" : "5");
}

/* The answer (cs->resp, cs->status) of text as it is, of type ctype. */
static void make_text(struct conn_state *cs, int status, const char *text,
                      size_t len, const char *ctype)
{
    char *buf = ctnas_malloc(len + 1);
    if (buf != NULL)
        memcpy(buf, text, len);
    make_response(cs, status, buf, len, ctype);
}

/* I/O thread: count the answer in its route's metrics. */
static void observe(struct conn_state *cs)
{
    /* An answer given before the route was looked up (401, a refused
     * connection or framing) still counts under the route it asked. */
    size_t i = N_ROUTES;
    if (cs->route) {
        i = (size_t)(cs->route - routes);
    } else {
        char allow[64];
        struct ctnas_err e = {0};
        int r = ctnas_http_route(cs->req.method, cs->req.path, NULL, allow,
                                 sizeof allow, &e);
        if (r >= 0)
            i = (size_t)r;
    }
    ctnas_http_metrics_observe(cs->http->metrics, i, cs->status,
                               ctnas_now_seconds() - cs->t0);
}

/* I/O thread: queue the answer built. */
static enum MHD_Result reply(struct MHD_Connection *conn,
                             struct conn_state *cs)
{
    cs->responded = 1;
    if (cs->resp == NULL)
        return MHD_NO;
    observe(cs);
    enum MHD_Result r = MHD_queue_response(conn, cs->status, cs->resp);
    MHD_destroy_response(cs->resp);
    cs->resp = NULL;
    return r;
}

static json_t *error_body(const struct ctnas_err *err)
{
    const char *msg = err->msg[0] ? err->msg : ctnas_strerror(err->code);
    return json_pack("{s:{s:s, s:s, s:o}}", "error", "code",
                     ctnas_err_api_code(err->code), "message", msg, "field",
                     err->field[0] ? json_string(err->field) : json_null());
}

/* Build the error answer; allow: the Allow header of a 405, or NULL. */
static void make_error(struct conn_state *cs, const struct ctnas_err *err,
                       const char *allow)
{
    int status = ctnas_err_http_status(err->code);
    json_t *body = error_body(err);
    if (err->code == CTNAS_EAUTH)
        make_json(cs, status, body, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                  "Bearer realm=\"ctnasd\"");
    else if (err->code == CTNAS_EBUSY)
        make_json(cs, status, body, MHD_HTTP_HEADER_CONNECTION, "close");
    else
        make_json(cs, status, body, allow ? MHD_HTTP_HEADER_ALLOW : NULL,
                  allow);
    json_decref(body);
    if (status >= 500)
        ctnas_log_error("%s %s -> %d: %s", cs->req.method, cs->req.path,
                        status, err->msg);
    else
        ctnas_log_debug("%s %s -> %d: %s", cs->req.method, cs->req.path,
                        status, err->msg);
}

static enum MHD_Result send_error(struct MHD_Connection *conn,
                                  struct conn_state *cs,
                                  const struct ctnas_err *err,
                                  const char *allow)
{
    make_error(cs, err, allow);
    return reply(conn, cs);
}

/* The "{x}" parameters of a route's path. */
static int n_params(const char *pattern)
{
    int n = 0;
    for (const char *p = pattern; *p; p++)
        n += *p == '{';
    return n;
}

int ctnas_http_route(const char *method, const char *path,
                     struct ctnas_req *req, char *allow, size_t allow_cap,
                     struct ctnas_err *err)
{
    int hit = -1;
    allow[0] = '\0';
    /* A literal segment beats a parameter: the paths with the fewest
     * parameters that match are the resource ("/v1/nac/train" is not
     * the model "train" of "/v1/nac/{id}"), so a match with fewer
     * starts the answer afresh. */
    int fewest = INT_MAX;
    for (size_t i = 0; i < N_ROUTES; i++) {
        int np = n_params(routes[i].path);
        if (np > fewest || !path_match(routes[i].path, path, NULL))
            continue;
        if (np < fewest) {
            fewest = np;
            hit = -1;
            allow[0] = '\0';
        }
        /* HEAD is GET without the body (libmicrohttpd drops it), as
         * HTTP asks of every GET resource: monitors probe with it. */
        int get = strcmp(routes[i].method, "GET") == 0;
        size_t used = strlen(allow);
        snprintf(allow + used, allow_cap - used, "%s%s%s", used ? ", " : "",
                 routes[i].method, get ? ", HEAD" : "");
        if (hit < 0 && (strcmp(routes[i].method, method) == 0 ||
                        (get && strcmp(method, "HEAD") == 0)))
            hit = (int)i;
    }
    if (hit >= 0) {
        if (req)
            path_match(routes[hit].path, path, req);
        return hit;
    }
    if (allow[0])
        return ctnas_err_set(err, CTNAS_EMETHOD, "", "method %s not allowed "
                             "on %s; allowed: %s", method, path, allow);
    return ctnas_err_set(err, CTNAS_ENOTFOUND, "", "no route %s", path);
}

/* Resolve the route; on failure fill err (404, or 405 with allow). */
static const struct route *route_find(struct ctnas_req *req, char *allow,
                                      size_t cap, struct ctnas_err *err)
{
    int i = ctnas_http_route(req->method, req->path, req, allow, cap, err);
    return i >= 0 ? &routes[i] : NULL;
}

/* Compare in time independent of where the strings differ. */
static int token_equal(const char *given, const char *want)
{
    size_t n = strlen(want), m = strlen(given);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(want[i] ^ (i < m ? given[i] : 0));
    return diff == 0;
}

/* 0 when the request may proceed: no token configured, the health
 * route, or "Authorization: Bearer <token>" matches. */
static int check_auth(struct MHD_Connection *conn, const struct ctnas_app *app,
                      const char *method, const char *url,
                      struct ctnas_err *err)
{
    if (app->token[0] == '\0' ||
        ((strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) &&
         strcmp(url, "/v1/health") == 0))
        return 0;
    const char *h = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h && strncasecmp(h, "Bearer ", 7) == 0 &&
        token_equal(h + 7, app->token))
        return 0;
    return ctnas_err_set(err, CTNAS_EAUTH, "Authorization",
                         h ? "the bearer token is not valid"
                           : "this daemon requires \"Authorization: Bearer "
                             "<token>\"");
}

static int is_json_type(const char *ct)
{
    if (ct == NULL)
        return 0;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Parse the body, run the handler, build the answer (cs->resp): any
 * thread, the connection untouched but for reading its request. */
static void handle(struct conn_state *cs)
{
    struct ctnas_err err = {0};
    json_t *body = NULL;
    if (cs->body.len > 0) {
        json_error_t jerr;
        int oom;
        /* Any JSON value: a well-formed body of the wrong type (null,
         * 3) is then told so by its handler, not called malformed. */
        body = ctnas_jsonv_load(cs->body.data, cs->body.len,
                                JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                                &jerr, &oom);
        /* The tree is what the handler reads: the text can go, and
         * make room for bodies still to come. */
        ctnas_body_free(&cs->body);
        if (oom) {
            ctnas_err_set(&err, CTNAS_ENOMEM, "", "out of memory");
            make_error(cs, &err, NULL);
            return;
        }
        if (body == NULL) {
            /* jansson names its own flag for a NUL; say it plainly */
            int nul = strstr(jerr.text, "JSON_ALLOW_NUL") != NULL;
            ctnas_err_set(&err, CTNAS_EINVAL, "body",
                          "malformed JSON at line %d, column %d: %s",
                          jerr.line, jerr.column,
                          nul ? "strings must not contain \\u0000"
                              : jerr.text);
            make_error(cs, &err, NULL);
            return;
        }
    }
    cs->req.body = body;

    json_t *out = NULL;
    int rc = cs->route->handler(&cs->req, &out, &err);
    json_decref(body);
    cs->req.body = NULL;
    /* Every handler answers a body; none means it could not be built. */
    if (rc >= 0 && out == NULL)
        rc = ctnas_err_set(&err, CTNAS_ENOMEM, "",
                           "out of memory: the answer could not be built");
    if (rc < 0) {
        json_decref(out);
        if (err.code == 0)
            ctnas_err_set(&err, rc, "", "%s", ctnas_strerror(rc));
        make_error(cs, &err, NULL);
        return;
    }
    if (cs->req.reply_type && json_is_string(out))
        make_text(cs, rc, json_string_value(out), json_string_length(out),
                  cs->req.reply_type);
    else
        make_json(cs, rc, out, cs->req.reply_header, cs->req.reply_value);
    json_decref(out);
    ctnas_log_debug("%s %s -> %d (%.1f ms)", cs->req.method, cs->req.path,
                    rc, (ctnas_now_seconds() - cs->t0) * 1e3);
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind,
                                    const char *key, const char *value)
{
    (void)kind;
    (void)value;
    int *n = cls;
    *n += strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0;
    return MHD_YES;
}

/* Whether the client waits for "100 Continue" before sending its body. */
static int expects_continue(struct MHD_Connection *conn)
{
    const char *e = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_EXPECT);
    return e != NULL && strcasecmp(e, "100-continue") == 0;
}

/* The 503 of a body that does not fit in --max-buffered. */
static const struct ctnas_err *budget_error(const struct ctnas_http *h,
                                            struct ctnas_err *err)
{
    ctnas_err_set(err, CTNAS_EBUSY, "body",
                  "request bodies held in memory are at the limit of %zu "
                  "bytes (--max-buffered); retry later",
                  h->app->conf->max_buffered);
    return err;
}

/* An error found from the headers alone.  With a body to come it goes
 * out now, and the connection is closed rather than the body read;
 * without one it goes out at the request's last call, as any answer, so
 * the connection stays open (an answer queued at the first call closes
 * it: a 404 would cost a keep-alive client its connection). */
static enum MHD_Result early_error(struct MHD_Connection *conn,
                                   struct conn_state *cs,
                                   const struct ctnas_err *err,
                                   const char *allow)
{
    if (!cs->no_body)
        return send_error(conn, cs, err, allow);
    make_error(cs, err, allow);
    return cs->resp ? MHD_YES : MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct ctnas_http *h = cls;
    struct conn_state *cs = *con_cls;
    struct ctnas_err err = {0};

    if (cs == NULL) {
        cs = ctnas_calloc(1, sizeof *cs);
        if (cs == NULL)
            return MHD_NO;
        *con_cls = cs;
        atomic_fetch_add(&h->in_flight, 1);
        cs->t0 = ctnas_now_seconds();
        cs->req.app = h->app;
        cs->req.method = method;
        cs->req.path = url;
        cs->req.conn = conn;
        cs->http = h;
        ctnas_body_init(&cs->body, &h->bodies, cs->t0);
        /* The framing headers, read once for every check below. */
        const char *cl = MHD_lookup_connection_value(
            conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *te = MHD_lookup_connection_value(
            conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        cs->no_body = (cl == NULL || strcmp(cl, "0") == 0) && te == NULL;

        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
            conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        if (ci && ci->socket_context == &conn_over_limit) {
            ctnas_err_set(&err, CTNAS_EBUSY, "",
                          "too many open connections (--max-connections "
                          "%d); retry later", h->max_connections);
            return send_error(conn, cs, &err, NULL);
        }
        /* Two lengths would frame the body two ways (libmicrohttpd
         * takes the first): a request smuggled past a proxy that took
         * the other.  Refused, and the connection closed. */
        int n_length = 0;
        MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header,
                                  &n_length);
        if (n_length > 1) {
            ctnas_err_set(&err, CTNAS_EINVAL, "Content-Length",
                          "more than one Content-Length header");
            return send_error(conn, cs, &err, NULL);
        }
        /* Both a length and chunks: the same smuggling, framed by the
         * chunks here (RFC 9112 6.3 asks to close after it anyway). */
        if (cl && te) {
            ctnas_err_set(&err, CTNAS_EINVAL, "Content-Length",
                          "both Content-Length and Transfer-Encoding");
            return send_error(conn, cs, &err, NULL);
        }
        if (check_auth(conn, h->app, method, url, &err) < 0)
            return early_error(conn, cs, &err, NULL);
        char allow[64];
        cs->route = route_find(&cs->req, allow, sizeof allow, &err);
        if (cs->route == NULL)
            return early_error(conn, cs, &err,
                               err.code == CTNAS_EMETHOD ? allow : NULL);
        /* A parameter the route does not read is a client's mistake
         * (a typo of another route's), not something to ignore. */
        static const char *const no_params[] = {NULL};
        if (!cs->route->query &&
            ctnas_req_query_only(&cs->req, no_params, &err) < 0)
            return early_error(conn, cs, &err, NULL);
        if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
            const char *ct = MHD_lookup_connection_value(
                conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
            /* A POST without a body (curl -X POST) has no type to give;
             * the handler says whether it needs one. */
            if (!(ct == NULL && cs->no_body) && !is_json_type(ct)) {
                ctnas_err_set(&err, CTNAS_EMEDIA, "Content-Type",
                              "request body must be application/json, not "
                              "%s", ct ? ct : "unspecified");
                return early_error(conn, cs, &err, NULL);
            }
        }
        /* libmicrohttpd has checked the length is a number. */
        unsigned long long announced = cl ? strtoull(cl, NULL, 10) : 0;
        if (announced > h->app->conf->max_body) {
            /* Told once the body is read, as a chunked one: answering
             * now and closing with the body unread makes the client's
             * send fail (a reset), losing the 413.  Unless the client
             * waits for "100 Continue", or the body is too big to read
             * through (CTNAS_HTTP_DISCARD_FACTOR). */
            if (!expects_continue(conn) &&
                announced <= (unsigned long long)h->app->conf->max_body *
                                 CTNAS_HTTP_DISCARD_FACTOR) {
                cs->too_large = 1;
                return MHD_YES;
            }
            ctnas_err_set(&err, CTNAS_ETOOLARGE, "body",
                          "request body of %s bytes is over the limit of "
                          "%zu bytes (--max-body)", cl,
                          h->app->conf->max_body);
            return send_error(conn, cs, &err, NULL);
        }
        /* A client waiting on "Expect: 100-continue" whose body does not
         * fit is told before it sends; any other reads its answer after
         * the body. */
        if (ctnas_body_promise(&cs->body, (size_t)announced) < 0) {
            cs->over_budget = 1;
            if (expects_continue(conn))
                return send_error(conn, cs, budget_error(h, &err), NULL);
        }
        return MHD_YES;
    }

    if (*upload_data_size != 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cs->responded || cs->too_large || cs->over_budget)
            return MHD_YES; /* discard the rest of a refused body */
        /* Refused bodies are answered once read: closing with unread
         * data would reset the connection and lose the answer. */
        if (cs->body.len + n > h->app->conf->max_body) {
            cs->too_large = 1;
            ctnas_body_free(&cs->body);
            return MHD_YES;
        }
        int rc = ctnas_body_append(&cs->body, upload_data, n);
        if (rc == CTNAS_ENOMEM)
            return MHD_NO;
        cs->over_budget = rc < 0;
        return MHD_YES;
    }
    if (cs->suspended) {
        /* Resumed by its worker, the answer built. */
        cs->suspended = 0;
        return reply(conn, cs);
    }
    if (cs->resp && !cs->responded)
        return reply(conn, cs); /* an early error, held for this call */
    if (cs->responded)
        return MHD_YES;
    if (cs->too_large) {
        ctnas_err_set(&err, CTNAS_ETOOLARGE, "body",
                      "request body is over the limit of %zu bytes "
                      "(--max-body)", h->app->conf->max_body);
        return send_error(conn, cs, &err, NULL);
    }
    if (cs->over_budget)
        return send_error(conn, cs, budget_error(h, &err), NULL);
    /* Health and metrics answer on this thread: a monitor must hear
     * from a daemon whose workers are all busy.  They only ping the
     * database. */
    if (cs->route->handler == ctnas_api_health ||
        cs->route->handler == ctnas_api_metrics) {
        handle(cs);
        return reply(conn, cs);
    }
    /* A body is what makes a request long (compares, ranks, uploads);
     * GETs and DELETEs go ahead of them. */
    cs->work.heavy = cs->body.len > 0 || strcmp(method, "POST") == 0;
    /* The body is whole (a length is all there): nothing promised is
     * left, and the worker may free it. */
    ctnas_body_settle(&cs->body);
    /* Suspend before the push: the worker may resume at once. */
    MHD_suspend_connection(conn);
    cs->suspended = 1;
    if (ctnas_workq_push(h->workers, &cs->work) < 0) {
        cs->suspended = 0;
        MHD_resume_connection(conn);
        ctnas_err_set(&err, CTNAS_EBUSY, "", "the daemon is stopping");
        return send_error(conn, cs, &err, NULL);
    }
    return MHD_YES;
}

/* Whether the client has closed its end (a FIN or a reset) while its
 * request waited: libmicrohttpd, reading that on resuming, closes the
 * connection unanswered anyway.  Pipelined bytes hide a FIN; then it
 * runs. */
static int client_gone(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    char c;
    if (ci == NULL)
        return 0;
    ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                      errno != EINTR);
}

/* Worker thread: the request's answer, then back to the I/O thread.  cs
 * may be freed as soon as the connection is resumed.  A read (GET,
 * compare, rank) whose client left while it waited is not run: nobody
 * would get its answer, and a queue of abandoned ranks would delay the
 * requests behind it.  Writes run: a client that sends and goes may
 * count on them. */
static void run_request(struct ctnas_workq_item *it, void *ctx)
{
    (void)ctx;
    struct conn_state *cs = (struct conn_state *)it;
    int read_only = strcmp(cs->req.method, "GET") == 0 ||
                    strcmp(cs->req.method, "HEAD") == 0 ||
                    cs->route->handler == ctnas_api_compare ||
                    cs->route->handler == ctnas_api_rank;
    if (read_only && client_gone(cs->req.conn))
        ctnas_log_debug("%s %s: the client left before it ran; not run",
                        cs->req.method, cs->req.path);
    else
        handle(cs);
    MHD_resume_connection(cs->req.conn);
}

/* A request still queued when the daemon stops is told so. */
static void drop_request(struct ctnas_workq_item *it, void *ctx)
{
    (void)ctx;
    struct conn_state *cs = (struct conn_state *)it;
    struct ctnas_err err = {0};
    ctnas_err_set(&err, CTNAS_EBUSY, "", "the daemon is stopping");
    make_error(cs, &err, NULL);
    MHD_resume_connection(cs->req.conn);
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    struct ctnas_http *h = cls;
    struct conn_state *cs = *con_cls;
    if (cs == NULL)
        return;
    if (cs->resp)
        MHD_destroy_response(cs->resp); /* built, never sent */
    ctnas_body_free(&cs->body);
    ctnas_free(cs);
    *con_cls = NULL;
    atomic_fetch_sub(&h->in_flight, 1);
}

/* The count of open connections behind --max-connections: MHD's own
 * MHD_OPTION_CONNECTION_LIMIT would close the one too many unanswered.
 * A connection started over the limit is marked instead; its first
 * request is answered 503 and the connection closed (on_request). */
static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)conn;
    struct ctnas_http *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        if (atomic_fetch_add(&h->admitted, 1) < h->max_connections) {
            *socket_context = &conn_admitted;
        } else {
            atomic_fetch_sub(&h->admitted, 1);
            *socket_context = &conn_over_limit;
        }
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED &&
               *socket_context == &conn_admitted) {
        atomic_fetch_sub(&h->admitted, 1);
        *socket_context = NULL;
    }
}

/* A request built without a connection (a handler called directly, as
 * tests/test_oom.c does) has an empty query string. */
const char *ctnas_req_query(const struct ctnas_req *req, const char *key)
{
    if (req->conn == NULL)
        return NULL;
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
                                       key);
}

const char *ctnas_req_header(const struct ctnas_req *req, const char *name)
{
    if (req->conn != NULL)
        return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                           name);
    for (const char *const *h = req->headers; h && h[0]; h += 2)
        if (strcasecmp(h[0], name) == 0)
            return h[1];
    return NULL;
}

struct query_check {
    const char *const *allowed;
    unsigned long seen;  /* bit i: allowed[i] was given */
    const char *bad;
    int twice;           /* bad was given more than once */
};

static enum MHD_Result check_key(void *cls, enum MHD_ValueKind kind,
                                 const char *key, const char *value)
{
    (void)kind;
    (void)value;
    struct query_check *qc = cls;
    for (size_t i = 0; qc->allowed[i]; i++) {
        if (strcmp(qc->allowed[i], key) != 0)
            continue;
        unsigned long bit = 1ul << (i % (8 * sizeof qc->seen));
        if (!(qc->seen & bit)) {
            qc->seen |= bit;
            return MHD_YES;
        }
        /* A repeat: the handler would read the first one only, and a
         * bound checked on one would not hold for the other. */
        qc->twice = 1;
        break;
    }
    qc->bad = key;
    return MHD_NO;
}

int ctnas_req_query_only(const struct ctnas_req *req,
                         const char *const *allowed, struct ctnas_err *err)
{
    struct query_check qc = {allowed, 0, NULL, 0};
    if (req->conn != NULL)
        MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND,
                                  check_key, &qc);
    if (qc.bad && qc.twice)
        return ctnas_err_set(err, CTNAS_EINVAL, qc.bad,
                             "query parameter '%s' is given more than "
                             "once; give it once", qc.bad);
    if (qc.bad)
        return ctnas_err_set(err, CTNAS_EINVAL, qc.bad,
                             "unknown query parameter '%s'", qc.bad);
    return 0;
}

int ctnas_req_body_object(const struct ctnas_req *req, json_t **body,
                          struct ctnas_err *err)
{
    if (req->body == NULL)
        return ctnas_err_set(err, CTNAS_EINVAL, "body",
                             "a JSON request body is required");
    if (!json_is_object(req->body))
        return ctnas_err_set(err, CTNAS_EINVAL, "body",
                             "the request body must be a JSON object");
    *body = req->body;
    return 0;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct mhd_msgs *m = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
        msg[--n] = '\0';
    ctnas_log_debug("libmicrohttpd: %s", msg);
    pthread_mutex_lock(&m->mu);
    if (m->first_tls[0] == '\0' && strstr(msg, "TLS") != NULL)
        snprintf(m->first_tls, sizeof m->first_tls, "%s", msg);
    pthread_mutex_unlock(&m->mu);
}

static void http_free(struct ctnas_http *h)
{
    ctnas_http_metrics_free(h->metrics);
    pthread_mutex_destroy(&h->msgs.mu);
    ctnas_free(h);
}

/* The options that make a daemon serve HTTPS with tls's credentials, or
 * none (tls NULL), into opts; CTNAS_EINVAL when this libmicrohttpd
 * cannot.  Versions before TLS 1.2 are off: no client of this decade
 * needs them. */
static int tls_options(const struct ctnas_tls *tls,
                       struct MHD_OptionItem opts[4], unsigned *flags,
                       struct ctnas_err *err)
{
    const struct MHD_OptionItem on[4] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, tls ? tls->cert : NULL},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, tls ? tls->key : NULL},
        {MHD_OPTION_HTTPS_PRIORITIES, 0,
         "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
        {MHD_OPTION_END, 0, NULL},
    };
    memcpy(opts, on, sizeof on);
    if (tls == NULL) {
        opts[0].option = MHD_OPTION_END;
        return 0;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return ctnas_err_set(err, CTNAS_EINVAL, "--tls-cert",
                             "this libmicrohttpd was built without HTTPS");
    *flags |= MHD_USE_TLS;
    return 0;
}

int ctnas_http_tls_check(const struct ctnas_tls *tls, struct ctnas_err *err)
{
    /* A daemon with no socket and no thread: its start is the whole
     * check (GnuTLS reads the pair then). */
    struct mhd_msgs m = {.first_tls = ""};
    struct MHD_OptionItem opts[4];
    unsigned flags = MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG;
    int rc = tls_options(tls, opts, &flags, err);
    if (rc < 0)
        return rc;
    pthread_mutex_init(&m.mu, NULL);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, &m, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (d != NULL)
        MHD_stop_daemon(d);
    else
        rc = ctnas_err_set(err, CTNAS_EINVAL, "--tls-key",
                           "cannot serve HTTPS: %s",
                           m.first_tls[0] ? m.first_tls
                                          : "libmicrohttpd refused the "
                                            "certificate and key");
    pthread_mutex_destroy(&m.mu);
    return rc;
}

int ctnas_http_start(struct ctnas_app *app, const struct ctnas_tls *tls,
                     struct ctnas_http **out, struct ctnas_err *err)
{
    const struct ctnas_conf *conf = app->conf;
    struct ctnas_http *h = ctnas_calloc(1, sizeof *h);
    if (h != NULL) {
        pthread_mutex_init(&h->msgs.mu, NULL);
        if ((h->metrics = ctnas_http_metrics_new(N_ROUTES)) == NULL) {
            http_free(h);
            h = NULL;
        }
    }
    if (h == NULL)
        return ctnas_err_set(err, CTNAS_ENOMEM, "", "out of memory");
    h->app = app;
    ctnas_body_budget_init(&h->bodies, conf->max_buffered);
    h->max_connections = conf->max_connections;

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    /* poll(), not epoll: with epoll, libmicrohttpd 0.9.75 leaves a
     * connection whose client left mid-request in CLOSE-WAIT until
     * --timeout, holding a --max-connections slot. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, conf->listen, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)conf->port);
    } else if (inet_pton(AF_INET6, conf->listen, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)conf->port);
        flags |= MHD_USE_IPv6;
    } else {
        http_free(h);
        return ctnas_err_set(err, CTNAS_EINVAL, "--listen",
                             "--listen: '%s' is not an IPv4 or IPv6 address",
                             conf->listen);
    }

    struct MHD_OptionItem tls_opts[4];
    int rc = tls_options(tls, tls_opts, &flags, err);
    if (rc < 0) {
        http_free(h);
        return rc;
    }

    /* One worker is kept from POSTs, for polls, when there are two. */
    int heavy_max = conf->threads > 1 ? conf->threads - 1 : 1;
    rc = ctnas_workq_new(conf->threads, heavy_max, run_request, h,
                         &h->workers);
    if (rc < 0) {
        http_free(h);
        return ctnas_err_set(err, rc, "--threads",
                             "cannot start %d worker threads",
                             conf->threads);
    }

    /* --max-connections is counted by on_connection; MHD's limit only
     * bounds the sockets open at once, leaving room for
     * CTNAS_HTTP_OVER_LIMIT_SLOTS connections over the limit to be told
     * 503.  Beyond that, new connections wait in the listen queue. */
    unsigned sockets =
        (unsigned)conf->max_connections + CTNAS_HTTP_OVER_LIMIT_SLOTS;
    app->http = h; /* before the first request */
    h->mhd = MHD_start_daemon(
        flags, (uint16_t)conf->port, NULL, NULL, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, &h->msgs,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)conf->timeout,
        MHD_OPTION_CONNECTION_LIMIT, sockets,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        /* No MHD_OPTION_LISTENING_ADDRESS_REUSE: 1 would set
         * SO_REUSEPORT, and a second daemon started on the same port by
         * mistake would then share its connections, silently.  MHD's
         * default, SO_REUSEADDR, already lets a restart bind at once
         * over the last run's TIME_WAIT sockets. */
        MHD_OPTION_ARRAY, tls_opts,
        MHD_OPTION_END);
    if (h->mhd == NULL) {
        app->http = NULL;
        ctnas_workq_free(h->workers);
        /* MHD names a bad key or certificate only in its log
         * (ctnas_http_tls_check has told it before, as a rule). */
        if (tls != NULL && h->msgs.first_tls[0] != '\0')
            rc = ctnas_err_set(err, CTNAS_EINVAL, "--tls-key",
                               "cannot serve HTTPS: %s", h->msgs.first_tls);
        else
            rc = ctnas_err_set(err, CTNAS_EIO, "--port",
                               "cannot listen on %s port %d (in use, or "
                               "not permitted)", conf->listen, conf->port);
        http_free(h);
        return rc;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : conf->port;
    *out = h;
    return 0;
}

int ctnas_http_port(const struct ctnas_http *h)
{
    return h->port;
}

void ctnas_http_load(struct ctnas_http *h, struct ctnas_http_load *out)
{
    out->workers = h->app->conf->threads;
    ctnas_workq_load(h->workers, &out->busy, &out->queued);
    out->buffered = ctnas_body_budget_used(&h->bodies);
}

/* The labels of route i (N_ROUTES: requests no route matched). */
static void route_label(size_t i, const char **method, const char **path)
{
    *method = i < N_ROUTES ? routes[i].method : "";
    *path = i < N_ROUTES ? routes[i].path : "";
}

int ctnas_http_write_metrics(struct ctnas_http *h, FILE *f)
{
    struct ctnas_http_load load;
    ctnas_http_load(h, &load);
    fprintf(f,
            "# HELP ctnasd_http_connections Open connections "
            "(--max-connections).\n"
            "# TYPE ctnasd_http_connections gauge\n"
            "ctnasd_http_connections %d\n"
            "# HELP ctnasd_http_workers Threads that run requests "
            "(--threads).\n"
            "# TYPE ctnasd_http_workers gauge\n"
            "ctnasd_http_workers %d\n"
            "# HELP ctnasd_http_workers_busy Workers running a request.\n"
            "# TYPE ctnasd_http_workers_busy gauge\n"
            "ctnasd_http_workers_busy %d\n"
            "# HELP ctnasd_http_requests_queued Requests waiting for a "
            "worker.\n"
            "# TYPE ctnasd_http_requests_queued gauge\n"
            "ctnasd_http_requests_queued %d\n"
            "# HELP ctnasd_http_buffered_bytes Request body bytes held in "
            "memory.\n"
            "# TYPE ctnasd_http_buffered_bytes gauge\n"
            "ctnasd_http_buffered_bytes %zu\n"
            "# HELP ctnasd_http_buffered_limit_bytes --max-buffered.\n"
            "# TYPE ctnasd_http_buffered_limit_bytes gauge\n"
            "ctnasd_http_buffered_limit_bytes %zu\n",
            atomic_load(&h->admitted), load.workers, load.busy, load.queued,
            load.buffered, h->app->conf->max_buffered);
    return ctnas_http_metrics_write(h->metrics, f, route_label);
}

/* Wait up to ms for no request in flight. */
static void wait_idle(struct ctnas_http *h, int ms)
{
    for (int waited = 0; waited < ms; waited += 10) {
        if (atomic_load(&h->in_flight) == 0)
            break;
        usleep(10000);
    }
}

int ctnas_http_stop(struct ctnas_http *h, int grace_ms)
{
    if (h == NULL)
        return 0;
    /* Stop accepting first, so no new request starts while we wait. */
    MHD_socket fd = MHD_quiesce_daemon(h->mhd);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    wait_idle(h, grace_ms);
    int left = atomic_load(&h->in_flight);
    /* Requests still queued are told 503 and running handlers finish:
     * MHD must not stop with a connection suspended.  Open connections
     * may still complete a request until MHD stops; the stopped queue
     * refuses it, and it is told 503 too.  The answers get a moment to
     * leave. */
    ctnas_workq_stop(h->workers, drop_request);
    wait_idle(h, 1000);
    MHD_stop_daemon(h->mhd);
    h->app->http = NULL;
    ctnas_workq_free(h->workers);
    http_free(h);
    return left;
}
