/*
 * test_store_pgvector (placeholder: being written).
 */
#include "config.h"

#include "../unit/testutil.h"

static void placeholder(void **state)
{
    (void)state;
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(placeholder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
