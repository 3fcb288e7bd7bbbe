/* metrics.c: see metrics.h. */
#include "server/metrics.h"

#include <stdatomic.h>

#include "server/http.h"

static const int status_codes[] = {200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503};
#define N_STATUS (int)(sizeof status_codes / sizeof status_codes[0])
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_BUCKETS (int)(sizeof buckets / sizeof buckets[0])

/* Slot METRICS_MAX_ROUTES holds unmatched requests; status slot N_STATUS holds "other". */
static atomic_ullong counts[METRICS_MAX_ROUTES + 1][N_STATUS + 1];
static atomic_ullong hist[METRICS_MAX_ROUTES + 1][N_BUCKETS + 1];
static atomic_ullong sum_us[METRICS_MAX_ROUTES + 1];

void metrics_observe(int route, int status, double seconds)
{
    int ri = (route < 0 || route >= METRICS_MAX_ROUTES) ? METRICS_MAX_ROUTES : route;
    int si = N_STATUS;
    for (int i = 0; i < N_STATUS; i++)
        if (status_codes[i] == status) si = i;
    atomic_fetch_add_explicit(&counts[ri][si], 1, memory_order_relaxed);
    int b = 0;
    while (b < N_BUCKETS && seconds > buckets[b]) b++;
    atomic_fetch_add_explicit(&hist[ri][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sum_us[ri], (unsigned long long)(seconds * 1e6), memory_order_relaxed);
}

static void route_label(int ri, char *buf, size_t n)
{
    if (ri == METRICS_MAX_ROUTES) snprintf(buf, n, "unmatched");
    else snprintf(buf, n, "%s %s", http_routes[ri].method, http_routes[ri].pattern);
}

void metrics_render_http(FILE *f)
{
    char label[256];
    fprintf(f, "# HELP saed_http_requests_total HTTP requests answered, by route and status.\n"
               "# TYPE saed_http_requests_total counter\n");
    for (int ri = 0; ri <= METRICS_MAX_ROUTES; ri++) {
        if (ri < METRICS_MAX_ROUTES && ri >= http_n_routes) continue;
        route_label(ri, label, sizeof label);
        for (int si = 0; si <= N_STATUS; si++) {
            unsigned long long c = atomic_load_explicit(&counts[ri][si], memory_order_relaxed);
            if (!c) continue;
            if (si == N_STATUS) fprintf(f, "saed_http_requests_total{route=\"%s\",status=\"other\"} %llu\n", label, c);
            else fprintf(f, "saed_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", label, status_codes[si], c);
        }
    }
    fprintf(f, "# HELP saed_http_request_duration_seconds Time from request headers to response completion.\n"
               "# TYPE saed_http_request_duration_seconds histogram\n");
    for (int ri = 0; ri <= METRICS_MAX_ROUTES; ri++) {
        if (ri < METRICS_MAX_ROUTES && ri >= http_n_routes) continue;
        unsigned long long total = 0;
        for (int b = 0; b <= N_BUCKETS; b++) total += atomic_load_explicit(&hist[ri][b], memory_order_relaxed);
        if (!total) continue;
        route_label(ri, label, sizeof label);
        unsigned long long cum = 0;
        for (int b = 0; b < N_BUCKETS; b++) {
            cum += atomic_load_explicit(&hist[ri][b], memory_order_relaxed);
            fprintf(f, "saed_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", label, buckets[b], cum);
        }
        fprintf(f, "saed_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", label, total);
        fprintf(f, "saed_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", label,
                (double)atomic_load_explicit(&sum_us[ri], memory_order_relaxed) / 1e6);
        fprintf(f, "saed_http_request_duration_seconds_count{route=\"%s\"} %llu\n", label, total);
    }
}
