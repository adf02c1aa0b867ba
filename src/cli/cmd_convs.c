/*
 * memchat conversations: the stored conversations of a tenant.
 *
 *   memchat conversations [list] [--tenant T] [--user U] [--limit N] [--json]
 *   memchat conversations rm ID [--tenant T] [--json]
 *
 * A conversation is what `ask --continue` and `ask --conversation ID`
 * carry on, and what a chat session keeps. Both actions are engine jobs
 * (the front end never opens the data file), printed from their `result`
 * event: the list newest first as a table (titles come from what users
 * typed, so they go through the terminal sanitiser) or, with --json, one
 * object per line exactly as the result's items.
 */
#include "config.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/session.h"
#include "config/config.h"
#include "config/vars.h"
#include "memchat/error.h"
#include "util/buf.h"
#include "util/uuid.h"

/* Starts an engine, runs job on it and stops it. */
static int convs_run(const struct config *cfg, const struct mc_memory_job *job, cJSON **items)
{
    *items = NULL;
    struct session s;
    int rc = session_start(&s, cfg, false, NULL);
    if (rc != MC_EXIT_OK)
        return rc;
    rc = cli_memory_job(&s, job, items);
    session_stop(&s);
    return rc;
}

static void convs_table(const cJSON *items, const char *tenant)
{
    if (cJSON_GetArraySize(items) == 0) {
        printf("(no conversations in tenant %s)\n", tenant);
        return;
    }
    size_t width = cli_table_width();
    /* ID 36, UPDATED 16, TURNS 5, USER 12, and two spaces after each. */
    size_t fixed = 36 + 16 + 5 + 12 + 4 * 2;
    size_t title_cols = width > fixed + 16 ? width - fixed : 16;
    printf("%-36s  %-16s  %5s  %-12s  %s\n", "ID", "UPDATED (UTC)", "TURNS", "USER", "TITLE");
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *user = cJSON_GetObjectItemCaseSensitive(it, "user_id");
        const cJSON *title = cJSON_GetObjectItemCaseSensitive(it, "title");
        const cJSON *updated = cJSON_GetObjectItemCaseSensitive(it, "updated_ms");
        const cJSON *turns = cJSON_GetObjectItemCaseSensitive(it, "turns");
        char when[32];
        struct buf line, u;
        buf_init(&line, 1 << 20);
        buf_init(&u, 4096);
        cli_put_cell(&u, cJSON_IsString(user) ? user->valuestring : "-", 12);
        buf_printf(&line, "%-36s  %-16s  %5.0f  %-12s  ",
                   cJSON_IsString(id) ? id->valuestring : "?",
                   cli_format_time(cJSON_IsNumber(updated) ? (int64_t)updated->valuedouble : 0,
                                   when, sizeof when),
                   cJSON_IsNumber(turns) ? turns->valuedouble : 0, buf_cstr(&u));
        cli_put_cell(&line, cJSON_IsString(title) ? title->valuestring : "", title_cols);
        while (line.len > 0 && line.data[line.len - 1] == ' ')
            line.data[--line.len] = '\0';
        puts(buf_cstr(&line));
        buf_free(&u);
        buf_free(&line);
    }
}

static int convs_list(const struct config *cfg, const struct cli_opts *o)
{
    long limit = 0;
    if (o->limit != NULL &&
        cli_parse_count("conversations: --limit", o->limit, 1, 1000000000L, &limit) != MC_EXIT_OK)
        return MC_EXIT_USAGE;
    /* Only a user named on the command line narrows the list: the
     * default ($LOGNAME) would hide the other users' conversations. */
    const char *user = config_origin(cfg, CFG_MEMCHAT_USER) == CFG_FROM_FLAG
                           ? config_str(cfg, CFG_MEMCHAT_USER)
                           : NULL;
    struct mc_memory_job job = {
        .op = MC_CONV_LIST,
        .tenant = config_str(cfg, CFG_MEMCHAT_TENANT),
        .user = user,
        .k = (int)limit,
    };
    cJSON *items = NULL;
    int rc = convs_run(cfg, &job, &items);
    if (rc == MC_EXIT_OK && o->json)
        cli_print_items(items);
    else if (rc == MC_EXIT_OK)
        convs_table(items, job.tenant);
    cJSON_Delete(items);
    return rc;
}

static int convs_remove(const struct config *cfg, const struct cli_opts *o)
{
    int rc = cli_refuse_opts("conversations rm", CLI_OPT_JSON | CLI_OPT_TENANT, o->seen);
    if (rc != MC_EXIT_OK)
        return rc;
    if (o->n_args != 2) {
        session_error("conversations rm: give one conversation id (memchat conversations lists "
                      "them)");
        return MC_EXIT_USAGE;
    }
    const char *id = o->args[1];
    if (!uuid_valid(id)) {
        session_error("conversations rm: '%s' is not a conversation id (a UUID, as memchat "
                      "conversations lists them)",
                      id);
        return MC_EXIT_USAGE;
    }
    struct mc_memory_job job = {
        .op = MC_CONV_REMOVE,
        .tenant = config_str(cfg, CFG_MEMCHAT_TENANT),
        .id = id,
    };
    cJSON *items = NULL;
    rc = convs_run(cfg, &job, &items);
    if (rc == MC_EXIT_OK && o->json)
        cli_print_items(items);
    else if (rc == MC_EXIT_OK)
        printf("removed conversation %s\n", id);
    cJSON_Delete(items);
    return rc;
}

int cmd_conversations(const struct config *cfg, const struct cli_opts *o)
{
    const char *what = o->n_args > 0 ? o->args[0] : "list";
    if (strcmp(what, "rm") == 0)
        return convs_remove(cfg, o);
    if (strcmp(what, "list") == 0) {
        if (o->n_args > 1) {
            session_error("conversations list takes no arguments (got '%s')", o->args[1]);
            return MC_EXIT_USAGE;
        }
        return convs_list(cfg, o);
    }
    session_error("conversations: unknown action '%s' (accepted: list, rm ID)", what);
    return MC_EXIT_USAGE;
}
