/*
 * The allocation layer. Every allocation of memchat, cJSON and SQLite goes
 * through here (engine/global.c installs the hooks), so one seam can inject
 * failures for the hardening tests.
 *
 * Out-of-memory policy: small internal allocations (structs, strings, lists)
 * use the x* functions, which never return NULL: on failure they run the
 * fatal hook, if one is registered, print a message and abort. The TUI
 * needs no hook: its SIGABRT handler (tui/term.c) restores the terminal
 * before the process ends, and the message is kept until then.
 * Allocations whose size comes from outside (network bodies, files, user
 * input) use the try_* functions, or parse inside a fallible section
 * (util/json.h), and handle NULL as an ordinary error.
 */
#ifndef MEMCHAT_UTIL_ALLOC_H
#define MEMCHAT_UTIL_ALLOC_H

#include <stdarg.h>
#include <stddef.h>

#define MC_MALLOC_LIKE  __attribute__((malloc, warn_unused_result))
#define MC_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* malloc/calloc/realloc that may return NULL (also when a fault is injected). */
void *try_malloc(size_t n) MC_MALLOC_LIKE;
void *try_calloc(size_t nmemb, size_t size) MC_MALLOC_LIKE;
void *try_realloc(void *p, size_t n) __attribute__((warn_unused_result));

/* Never NULL: aborts through the fatal hook on failure or overflow. */
void *xmalloc(size_t n) MC_MALLOC_LIKE;
void *xcalloc(size_t nmemb, size_t size) MC_MALLOC_LIKE;
void *xrealloc(void *p, size_t n) __attribute__((warn_unused_result));
void *xreallocarray(void *p, size_t nmemb, size_t size) __attribute__((warn_unused_result));
char *xstrdup(const char *s) MC_MALLOC_LIKE;
char *xstrndup(const char *s, size_t n) MC_MALLOC_LIKE;
char *xasprintf(const char *fmt, ...) MC_PRINTF(1, 2) MC_MALLOC_LIKE;
char *xvasprintf(const char *fmt, va_list ap) MC_PRINTF(1, 0) MC_MALLOC_LIKE;
/* free(); the counterpart of every allocator above. */
void xfree(void *p);

/* Locked, guarded memory for secrets (libsodium's sodium_malloc, set up on
 * first use); never NULL: aborts like xmalloc. Free with xsecure_free,
 * which wipes before unmapping. */
void *xsecure_malloc(size_t n) MC_MALLOC_LIKE;
/* A NUL-terminated copy of s[0..n) in secure memory. */
char *xsecure_dup(const char *s, size_t n) MC_MALLOC_LIKE;
/* Wipes and frees memory from xsecure_malloc/xsecure_dup (or a keystore
 * secret); NULL is a no-op. */
void xsecure_free(void *p);

/* The allocator installed for cJSON (by engine/global.c). Building JSON
 * from our own data is a small internal allocation: outside a fallible
 * section a failure aborts like xmalloc, so no caller can drop a field or
 * leak an item it could not attach. Inside one it fails like try_malloc. */
void *alloc_json(size_t n) MC_MALLOC_LIKE;
/* Opens a fallible section on the calling thread (sections nest): cJSON
 * may return NULL for want of memory inside it, so the code inside must
 * check every cJSON result. For parsers of outside text and the builders
 * that report out of memory as an error (LLM requests, traces). */
void alloc_fallible_begin(void);
/* Closes the innermost section; nonzero when an allocation failed since
 * the outermost one opened (so a NULL from a parser meant want of memory,
 * not bad text). */
int alloc_fallible_end(void);

/* Called once before aborting on out-of-memory (for a front end that must
 * undo something a signal handler cannot); NULL clears it. */
void alloc_set_fatal_hook(void (*hook)(void));
/* Prints "memchat: out of memory (what)" to stderr and aborts. */
void alloc_die(const char *what) __attribute__((noreturn));

/* Fault injection: the n-th allocation from now (1 = the next) fails, and so
 * does every one after it when sticky is nonzero; n = 0 disarms. Counts all
 * allocations through this layer in all threads. */
void alloc_fail_after(unsigned long n, int sticky);
/* How many allocations went through the layer since start (for sweeps). */
unsigned long alloc_count(void);
/* Whether an armed fault has struck since the last alloc_fail_after. */
int alloc_fault_fired(void);
/* Arms the seam from the environment, for the sweeps that run the program
 * itself: MEMCHAT_FAULT_ALLOC=N fails the N-th allocation from now
 * ("N+": and every one after it); MEMCHAT_FAULT_ALLOC_REPORT=PATH writes
 * "allocs=<count> fired=<0|1>" to PATH when the process exits normally,
 * so a sweep learns how many allocations a command makes and when N went
 * past the end. 0, or -1 with a message in err (a malformed N). */
int alloc_setup_env(char *err, size_t errlen);

#endif
