/*
 * Tests of util/buf: appends of every kind and their NUL termination, the
 * maximum (exactly max fits, one more resets the buffer and allocates
 * nothing), allocation failure through the alloc layer's fault injection,
 * consume and take, and growth checked against a plain array over many
 * appends of random sizes.
 */
#include "testutil.h"

#include "util/buf.h"

#include "util/alloc.h"

/* Asserts the buffer holds exactly want[0..n) followed by a NUL. */
static void assert_buf_is(const struct buf *b, const void *want, size_t n)
{
    assert_int_equal(b->len, n);
    assert_non_null(b->data);
    assert_memory_equal(b->data, want, n);
    assert_int_equal(b->data[n], '\0');
    assert_true(b->cap >= n + 1);
}

/* append, puts, putc and printf add in order, keep a NUL after the last
 * byte (not counted in len), and append copies embedded NULs. */
static void appends_concatenate_and_stay_nul_terminated(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1000);
    assert_int_equal(buf_append(&b, "ab", 2), BUF_OK);
    assert_buf_is(&b, "ab", 2);
    assert_int_equal(buf_puts(&b, "cd"), BUF_OK);
    assert_int_equal(buf_putc(&b, 'e'), BUF_OK);
    assert_int_equal(buf_printf(&b, "[%d|%s|%05.1f]", -42, "x", 3.14159), BUF_OK);
    assert_buf_is(&b, "abcde[-42|x|003.1]", 18);
    assert_string_equal(buf_cstr(&b), "abcde[-42|x|003.1]");
    assert_int_equal(buf_append(&b, "\0z", 2), BUF_OK);
    assert_buf_is(&b, "abcde[-42|x|003.1]\0z", 20);
    assert_int_equal(buf_append(&b, NULL, 0), BUF_OK); /* nothing is fine */
    assert_int_equal(b.len, 20);
    buf_free(&b);
}

/* A new or freed buffer holds no memory and reads as "". */
static void an_empty_buffer_reads_as_the_empty_string(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 10);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_cstr(&b), "");
    assert_int_equal(buf_puts(&b, "abc"), BUF_OK);
    buf_free(&b);
    assert_null(b.data);
    assert_string_equal(buf_cstr(&b), "");
    assert_int_equal(b.max, 10); /* still usable, same bound */
    assert_int_equal(buf_puts(&b, "0123456789"), BUF_OK);
    buf_free(&b);
}

/* Exactly max bytes fit, by one append or by many; the append that would
 * pass max returns BUF_TOO_BIG and resets the buffer (len 0, data NULL),
 * after which it can be used again. */
static void the_maximum_is_inclusive_and_passing_it_resets(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_append(&b, "0123456789", 10), BUF_OK);
    assert_buf_is(&b, "0123456789", 10);
    assert_int_equal(buf_putc(&b, 'x'), BUF_TOO_BIG);
    assert_int_equal(b.len, 0);
    assert_null(b.data);
    assert_string_equal(buf_cstr(&b), "");

    for (int i = 0; i < 10; i++)
        assert_int_equal(buf_putc(&b, (char)('0' + i)), BUF_OK);
    assert_buf_is(&b, "0123456789", 10);
    assert_int_equal(buf_puts(&b, ""), BUF_OK); /* adding nothing at max is fine */
    assert_int_equal(buf_printf(&b, "%s", "!"), BUF_TOO_BIG);
    assert_null(b.data);

    assert_int_equal(buf_puts(&b, "12345"), BUF_OK);
    assert_int_equal(buf_printf(&b, "%d", 123456), BUF_TOO_BIG);
    assert_int_equal(b.len, 0);
    assert_null(b.data);
    buf_free(&b);

    /* max 0: only nothing fits. */
    buf_init(&b, 0);
    assert_int_equal(buf_append(&b, "", 0), BUF_OK);
    assert_string_equal(buf_cstr(&b), "");
    assert_int_equal(buf_putc(&b, 'a'), BUF_TOO_BIG);
    buf_free(&b);
}

/* An append over the bound is refused before any allocation, however large
 * (a hostile length must not reach malloc). */
static void an_oversized_append_allocates_nothing(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 100);
    unsigned long before = alloc_count();
    assert_int_equal(buf_append(&b, "x", SIZE_MAX), BUF_TOO_BIG);
    assert_int_equal(buf_append(&b, "x", 101), BUF_TOO_BIG);
    assert_int_equal(alloc_count(), before);
    assert_null(b.data);
}

/* A buffer bounded by SIZE_MAX (in effect unbounded) still grows
 * correctly: the bound arithmetic must not wrap around. */
static void a_size_max_bound_does_not_wrap(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, SIZE_MAX);
    for (int i = 0; i < 100; i++)
        assert_int_equal(buf_puts(&b, "0123456789"), BUF_OK);
    assert_int_equal(b.len, 1000);
    assert_true(b.cap >= 1001);
    assert_int_equal(buf_cstr(&b)[999], '9');
    assert_int_equal(buf_append(&b, "x", SIZE_MAX), BUF_TOO_BIG);
    buf_free(&b);
}

/* A failed allocation gives BUF_NO_MEM and resets the buffer, freeing what
 * it held (the sanitizers and valgrind would report a leak otherwise), on
 * the first allocation and on a later growth; printf too. */
static void allocation_failure_resets_the_buffer(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1 << 20);
    alloc_fail_after(1, 0);
    assert_int_equal(buf_puts(&b, "abc"), BUF_NO_MEM);
    alloc_fail_after(0, 0);
    assert_null(b.data);
    assert_int_equal(b.len, 0);

    char block[100];
    memset(block, 'q', sizeof block);
    assert_int_equal(buf_append(&b, block, sizeof block), BUF_OK);
    alloc_fail_after(1, 0);
    enum buf_result r = BUF_OK;
    for (int i = 0; i < 100 && r == BUF_OK; i++)
        r = buf_append(&b, block, sizeof block); /* the next growth fails */
    alloc_fail_after(0, 0);
    assert_int_equal(r, BUF_NO_MEM);
    assert_null(b.data);
    assert_int_equal(b.len, 0);

    alloc_fail_after(1, 0);
    assert_int_equal(buf_printf(&b, "%d", 7), BUF_NO_MEM);
    alloc_fail_after(0, 0);
    assert_null(b.data);
    assert_int_equal(buf_printf(&b, "%d", 7), BUF_OK); /* usable again */
    assert_string_equal(buf_cstr(&b), "7");
    buf_free(&b);
}

/* reset empties but keeps the allocation; consume drops a prefix. */
static void reset_and_consume_remove_content(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 100);
    buf_reset(&b); /* on a buffer that never allocated */
    assert_null(b.data);
    assert_int_equal(buf_puts(&b, "hello world"), BUF_OK);
    char *p = b.data;
    buf_consume(&b, 0);
    assert_buf_is(&b, "hello world", 11);
    buf_consume(&b, 6);
    assert_buf_is(&b, "world", 5);
    buf_consume(&b, 5);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_cstr(&b), "");
    assert_int_equal(buf_puts(&b, "again"), BUF_OK);
    buf_consume(&b, 999);
    assert_int_equal(b.len, 0);
    assert_int_equal(buf_puts(&b, "more"), BUF_OK);
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_cstr(&b), "");
    assert_ptr_equal(b.data, p);
    buf_free(&b);
    buf_consume(&b, 3); /* on a freed buffer: nothing happens */
    assert_null(b.data);
}

/* take hands over the string and leaves the buffer empty and usable; an
 * empty buffer gives an allocated "". */
static void take_hands_over_the_contents(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 100);
    char *s = buf_take(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    xfree(s);
    assert_int_equal(buf_puts(&b, "mine"), BUF_OK);
    s = buf_take(&b);
    assert_string_equal(s, "mine");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(buf_puts(&b, "next"), BUF_OK);
    assert_string_equal(buf_cstr(&b), "next");
    assert_string_equal(s, "mine"); /* independent of the buffer */
    xfree(s);
    buf_free(&b);
}

/* Thousands of appends, puts, putc, printf and consumes of random sizes
 * leave exactly the bytes a plain array says, with cap within
 * [len + 1, max + 1]. */
static void growth_stays_correct_across_many_appends(void **state)
{
    (void)state;
    enum { MAX = 200000 };
    static char ref[MAX + 1];
    size_t rlen = 0;
    uint64_t x = 88172645463325252ULL;
    struct buf b;
    buf_init(&b, MAX);
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        char chunk[64];
        size_t n = x % sizeof chunk;
        for (size_t k = 0; k < n; k++)
            chunk[k] = (char)(x >> (k % 56));
        switch ((x >> 60) % 5) {
        case 0:
            if (rlen + n > MAX)
                continue;
            assert_int_equal(buf_append(&b, chunk, n), BUF_OK);
            memcpy(ref + rlen, chunk, n);
            rlen += n;
            break;
        case 1:
            if (rlen + 1 > MAX)
                continue;
            assert_int_equal(buf_putc(&b, chunk[0]), BUF_OK);
            ref[rlen++] = chunk[0];
            break;
        case 2: {
            char tmp[32];
            int len = snprintf(tmp, sizeof tmp, "<%llu>", (unsigned long long)(x % 100000));
            if (rlen + (size_t)len > MAX)
                continue;
            assert_int_equal(buf_printf(&b, "<%llu>", (unsigned long long)(x % 100000)), BUF_OK);
            memcpy(ref + rlen, tmp, (size_t)len);
            rlen += (size_t)len;
            break;
        }
        case 3: {
            size_t c = (x >> 20) % 40;
            buf_consume(&b, c);
            c = c > rlen ? rlen : c;
            memmove(ref, ref + c, rlen - c);
            rlen -= c;
            break;
        }
        default:
            if (rlen + 3 > MAX)
                continue;
            assert_int_equal(buf_puts(&b, "xyz"), BUF_OK);
            memcpy(ref + rlen, "xyz", 3);
            rlen += 3;
            break;
        }
        assert_int_equal(b.len, rlen);
        if (b.data != NULL) {
            assert_true(b.cap >= b.len + 1 && b.cap <= (size_t)MAX + 1);
            assert_int_equal(b.data[b.len], '\0');
        }
    }
    assert_true(rlen > 10000); /* the walk did grow the buffer a lot */
    assert_memory_equal(b.data, ref, rlen);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(appends_concatenate_and_stay_nul_terminated),
        cmocka_unit_test(an_empty_buffer_reads_as_the_empty_string),
        cmocka_unit_test(the_maximum_is_inclusive_and_passing_it_resets),
        cmocka_unit_test(an_oversized_append_allocates_nothing),
        cmocka_unit_test(a_size_max_bound_does_not_wrap),
        cmocka_unit_test(allocation_failure_resets_the_buffer),
        cmocka_unit_test(reset_and_consume_remove_content),
        cmocka_unit_test(take_hands_over_the_contents),
        cmocka_unit_test(growth_stays_correct_across_many_appends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
