/*
 * The weaviate service of fakevec (placeholder: being written).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "fakevec.h"

static void *weaviate_init(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return calloc(1, 1);
}

static void weaviate_handle(void *st, const struct fv_request *rq, struct fv_reply *rep)
{
    (void)st;
    (void)rq;
    fv_reply_text(rep, 501, "text/plain", "not written yet\n");
}

static void weaviate_error(void *st, int status, const char *message, struct fv_reply *rep)
{
    (void)st;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", message);
    fv_reply_json(rep, status, o);
}

static void weaviate_free(void *st)
{
    free(st);
}

const struct fv_service fv_weaviate_service = {
    .name = "weaviate",
    .init = weaviate_init,
    .handle = weaviate_handle,
    .error = weaviate_error,
    .reset = NULL,
    .free = weaviate_free,
};
