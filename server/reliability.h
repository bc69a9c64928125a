/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reliability.h - the running peer/expert reliability estimate that decides
 * whether peers may review a low-stakes credential.
 *
 * After a score completes a peer/expert pair, the server fetches the
 * credential's recent pairs (reliability_pairs), computes the quadratic-
 * weighted kappa with its 95% interval in C (rubric/irr.h), and hands the
 * numbers back to routing_update, which pauses or resumes peer review and
 * adapts the second-score share. It runs detached from any request: the
 * assessor's answer does not wait for it.
 */
#ifndef ACCORD_RELIABILITY_H
#define ACCORD_RELIABILITY_H

#include "worker.h"

/* Starts a recompute for the credential (a UUID string); failures are logged. */
void reliability_recompute(struct worker *w, const char *credential_id);

/*
 * The computation itself, no I/O: pairs_json is reliability_pairs' answer.
 * Fills the number of pairs and kappa with its interval; *defined is 0 when
 * kappa is undefined (no variation, too few pairs), with the reason in why.
 * Returns 0, or -1 when pairs_json is malformed.
 */
int reliability_estimate(const char *pairs_json, int *pairs, int *defined, double *kappa,
                         double *lo, double *hi, char *why, size_t why_len);

/*
 * Several servers (issue 13): every few seconds, recompute the credentials
 * whose estimate has not seen all their pairs (a server died before its
 * recompute). One per server, on one loop. NULL when out of memory.
 */
struct reliability_sweep;
struct reliability_sweep *reliability_sweep_start(struct worker *w);

/* Stops the timer; a query under way frees the sweep when it completes. */
void reliability_sweep_free(struct reliability_sweep *s);

#endif
