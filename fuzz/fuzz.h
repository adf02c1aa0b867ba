/*
 * What every fuzz target shares: the entry point libFuzzer calls (also
 * called by replay.c, the plain main() that make check runs over the saved
 * corpora), the input cap, and a scratch directory for the parsers that
 * only read files (the config loader, the keystore). Targets keep no state
 * between inputs: everything an input allocates is freed before it returns,
 * so LeakSanitizer's report after a run points at the parser.
 */
#ifndef MEMCHAT_FUZZ_FUZZ_H
#define MEMCHAT_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Inputs above this are ignored: every parser has its own size cap well
 * below what a fuzzer explores, and long inputs only slow the search. */
#define FUZZ_MAX_INPUT (64 * 1024)

/* Runs one input; 0 always (libFuzzer's contract). A target that finds a
 * broken property calls fuzz_fail(), which aborts. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Prints "fuzz: property failed: what" and aborts, so libFuzzer saves the
 * input as a crash and replay names it. */
_Noreturn void fuzz_fail(const char *what);

/* Writes data[0..n) to name in this process's scratch directory (created
 * on first use, removed at exit) and returns the file's path (static
 * storage, valid until the next call with another name). Aborts when the
 * file cannot be written. */
const char *fuzz_scratch_write(const char *name, const uint8_t *data, size_t n);
/* The scratch directory itself (created on first use). */
const char *fuzz_scratch_dir(void);
/* The path name would have in the scratch directory (static storage). */
const char *fuzz_scratch_path(const char *name);

/* A NUL-terminated copy of data[0..n) (malloc'd; the caller frees). */
char *fuzz_strndup(const uint8_t *data, size_t n);

#endif
