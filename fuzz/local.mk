# local.mk: placeholder, filled by the hardening work (issue 13).
check-long-fuzz:
	@echo "check-long-fuzz: not written yet"
