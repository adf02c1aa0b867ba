# iofault.mk: placeholder, filled by the hardening work (issue 13).
check-long-io:
	@echo "check-long-io: not written yet"
