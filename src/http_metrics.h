/*
 * http_metrics.h - the request metrics of the HTTP layer: per route,
 * answers by status and a histogram of their latency, counted by the
 * I/O thread and printed by a scrape (any thread) in Prometheus' text
 * format.  Owns only its counters; routes are indices the caller gives
 * and names through a label callback.
 */
#ifndef CTNAS_HTTP_METRICS_H
#define CTNAS_HTTP_METRICS_H

#include <stddef.h>
#include <stdio.h>

struct ctnas_http_metrics;

/* Counters for n_routes routes and one more slot (index n_routes) for
 * requests no route matched.  NULL when out of memory. */
struct ctnas_http_metrics *ctnas_http_metrics_new(size_t n_routes);
/* Accepts NULL. */
void ctnas_http_metrics_free(struct ctnas_http_metrics *m);

/* Count one answer of route with status, seconds after its headers. */
void ctnas_http_metrics_observe(struct ctnas_http_metrics *m, size_t route,
                                unsigned status, double seconds);

/* The method and path template of route i (i == n_routes: both ""). */
typedef void (*ctnas_http_route_label)(size_t i, const char **method,
                                       const char **path);

/* Print ctnasd_http_requests_total and
 * ctnasd_http_request_duration_seconds to f; a route not asked yet has
 * no series.  0, or CTNAS_ENOMEM when f failed. */
int ctnas_http_metrics_write(const struct ctnas_http_metrics *m, FILE *f,
                             ctnas_http_route_label label);

#endif
