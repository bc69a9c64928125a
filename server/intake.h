/* SPDX-License-Identifier: Apache-2.0 */
/*
 * intake.h - accepting connections when descriptors run out.
 *
 * libevent's listener retries accept() at once when it fails, so a process
 * out of descriptors (EMFILE) spins and logs every failure. The worker's
 * listener instead pauses for a growing back-off (10 ms to 1 s) and resumes
 * by itself; connections meanwhile wait in the kernel's backlog. The same
 * listener also pauses while the worker holds its share of connections
 * (conntrack.h) and resumes when one closes.
 */
#ifndef ACCORD_INTAKE_H
#define ACCORD_INTAKE_H

#include <stdbool.h>

#include "worker.h"

/* Installs the back-off on w->bound's listener. Returns 0 or -1. */
int intake_init(struct worker *w);

/* The worker holds as many connections as it may (full) or no longer does. */
void intake_set_full(struct worker *w, bool full);

/* The worker stops accepting (its listener is about to go): no more pauses or resumes. */
void intake_stop(struct worker *w);

/* Frees the timer (before the loop's base is freed). */
void intake_release(struct worker *w);

#endif
