/*
 * Fuzz target: the config.env and .env reader (config/config.h) over
 * memchat's own variables, so every value parser (booleans, integers,
 * durations, numbers, enums, ids, paths) is reached through the files. The
 * input is the config.env text, then optionally a line "%%" and the .env
 * text (the working directory's, with its untrusted-name rules). A load
 * must succeed or fail with a message; on success every variable must read
 * back through its typed getter, its display and its source, and each
 * value must pass config_check_value again (what was stored is valid). The
 * first line also goes through config_check_value and config_quote for a
 * variable of each type, which reach the value parsers without a file's
 * rules.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/vars.h"
#include "fuzz.h"

#define SEPARATOR      "\n%%\n"
#define FIRST_LINE_MAX 512

/* Every variable read back as a front end would. */
static void config_read_back(const struct config *cfg)
{
    size_t n = config_count(cfg);
    for (size_t i = 0; i < n; i++) {
        const struct cfg_var *v = config_var(cfg, (int)i);
        char out[4096], err[1024];
        config_display(cfg, (int)i, out, sizeof out);
        config_source(cfg, (int)i, out, sizeof out);
        /* Short buffers: the text is cut, never overrun. */
        config_display(cfg, (int)i, out, 1 + i % 7);
        config_source(cfg, (int)i, out, 1 + i % 5);
        (void)config_default(cfg, (int)i);
        switch (v->type) {
        case CFG_BOOL:
            (void)config_bool(cfg, (int)i);
            break;
        case CFG_INT:
            if (config_int(cfg, (int)i) < v->min || config_int(cfg, (int)i) > v->max)
                fuzz_fail("config: an integer out of its range was stored");
            break;
        case CFG_DURATION:
            (void)config_duration_ms(cfg, (int)i);
            break;
        case CFG_NUMBER:
            (void)config_number(cfg, (int)i);
            (void)config_str(cfg, (int)i);
            break;
        case CFG_STRING:
        case CFG_ID:
        case CFG_ENUM:
        case CFG_PATH:
            if (config_str(cfg, (int)i) == NULL)
                fuzz_fail("config: a NULL string");
            break;
        }
        /* What was stored from a file must be valid as a value (paths were
         * expanded, durations normalised: those are checked as read). */
        if ((v->type == CFG_STRING || v->type == CFG_ID || v->type == CFG_ENUM) &&
            config_origin(cfg, (int)i) != CFG_FROM_DEFAULT &&
            config_check_value(v, config_str(cfg, (int)i), "fuzz", err, sizeof err) != 0)
            fuzz_fail("config: a stored value does not pass its own check");
    }
    for (size_t i = 0; i < config_warning_count(cfg); i++)
        (void)config_warning(cfg, i);
}

/* The value parsers and the quoting directly, on the first line: one
 * variable of each type (the first of its type in the table), so every
 * parser runs without checking some eighty variables per input. */
static void config_check_line(const struct config *cfg, const uint8_t *data, size_t size)
{
    const uint8_t *lf = memchr(data, '\n', size);
    size_t n = lf != NULL ? (size_t)(lf - data) : size;
    if (n > FIRST_LINE_MAX)
        n = FIRST_LINE_MAX;
    char *line = fuzz_strndup(data, n);
    unsigned seen = 0;
    size_t count = config_count(cfg);
    for (size_t i = 0; i < count; i++) {
        const struct cfg_var *v = config_var(cfg, (int)i);
        /* Secrets are quoted masked: one of them is a type of its own. */
        unsigned bit = (v->flags & CFG_F_SECRET) ? 1u << 16 : 1u << (unsigned)v->type;
        if ((seen & bit) != 0)
            continue;
        seen |= bit;
        char err[1024], out[4 * FIRST_LINE_MAX + 64];
        (void)config_check_value(v, line, "fuzz", err, sizeof err);
        config_quote(v, line, out, sizeof out);
    }
    char small[8], out[4 * FIRST_LINE_MAX + 64];
    config_quote(NULL, line, small, sizeof small);
    config_quote(NULL, line, out, sizeof out);
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    const uint8_t *sep = NULL;
    for (size_t i = 0; i + strlen(SEPARATOR) <= size && sep == NULL; i++)
        if (memcmp(data + i, SEPARATOR, strlen(SEPARATOR)) == 0)
            sep = data + i;
    size_t n1 = sep != NULL ? (size_t)(sep - data) : size;
    fuzz_scratch_write("config.env", data, n1);
    const uint8_t *env2 = sep != NULL ? sep + strlen(SEPARATOR) : data + size;
    char dotenv[512];
    snprintf(dotenv, sizeof dotenv, "%s",
             fuzz_scratch_write(".env", env2, (size_t)(data + size - env2)));
    char dir[512];
    snprintf(dir, sizeof dir, "%s", fuzz_scratch_dir());

    static const char *const envp[] = {"HOME=/nonexistent/fuzz-home", "LOGNAME=fuzz",
                                       "MEMCHAT_UNKNOWN_FUZZ=1", NULL};
    struct config_load_opts o = {.config_dir = dir, .dotenv_path = dotenv, .environ = envp};
    struct config *cfg = config_new_memchat();
    char err[1024] = "";
    int rc = config_load(cfg, &o, err, sizeof err);
    if (rc != 0 && err[0] == '\0')
        fuzz_fail("config: a load failed without a message");
    if (rc != 0 && rc != -1)
        fuzz_fail("config: a load returned neither 0 nor -1");
    if (rc == 0)
        config_read_back(cfg);
    config_check_line(cfg, data, size);
    config_free(cfg);
    return 0;
}
