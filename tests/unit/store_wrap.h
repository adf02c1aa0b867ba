/*
 * A vector store that fails on demand: a wrapper around a real store
 * (normally the local one) that passes every operation through unless the
 * test armed a failure. Used by the manager's and the moves' unit tests
 * for the paths where a store (or a server behind one) breaks.
 */
#ifndef MEMCHAT_TEST_STORE_WRAP_H
#define MEMCHAT_TEST_STORE_WRAP_H

#include "testutil.h"

#include "memory/store.h"
#include "util/alloc.h"

struct wrap {
    struct vstore *real;
    bool fail_all;    /* every operation fails */
    bool fail_upsert; /* upsert writes, then reports a failure */
    int upserts_left; /* >= 0: upserts that succeed before each later one fails
                         without writing; -1: no limit */
};

static struct vstore *wrap_real(struct vstore *s)
{
    return ((struct wrap *)s->impl)->real;
}

/* An injected failure: a remote wrapper's looks like a server's. */
static int wrap_failed(struct vstore *s, char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "store wrap: %s", why);
    if (s->remote)
        s->last_fail = 1;
    return -1;
}

static int wrap_fail(struct vstore *s, char *err, size_t errlen)
{
    if (!((struct wrap *)s->impl)->fail_all)
        return 0;
    return wrap_failed(s, err, errlen, "connection refused");
}

static int w_ns_get(struct vstore *s, const char *t, struct store_ns *o, char *err, size_t el)
{
    if (wrap_fail(s, err, el))
        return -1;
    return wrap_real(s)->ops->ns_get(wrap_real(s), t, o, err, el);
}

static int w_ns_create(struct vstore *s, const char *t, const struct store_ns *ns, char *err,
                       size_t el)
{
    if (wrap_fail(s, err, el))
        return -1;
    return wrap_real(s)->ops->ns_create(wrap_real(s), t, ns, err, el);
}

static int w_upsert(struct vstore *s, const char *t, const struct mem_record *r, size_t n,
                    char *err, size_t el)
{
    struct wrap *w = s->impl;
    if (wrap_fail(s, err, el))
        return -1;
    if (w->upserts_left == 0)
        return wrap_failed(s, err, el, "service unavailable");
    if (w->upserts_left > 0)
        w->upserts_left--;
    int rc = wrap_real(s)->ops->upsert(wrap_real(s), t, r, n, err, el);
    if (rc == 0 && w->fail_upsert)
        return wrap_failed(s, err, el, "disk full after the write");
    return rc;
}

static int w_query(struct vstore *s, const char *t, const float *q, size_t k,
                   const struct mem_filter *f, struct mem_records *o, char *err, size_t el)
{
    if (wrap_fail(s, err, el))
        return -1;
    return wrap_real(s)->ops->query(wrap_real(s), t, q, k, f, o, err, el);
}

static int w_keyword(struct vstore *s, const char *t, const char *text, size_t k,
                     const struct mem_filter *f, struct mem_records *o, char *err, size_t el)
{
    if (wrap_fail(s, err, el))
        return -1;
    return wrap_real(s)->ops->keyword(wrap_real(s), t, text, k, f, o, err, el);
}

static int w_list(struct vstore *s, const char *t, const struct mem_filter *f, const char *after,
                  size_t limit, bool wv, struct mem_records *o, char *err, size_t el)
{
    if (wrap_fail(s, err, el))
        return -1;
    return wrap_real(s)->ops->list(wrap_real(s), t, f, after, limit, wv, o, err, el);
}

static int w_delete_ids(struct vstore *s, const char *t, const char *const *ids, size_t n,
                        size_t *d, char *err, size_t el)
{
    if (wrap_fail(s, err, el))
        return -1;
    return wrap_real(s)->ops->delete_ids(wrap_real(s), t, ids, n, d, err, el);
}

static int w_delete_filter(struct vstore *s, const char *t, const struct mem_filter *f, size_t *d,
                           char *err, size_t el)
{
    if (wrap_fail(s, err, el))
        return -1;
    return wrap_real(s)->ops->delete_filter(wrap_real(s), t, f, d, err, el);
}

static int w_count(struct vstore *s, const char *t, const struct mem_filter *f, size_t *n,
                   char *err, size_t el)
{
    if (wrap_fail(s, err, el))
        return -1;
    return wrap_real(s)->ops->count(wrap_real(s), t, f, n, err, el);
}

static int w_stats(struct vstore *s, const char *t, struct store_stats *o, char *err, size_t el)
{
    if (wrap_fail(s, err, el))
        return -1;
    return wrap_real(s)->ops->stats(wrap_real(s), t, o, err, el);
}

static int w_namespaces(struct vstore *s, char ***t, size_t *n, char *err, size_t el)
{
    if (wrap_fail(s, err, el))
        return -1;
    return wrap_real(s)->ops->namespaces(wrap_real(s), t, n, err, el);
}

static void w_free(struct vstore *s)
{
    store_free(wrap_real(s));
    xfree(s->impl);
    xfree(s);
}

static const struct vstore_ops wrap_ops = {
    .ns_get = w_ns_get,
    .ns_create = w_ns_create,
    .upsert = w_upsert,
    .query = w_query,
    .keyword = w_keyword,
    .list = w_list,
    .delete_ids = w_delete_ids,
    .delete_filter = w_delete_filter,
    .count = w_count,
    .stats = w_stats,
    .namespaces = w_namespaces,
    .free = w_free,
};

/* The store real (taken over) behind a wrapper called name; remote makes
 * it look like a server's store (its failures set last_fail). *w lets the
 * test flip failures. Free with store_free(). */
static struct vstore *wrap_new(struct vstore *real, const char *name, bool remote, struct wrap **w)
{
    struct vstore *s = xcalloc(1, sizeof *s);
    struct wrap *impl = xcalloc(1, sizeof *impl);
    assert_non_null(real);
    impl->real = real;
    impl->upserts_left = -1;
    s->ops = &wrap_ops;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->remote = remote;
    s->impl = impl;
    *w = impl;
    return s;
}

#endif
