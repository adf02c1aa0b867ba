/*
 * Memory filters in the JSON form users know from vector databases:
 * {"user_id": {"$eq": "u1"}}, {"user_id": "u1"} (shorthand for $eq),
 * $in/$nin with a list, $ne, $gt/$gte/$lt/$lte (numbers: created_at, or a
 * numeric metadata value), $and/$or with a list of filters, and several keys
 * in one object meaning all of them. Keys are a memory's fields (id,
 * user_id, agent, kind, created_at) or, any other key not starting with
 * "$", a top-level key of its metadata (`memchat memory add --meta
 * KEY=VALUE`). Comparisons are typed: a string matches only a string, a
 * number (compared as a double) only a number, a boolean only a boolean,
 * so {"n": 1} does not match the metadata {"n": "1"}. The parsed form is
 * a small tree that each store translates to its own query language: the
 * local store to an SQL WHERE clause (filter_sql), the remote stores of a
 * later issue to theirs; filter_match evaluates it on one record, which the
 * tests use as the reference.
 */
#ifndef MEMCHAT_MEMORY_FILTER_H
#define MEMCHAT_MEMORY_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct mem_record;

enum filter_op {
    FILTER_AND,
    FILTER_OR,
    FILTER_EQ,
    FILTER_NE,
    FILTER_IN,
    FILTER_NIN,
    FILTER_GT,
    FILTER_GTE,
    FILTER_LT,
    FILTER_LTE,
};

/* What a condition's key names: one of the record's fields, or a
 * metadata key. */
enum filter_field {
    FILTER_FIELD_META,
    FILTER_FIELD_ID,
    FILTER_FIELD_USER,
    FILTER_FIELD_AGENT,
    FILTER_FIELD_KIND,
    FILTER_FIELD_CREATED,
};

/* A value compared with: a string, a number or a boolean. */
enum filter_vtype { FILTER_V_STRING, FILTER_V_NUMBER, FILTER_V_BOOL };
struct filter_value {
    enum filter_vtype type;
    char *s;  /* FILTER_V_STRING, owned */
    double n; /* FILTER_V_NUMBER */
    bool b;   /* FILTER_V_BOOL */
};

/* One node: $and/$or hold children; the others compare one key. */
struct mem_filter {
    enum filter_op op;
    char *key;                   /* comparisons: the field or metadata key, owned */
    bool is_meta;                /* key is a metadata key, not one of the fields */
    struct filter_value *values; /* comparisons: 1 value, or the list of $in/$nin */
    size_t n_values;
    struct mem_filter **kids; /* $and/$or */
    size_t n_kids;
};

/* The field key names ("id", "user_id", "agent", "kind", "created_at"),
 * FILTER_FIELD_META for any other key, a NULL one, or when is_meta. */
enum filter_field filter_field_of(const char *key, bool is_meta);
/* True for $gt $gte $lt $lte. */
bool filter_op_is_range(enum filter_op op);

/* Parses a filter from JSON text. NULL with a message pointing at the
 * problem (the JSON path, e.g. "$and[1].user_id: unknown operator
 * \"$eqq\" (accepted: $eq $ne $in $nin $gt $gte $lt $lte)", or the byte
 * offset of a JSON syntax error) when it does not parse or breaks the
 * rules: fields compared with the wrong type (created_at takes numbers;
 * id, user_id, agent and kind take strings, ids must be valid), an empty
 * $in, $and or $or, nesting deeper than 32, more than 1,000 nodes.
 * Free with filter_free(). */
struct mem_filter *filter_parse(const char *json, char *err, size_t errlen);
/* A filter that is a and b (either may be NULL: the other is copied);
 * NULL when both are NULL. The inputs stay the caller's. Free the result
 * with filter_free(). */
struct mem_filter *filter_and(const struct mem_filter *a, const struct mem_filter *b);
/* {"user_id": {"$eq": user}}. Free with filter_free(). */
struct mem_filter *filter_eq(const char *key, const char *value);
/* A deep copy; NULL for NULL. */
struct mem_filter *filter_copy(const struct mem_filter *f);
/* Frees f and its children; NULL is a no-op. */
void filter_free(struct mem_filter *f);

/* The filter as compact JSON (for events and messages), appended to out. */
int filter_to_json(const struct mem_filter *f, struct buf *out);

/* Appends an SQL boolean expression equivalent to f over a table with the
 * columns id, user_id, agent, kind, created_at and metadata (JSON text),
 * column names prefixed with prefix (e.g. "m."), every value as a `?`
 * parameter; binds go to the caller through bind(ud, index-from-0, value)
 * in the order of the `?`s, each value pointing into f (bind strings as
 * text, numbers as doubles, booleans as the integers 0/1). A metadata key
 * becomes an EXISTS over json_each(metadata) comparing the decoded key
 * with the key as an SQL string literal (quotes doubled): a json_extract
 * path cannot name keys holding quotes or escapes. NULL f appends "1". 0,
 * or -1 when out is full. */
int filter_sql(const struct mem_filter *f, const char *prefix, struct buf *out,
               void (*bind)(void *ud, int index, const struct filter_value *v), void *ud);

/* True when record r (its fields and its metadata JSON) satisfies f; a
 * NULL filter matches everything. A metadata key that is missing matches
 * only $ne and $nin. */
bool filter_match(const struct mem_filter *f, const struct mem_record *r);

#endif
