# Admission rules (pkg/rules), their address parsing (pkg/iprange), the manifest decoder and
# `underlink validate`: fuzzing and the rules' micro-benchmarks.

# package:FuzzTarget:executions; `go test -fuzz` takes one target of one package per run. `make test`
# fuzzes each target for a count of executions (about 5-10 s each here), not a duration: with a
# duration, Go 1.26's fuzz coordinator can report "context deadline exceeded" as a failure when the time
# runs out while a worker is mid-input (go.dev/issue/75804, fixed in Go 1.27), which failed CI once
# without any finding. `make fuzz` runs each for RULES_FUZZTIME_LONG.
RULES_FUZZ_TARGETS := \
	./pkg/iprange:FuzzParse:300000 \
	./pkg/iprange:FuzzParsePrefix:300000 \
	./pkg/iprange:FuzzSetAlgebra:300000 \
	./pkg/rules:FuzzCheckPool:40000 \
	./pkg/rules:FuzzCheckPod:30000 \
	./pkg/rules:FuzzCheckMultusConfig:40000 \
	./pkg/podnet:FuzzParseNetworks:100000 \
	./pkg/manifest:FuzzDecode:100000
# Override for every target, e.g. RULES_FUZZTIME=30s or 1000x; empty: each target's count above.
RULES_FUZZTIME ?=
RULES_FUZZTIME_LONG ?= 5m

FUZZ_SHORT += fuzz-rules
FUZZ_LONG += fuzz-rules-long
BENCH_TARGETS += bench-rules

define run-rules-fuzz
	@set -e; for t in $(RULES_FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; fn=$${rest%%:*}; n=$${rest#*:}; \
		budget="$(1)"; [ -n "$$budget" ] || budget="$${n}x"; \
		echo "fuzz $$pkg $$fn ($$budget)"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $$budget; \
	done
endef

.PHONY: fuzz-rules
fuzz-rules: ## fuzz range/CIDR parsing, the pool/pod/config rules and the manifest decoder, a fixed count of inputs per target (RULES_FUZZTIME overrides)
	$(call run-rules-fuzz,$(RULES_FUZZTIME))

.PHONY: fuzz-rules-long
fuzz-rules-long: ## the same fuzz targets, 5m each (RULES_FUZZTIME_LONG)
	$(call run-rules-fuzz,$(RULES_FUZZTIME_LONG))

.PHONY: bench-rules
bench-rules: ## cost per call of the admission rules (CheckPool, CheckPod, CheckMultusConfig)
	$(GO) test ./pkg/rules -run '^$$' -bench . -benchmem -count 1
