# hostile.mk: hostile memories (issue 13, deliverable 7). The poisoned
# memories of tests/data/hostile_memories.txt are stored and recalled in
# turns against the loopback LLM test server; test_hostile checks that they
# reach the model only inside the fenced recalled block, change no
# configuration, key or tenant, and make no tool that is not read-only run
# without the user's confirmation (docs/reliability.md). A few seconds:
# part of make check, no long run.
INTEGRATION_TESTS += tests/integration/test_hostile
tests_integration_test_hostile_CFLAGS = $(TEST_CFLAGS)
tests_integration_test_hostile_LDADD = $(TEST_LDADD)
EXTRA_DIST += tests/data/hostile_memories.txt
