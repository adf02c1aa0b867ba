/*
 * The test-side harness of fakevec (tests/server/fakevec.h), the loopback
 * fakes of the remote embedders and vector stores: start one service,
 * point memchat at fv_url(), arm failures, read what the fake received,
 * stop it (which proves it did not crash). Built on mockserver.h's process
 * handling, so every wait is bounded by MOCK_GUARD_MS.
 */
#ifndef MEMCHAT_FAKEVEC_HARNESS_H
#define MEMCHAT_FAKEVEC_HARNESS_H

#include "../server/mockserver.h"

/* Starts $MEMCHAT_FAKEVEC_BIN --service service [--key key] and then the
 * service's options (NULL-terminated list; NULL for none). key NULL: the
 * fake accepts every request. */
static inline struct mock *fv_start(const char *service, const char *key,
                                    const char *const *options)
{
    const char *args[28];
    size_t n = 0;
    args[n++] = "--service";
    args[n++] = service;
    if (key != NULL) {
        args[n++] = "--key";
        args[n++] = key;
    }
    for (size_t i = 0; options != NULL && options[i] != NULL && n < 27; i++)
        args[n++] = options[i];
    args[n] = NULL;
    return mock_start_with("MEMCHAT_FAKEVEC_BIN", args);
}

/* The fake's base URL (valid until mock_stop). */
static inline const char *fv_url(const struct mock *m)
{
    return mock_url(m);
}

/* POSTs json to the control path (/__fake/fail or /__fake/reset) on a
 * fresh connection; fails the test unless the fake answers 200. */
static inline void fv_control(struct mock *m, const char *path, const char *json)
{
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     path, strlen(json), json);
    assert_true(n > 0 && (size_t)n < sizeof req);
    size_t len = 0;
    char *res = mock_raw_exchange(m, req, (size_t)n, &len);
    int ok = len >= 12 && strncmp(res, "HTTP/1.1 200", 12) == 0;
    if (!ok)
        fail_msg("fakevec control %s %s: %.200s", path, json, res);
    free(res);
}

/* Arms a failure: e.g. fv_fail(m, "{\"status\":429,\"count\":1,\"retry_after\":\"0\"}"). */
static inline void fv_fail(struct mock *m, const char *json)
{
    fv_control(m, "/__fake/fail", json);
}

/* Forgets the fake's data and armed failures. */
static inline void fv_reset(struct mock *m)
{
    fv_control(m, "/__fake/reset", "{}");
}

#endif
