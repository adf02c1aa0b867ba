# term.mk: placeholder, filled by the hardening work (issue 13).
