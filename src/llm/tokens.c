/*
 * The token heuristic of tokens.h. Byte-pair tokenizers of the common
 * models give about 4 characters of English per token; alphabets encoded in
 * two UTF-8 bytes (Latin with accents, Greek, Cyrillic, Hebrew, Arabic)
 * split into roughly one token per 2 characters; CJK ideographs, emoji and
 * other characters of 3 or 4 bytes are about one token each. The estimate
 * counts in quarter tokens to stay in integers and rounds up, so a prompt is
 * never estimated smaller than it is by rounding alone. Invalid bytes count
 * as one wide character each: they cost at least a token in any tokenizer.
 */
#include "config.h"

#include "llm/tokens.h"

#include <string.h>

long long tokens_estimate(const char *s, size_t n)
{
    long long quarters = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len;
        if (c < 0x80)
            len = 1;
        else if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4;
        else
            len = 0; /* a stray continuation or invalid lead byte */
        /* A truncated sequence at the end counts like an invalid byte. */
        if (len > n - i)
            len = 0;
        for (size_t k = 1; k < len; k++)
            if (((unsigned char)s[i + k] & 0xc0) != 0x80)
                len = 0;
        if (len == 1)
            quarters += 1;
        else if (len == 2)
            quarters += 2;
        else
            quarters += 4;
        i += len ? len : 1;
    }
    return (quarters + 3) / 4;
}

long long tokens_estimate_message(const struct llm_message *m)
{
    const char *c = m->content != NULL ? m->content : "";
    return tokens_estimate(c, strlen(c)) + TOKENS_PER_MESSAGE;
}

long long tokens_estimate_messages(const struct llm_message *msgs, size_t n)
{
    long long total = TOKENS_PER_REQUEST;
    for (size_t i = 0; i < n; i++)
        total += tokens_estimate_message(&msgs[i]);
    return total;
}
