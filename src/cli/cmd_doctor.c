/*
 * memchat doctor [--tenant T] [--json]: asks the engine to check every
 * configured backend (client/doctor.h) and prints one line per check,
 * "ok", "warn", "FAIL" or "skip", what was checked, what was found and,
 * for what is wrong, the fix. --json prints the result event instead.
 * The exit code is the most serious failure's (2 for a setting, 3 for a
 * server, 1 for the data file), 0 when nothing failed, so a script or CI
 * can gate on it.
 */
#include "config.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/session.h"
#include "config/config.h"
#include "config/vars.h"
#include "memchat/engine.h"
#include "memchat/error.h"

/* The string field name of o, "" when absent. */
static const char *doctor_field(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Prints the items and returns the exit code they call for. */
static int doctor_print(const cJSON *items, bool print)
{
    int worst = MC_EXIT_OK, failed = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        const char *status = doctor_field(it, "status");
        bool fail = strcmp(status, "fail") == 0;
        if (fail) {
            failed++;
            int e = cJSON_GetObjectItemCaseSensitive(it, "exit")->valueint;
            /* a setting (2) outranks a server (3), which outranks a file (1) */
            if (worst == MC_EXIT_OK || e == MC_EXIT_USAGE ||
                (e == MC_EXIT_PROVIDER && worst == MC_EXIT_RUNTIME))
                worst = e;
        }
        if (!print)
            continue;
        printf("%-4s  %-12s %s: %s\n", fail ? "FAIL" : status, doctor_field(it, "check"),
               doctor_field(it, "what"), doctor_field(it, "detail"));
        if (doctor_field(it, "fix")[0] != '\0')
            printf("      %-12s fix: %s\n", "", doctor_field(it, "fix"));
    }
    if (print)
        printf("%d of %d checks failed\n", failed, cJSON_GetArraySize(items));
    return worst;
}

int cmd_doctor(const struct config *cfg, const struct cli_opts *o)
{
    if (o->n_args > 0) {
        session_error("doctor: takes no arguments ('%.80s')", o->args[0]);
        return MC_EXIT_USAGE;
    }
    struct session s;
    int rc = session_start(&s, cfg, o->json, NULL);
    if (rc != MC_EXIT_OK)
        return rc;
    char id[MC_UUID_STRLEN + 1], err[512] = "";
    if (mc_engine_submit_doctor(s.eng, config_str(cfg, CFG_MEMCHAT_TENANT), id, err, sizeof err) !=
        0) {
        session_error("%s", err);
        session_stop(&s);
        return MC_EXIT_USAGE;
    }
    cJSON *items = NULL;
    rc = cli_job_wait(&s, id, o->json, &items);
    if (rc == MC_EXIT_OK)
        rc = doctor_print(items, !o->json);
    cJSON_Delete(items);
    session_stop(&s);
    return rc;
}
