/* metrics.h: request counters and latency histograms per route, kept with relaxed atomics so
 * the hot path takes no lock; rendered in Prometheus text format. */
#ifndef SAED_METRICS_H
#define SAED_METRICS_H

#include <stdio.h>

#define METRICS_MAX_ROUTES 128

/* route: index into http_routes, or -1 for requests that matched no route. */
void metrics_observe(int route, int status, double seconds);
void metrics_render_http(FILE *f);

#endif
