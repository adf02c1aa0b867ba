/*
 * The stop-word list of stopwords.h. Function words only: pronouns,
 * articles, auxiliaries, prepositions and conjunctions, as in the usual
 * information-retrieval lists; "not" and "no" are on it because the
 * embedder damps rather than drops, so they still count a little there.
 */
#include "config.h"

#include "memory/stopwords.h"

#include <stdlib.h>
#include <string.h>

static const char *const stop_words[] = {
    "a",         "about",  "above",   "after",      "again",      "against", "all",     "also",
    "am",        "an",     "and",     "any",        "are",        "as",      "at",      "be",
    "because",   "been",   "before",  "being",      "below",      "between", "both",    "but",
    "by",        "can",    "could",   "did",        "do",         "does",    "doing",   "down",
    "during",    "each",   "few",     "for",        "from",       "further", "had",     "has",
    "have",      "having", "he",      "her",        "here",       "hers",    "herself", "him",
    "himself",   "his",    "how",     "i",          "if",         "in",      "into",    "is",
    "it",        "its",    "itself",  "just",       "may",        "me",      "might",   "more",
    "most",      "must",   "my",      "myself",     "no",         "nor",     "not",     "of",
    "off",       "on",     "once",    "only",       "or",         "other",   "our",     "ours",
    "ourselves", "out",    "over",    "own",        "s",          "same",    "shall",   "she",
    "should",    "so",     "some",    "such",       "t",          "than",    "that",    "the",
    "their",     "theirs", "them",    "themselves", "then",       "there",   "these",   "they",
    "this",      "those",  "through", "to",         "too",        "under",   "until",   "up",
    "us",        "very",   "was",     "we",         "were",       "what",    "when",    "where",
    "which",     "while",  "who",     "whom",       "why",        "will",    "with",    "would",
    "you",       "your",   "yours",   "yourself",   "yourselves",
};

#define STOP_LEN_MAX 16 /* longer than any word on the list */

const char *const *stopwords_list(size_t *n)
{
    *n = sizeof stop_words / sizeof stop_words[0];
    return stop_words;
}

static int stop_cmp(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

bool stopword_is(const char *w, size_t len)
{
    if (len == 0 || len >= STOP_LEN_MAX)
        return false;
    char low[STOP_LEN_MAX];
    for (size_t i = 0; i < len; i++) {
        char c = w[i];
        low[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    low[len] = '\0';
    return bsearch(low, stop_words, sizeof stop_words / sizeof stop_words[0], sizeof stop_words[0],
                   stop_cmp) != NULL;
}
