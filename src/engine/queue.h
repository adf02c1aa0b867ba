/*
 * A bounded blocking FIFO of pointers between threads (mutex and condition
 * variables): the engine's job queue and the background worker's store
 * queue. Closing wakes every waiter; consumers then drain what is left and
 * see NULL, so a worker's loop ends by itself at shutdown.
 */
#ifndef MEMCHAT_ENGINE_QUEUE_H
#define MEMCHAT_ENGINE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

struct queue;

/* An empty open queue holding at most max items (max >= 1; SIZE_MAX for a
 * queue bounded only by memory). Never NULL. Free with queue_free(). */
struct queue *queue_new(size_t max);
/* Frees q, passing every item still queued to item_free (NULL: items are
 * not owned). No thread may be using q. NULL is a no-op. */
void queue_free(struct queue *q, void (*item_free)(void *item));

/* Appends item (not NULL), waiting while the queue is full. 0, or -1 when
 * the queue is (or gets) closed: the caller keeps the item. */
int queue_push(struct queue *q, void *item);
/* Appends item without waiting. 0, or -1 when full or closed: the caller
 * keeps the item. */
int queue_try_push(struct queue *q, void *item);
/* The oldest item, waiting while the queue is empty and open; NULL once it
 * is closed and empty. The caller owns the item. */
void *queue_pop(struct queue *q);
/* queue_pop() that waits at most ms (negative: forever); NULL with
 * *timed_out set (when not NULL) when nothing came in time. */
void *queue_pop_timed(struct queue *q, long long ms, bool *timed_out);
/* Refuses further pushes and wakes every waiting thread. Idempotent. */
void queue_close(struct queue *q);
/* Items queued now (a snapshot). */
size_t queue_len(struct queue *q);
/* Threads waiting in queue_pop() now (a snapshot; tests and diagnostics). */
size_t queue_waiters(struct queue *q);

#endif
