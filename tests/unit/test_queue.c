/*
 * Tests of engine/queue: the bounded blocking FIFO between the engine's
 * threads. Threads are synchronised with the queue itself and barriers;
 * nothing sleeps.
 */
#include "testutil.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>

#include "engine/queue.h"
#include "util/alloc.h"

#define ITEM(n)    ((void *)(uintptr_t)(n))
#define ITEM_ID(p) ((uintptr_t)(p))

/* Items come out in the order they went in, across the ring's growth. */
static void items_come_out_in_push_order(void **state)
{
    (void)state;
    struct queue *q = queue_new(SIZE_MAX);
    for (uintptr_t i = 1; i <= 100; i++)
        assert_int_equal(queue_push(q, ITEM(i)), 0);
    assert_int_equal(queue_len(q), 100);
    for (uintptr_t i = 1; i <= 50; i++)
        assert_int_equal(ITEM_ID(queue_pop(q)), i);
    /* Wrap around: pushes after pops reuse the ring's front. */
    for (uintptr_t i = 101; i <= 180; i++)
        assert_int_equal(queue_push(q, ITEM(i)), 0);
    for (uintptr_t i = 51; i <= 180; i++)
        assert_int_equal(ITEM_ID(queue_pop(q)), i);
    assert_int_equal(queue_len(q), 0);
    queue_free(q, NULL);
}

/* try_push refuses once the bound is reached and accepts again after a pop. */
static void try_push_fails_when_the_queue_is_full(void **state)
{
    (void)state;
    struct queue *q = queue_new(3);
    assert_int_equal(queue_try_push(q, ITEM(1)), 0);
    assert_int_equal(queue_try_push(q, ITEM(2)), 0);
    assert_int_equal(queue_try_push(q, ITEM(3)), 0);
    assert_int_equal(queue_try_push(q, ITEM(4)), -1);
    assert_int_equal(queue_len(q), 3);
    assert_int_equal(ITEM_ID(queue_pop(q)), 1);
    assert_int_equal(queue_try_push(q, ITEM(4)), 0);
    assert_int_equal(queue_try_push(q, ITEM(5)), -1);
    for (uintptr_t i = 2; i <= 4; i++)
        assert_int_equal(ITEM_ID(queue_pop(q)), i);
    queue_free(q, NULL);
}

/* After close, pushes are refused, what was queued still comes out, and
 * then pop returns NULL instead of waiting. */
static void close_refuses_pushes_and_drains_then_returns_null(void **state)
{
    (void)state;
    struct queue *q = queue_new(8);
    assert_int_equal(queue_push(q, ITEM(1)), 0);
    queue_close(q);
    queue_close(q); /* idempotent */
    assert_int_equal(queue_push(q, ITEM(2)), -1);
    assert_int_equal(queue_try_push(q, ITEM(2)), -1);
    assert_int_equal(ITEM_ID(queue_pop(q)), 1);
    assert_null(queue_pop(q));
    assert_null(queue_pop(q));
    queue_free(q, NULL);
}

struct popper {
    struct queue *q;
    pthread_barrier_t *ready;
    void *got;
};

static void *popper_main(void *arg)
{
    struct popper *p = arg;
    pthread_barrier_wait(p->ready);
    p->got = queue_pop(p->q);
    return NULL;
}

/* A thread blocked in pop on an empty queue is released by close and gets
 * NULL. The main thread closes only once the popper is seen waiting. */
static void close_wakes_a_thread_blocked_in_pop(void **state)
{
    (void)state;
    struct queue *q = queue_new(4);
    pthread_barrier_t ready;
    pthread_barrier_init(&ready, NULL, 2);
    struct popper p = {.q = q, .ready = &ready, .got = ITEM(99)};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, popper_main, &p), 0);
    pthread_barrier_wait(&ready);
    /* The popper is now on its way into pop; wait until it is inside the
     * condition wait (yielding, not sleeping), so close must wake it. */
    while (queue_waiters(q) == 0)
        sched_yield();
    queue_close(q);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_null(p.got);
    pthread_barrier_destroy(&ready);
    queue_free(q, NULL);
}

/* A thread blocked in pop gets the item pushed after it started waiting. */
static void push_wakes_a_thread_blocked_in_pop(void **state)
{
    (void)state;
    struct queue *q = queue_new(4);
    pthread_barrier_t ready;
    pthread_barrier_init(&ready, NULL, 2);
    struct popper p = {.q = q, .ready = &ready};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, popper_main, &p), 0);
    pthread_barrier_wait(&ready);
    while (queue_waiters(q) == 0)
        sched_yield();
    assert_int_equal(queue_push(q, ITEM(7)), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(ITEM_ID(p.got), 7);
    pthread_barrier_destroy(&ready);
    queue_free(q, NULL);
}

#define PER_PRODUCER 20000

struct producer {
    struct queue *q;
    uintptr_t base; /* items are base+1 .. base+PER_PRODUCER */
};

static void *producer_main(void *arg)
{
    struct producer *p = arg;
    for (uintptr_t i = 1; i <= PER_PRODUCER; i++)
        if (queue_push(p->q, ITEM(p->base + i)) != 0)
            return ITEM(1);
    return NULL;
}

/* Two producers pushing into a small queue (so pushes block on a full
 * queue) and one consumer: every item arrives exactly once, and each
 * producer's items arrive in the order it pushed them. */
static void two_producers_one_consumer_deliver_every_item_once(void **state)
{
    (void)state;
    struct queue *q = queue_new(8);
    struct producer a = {.q = q, .base = 0};
    struct producer b = {.q = q, .base = PER_PRODUCER};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, producer_main, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, producer_main, &b), 0);
    unsigned char *seen = xcalloc(2 * PER_PRODUCER + 1, 1);
    assert_non_null(seen);
    uintptr_t last_a = 0, last_b = PER_PRODUCER;
    for (size_t n = 0; n < 2 * PER_PRODUCER; n++) {
        uintptr_t id = ITEM_ID(queue_pop(q));
        assert_true(id >= 1 && id <= 2 * PER_PRODUCER);
        assert_int_equal(seen[id], 0);
        seen[id] = 1;
        if (id <= PER_PRODUCER) {
            assert_true(id > last_a);
            last_a = id;
        } else {
            assert_true(id > last_b);
            last_b = id;
        }
    }
    void *ra, *rb;
    assert_int_equal(pthread_join(ta, &ra), 0);
    assert_int_equal(pthread_join(tb, &rb), 0);
    assert_null(ra);
    assert_null(rb);
    assert_int_equal(queue_len(q), 0);
    xfree(seen);
    queue_free(q, NULL);
}

static int freed_items;

static void count_and_free(void *item)
{
    freed_items++;
    xfree(item);
}

/* queue_free hands every item still queued to the destructor (valgrind
 * would report the rest as leaks). */
static void free_passes_leftover_items_to_the_destructor(void **state)
{
    (void)state;
    struct queue *q = queue_new(SIZE_MAX);
    for (int i = 0; i < 5; i++)
        assert_int_equal(queue_push(q, xstrdup("item")), 0);
    xfree(queue_pop(q));
    freed_items = 0;
    queue_free(q, count_and_free);
    assert_int_equal(freed_items, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(items_come_out_in_push_order),
        cmocka_unit_test(try_push_fails_when_the_queue_is_full),
        cmocka_unit_test(close_refuses_pushes_and_drains_then_returns_null),
        cmocka_unit_test(close_wakes_a_thread_blocked_in_pop),
        cmocka_unit_test(push_wakes_a_thread_blocked_in_pop),
        cmocka_unit_test(two_producers_one_consumer_deliver_every_item_once),
        cmocka_unit_test(free_passes_leftover_items_to_the_destructor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
