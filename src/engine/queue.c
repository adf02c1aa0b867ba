/*
 * The FIFO of queue.h: a ring buffer that grows by doubling up to its
 * bound, so an unbounded job queue costs nothing until it is used and a
 * bounded one never allocates more than it may hold. Two condition
 * variables separate the waits: producers wait for room, consumers for
 * items; close broadcasts both.
 */
#include "config.h"

#include "engine/queue.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "util/alloc.h"

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    void **items;
    size_t head, len, cap, max;
    size_t waiters; /* threads in queue_pop's wait */
    bool closed;
};

struct queue *queue_new(size_t max)
{
    struct queue *q = xcalloc(1, sizeof *q);
    pthread_mutex_init(&q->lock, NULL);
    /* Timed pops measure on the monotonic clock, immune to clock steps. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->not_empty, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&q->not_full, NULL);
    q->max = max ? max : 1;
    return q;
}

void queue_free(struct queue *q, void (*item_free)(void *item))
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->len && item_free != NULL; i++)
        item_free(q->items[(q->head + i) % q->cap]);
    xfree(q->items);
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->lock);
    xfree(q);
}

/* Makes room for one more item; the caller holds the lock and has checked
 * len < max. */
static void queue_grow(struct queue *q)
{
    if (q->len < q->cap)
        return;
    size_t cap = q->cap ? q->cap * 2 : 16;
    if (cap < q->cap || cap > q->max)
        cap = q->max;
    void **items = xreallocarray(NULL, cap, sizeof *items);
    for (size_t i = 0; i < q->len; i++)
        items[i] = q->items[(q->head + i) % q->cap];
    xfree(q->items);
    q->items = items;
    q->head = 0;
    q->cap = cap;
}

static void queue_append_locked(struct queue *q, void *item)
{
    queue_grow(q);
    q->items[(q->head + q->len) % q->cap] = item;
    q->len++;
    pthread_cond_signal(&q->not_empty);
}

int queue_push(struct queue *q, void *item)
{
    pthread_mutex_lock(&q->lock);
    while (!q->closed && q->len >= q->max)
        pthread_cond_wait(&q->not_full, &q->lock);
    int rc = -1;
    if (!q->closed) {
        queue_append_locked(q, item);
        rc = 0;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int queue_try_push(struct queue *q, void *item)
{
    pthread_mutex_lock(&q->lock);
    int rc = -1;
    if (!q->closed && q->len < q->max) {
        queue_append_locked(q, item);
        rc = 0;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void *queue_pop(struct queue *q)
{
    return queue_pop_timed(q, -1, NULL);
}

void *queue_pop_timed(struct queue *q, long long ms, bool *timed_out)
{
    struct timespec until;
    if (ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(ms / 1000);
        until.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    if (timed_out != NULL)
        *timed_out = false;
    pthread_mutex_lock(&q->lock);
    while (!q->closed && q->len == 0) {
        q->waiters++;
        int rc = ms >= 0 ? pthread_cond_timedwait(&q->not_empty, &q->lock, &until)
                         : pthread_cond_wait(&q->not_empty, &q->lock);
        q->waiters--;
        if (rc == ETIMEDOUT && q->len == 0) {
            if (timed_out != NULL)
                *timed_out = true;
            break;
        }
    }
    void *item = NULL;
    if (q->len > 0) {
        item = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
        pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->lock);
    return item;
}

void queue_close(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
}

size_t queue_len(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->len;
    pthread_mutex_unlock(&q->lock);
    return n;
}

size_t queue_waiters(struct queue *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->waiters;
    pthread_mutex_unlock(&q->lock);
    return n;
}
