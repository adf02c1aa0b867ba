/*
 * The credential patterns of redact.h, matched by hand: each is a literal
 * prefix at a token boundary followed by at least min token characters
 * (letters, digits, '-', '_', and for some '.', '/', '+', '='). A PEM
 * private key is cut from its BEGIN line to its END line.
 */
#include "config.h"

#include "util/redact.h"

#include <stdbool.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"

struct redact_pattern {
    const char *prefix;
    size_t min; /* token characters needed after the prefix */
    bool wide;  /* also '.', '/', '+', '=' (bearer and base64-like tokens) */
};

static const struct redact_pattern redact_patterns[] = {
    {"sk-", 16, false},  /* OpenAI, Anthropic (sk-ant-), many compatible APIs */
    {"ghp_", 20, false}, /* GitHub tokens */
    {"gho_", 20, false},   {"ghu_", 20, false},        {"ghs_", 20, false},
    {"ghr_", 20, false},   {"github_pat_", 20, false}, {"xoxb-", 10, false}, /* Slack */
    {"xoxp-", 10, false},  {"xoxa-", 10, false},       {"xoxs-", 10, false},
    {"AKIA", 16, false},  /* AWS access key ids */
    {"AIza", 30, false},  /* Google API keys */
    {"hf_", 20, false},   /* Hugging Face */
    {"pcsk_", 20, false}, /* Pinecone */
    {"Bearer ", 16, true},
};

static bool redact_token_char(char c, bool wide)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_')
        return true;
    return wide && (c == '.' || c == '/' || c == '+' || c == '=');
}

/* The length of a credential starting at s[i] (0 when none). */
static size_t redact_match(const char *s, size_t n, size_t i)
{
    static const char pem_begin[] = "-----BEGIN ";
    static const char pem_end[] = "PRIVATE KEY-----";
    if (n - i > sizeof pem_begin && memcmp(s + i, pem_begin, sizeof pem_begin - 1) == 0) {
        const char *line_end = memchr(s + i, '\n', n - i);
        size_t head = line_end != NULL ? (size_t)(line_end - (s + i)) : n - i;
        const char *key = memmem(s + i, head, pem_end, sizeof pem_end - 1);
        if (key != NULL) {
            const char *end = memmem(key + 1, n - (size_t)(key + 1 - s), "-----END ", 9);
            const char *stop = end != NULL
                                   ? memmem(end, n - (size_t)(end - s), pem_end, sizeof pem_end - 1)
                                   : NULL;
            return stop != NULL ? (size_t)(stop - (s + i)) + sizeof pem_end - 1 : n - i;
        }
    }
    if (i > 0 && redact_token_char(s[i - 1], false))
        return 0; /* not at a token boundary */
    for (size_t p = 0; p < sizeof redact_patterns / sizeof redact_patterns[0]; p++) {
        const struct redact_pattern *pat = &redact_patterns[p];
        size_t plen = strlen(pat->prefix);
        if (n - i < plen + pat->min || memcmp(s + i, pat->prefix, plen) != 0)
            continue;
        size_t j = i + plen;
        while (j < n && redact_token_char(s[j], pat->wide))
            j++;
        if (j - (i + plen) >= pat->min)
            return j - i;
    }
    return 0;
}

char *redact_secrets(const char *s, size_t n, size_t *count)
{
    size_t found = 0;
    struct buf out;
    bool started = false;
    size_t copied = 0; /* s[0..copied) is in out */
    for (size_t i = 0; i < n;) {
        size_t len = redact_match(s, n, i);
        if (len == 0) {
            i++;
            continue;
        }
        if (!started) {
            buf_init(&out, n + 1);
            started = true;
        }
        buf_append(&out, s + copied, i - copied);
        buf_puts(&out, REDACT_MARK);
        found++;
        i += len;
        copied = i;
    }
    if (count != NULL)
        *count = found;
    if (!started)
        return NULL;
    buf_append(&out, s + copied, n - copied);
    return buf_take(&out);
}
