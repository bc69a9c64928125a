/* SPDX-License-Identifier: Apache-2.0 */
/*
 * upload_sweep.h - expiry of abandoned uploads, of both kinds, every quarter
 * of --upload-expiry (1 s to 5 min):
 *
 *   tus uploads        upload_sweep() in SQL deletes the rows untouched for
 *                      --upload-expiry seconds; their part files go from the
 *                      data directory (disk threads), and under S3 their
 *                      chunks from the store (network threads)
 *   multipart uploads  object_upload_sweep() deletes them (audited; their
 *                      bytes no longer count against the quotas); the store
 *                      is told to abort them, which drops their parts
 *                      (network threads; ACCORD_STORAGE=s3 only)
 *
 * The two run one after the other from the same timer. Under S3 a server's
 * tus part files are only a cache of chunks kept in the store: those
 * untouched for --upload-expiry (an upload that went on through another
 * server) are removed too. One loop per process
 * runs it; several processes may, since each row goes only once (SKIP LOCKED).
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
