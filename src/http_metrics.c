/*
 * http_metrics.c - per-route request counters and latency histograms
 * (see http_metrics.h).  Relaxed atomics: one writer (the I/O thread),
 * and a scrape needs no snapshot across counters.
 */
#include "config.h"
#include "http_metrics.h"

#include <stdatomic.h>

#include "ctnas.h"
#include "mem.h"

#define N_BUCKETS 14 /* the last one is +Inf */
static const double bucket_le[N_BUCKETS - 1] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

struct route_stats {
    atomic_ullong by_status[500]; /* 100 .. 599 */
    atomic_ullong bucket[N_BUCKETS];
    atomic_ullong micros;         /* the seconds' sum, in microseconds */
};

struct ctnas_http_metrics {
    size_t n_routes;
    struct route_stats stats[]; /* n_routes + 1 */
};

struct ctnas_http_metrics *ctnas_http_metrics_new(size_t n_routes)
{
    struct ctnas_http_metrics *m = ctnas_calloc(
        1, sizeof *m + (n_routes + 1) * sizeof m->stats[0]);
    if (m != NULL)
        m->n_routes = n_routes;
    return m;
}

void ctnas_http_metrics_free(struct ctnas_http_metrics *m)
{
    ctnas_free(m);
}

void ctnas_http_metrics_observe(struct ctnas_http_metrics *m, size_t route,
                                unsigned status, double seconds)
{
    struct route_stats *rs = &m->stats[route <= m->n_routes ? route
                                                            : m->n_routes];
    int b = 0;
    while (b < N_BUCKETS - 1 && seconds > bucket_le[b])
        b++;
    if (status >= 100 && status <= 599)
        atomic_fetch_add_explicit(&rs->by_status[status - 100], 1,
                                  memory_order_relaxed);
    atomic_fetch_add_explicit(&rs->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(
        &rs->micros, (unsigned long long)(seconds > 0 ? seconds * 1e6 : 0),
        memory_order_relaxed);
}

static void labels(ctnas_http_route_label label, size_t i, char *buf,
                   size_t cap)
{
    const char *method = "", *path = "";
    label(i, &method, &path);
    snprintf(buf, cap, "method=\"%s\",route=\"%s\"", method, path);
}

int ctnas_http_metrics_write(const struct ctnas_http_metrics *m, FILE *f,
                             ctnas_http_route_label label)
{
    char lab[160];
    fputs("# HELP ctnasd_http_requests_total Requests answered, by route "
          "and status.\n"
          "# TYPE ctnasd_http_requests_total counter\n", f);
    for (size_t i = 0; i <= m->n_routes; i++) {
        labels(label, i, lab, sizeof lab);
        for (int c = 0; c < 500; c++) {
            unsigned long long n = atomic_load_explicit(
                &m->stats[i].by_status[c], memory_order_relaxed);
            if (n > 0)
                fprintf(f, "ctnasd_http_requests_total{%s,code=\"%d\"} "
                        "%llu\n", lab, c + 100, n);
        }
    }
    fputs("# HELP ctnasd_http_request_duration_seconds From a request's "
          "headers to its answer.\n"
          "# TYPE ctnasd_http_request_duration_seconds histogram\n", f);
    for (size_t i = 0; i <= m->n_routes; i++) {
        const struct route_stats *rs = &m->stats[i];
        unsigned long long n[N_BUCKETS], cum = 0, all = 0;
        for (int b = 0; b < N_BUCKETS; b++)
            all += n[b] = atomic_load_explicit(&rs->bucket[b],
                                               memory_order_relaxed);
        if (all == 0)
            continue;  /* a route not asked yet prints nothing */
        labels(label, i, lab, sizeof lab);
        for (int b = 0; b < N_BUCKETS - 1; b++) {
            cum += n[b];
            fprintf(f, "ctnasd_http_request_duration_seconds_bucket"
                    "{%s,le=\"%g\"} %llu\n", lab, bucket_le[b], cum);
        }
        cum += n[N_BUCKETS - 1];
        fprintf(f, "ctnasd_http_request_duration_seconds_bucket"
                "{%s,le=\"+Inf\"} %llu\n"
                "ctnasd_http_request_duration_seconds_sum{%s} %.6f\n"
                "ctnasd_http_request_duration_seconds_count{%s} %llu\n",
                lab, cum, lab,
                atomic_load_explicit(&rs->micros, memory_order_relaxed) /
                    1e6,
                lab, cum);
    }
    return ferror(f) ? CTNAS_ENOMEM : 0;
}
