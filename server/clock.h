/* SPDX-License-Identifier: Apache-2.0 */
/*
 * clock.h - milliseconds on the monotonic clock, for timeouts, leases,
 * backoffs and ages (never for what a person reads: that is wall time).
 */
#ifndef ACCORD_CLOCK_H
#define ACCORD_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The same, a few ms stale but cheaper: for what is stamped on every read of a socket. */
static inline int64_t clock_coarse_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
