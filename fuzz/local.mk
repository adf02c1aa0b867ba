# local.mk: the libFuzzer targets of fuzz/ (docs/reliability.md, "Fuzzing").
#
# Every build: make check runs fuzz/replay_<target>, a plain main()
# (fuzz/replay.c) linked with the target, over the saved corpus
# fuzz/corpus/<target>/, so every input ever saved, regressions included,
# is rechecked in the normal and the sanitizer builds.
# A fuzzer build (build-fuzz/: ../configure --enable-fuzzers):
#   make fuzz              builds fuzz/fuzz_<target> (libFuzzer's main)
#   make check-long-fuzz   runs each for FUZZ_SECONDS (600) on a scratch copy
#                          of its corpus in fuzz-out/ (results.md: the table
#                          for docs/reliability.md); fails when any crashed
#   make fuzz-merge        merges what the last run found, minimised, into
#                          fuzz/corpus/ (with fuzz-minimize, the only rules
#                          that write there)
#   make fuzz-minimize     shrinks each saved corpus to its seed-* inputs, its
#                          regress-* reproducers and the fewest others that
#                          keep its coverage
# FUZZ_TARGETS picks targets, FUZZ_JOBS runs that many at once (1).

FUZZ_TARGETS = sse ndjson response retry config jsonmin filter keystore import \
	sanitize
FUZZ_SECONDS = 600
FUZZ_JOBS = 1
FUZZ_COMMON = fuzz/fuzz.h fuzz/scratch.c
FUZZ_LIBS = libmemchat.a $(MC_LIBS)

EXTRA_DIST += fuzz/corpus fuzz/dict fuzz/run-fuzzers.sh fuzz/fuzz.h

# --- make check: the saved corpora, replayed ----------------------------
FUZZ_REPLAYS = fuzz/replay_sse fuzz/replay_ndjson fuzz/replay_response \
	fuzz/replay_retry fuzz/replay_config fuzz/replay_jsonmin fuzz/replay_filter \
	fuzz/replay_keystore fuzz/replay_import fuzz/replay_sanitize
check_PROGRAMS += $(FUZZ_REPLAYS)
TESTS += $(FUZZ_REPLAYS)
fuzz_replay_sse_SOURCES = fuzz/replay.c fuzz/fuzz_sse.c $(FUZZ_COMMON)
fuzz_replay_sse_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_NAME='"sse"'
fuzz_replay_sse_LDADD = $(FUZZ_LIBS)
fuzz_replay_ndjson_SOURCES = fuzz/replay.c fuzz/fuzz_ndjson.c $(FUZZ_COMMON)
fuzz_replay_ndjson_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_NAME='"ndjson"'
fuzz_replay_ndjson_LDADD = $(FUZZ_LIBS)
fuzz_replay_response_SOURCES = fuzz/replay.c fuzz/fuzz_response.c $(FUZZ_COMMON)
fuzz_replay_response_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_NAME='"response"'
fuzz_replay_response_LDADD = $(FUZZ_LIBS)
fuzz_replay_retry_SOURCES = fuzz/replay.c fuzz/fuzz_retry.c $(FUZZ_COMMON)
fuzz_replay_retry_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_NAME='"retry"'
fuzz_replay_retry_LDADD = $(FUZZ_LIBS)
fuzz_replay_config_SOURCES = fuzz/replay.c fuzz/fuzz_config.c $(FUZZ_COMMON)
fuzz_replay_config_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_NAME='"config"'
fuzz_replay_config_LDADD = $(FUZZ_LIBS)
fuzz_replay_jsonmin_SOURCES = fuzz/replay.c fuzz/fuzz_jsonmin.c $(FUZZ_COMMON)
fuzz_replay_jsonmin_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_NAME='"jsonmin"'
fuzz_replay_jsonmin_LDADD = $(FUZZ_LIBS)
fuzz_replay_filter_SOURCES = fuzz/replay.c fuzz/fuzz_filter.c $(FUZZ_COMMON)
fuzz_replay_filter_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_NAME='"filter"'
fuzz_replay_filter_LDADD = $(FUZZ_LIBS)
fuzz_replay_keystore_SOURCES = fuzz/replay.c fuzz/fuzz_keystore.c $(FUZZ_COMMON)
fuzz_replay_keystore_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_NAME='"keystore"'
fuzz_replay_keystore_LDADD = $(FUZZ_LIBS)
fuzz_replay_import_SOURCES = fuzz/replay.c fuzz/fuzz_import.c $(FUZZ_COMMON)
fuzz_replay_import_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_NAME='"import"'
fuzz_replay_import_LDADD = $(FUZZ_LIBS)
fuzz_replay_sanitize_SOURCES = fuzz/replay.c fuzz/fuzz_sanitize.c $(FUZZ_COMMON)
fuzz_replay_sanitize_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_NAME='"sanitize"'
fuzz_replay_sanitize_LDADD = $(FUZZ_LIBS)

# --- the fuzzers: libFuzzer's main, only in a fuzzer build ---------------
FUZZ_PROGS = fuzz/fuzz_sse fuzz/fuzz_ndjson fuzz/fuzz_response fuzz/fuzz_retry \
	fuzz/fuzz_config fuzz/fuzz_jsonmin fuzz/fuzz_filter fuzz/fuzz_keystore fuzz/fuzz_import \
	fuzz/fuzz_sanitize
EXTRA_PROGRAMS += $(FUZZ_PROGS)
CLEANFILES += $(FUZZ_PROGS)
fuzz_fuzz_sse_SOURCES = fuzz/fuzz_sse.c $(FUZZ_COMMON)
fuzz_fuzz_sse_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
fuzz_fuzz_sse_LDADD = $(FUZZ_LIBS)
fuzz_fuzz_ndjson_SOURCES = fuzz/fuzz_ndjson.c $(FUZZ_COMMON)
fuzz_fuzz_ndjson_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
fuzz_fuzz_ndjson_LDADD = $(FUZZ_LIBS)
fuzz_fuzz_response_SOURCES = fuzz/fuzz_response.c $(FUZZ_COMMON)
fuzz_fuzz_response_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
fuzz_fuzz_response_LDADD = $(FUZZ_LIBS)
fuzz_fuzz_retry_SOURCES = fuzz/fuzz_retry.c $(FUZZ_COMMON)
fuzz_fuzz_retry_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
fuzz_fuzz_retry_LDADD = $(FUZZ_LIBS)
fuzz_fuzz_config_SOURCES = fuzz/fuzz_config.c $(FUZZ_COMMON)
fuzz_fuzz_config_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
fuzz_fuzz_config_LDADD = $(FUZZ_LIBS)
fuzz_fuzz_jsonmin_SOURCES = fuzz/fuzz_jsonmin.c $(FUZZ_COMMON)
fuzz_fuzz_jsonmin_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
fuzz_fuzz_jsonmin_LDADD = $(FUZZ_LIBS)
fuzz_fuzz_filter_SOURCES = fuzz/fuzz_filter.c $(FUZZ_COMMON)
fuzz_fuzz_filter_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
fuzz_fuzz_filter_LDADD = $(FUZZ_LIBS)
fuzz_fuzz_keystore_SOURCES = fuzz/fuzz_keystore.c $(FUZZ_COMMON)
fuzz_fuzz_keystore_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
fuzz_fuzz_keystore_LDADD = $(FUZZ_LIBS)
fuzz_fuzz_import_SOURCES = fuzz/fuzz_import.c $(FUZZ_COMMON)
fuzz_fuzz_import_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
fuzz_fuzz_import_LDADD = $(FUZZ_LIBS)
fuzz_fuzz_sanitize_SOURCES = fuzz/fuzz_sanitize.c $(FUZZ_COMMON)
fuzz_fuzz_sanitize_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_LINK)
fuzz_fuzz_sanitize_LDADD = $(FUZZ_LIBS)

if FUZZERS
FUZZ_LINK = -fsanitize=fuzzer

fuzz: $(FUZZ_PROGS)

check-long-fuzz: $(FUZZ_PROGS)
	@FUZZ_JOBS='$(FUZZ_JOBS)' $(SHELL) $(srcdir)/fuzz/run-fuzzers.sh run '$(abs_top_srcdir)' \
	  '$(FUZZ_SECONDS)' $(FUZZ_TARGETS)

fuzz-merge: $(FUZZ_PROGS)
	@$(SHELL) $(srcdir)/fuzz/run-fuzzers.sh merge '$(abs_top_srcdir)' 0 $(FUZZ_TARGETS)

fuzz-minimize: $(FUZZ_PROGS)
	@$(SHELL) $(srcdir)/fuzz/run-fuzzers.sh minimize '$(abs_top_srcdir)' 0 $(FUZZ_TARGETS)
else
FUZZ_LINK =

fuzz check-long-fuzz fuzz-merge fuzz-minimize:
	@echo "$@: the fuzzers need a fuzzer build (clang with libFuzzer):"
	@echo "  mkdir build-fuzz && cd build-fuzz && ../configure --enable-fuzzers && make $@"
	@exit 1
endif

.PHONY: fuzz fuzz-merge fuzz-minimize
