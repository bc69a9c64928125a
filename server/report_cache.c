/* SPDX-License-Identifier: Apache-2.0 */
/*
 * report_cache.c - see report_cache.h.
 */
#include "report_cache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char *query, *stamp, *answer; /* all NULL: free slot */
    uint64_t used;                /* last use, for eviction */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry entries[REPORT_CACHE_ENTRIES];
static uint64_t clock_ticks;

static void entry_clear(struct entry *e)
{
    free(e->query);
    free(e->stamp);
    free(e->answer);
    memset(e, 0, sizeof *e);
}

void report_cache_get(const char *query, char **stamp, char **answer)
{
    *stamp = *answer = NULL;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < REPORT_CACHE_ENTRIES; i++) {
        struct entry *e = &entries[i];
        if (e->query && strcmp(e->query, query) == 0) {
            *stamp = strdup(e->stamp);
            *answer = strdup(e->answer);
            if (!*stamp || !*answer) {
                free(*stamp);
                free(*answer);
                *stamp = *answer = NULL;
            }
            e->used = ++clock_ticks;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

void report_cache_put(const char *query, const char *stamp, const char *answer)
{
    char *q, *s, *a;
    struct entry *slot = NULL;

    if (strlen(answer) > REPORT_CACHE_MAX_ANSWER)
        return;
    q = strdup(query);
    s = strdup(stamp);
    a = strdup(answer);
    if (!q || !s || !a) {
        free(q);
        free(s);
        free(a);
        return;
    }
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < REPORT_CACHE_ENTRIES && !slot; i++)
        if (entries[i].query && strcmp(entries[i].query, query) == 0)
            slot = &entries[i];
    for (size_t i = 0; i < REPORT_CACHE_ENTRIES && !slot; i++)
        if (!entries[i].query)
            slot = &entries[i];
    if (!slot) {
        slot = &entries[0];
        for (size_t i = 1; i < REPORT_CACHE_ENTRIES; i++)
            if (entries[i].used < slot->used)
                slot = &entries[i];
    }
    entry_clear(slot);
    slot->query = q;
    slot->stamp = s;
    slot->answer = a;
    slot->used = ++clock_ticks;
    pthread_mutex_unlock(&lock);
}

void report_cache_clear(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < REPORT_CACHE_ENTRIES; i++)
        entry_clear(&entries[i]);
    pthread_mutex_unlock(&lock);
}
