/* SPDX-License-Identifier: Apache-2.0 */
/* outbox_backoff.c - retry back-off with equal jitter (see outbox.h). */
#include "outbox.h"

/* splitmix64 (Steele, Lea, Flood 2014): small, seedable, good enough for jitter. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double outbox_backoff(uint64_t *state, long attempt, long base_ms, long max_seconds)
{
    double d = (double)base_ms / 1000.0;
    double u = (double)(splitmix64(state) >> 11) / (double)(1ULL << 53); /* [0, 1) */
    for (long i = 1; i < attempt && d < (double)max_seconds; i++)
        d *= 2;
    if (d > (double)max_seconds)
        d = (double)max_seconds;
    return d / 2 + u * d / 2;
}
