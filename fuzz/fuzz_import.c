/*
 * Fuzz target: the memory import decoder, `memchat memory import`'s reading
 * of a JSON-lines file: the input is split into its non-blank lines as the
 * command does (a trailing CR goes, a NUL or invalid UTF-8 refuses the line
 * before it is parsed), and each line goes through
 * memory_parse_import_line (memory/manager.h), the side-effect-free check
 * the command runs on every line before anything is stored. An accepted
 * line must give valid fields (UTF-8 text, a UUID, valid ids, a metadata
 * object, finite floats), and exporting it (memory_record_json, what
 * `memory export` prints) and importing that again must give the same
 * memory: export | import is how users move memories.
 */
#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "fuzz.h"
#include "memchat/engine.h"
#include "memory/manager.h"
#include "memory/store.h"
#include "util/alloc.h"
#include "util/ident.h"
#include "util/utf8.h"
#include "util/uuid.h"

#define IMPORT_FIXED_ID "6f1c1b0e-2f6a-4c1e-9b7a-0d2c3e4f5a6b"

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The accepted line a, exported and imported again, is the same memory. */
static void check_round_trip(const struct memory_add *a)
{
    struct mem_record r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", a->id != NULL ? a->id : IMPORT_FIXED_ID);
    r.text = xstrdup(a->text);
    snprintf(r.user_id, sizeof r.user_id, "%s", a->user != NULL ? a->user : "user");
    snprintf(r.agent, sizeof r.agent, "%s", a->agent != NULL ? a->agent : "assistant");
    snprintf(r.kind, sizeof r.kind, "%s", a->kind != NULL ? a->kind : "note");
    r.created_at = a->created_at;
    r.metadata = a->metadata != NULL ? xstrdup(a->metadata) : NULL;
    r.dim = (int)a->vector_len;
    if (a->vector_len > 0) {
        r.vector = xcalloc(a->vector_len, sizeof *r.vector);
        memcpy(r.vector, a->vector, a->vector_len * sizeof *r.vector);
    }
    cJSON *o = memory_record_json(&r, NULL, true, r.dim);
    char *line = o != NULL ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    xfree(r.metadata);
    xfree(r.text);
    xfree(r.vector);
    if (line == NULL)
        fuzz_fail("import: an accepted memory does not export");

    struct memory_add b;
    cJSON *hold = NULL;
    float *vec = NULL;
    size_t vec_len = 0;
    char err[512] = "";
    if (memory_parse_import_line(line, &b, &hold, &vec, &vec_len, err, sizeof err) != 0) {
        fprintf(stderr, "exported: %s\nerror: %s\n", line, err);
        fuzz_fail("import: an exported memory does not import again");
    }
    bool same = strcmp(b.text, a->text) == 0 && same_str(b.id, r.id) &&
                same_str(b.user, r.user_id) && same_str(b.agent, r.agent) &&
                same_str(b.kind, r.kind) && b.created_at == a->created_at &&
                b.vector_len == a->vector_len;
    for (size_t i = 0; same && i < b.vector_len; i++)
        same = b.vector[i] == a->vector[i];
    /* Metadata is compared as values: the export reprints the object. */
    cJSON *m1 = a->metadata != NULL ? cJSON_Parse(a->metadata) : cJSON_CreateObject();
    cJSON *m2 = b.metadata != NULL ? cJSON_Parse(b.metadata) : cJSON_CreateObject();
    same = same && cJSON_Compare(m1, m2, true);
    cJSON_Delete(m1);
    cJSON_Delete(m2);
    if (!same) {
        fprintf(stderr, "exported: %s\n", line);
        fuzz_fail("import: export then import changed the memory");
    }
    cJSON_Delete(hold);
    xfree(vec);
    cJSON_free(line);
}

/* One line as the command checks it; true when it would import. */
static bool check_line(const char *line, size_t len)
{
    if (memchr(line, '\0', len) != NULL || !utf8_valid(line, len, NULL))
        return false;
    struct memory_add a;
    cJSON *hold = NULL;
    float *vec = NULL;
    size_t vec_len = 0;
    char err[512] = "";
    int rc = memory_parse_import_line(line, &a, &hold, &vec, &vec_len, err, sizeof err);
    if (rc != 0) {
        if (err[0] == '\0' || hold != NULL || vec != NULL)
            fuzz_fail("import: a refused line without a message, or with something to free");
        return false;
    }
    size_t tl = strlen(a.text);
    if (tl == 0 || !utf8_valid(a.text, tl, NULL))
        fuzz_fail("import: accepted text that is empty or not UTF-8");
    if ((a.id != NULL && !uuid_valid(a.id)) || (a.user != NULL && !ident_valid(a.user)) ||
        (a.agent != NULL && !ident_valid(a.agent)))
        fuzz_fail("import: an accepted id that is not valid");
    if (a.created_at < 0)
        fuzz_fail("import: a negative created_at");
    if (a.metadata != NULL) {
        cJSON *m = cJSON_Parse(a.metadata);
        if (!cJSON_IsObject(m))
            fuzz_fail("import: accepted metadata that is not an object");
        cJSON_Delete(m);
    }
    if (a.vector_len != vec_len || (vec_len > 0) != (a.vector != NULL))
        fuzz_fail("import: the vector and its length disagree");
    for (size_t i = 0; i < vec_len; i++)
        if (!isfinite(a.vector[i]))
            fuzz_fail("import: a vector component that is not finite");
    check_round_trip(&a);
    cJSON_Delete(hold);
    xfree(vec);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    if (mc_global_init() != 0)
        fuzz_fail("import: mc_global_init failed");
    /* Split in place as the command does: a copy we may write NULs into. */
    char *buf = fuzz_strndup(data, size);
    char *p = buf, *end = buf + size;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl != NULL ? nl : end;
        *stop = '\0';
        if (stop > p && stop[-1] == '\r')
            *--stop = '\0';
        bool blank = true;
        for (char *c = p; c < stop && blank; c++)
            blank = is_space(*c);
        if (!blank)
            check_line(p, (size_t)(stop - p));
        p = nl != NULL ? nl + 1 : end;
    }
    free(buf);
    return 0;
}
