# term.mk: the terminal through a pseudo-terminal (issue 13, deliverable 8;
# docs/reliability.md, "Terminal"). tests/integration/test_term runs the
# real memchat on a pty it opens with openpty(3): hostile bytes in memories
# and replies never reach the terminal, 1,000 resizes during a stream,
# the terminal's settings after every catchable fatal signal. It takes a
# few seconds, so it is part of make check (and of the TSan run, through
# INTEGRATION_TESTS); there is no check-long part.
INTEGRATION_TESTS += tests/integration/test_term
tests_integration_test_term_CFLAGS = $(TEST_CFLAGS)
tests_integration_test_term_LDADD = $(TEST_LDADD) -lutil
# The terminal emulator test_term reads the screen with, shared with
# bench/bench_tui (header-only).
EXTRA_DIST += tests/vt.h
