/*
 * Tests of util/alloc: the x* and try_* allocators, the fault injection
 * seam the hardening sweeps rely on (exactly the n-th allocation fails, or
 * every one from it when sticky), the allocation counter, and the
 * out-of-memory policy (fatal hook first, then a message and SIGABRT),
 * checked in forked children, and cJSON's allocator with its fallible
 * sections.
 */
#include "testutil.h"

#include "util/alloc.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

/* The x* functions return usable memory: calloc zeroes, realloc keeps the
 * old bytes, strndup stops at n or at the NUL, size 0 is not NULL. */
static void x_functions_return_usable_memory(void **state)
{
    (void)state;
    char *p = xmalloc(16);
    memcpy(p, "0123456789abcde", 16);
    p = xrealloc(p, 4096);
    assert_string_equal(p, "0123456789abcde");
    xfree(p);

    int *z = xcalloc(100, sizeof *z);
    for (int i = 0; i < 100; i++)
        assert_int_equal(z[i], 0);
    z = xreallocarray(z, 200, sizeof *z);
    z[199] = 7;
    assert_int_equal(z[0], 0);
    xfree(z);

    void *zero = xmalloc(0);
    assert_non_null(zero);
    xfree(zero);
    zero = xcalloc(0, 8);
    assert_non_null(zero);
    xfree(zero);

    char *s = xstrdup("memory");
    assert_string_equal(s, "memory");
    xfree(s);
    s = xstrndup("memory", 3);
    assert_string_equal(s, "mem");
    xfree(s);
    s = xstrndup("ab", 100); /* n past the end: stops at the NUL */
    assert_string_equal(s, "ab");
    xfree(s);
    xfree(NULL);
}

/* xasprintf formats like printf into exactly-sized memory, also for long
 * results. */
static void xasprintf_formats(void **state)
{
    (void)state;
    char *s = xasprintf("%s-%d-%05.1f-%%-%c", "turn", -7, 2.5, 'z');
    assert_string_equal(s, "turn--7-002.5-%-z");
    xfree(s);
    char big[5000];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    s = xasprintf("<%s>", big);
    assert_int_equal(strlen(s), sizeof big + 1);
    assert_int_equal(s[0], '<');
    assert_int_equal(s[sizeof big], '>');
    xfree(s);
}

/* alloc_fail_after(n, 0) makes exactly the n-th allocation from now fail,
 * whichever try_* function makes it, and the ones after it succeed. */
static void fail_after_n_fails_exactly_the_nth_allocation(void **state)
{
    (void)state;
    for (unsigned long n = 1; n <= 5; n++) {
        void *keep[8] = {0};
        alloc_fail_after(n, 0);
        for (unsigned long i = 1; i <= 8; i++) {
            void *p;
            switch (i % 3) {
            case 0:
                p = try_malloc(8);
                break;
            case 1:
                p = try_calloc(2, 8);
                break;
            default:
                p = try_realloc(NULL, 8);
                break;
            }
            if (i == n)
                assert_null(p);
            else
                assert_non_null(p);
            keep[i - 1] = p;
        }
        alloc_fail_after(0, 0);
        for (int i = 0; i < 8; i++)
            xfree(keep[i]);
    }
}

/* Sticky mode fails the n-th allocation and every later one, until
 * alloc_fail_after(0, ...) disarms it. */
static void sticky_fails_every_later_allocation(void **state)
{
    (void)state;
    alloc_fail_after(3, 1);
    void *a = try_malloc(1);
    void *b = try_malloc(1);
    assert_non_null(a);
    assert_non_null(b);
    for (int i = 0; i < 50; i++)
        assert_null(try_malloc(1));
    assert_null(try_calloc(1, 1));
    alloc_fail_after(0, 1);
    void *c = try_malloc(1);
    assert_non_null(c);
    xfree(a);
    xfree(b);
    xfree(c);
}

/* A failed try_realloc leaves the old block valid and unchanged (the
 * caller still owns it), as realloc does. */
static void failed_realloc_keeps_the_old_block(void **state)
{
    (void)state;
    char *p = xstrdup("still here");
    alloc_fail_after(1, 0);
    char *q = try_realloc(p, 1 << 20);
    alloc_fail_after(0, 0);
    assert_null(q);
    assert_string_equal(p, "still here");
    xfree(p);
}

/* alloc_count counts each allocation through the layer, failed ones
 * included (a sweep needs the count to plan its next injection). */
static void alloc_count_counts_each_allocation(void **state)
{
    (void)state;
    unsigned long before = alloc_count();
    void *a = try_malloc(4);
    assert_int_equal(alloc_count(), before + 1);
    void *b = xcalloc(1, 4);
    a = xrealloc(a, 64);
    assert_int_equal(alloc_count(), before + 3);
    alloc_fail_after(1, 0);
    assert_null(try_malloc(4));
    alloc_fail_after(0, 0);
    assert_int_equal(alloc_count(), before + 4);
    char *s = xasprintf("%d", 5);
    assert_true(alloc_count() >= before + 5);
    xfree(s);
    xfree(a);
    xfree(b);
}

/* Inside a fallible section alloc_json fails like try_malloc, and the end
 * of the section tells whether anything failed; sections nest, and the
 * outermost one reports a failure made inside an inner one. */
static void alloc_json_fails_softly_inside_a_section(void **state)
{
    (void)state;
    alloc_fallible_begin();
    void *p = alloc_json(8);
    assert_non_null(p);
    assert_int_equal(alloc_fallible_end(), 0);
    xfree(p);

    alloc_fallible_begin();
    alloc_fallible_begin();
    alloc_fail_after(1, 0);
    assert_null(alloc_json(8));
    alloc_fail_after(0, 0);
    assert_int_equal(alloc_fallible_end(), 1);
    p = alloc_json(8); /* still inside the outer section */
    assert_non_null(p);
    assert_int_equal(alloc_fallible_end(), 1);
    xfree(p);

    /* A new section starts clean. */
    alloc_fallible_begin();
    assert_int_equal(alloc_fallible_end(), 0);
}

/* The end of a child that ran an out-of-memory path. */
struct death {
    int signaled, sig;
    char hook[32]; /* what the fatal hook wrote to its pipe */
    char err[256]; /* what the child printed on stderr */
};

static int hook_fd = -1;

/* A fatal hook as the TUI's would be: it only writes to a descriptor. */
static void test_hook(void)
{
    ssize_t w = write(hook_fd, "hook-ran", 8);
    (void)w;
}

static void read_all_fd(int fd, char *out, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fd, out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
}

/* Runs fn in a child with the test hook installed and stderr captured. */
static struct death run_dying(void (*fn)(void))
{
    int hp[2], ep[2];
    assert_int_equal(pipe(hp), 0);
    assert_int_equal(pipe(ep), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(hp[0]);
        close(ep[0]);
        dup2(ep[1], STDERR_FILENO);
        hook_fd = hp[1];
        alloc_set_fatal_hook(test_hook);
        fn();
        _exit(0); /* only reached if fn did not abort */
    }
    close(hp[1]);
    close(ep[1]);
    struct death d = {0};
    read_all_fd(hp[0], d.hook, sizeof d.hook);
    read_all_fd(ep[0], d.err, sizeof d.err);
    close(hp[0]);
    close(ep[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    d.signaled = WIFSIGNALED(status);
    d.sig = d.signaled ? WTERMSIG(status) : 0;
    return d;
}

static void overflow_reallocarray(void)
{
    void *p = xreallocarray(NULL, SIZE_MAX / 2 + 1, 2);
    xfree(p);
}

static void injected_xmalloc_failure(void)
{
    alloc_fail_after(1, 0);
    void *p = xmalloc(10);
    xfree(p);
}

static void injected_json_failure(void)
{
    alloc_fail_after(1, 0);
    void *p = alloc_json(10);
    xfree(p);
}

static void *json_alloc_thread(void *arg)
{
    (void)arg;
    alloc_fail_after(1, 0);
    return alloc_json(10);
}

/* A section opened on this thread, a failing cJSON allocation on another. */
static void json_failure_on_another_thread(void)
{
    alloc_fallible_begin();
    pthread_t t;
    void *p = NULL;
    if (pthread_create(&t, NULL, json_alloc_thread, NULL) == 0)
        pthread_join(t, &p);
    alloc_fallible_end();
    xfree(p);
}

/* Runs fn in a child and expects the out-of-memory end: the fatal hook,
 * then "out of memory (what)" on stderr, then SIGABRT. */
static void expect_oom_abort(void (*fn)(void), const char *what)
{
    struct death d = run_dying(fn);
    char msg[64];
    snprintf(msg, sizeof msg, "out of memory (%s)", what);
    assert_true(d.signaled);
    assert_int_equal(d.sig, SIGABRT);
    assert_string_equal(d.hook, "hook-ran");
    assert_non_null(strstr(d.err, msg));
}

/* xreallocarray with nmemb * size past SIZE_MAX does not wrap to a small
 * block: the fatal hook runs, the message names the cause, and the process
 * dies by SIGABRT. */
static void reallocarray_overflow_aborts_after_the_hook(void **state)
{
    (void)state;
    expect_oom_abort(overflow_reallocarray, "size overflow");
}

/* An x* allocation that fails (here by injection) never returns NULL: it
 * aborts the same way. */
static void x_allocation_failure_aborts_after_the_hook(void **state)
{
    (void)state;
    expect_oom_abort(injected_xmalloc_failure, "malloc");
}

/* Outside a section a cJSON allocation that fails aborts like xmalloc: no
 * builder can drop a field or leak an item it could not attach. */
static void alloc_json_aborts_outside_a_section(void **state)
{
    (void)state;
    expect_oom_abort(injected_json_failure, "cJSON");
}

/* A section belongs to the thread that opened it: another thread's cJSON
 * allocation still aborts when it fails. */
static void a_section_covers_only_its_own_thread(void **state)
{
    (void)state;
    expect_oom_abort(json_failure_on_another_thread, "cJSON");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(x_functions_return_usable_memory),
        cmocka_unit_test(xasprintf_formats),
        cmocka_unit_test(fail_after_n_fails_exactly_the_nth_allocation),
        cmocka_unit_test(sticky_fails_every_later_allocation),
        cmocka_unit_test(failed_realloc_keeps_the_old_block),
        cmocka_unit_test(alloc_count_counts_each_allocation),
        cmocka_unit_test(reallocarray_overflow_aborts_after_the_hook),
        cmocka_unit_test(x_allocation_failure_aborts_after_the_hook),
        cmocka_unit_test(alloc_json_fails_softly_inside_a_section),
        cmocka_unit_test(alloc_json_aborts_outside_a_section),
        cmocka_unit_test(a_section_covers_only_its_own_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
