/* SPDX-License-Identifier: Apache-2.0 */
/*
 * storage_sweep.h - expiry of abandoned multipart uploads (ACCORD_STORAGE=s3):
 * those untouched for --upload-expiry seconds are deleted
 * (object_upload_sweep() in SQL: audited, their bytes no longer count against
 * the quotas) and aborted in the store, which drops their parts. The same
 * rhythm as tus expiration (upload_sweep.h); one loop per process runs it,
 * several processes may.
 */
#ifndef ACCORD_STORAGE_SWEEP_H
#define ACCORD_STORAGE_SWEEP_H

#include "worker.h"

struct storage_sweep;

/* Starts sweeping from w's loop. NULL when out of memory. */
struct storage_sweep *storage_sweep_start(struct worker *w);

/* Stops the timer; a sweep under way finishes by itself. */
void storage_sweep_free(struct storage_sweep *s);

#endif
