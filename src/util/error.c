/* The error-code table of include/memchat/error.h. */
#include "config.h"

#include "memchat/error.h"

#include <string.h>

struct error_row {
    const char *code;
    int exit_code;
    const char *doc;
};

static const struct error_row error_rows[] = {
#define MC_X_ROW(e, code, exitc, doc) [e] = {code, exitc, doc},
    MC_ERROR_LIST(MC_X_ROW)
#undef MC_X_ROW
};

#define ERROR_COUNT (sizeof error_rows / sizeof error_rows[0])

const char *mc_error_code(enum mc_error e)
{
    return (size_t)e < ERROR_COUNT ? error_rows[e].code : "internal";
}

int mc_error_exit_code(enum mc_error e)
{
    return (size_t)e < ERROR_COUNT ? error_rows[e].exit_code : MC_EXIT_RUNTIME;
}

const char *mc_error_doc(enum mc_error e)
{
    return (size_t)e < ERROR_COUNT ? error_rows[e].doc : "unknown error";
}

enum mc_error mc_error_from_code(const char *code)
{
    for (size_t i = 0; i < ERROR_COUNT; i++)
        if (strcmp(error_rows[i].code, code) == 0)
            return (enum mc_error)i;
    return MC_ERR_INTERNAL;
}
