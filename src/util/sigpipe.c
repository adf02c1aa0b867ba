/*
 * The SIGPIPE bracket of sigpipe.h. A SIGPIPE raised by a write is directed
 * at the writing thread, so while it is blocked there it stays pending on
 * that thread and sigtimedwait() with a zero timeout consumes it.
 */
#include "config.h"

#include "util/sigpipe.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

static bool sigpipe_pending(void)
{
    sigset_t pending;
    sigemptyset(&pending);
    return sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

void sigpipe_block(struct sigpipe_guard *g)
{
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &g->old_mask);
    g->was_pending = sigpipe_pending();
}

void sigpipe_restore(struct sigpipe_guard *g)
{
    if (!g->was_pending && sigpipe_pending()) {
        sigset_t pipe_set;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old_mask, NULL);
}
