/*
 * Tests of util/uuid: the UUIDv7 layout (RFC 9562: version nibble 7,
 * variant bits 10), validation, the timestamp round trip against the wall
 * clock, strict ordering of ids from one thread even within a millisecond,
 * and uniqueness across two threads generating at once.
 */
#include "testutil.h"

#include "util/uuid.h"

#include <pthread.h>

#include "util/clock.h"

/* Asserts s is a canonical lowercase UUIDv7. */
static void assert_uuid7_layout(const char *s)
{
    assert_int_equal(strlen(s), UUID_STRLEN);
    for (int i = 0; i < UUID_STRLEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(s[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", s[i]));
    }
    assert_int_equal(s[14], '7');           /* version */
    assert_non_null(strchr("89ab", s[19])); /* variant 10xx */
    assert_true(uuid_valid(s));
}

/* The timestamp comes from the wall clock at creation: within the wall
 * milliseconds read just before and after. Runs first, while the
 * generator has not been pushed ahead of the clock by a burst. */
static void time_ms_round_trips_the_creation_time(void **state)
{
    (void)state;
    for (int i = 0; i < 100; i++) {
        char id[UUID_STRLEN + 1];
        int64_t before = clock_wall_ms();
        uuid7_new(id);
        int64_t after = clock_wall_ms();
        int64_t t = uuid7_time_ms(id);
        assert_true(t >= before);
        assert_true(t <= after);
    }
}

/* New ids have the v7 layout; across many ids the random variant bits
 * take more than one value (they are not hard-wired beyond the top two). */
static void new_ids_have_the_v7_layout(void **state)
{
    (void)state;
    bool seen[4] = {false};
    for (int i = 0; i < 1000; i++) {
        char id[UUID_STRLEN + 1];
        memset(id, 'Z', sizeof id);
        uuid7_new(id);
        assert_uuid7_layout(id);
        seen[strchr("89ab", id[19]) - "89ab"] = true;
    }
    assert_true(seen[0] + seen[1] + seen[2] + seen[3] >= 2);
}

/* uuid_valid accepts any canonical UUID in either case and rejects wrong
 * lengths, dashes out of place and non-hex characters. */
static void valid_accepts_canonical_uuids_only(void **state)
{
    (void)state;
    assert_true(uuid_valid("0190b4a2-7c3e-7d4f-9a1b-2c3d4e5f6a7b"));
    assert_true(uuid_valid("0190B4A2-7C3E-7D4F-9A1B-2C3D4E5F6A7B"));
    assert_true(uuid_valid("550e8400-e29b-41d4-a716-446655440000")); /* v4 */
    assert_true(uuid_valid("00000000-0000-0000-0000-000000000000"));
    static const char *const bad[] = {
        "",
        "0190b4a2-7c3e-7d4f-9a1b-2c3d4e5f6a7",   /* 35 */
        "0190b4a2-7c3e-7d4f-9a1b-2c3d4e5f6a7bc", /* 37 */
        "0190b4a27c3e-7d4f-9a1b-2c3d4e5f6a7b-",  /* dash moved */
        "0190b4a2-7c3e-7d4f-9a1b2c3d4e5f6a7b0",  /* dash missing */
        "0190b4a2-7c3e-7d4f-9a1b-2c3d4e5f6a7g",  /* g */
        "0190b4a2-7c3e-7d4f-9a1b-2c3d4e5f6a7 ",
        "{0190b4a2-7c3e-7d4f-9a1b-2c3d4e5f6a}",
        "0190b4a2_7c3e_7d4f_9a1b_2c3d4e5f6a7b",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(uuid_valid(bad[i]));
}

/* time_ms reads the 48-bit big-endian prefix of a v7 id and refuses other
 * versions, ids whose variant is not RFC 9562's, and invalid strings. */
static void time_ms_reads_only_uuid7(void **state)
{
    (void)state;
    assert_int_equal(uuid7_time_ms("0190b4a2-7c3e-7d4f-9a1b-2c3d4e5f6a7b"), 0x0190b4a27c3eLL);
    assert_int_equal(uuid7_time_ms("FFFFFFFF-FFFF-7FFF-BFFF-FFFFFFFFFFFF"), 0xffffffffffffLL);
    assert_int_equal(uuid7_time_ms("00000000-0000-7000-8000-000000000000"), 0);
    assert_int_equal(uuid7_time_ms("550e8400-e29b-41d4-a716-446655440000"), -1);
    assert_int_equal(uuid7_time_ms("0190b4a2-7c3e-7d4f-7a1b-2c3d4e5f6a7b"), -1); /* NCS variant */
    assert_int_equal(uuid7_time_ms("0190b4a2-7c3e-7d4f-ca1b-2c3d4e5f6a7b"), -1); /* MS variant */
    assert_int_equal(uuid7_time_ms("not a uuid"), -1);
}

/* 10,000 ids from one thread, most made within the same millisecond, are
 * strictly increasing as strings (what stores sort by). */
static void ids_from_one_thread_strictly_increase(void **state)
{
    (void)state;
    char prev[UUID_STRLEN + 1], cur[UUID_STRLEN + 1];
    uuid7_new(prev);
    for (int i = 0; i < 10000; i++) {
        uuid7_new(cur);
        if (strcmp(prev, cur) >= 0)
            fail_msg("id %d not increasing: %s then %s", i, prev, cur);
        memcpy(prev, cur, sizeof cur);
    }
}

#define PER_THREAD 10000

struct gen {
    char (*ids)[UUID_STRLEN + 1];
};

static void *gen_thread(void *arg)
{
    struct gen *g = arg;
    for (int i = 0; i < PER_THREAD; i++)
        uuid7_new(g->ids[i]);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Two threads generating at once get no id twice, and each thread's own
 * ids still increase. */
static void ids_from_two_threads_are_unique(void **state)
{
    (void)state;
    char(*all)[UUID_STRLEN + 1] = calloc(2 * PER_THREAD, sizeof *all);
    assert_non_null(all);
    struct gen g[2] = {{all}, {all + PER_THREAD}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, gen_thread, &g[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int k = 0; k < 2; k++)
        for (int i = 1; i < PER_THREAD; i++)
            assert_true(strcmp(g[k].ids[i - 1], g[k].ids[i]) < 0);
    qsort(all, 2 * PER_THREAD, sizeof *all, cmp_id);
    for (int i = 1; i < 2 * PER_THREAD; i++)
        if (strcmp(all[i - 1], all[i]) == 0)
            fail_msg("duplicate id %s", all[i]);
    for (int i = 0; i < 2 * PER_THREAD; i++)
        assert_uuid7_layout(all[i]);
    free(all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(time_ms_round_trips_the_creation_time),
        cmocka_unit_test(new_ids_have_the_v7_layout),
        cmocka_unit_test(valid_accepts_canonical_uuids_only),
        cmocka_unit_test(time_ms_reads_only_uuid7),
        cmocka_unit_test(ids_from_one_thread_strictly_increase),
        cmocka_unit_test(ids_from_two_threads_are_unique),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
