/* SPDX-License-Identifier: Apache-2.0 */
/* histogram.c - see histogram.h. */
#include "histogram.h"

static const double bounds[HISTOGRAM_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
static const char *const bound_text[HISTOGRAM_BUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",  "0.5",    "1",     "2.5",  "5",     "10"};

void histogram_observe(struct histogram *h, double seconds)
{
    int i = 0;
    if (seconds < 0)
        seconds = 0;
    while (i < HISTOGRAM_BUCKETS && seconds > bounds[i])
        i++;
    atomic_fetch_add(&h->counts[i], 1);
    atomic_fetch_add(&h->sum_us, (long)(seconds * 1e6 + 0.5));
}

long histogram_count(const struct histogram *h)
{
    long n = 0;
    for (int i = 0; i <= HISTOGRAM_BUCKETS; i++)
        n += atomic_load(&h->counts[i]);
    return n;
}

void histogram_render(struct evbuffer *out, const char *name, const char *labels,
                      const struct histogram *h)
{
    const char *sep = labels[0] ? "," : "";
    long cumulative = 0;

    for (int i = 0; i <= HISTOGRAM_BUCKETS; i++) {
        cumulative += atomic_load(&h->counts[i]);
        evbuffer_add_printf(out, "%s_bucket{%s%sle=\"%s\"} %ld\n", name, labels, sep,
                            i < HISTOGRAM_BUCKETS ? bound_text[i] : "+Inf", cumulative);
    }
    if (labels[0])
        evbuffer_add_printf(out, "%s_sum{%s} %.6f\n%s_count{%s} %ld\n", name, labels,
                            (double)atomic_load(&h->sum_us) / 1e6, name, labels, cumulative);
    else
        evbuffer_add_printf(out, "%s_sum %.6f\n%s_count %ld\n", name,
                            (double)atomic_load(&h->sum_us) / 1e6, name, cumulative);
}
