/*
 * memchat config: every variable's effective value and where it came from.
 * Secrets are masked by config_display(); nothing here prints a raw value of
 * a secret setting.
 */
#include "config.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "memchat/error.h"
#include "util/alloc.h"

static void config_print_json(const struct config *cfg, int id)
{
    const struct cfg_var *v = config_var(cfg, id);
    char value[1024], source[128];
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        alloc_die("cJSON");
    cJSON_AddStringToObject(o, "name", v->name);
    cJSON_AddStringToObject(o, "value", config_display(cfg, id, value, sizeof value));
    cJSON_AddStringToObject(o, "source", config_source(cfg, id, source, sizeof source));
    if (!(v->flags & CFG_F_SECRET))
        cJSON_AddStringToObject(o, "default", config_default(cfg, id));
    else
        cJSON_AddNullToObject(o, "default");
    char *line = cJSON_PrintUnformatted(o);
    if (line == NULL)
        alloc_die("cJSON");
    puts(line);
    xfree(line);
    cJSON_Delete(o);
}

int cmd_config(const struct config *cfg, const struct cli_opts *o)
{
    if (o->n_args > 0) {
        fprintf(stderr, "memchat: config takes no arguments (got '%s')\n", o->args[0]);
        return MC_EXIT_USAGE;
    }
    int width = 0;
    for (size_t i = 0; i < config_count(cfg); i++) {
        int n = (int)strlen(config_var(cfg, (int)i)->name);
        width = n > width ? n : width;
    }
    for (size_t i = 0; i < config_count(cfg); i++) {
        int id = (int)i;
        if (o->json) {
            config_print_json(cfg, id);
            continue;
        }
        char value[1024], source[128];
        printf("%-*s = %-30s  # %s\n", width, config_var(cfg, id)->name,
               config_display(cfg, id, value, sizeof value),
               config_source(cfg, id, source, sizeof source));
    }
    return MC_EXIT_OK;
}
