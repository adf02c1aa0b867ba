# long.mk: allocation failure (tests/integration/test_oom.c), crash safety
# and ThreadSanitizer; see docs/reliability.md.

# make check samples the allocations of every scenario ...
INTEGRATION_TESTS += tests/integration/test_oom
tests_integration_test_oom_CFLAGS = $(TEST_CFLAGS)
tests_integration_test_oom_LDADD = $(TEST_LDADD)

# ... and make check-long-oom tries every one (hours: run it in build/).
check-long-oom: tests/integration/test_oom$(EXEEXT) memchat$(EXEEXT) tests/server/mockllm$(EXEEXT)
	@$(AM_TESTS_ENVIRONMENT) MEMCHAT_OOM_SWEEP=1 ./tests/integration/test_oom

# Crash safety: 10,000 writes, at least 200 SIGKILLs (tests/long/crashloop.c).
EXTRA_PROGRAMS += tests/long/crashloop
tests_long_crashloop_SOURCES = tests/long/crashloop.c
tests_long_crashloop_LDADD = $(CJSON_LIBS) $(SQLITE_LIBS)
CLEANFILES += tests/long/crashloop$(EXEEXT)
CRASH_WRITES = 10000
CRASH_KILLS = 200
check-long-crash: tests/long/crashloop$(EXEEXT) memchat$(EXEEXT)
	@d=$$(mktemp -d) && ./tests/long/crashloop$(EXEEXT) ./memchat$(EXEEXT) "$$d" \
	  $(CRASH_WRITES) $(CRASH_KILLS) $(CRASH_SEED); rc=$$?; rm -rf "$$d"; exit $$rc
# ThreadSanitizer over the integration and TUI tests, in a build of its
# own (build-tsan/: ../configure --enable-tsan). halt_on_error makes the
# first report fail its test, with the exit code 66.
EXTRA_DIST += tests/tsan.supp
if TSAN
check-long-tsan:
	@$(MAKE) $(AM_MAKEFLAGS) check TESTS="$(INTEGRATION_TESTS) tests/integration/test_tui.sh" \
	  TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$(abs_top_srcdir)/tests/tsan.supp"
else
check-long-tsan:
	@echo "check-long-tsan needs a ThreadSanitizer build:"
	@echo "  mkdir -p build-tsan && cd build-tsan && ../configure --enable-tsan && make check-long-tsan"
	@exit 1
endif
