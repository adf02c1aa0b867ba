# iofault.mk: the I/O fault suite (issue 13, deliverable 2; docs/reliability.md).
# The seam (src/util/iofault) that fileio and the SQLite shim
# (src/store/faultvfs) call through, a unit test that sweeps fileio, the
# keystore file and the data file in-process, and an integration test that
# sweeps faults through the memchat binary. make check runs a sample of the
# integration sweep; make check-long-io runs all of it.

libmemchat_a_SOURCES += src/util/iofault.c src/util/iofault.h \
	src/store/faultvfs.c src/store/faultvfs.h

UNIT_TESTS += tests/unit/test_iofault
INTEGRATION_TESTS += tests/integration/test_iofault_cli
tests_unit_test_iofault_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_iofault_LDADD = $(TEST_LDADD)
tests_integration_test_iofault_cli_CFLAGS = $(TEST_CFLAGS)
tests_integration_test_iofault_cli_LDADD = $(TEST_LDADD)

# The full sweep: every operation of each command under every kind of fault
# (normal build; a few minutes).
check-long-io: tests/unit/test_iofault$(EXEEXT) tests/integration/test_iofault_cli$(EXEEXT) \
		memchat$(EXEEXT) tests/server/mockllm$(EXEEXT) tests/server/fakevec$(EXEEXT)
	@CMOCKA_MESSAGE_OUTPUT=stdout MEMCHAT_SRCDIR='$(abs_top_srcdir)' MEMCHAT_IOFAULT_FULL=1 \
	  ./tests/unit/test_iofault$(EXEEXT)
	@CMOCKA_MESSAGE_OUTPUT=stdout MEMCHAT_SRCDIR='$(abs_top_srcdir)' MEMCHAT_IOFAULT_FULL=1 \
	  MEMCHAT_BIN='$(abs_top_builddir)/memchat' \
	  MEMCHAT_MOCK_BIN='$(abs_top_builddir)/tests/server/mockllm' \
	  MEMCHAT_FAKEVEC_BIN='$(abs_top_builddir)/tests/server/fakevec' \
	  ./tests/integration/test_iofault_cli$(EXEEXT)
