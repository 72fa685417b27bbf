# Admission rules (webhook/alignment), their address parsing (pkg/iprange), the manifest decoder and
# `underlink validate`: fuzzing and the rules' micro-benchmarks.

# package:FuzzTarget pairs; `go test -fuzz` takes one target of one package per run.
RULES_FUZZ_TARGETS := \
	./pkg/iprange:FuzzParse \
	./pkg/iprange:FuzzParsePrefix \
	./pkg/iprange:FuzzSetAlgebra \
	./webhook/alignment:FuzzCheckPool \
	./webhook/alignment:FuzzCheckPod \
	./webhook/alignment:FuzzCheckMultusConfig \
	./webhook/alignment:FuzzParseNetworks \
	./webhook/alignment/manifest:FuzzDecode
# Time per target: short for `make test`, long for `make fuzz`.
RULES_FUZZTIME ?= 10s
RULES_FUZZTIME_LONG ?= 5m

FUZZ_SHORT += fuzz-rules
FUZZ_LONG += fuzz-rules-long
BENCH_TARGETS += bench-rules

define run-rules-fuzz
	@set -e; for t in $(RULES_FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn ($(1))"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(1); \
	done
endef

.PHONY: fuzz-rules
fuzz-rules: ## fuzz range/CIDR parsing, the pool/pod/config rules and the manifest decoder, 10s per target (RULES_FUZZTIME)
	$(call run-rules-fuzz,$(RULES_FUZZTIME))

.PHONY: fuzz-rules-long
fuzz-rules-long: ## the same fuzz targets, 5m each (RULES_FUZZTIME_LONG)
	$(call run-rules-fuzz,$(RULES_FUZZTIME_LONG))

.PHONY: bench-rules
bench-rules: ## cost per call of the admission rules (CheckPool, CheckPod, CheckMultusConfig)
	$(GO) test ./webhook/alignment -run '^$$' -bench . -benchmem -count 1
