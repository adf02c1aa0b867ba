# streams.mk: the stream conformance and stream fault suite (issue 13,
# deliverable 4; docs/reliability.md, "Streams").
#
# make check: tests/unit/test_streams replays the conformance streams of
# tests/data/streams through the providers' stream handling (the replay
# seam of src/llm/http_provider.h), whole, split at every byte boundary and
# in small pieces; tests/integration/test_stream_faults cuts, resets and
# stalls streams of the loopback mock (tests/server/mockllm) at hundreds of
# points.
# (UNIT_TESTS feeds check_PROGRAMS, TESTS and check-valgrind.)
UNIT_TESTS += tests/unit/test_streams
tests_unit_test_streams_CFLAGS = $(TEST_CFLAGS) \
	-DSTREAMS_DIR='"$(abs_top_srcdir)/tests/data/streams"'
tests_unit_test_streams_LDADD = $(TEST_LDADD)
EXTRA_DIST += tests/data/streams
# (INTEGRATION_TESTS feeds check_PROGRAMS and TESTS, and depends on memchat
# and the mock.)
INTEGRATION_TESTS += tests/integration/test_stream_faults
tests_integration_test_stream_faults_CFLAGS = $(TEST_CFLAGS)
tests_integration_test_stream_faults_LDADD = $(TEST_LDADD)

# make check-long-streams (by hand): tests/long/bigstream runs memchat ask
# against the mock for an endless stream, a 10 MiB line and 100,000 nested
# arrays on each provider, checks each ends cleanly within the size cap and
# prints the peak RSS of each run against its bound. The figures mean
# something only without sanitizers, so a sanitizer build refuses.
EXTRA_PROGRAMS += tests/long/bigstream
tests_long_bigstream_SOURCES = tests/long/bigstream.c
tests_long_bigstream_CFLAGS = $(AM_CFLAGS)
CLEANFILES += tests/long/bigstream$(EXEEXT)
check-long-streams: memchat$(EXEEXT) tests/server/mockllm$(EXEEXT) tests/long/bigstream$(EXEEXT)
	@if test -n "$(SAN_CFLAGS)"; then \
	  echo "check-long-streams: RSS is measured without sanitizers; run it in a build configured without --enable-sanitizers"; \
	  exit 1; fi
	@d=$$(mktemp -d) && ./tests/long/bigstream$(EXEEXT) ./memchat$(EXEEXT) \
	  ./tests/server/mockllm$(EXEEXT) "$$d"; rc=$$?; rm -rf "$$d"; exit $$rc
