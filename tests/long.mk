# long.mk: placeholder, filled by the hardening work (issue 13).
check-long-oom:
	@echo "check-long-oom: not written yet"
check-long-crash:
	@echo "check-long-crash: not written yet"
check-long-tsan:
	@echo "check-long-tsan: not written yet"
