/* SPDX-License-Identifier: Apache-2.0 */
/*
 * offload.c - a mutex + condition variable job queue served by a fixed set of
 * threads. Completion goes back to the submitting loop with event_base_once(),
 * which is safe across threads once evthread_use_pthreads() has run.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "log.h"
#include "offload.h"

struct job {
    struct event_base *base;
    void (*work)(void *);
    void (*done)(void *);
    void *arg;
    struct job *next;
};

struct offload {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct job *head, *tail;
    bool stopping;
    int n_threads;
    pthread_t *threads;
};

static void job_done(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    (void)fd;
    (void)what;
    j->done(j->arg);
    free(j);
}

static void *offload_main(void *arg)
{
    struct offload *o = arg;
    static const struct timeval now = {0, 0};

    for (;;) {
        struct job *j;
        pthread_mutex_lock(&o->lock);
        while (!o->head && !o->stopping)
            pthread_cond_wait(&o->wake, &o->lock);
        j = o->head;
        if (j) {
            o->head = j->next;
            if (!o->head)
                o->tail = NULL;
        }
        pthread_mutex_unlock(&o->lock);
        if (!j)
            return NULL; /* stopping and the queue is empty */
        j->work(j->arg);
        if (event_base_once(j->base, -1, EV_TIMEOUT, job_done, j, &now) < 0) {
            log_error("offload: cannot post a completion to its loop");
            j->done(j->arg); /* last resort: better on the wrong thread than never */
            free(j);
        }
    }
}

struct offload *offload_new(int threads)
{
    struct offload *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->wake, NULL);
    o->threads = calloc((size_t)threads, sizeof *o->threads);
    if (!o->threads) {
        free(o);
        return NULL;
    }
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&o->threads[i], NULL, offload_main, o) != 0)
            break;
        o->n_threads++;
    }
    if (o->n_threads == 0) {
        offload_free(o);
        return NULL;
    }
    return o;
}

int offload_submit(struct offload *o, struct event_base *base, void (*work)(void *),
                   void (*done)(void *), void *arg)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    *j = (struct job){base, work, done, arg, NULL};
    pthread_mutex_lock(&o->lock);
    if (o->stopping) {
        pthread_mutex_unlock(&o->lock);
        free(j);
        return -1;
    }
    if (o->tail)
        o->tail->next = j;
    else
        o->head = j;
    o->tail = j;
    pthread_cond_signal(&o->wake);
    pthread_mutex_unlock(&o->lock);
    return 0;
}

void offload_free(struct offload *o)
{
    if (!o)
        return;
    pthread_mutex_lock(&o->lock);
    o->stopping = true;
    pthread_cond_broadcast(&o->wake);
    pthread_mutex_unlock(&o->lock);
    for (int i = 0; i < o->n_threads; i++)
        pthread_join(o->threads[i], NULL);
    pthread_cond_destroy(&o->wake);
    pthread_mutex_destroy(&o->lock);
    free(o->threads);
    free(o);
}
