/*
 * The allocation layer: thin wrappers over the C library with an injection
 * seam for allocation-failure tests and the project's out-of-memory policy
 * (see alloc.h). The counters are process-wide atomics on purpose: faults
 * must reach allocations made inside cJSON and SQLite on any thread.
 */
#include "config.h"

#include "util/alloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static atomic_ulong alloc_total;
static atomic_ulong fail_at; /* 0 = disarmed, else the alloc_total value that fails */
static atomic_int fail_sticky;
static atomic_int fail_fired;
static const char *report_path; /* MEMCHAT_FAULT_ALLOC_REPORT, for the atexit handler */
static void (*fatal_hook)(void);
/* Per thread: a section opened on one thread must not make another
 * thread's cJSON calls fallible behind its back. */
static _Thread_local unsigned fallible_depth;
static _Thread_local int fallible_failed;

static int fault_now(void)
{
    unsigned long n = atomic_fetch_add(&alloc_total, 1) + 1;
    unsigned long at = atomic_load(&fail_at);
    if (at == 0)
        return 0;
    if (n != at && !(n > at && atomic_load(&fail_sticky)))
        return 0;
    atomic_store(&fail_fired, 1);
    return 1;
}

void alloc_fail_after(unsigned long n, int sticky)
{
    atomic_store(&fail_sticky, sticky);
    atomic_store(&fail_fired, 0);
    atomic_store(&fail_at, n ? atomic_load(&alloc_total) + n : 0);
}

unsigned long alloc_count(void)
{
    return atomic_load(&alloc_total);
}

int alloc_fault_fired(void)
{
    return atomic_load(&fail_fired);
}

/* Runs at exit, when the C library may be half torn down: plain stdio, no
 * allocation through the layer (the seam may still be armed). */
static void alloc_write_report(void)
{
    FILE *f = fopen(report_path, "w");
    if (f == NULL)
        return;
    fprintf(f, "allocs=%lu fired=%d\n", alloc_count(), alloc_fault_fired());
    fclose(f);
}

int alloc_setup_env(char *err, size_t errlen)
{
    const char *spec = getenv("MEMCHAT_FAULT_ALLOC");
    report_path = getenv("MEMCHAT_FAULT_ALLOC_REPORT");
    if (report_path != NULL && *report_path != '\0' && atexit(alloc_write_report) != 0)
        report_path = NULL;
    if (spec == NULL || *spec == '\0')
        return 0;
    char *end;
    errno = 0;
    unsigned long n = strtoul(spec, &end, 10);
    int sticky = *end == '+';
    if (sticky)
        end++;
    if (errno != 0 || end == spec || *end != '\0' || *spec < '0' || *spec > '9') {
        snprintf(err, errlen, "MEMCHAT_FAULT_ALLOC: '%s' is not a count (N, or N+ to keep failing)",
                 spec);
        return -1;
    }
    alloc_fail_after(n, sticky);
    return 0;
}

void alloc_set_fatal_hook(void (*hook)(void))
{
    fatal_hook = hook;
}

void alloc_die(const char *what)
{
    if (fatal_hook != NULL)
        fatal_hook();
    fprintf(stderr, "memchat: out of memory (%s)\n", what);
    abort();
}

void *try_malloc(size_t n)
{
    if (fault_now())
        return NULL;
    return malloc(n ? n : 1);
}

void *try_calloc(size_t nmemb, size_t size)
{
    if (fault_now())
        return NULL;
    if (nmemb == 0 || size == 0)
        nmemb = size = 1;
    return calloc(nmemb, size);
}

void *try_realloc(void *p, size_t n)
{
    if (fault_now())
        return NULL;
    return realloc(p, n ? n : 1);
}

void *alloc_json(size_t n)
{
    void *p = try_malloc(n);
    if (p != NULL)
        return p;
    if (fallible_depth == 0)
        alloc_die("cJSON");
    fallible_failed = 1;
    return NULL;
}

void alloc_fallible_begin(void)
{
    if (fallible_depth++ == 0)
        fallible_failed = 0;
}

int alloc_fallible_end(void)
{
    if (fallible_depth > 0)
        fallible_depth--;
    return fallible_failed;
}

void *xmalloc(size_t n)
{
    void *p = try_malloc(n);
    if (p == NULL)
        alloc_die("malloc");
    return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
    void *p = try_calloc(nmemb, size);
    if (p == NULL)
        alloc_die("calloc");
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = try_realloc(p, n);
    if (q == NULL)
        alloc_die("realloc");
    return q;
}

void *xreallocarray(void *p, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size)
        alloc_die("size overflow");
    return xrealloc(p, nmemb * size);
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        alloc_die("format");
    char *p = xmalloc((size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = xvasprintf(fmt, ap);
    va_end(ap);
    return p;
}

void xfree(void *p)
{
    free(p);
}

void *xsecure_malloc(size_t n)
{
    /* sodium_malloc needs sodium_init, which is idempotent and
     * thread-safe; front ends may need a secret before the engine exists. */
    void *p = sodium_init() >= 0 ? sodium_malloc(n) : NULL;
    if (p == NULL)
        alloc_die("locked memory for a secret");
    return p;
}

char *xsecure_dup(const char *s, size_t n)
{
    char *p = xsecure_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void xsecure_free(void *p)
{
    if (p != NULL)
        sodium_free(p); /* zeroes the memory before unmapping it */
}
