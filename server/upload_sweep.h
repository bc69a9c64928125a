/* SPDX-License-Identifier: Apache-2.0 */
/*
 * upload_sweep.h - tus expiration: unfinished uploads untouched for
 * --upload-expiry seconds are deleted (upload_sweep() in SQL) and their part
 * files removed, every quarter of the expiry (1 s to 5 min). One loop per
 * process runs it; several processes may, since each row goes only once.
 */
#ifndef ACCORD_UPLOAD_SWEEP_H
#define ACCORD_UPLOAD_SWEEP_H

#include "worker.h"

struct upload_sweep;

/* Starts sweeping from w's loop (its pool, the offload threads). NULL when out of memory. */
struct upload_sweep *upload_sweep_start(struct worker *w);

/* Stops the timer; a sweep under way finishes by itself. */
void upload_sweep_free(struct upload_sweep *s);

#endif
