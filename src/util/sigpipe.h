/*
 * Writing to a socket or pipe whose reader is gone raises SIGPIPE, whose
 * default action would end memchat. Code that writes with plain write()
 * (a child's stdin in util/runcmd.c, hiredis's socket in net/redis.c)
 * brackets the writes with these: the signal is blocked in the calling
 * thread only (no process-wide handler is changed, so a library user's
 * own SIGPIPE setup is left alone), and a SIGPIPE the bracket raised is
 * taken back before the mask is restored, so it is never delivered. A
 * SIGPIPE that was already pending before the bracket is left pending.
 */
#ifndef MEMCHAT_UTIL_SIGPIPE_H
#define MEMCHAT_UTIL_SIGPIPE_H

#include <signal.h>
#include <stdbool.h>

/* The thread's mask before the bracket; lives on the caller's stack. */
struct sigpipe_guard {
    sigset_t old_mask;
    bool was_pending;
};

/* Blocks SIGPIPE in the calling thread, remembering the old mask. */
void sigpipe_block(struct sigpipe_guard *g);
/* Takes back a SIGPIPE raised since sigpipe_block() and restores the
 * thread's mask. */
void sigpipe_restore(struct sigpipe_guard *g);

#endif
