/*
 * The pinecone service of fakevec (placeholder: being written).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "fakevec.h"

static void *pinecone_init(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return calloc(1, 1);
}

static void pinecone_handle(void *st, const struct fv_request *rq, struct fv_reply *rep)
{
    (void)st;
    (void)rq;
    fv_reply_text(rep, 501, "text/plain", "not written yet\n");
}

static void pinecone_error(void *st, int status, const char *message, struct fv_reply *rep)
{
    (void)st;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", message);
    fv_reply_json(rep, status, o);
}

static void pinecone_free(void *st)
{
    free(st);
}

const struct fv_service fv_pinecone_service = {
    .name = "pinecone",
    .init = pinecone_init,
    .handle = pinecone_handle,
    .error = pinecone_error,
    .reset = NULL,
    .free = pinecone_free,
};
