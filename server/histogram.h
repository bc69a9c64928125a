/* SPDX-License-Identifier: Apache-2.0 */
/*
 * histogram.h - a latency histogram any thread may update (C11 atomics), in
 * the Prometheus shape: cumulative buckets, a sum and a count.
 *
 * The bucket bounds are fixed for every histogram of the process (0.5 ms to
 * 10 s), so dashboards can aggregate them across routes and loops.
 */
#ifndef ACCORD_HISTOGRAM_H
#define ACCORD_HISTOGRAM_H

#include <stdatomic.h>

#include <event2/buffer.h>

#define HISTOGRAM_BUCKETS 14

struct histogram {
    atomic_long counts[HISTOGRAM_BUCKETS + 1]; /* per bucket (not cumulative); last: +Inf */
    atomic_long sum_us;                        /* microseconds */
};

void histogram_observe(struct histogram *h, double seconds);

/* Observations so far. */
long histogram_count(const struct histogram *h);

/*
 * Appends NAME_bucket{LABELS,le="..."}, NAME_sum{LABELS} and NAME_count{LABELS};
 * labels is "" or label pairs without braces (route="/x",method="GET").
 */
void histogram_render(struct evbuffer *out, const char *name, const char *labels,
                      const struct histogram *h);

#endif
