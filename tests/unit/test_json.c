/*
 * Tests of util/json, the parser of outside text, with cJSON's allocator as
 * mc_global_init installs it: malformed text and want of memory are both a
 * NULL, told apart by errno; a failure at every allocation of a parse is
 * an ENOMEM and never an abort (the fault seam counts each one), and a
 * parse that survives gives the whole tree; json_parse_str refuses text
 * after the value; building JSON outside a parse stays abort-on-failure.
 */
#include "testutil.h"

#include "util/json.h"

#include <cJSON.h>
#include <errno.h>

#include "memchat/engine.h"
#include "util/alloc.h"

static int setup(void **state)
{
    (void)state;
    return mc_global_init();
}

/* A document with every kind of node, strings long enough to be copied. */
static const char doc[] = "{\"name\":\"a fairly long string value\",\"n\":12.5,\"ok\":true,"
                          "\"none\":null,\"list\":[1,\"two\",{\"three\":[3,3,3]}],"
                          "\"nested\":{\"deeper\":{\"deepest\":\"yes, deepest\"}}}";

/* The parse of doc is exactly the document (printing it gives the text). */
static void expect_doc(const cJSON *j)
{
    assert_non_null(j);
    char *text = cJSON_PrintUnformatted(j);
    assert_string_equal(text, doc);
    cJSON_free(text);
}

static void valid_text_parses_and_malformed_text_is_einval(void **state)
{
    (void)state;
    cJSON *j = json_parse(doc, sizeof doc, NULL, true);
    expect_doc(j);
    cJSON_Delete(j);

    const char *end = NULL;
    const char bad[] = "{\"a\": [1, 2,, 3]}";
    errno = 0;
    assert_null(json_parse(bad, sizeof bad, &end, true));
    assert_int_equal(errno, EINVAL);
    assert_non_null(end);
    assert_true(end >= bad && end < bad + sizeof bad);
    assert_int_equal(end - bad, 12); /* the second comma */
}

/* json_parse_str wants one value and nothing after it but white space;
 * json_parse without require_nul stops after the value and says where. */
static void trailing_text_is_refused_by_json_parse_str(void **state)
{
    (void)state;
    cJSON *j = json_parse_str("{\"a\":1}\r\n\t ");
    assert_non_null(j);
    cJSON_Delete(j);
    errno = 0;
    assert_null(json_parse_str("{\"a\":1} {\"b\":2}"));
    assert_int_equal(errno, EINVAL);

    const char two[] = "[1] [2]";
    const char *end = NULL;
    j = json_parse(two, sizeof two, &end, false);
    assert_non_null(j);
    assert_int_equal(end - two, 3);
    cJSON_Delete(j);
}

/* Every allocation of the parse, failed in turn (and from there on):
 * NULL with ENOMEM, no abort, no leak (valgrind and ASan run this), and the
 * next parse is whole again. */
static void a_failure_at_any_allocation_is_enomem(void **state)
{
    (void)state;
    unsigned long before = alloc_count();
    cJSON *j = json_parse(doc, sizeof doc, NULL, true);
    unsigned long used = alloc_count() - before;
    cJSON_Delete(j);
    assert_true(used > 20);
    for (int sticky = 0; sticky <= 1; sticky++) {
        for (unsigned long n = 1; n <= used; n++) {
            errno = 0;
            alloc_fail_after(n, sticky);
            j = json_parse(doc, sizeof doc, NULL, true);
            alloc_fail_after(0, 0);
            if (j != NULL)
                fail_msg("allocation %lu of %lu failed (sticky %d), yet a tree came back", n, used,
                         sticky);
            if (errno != ENOMEM)
                fail_msg("allocation %lu of %lu failed (sticky %d): errno %d, not ENOMEM", n, used,
                         sticky, errno);
            j = json_parse(doc, sizeof doc, NULL, true);
            expect_doc(j);
            cJSON_Delete(j);
        }
    }
}

/* A malformed text that also runs out of memory before the bad byte is
 * reported as want of memory: the text was never fully read. */
static void memory_running_out_first_is_reported_as_such(void **state)
{
    (void)state;
    const char bad[] = "{\"a long key to copy\": \"and a value\", \"b\": }";
    alloc_fail_after(1, 1);
    errno = 0;
    cJSON *j = json_parse(bad, sizeof bad, NULL, true);
    alloc_fail_after(0, 0);
    assert_null(j);
    assert_int_equal(errno, ENOMEM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_text_parses_and_malformed_text_is_einval),
        cmocka_unit_test(trailing_text_is_refused_by_json_parse_str),
        cmocka_unit_test(a_failure_at_any_allocation_is_enomem),
        cmocka_unit_test(memory_running_out_first_is_reported_as_such),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
