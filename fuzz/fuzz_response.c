/*
 * Fuzz target: response assembly, the providers' handling of what a server
 * sends back (llm/openai.c, anthropic.c, ollama.c over http_provider.c):
 * the body's bytes become deltas, tool calls, usage, a finish reason or a
 * clear failure. It runs through hp_replay_stream (llm/http_provider.h),
 * which runs the provider's real chat() with the body served from memory.
 * The first byte picks the provider, streamed or whole answer, and how the
 * body is cut; the second a response cap. The body is replayed twice, cut
 * and whole, and both runs must come to the same result (hp_replay_format's
 * canonical text): libcurl cuts bodies anywhere. Every delta must be valid
 * UTF-8 and a failure must carry a message.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "llm/http_provider.h"
#include "memchat/engine.h"
#include "util/buf.h"
#include "util/utf8.h"

/* Checks what hp_replay_stream's result promises on its own. */
static void check_result(const struct hp_replay_result *res)
{
    size_t off = 0;
    for (size_t i = 0; i < res->n_deltas; i++) {
        if (!utf8_valid(res->text.data + off, res->delta_len[i], NULL))
            fuzz_fail("response: a delta that is not valid UTF-8");
        off += res->delta_len[i];
    }
    if (off != res->text.len)
        fuzz_fail("response: the deltas do not add up to the text");
    if (res->rc != MC_ERR_NONE && res->err[0] == '\0')
        fuzz_fail("response: a failed call without a message");
    if (res->n_calls > HP_TOOL_CALLS_MAX)
        fuzz_fail("response: more tool calls than kept at most");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > FUZZ_MAX_INPUT)
        return 0;
    if (mc_global_init() != 0)
        fuzz_fail("response: mc_global_init failed");
    static const char *const providers[4] = {"openai", "anthropic", "ollama", "openai"};
    static const size_t caps[4] = {0, 1024, 64, 4096};
    unsigned ctl = data[0];
    const char *provider = providers[ctl & 3];
    bool no_stream = (ctl & 4) != 0;
    size_t piece = (ctl >> 3) % 16 + 1; /* 1..16 bytes a piece */
    size_t cap = caps[data[1] & 3];
    /* The cap of memchat's variable is at least 1024; 64 reaches the
     * refusal paths with short inputs. */
    const char *body = (const char *)data + 2;
    size_t len = size - 2;

    char err[512] = "";
    struct hp_replay *r = hp_replay_new(provider, cap, err, sizeof err);
    if (r == NULL) {
        fprintf(stderr, "%s\n", err);
        fuzz_fail("response: hp_replay_new failed");
    }
    struct buf cut, whole;
    buf_init(&cut, (size_t)64 << 20);
    buf_init(&whole, (size_t)64 << 20);
    const struct hp_replay_result *res = hp_replay_stream(r, body, len, NULL, 0, piece, no_stream);
    check_result(res);
    if (hp_replay_format(res, &cut) != BUF_OK)
        fuzz_fail("response: hp_replay_format failed");
    res = hp_replay_stream(r, body, len, NULL, 0, 0, no_stream);
    check_result(res);
    if (hp_replay_format(res, &whole) != BUF_OK)
        fuzz_fail("response: hp_replay_format failed");
    if (cut.len != whole.len || memcmp(buf_cstr(&cut), buf_cstr(&whole), cut.len) != 0) {
        fprintf(stderr, "--- in pieces of %zu:\n%s--- whole:\n%s", piece, buf_cstr(&cut),
                buf_cstr(&whole));
        fuzz_fail("response: the body cut in pieces and whole give different results");
    }
    buf_free(&cut);
    buf_free(&whole);
    hp_replay_free(r);
    return 0;
}
