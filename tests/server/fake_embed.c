/*
 * The embed service of fakevec (placeholder: being written).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "fakevec.h"

static void *embed_init(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return calloc(1, 1);
}

static void embed_handle(void *st, const struct fv_request *rq, struct fv_reply *rep)
{
    (void)st;
    (void)rq;
    fv_reply_text(rep, 501, "text/plain", "not written yet\n");
}

static void embed_error(void *st, int status, const char *message, struct fv_reply *rep)
{
    (void)st;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", message);
    fv_reply_json(rep, status, o);
}

static void embed_free(void *st)
{
    free(st);
}

const struct fv_service fv_embed_service = {
    .name = "embed",
    .init = embed_init,
    .handle = embed_handle,
    .error = embed_error,
    .reset = NULL,
    .free = embed_free,
};
