/* SPDX-License-Identifier: Apache-2.0 */
/*
 * report_cache.h - agreement reports kept until new scores arrive.
 *
 * One cache per process, shared by the workers (a mutex; a lookup is a few
 * string compares). An entry is a query (the request's query object as
 * text), the stamp the database gave for the data it was computed from
 * (api_report_agreement_data: credential, pool, since and the newest score)
 * and the answer. The database decides whether an entry still holds: the
 * handler passes the stamp and is told "unchanged". At most
 * REPORT_CACHE_ENTRIES entries of at most REPORT_CACHE_MAX_ANSWER bytes;
 * the least recently used goes first.
 */
#ifndef ACCORD_REPORT_CACHE_H
#define ACCORD_REPORT_CACHE_H

#define REPORT_CACHE_ENTRIES    64
#define REPORT_CACHE_MAX_ANSWER (512 * 1024)

/* Copies of the entry's stamp and answer (caller frees), or NULLs. */
void report_cache_get(const char *query, char **stamp, char **answer);

/* Keeps (or replaces) the entry; silently keeps nothing when out of memory
 * or when the answer is larger than REPORT_CACHE_MAX_ANSWER. */
void report_cache_put(const char *query, const char *stamp, const char *answer);

/* Forgets every entry (shutdown). */
void report_cache_clear(void);

#endif
