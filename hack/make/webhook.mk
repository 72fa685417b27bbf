# Admission (webhook/, cmd/underlink-webhook): fuzzing of the admission handlers and the pod-create
# latency benchmark through a real apiserver.

# How long each fuzz target runs in fuzz-webhook (part of `make test`) and fuzz-webhook-long (`make fuzz`).
# A count of inputs, not a duration, in `make test`: Go 1.26's fuzz coordinator can fail a run whose
# duration ends mid-input with "context deadline exceeded" (go.dev/issue/75804, see hack/make/rules.mk).
FUZZ_WEBHOOK_TIME ?= 20000x
FUZZ_WEBHOOK_LONG_TIME ?= 5m
# Pod creates per second in each stream, how long a run lasts and how many runs, for bench-webhook.
BENCH_WEBHOOK_RATE ?= 100
BENCH_WEBHOOK_DURATION ?= 30s
BENCH_WEBHOOK_ROUNDS ?= 3

WEBHOOK_FUZZ_TARGETS := FuzzAdmissionReview FuzzAdmissionObject

.PHONY: fuzz-webhook
fuzz-webhook: ## fuzz the admission handlers (malformed reviews and objects) for $(FUZZ_WEBHOOK_TIME) each
	@for f in $(WEBHOOK_FUZZ_TARGETS); do \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZ_WEBHOOK_TIME) -fuzzminimizetime 5s ./webhook/admit/ || exit 1; \
	done

.PHONY: fuzz-webhook-long
fuzz-webhook-long: ## fuzz the admission handlers for $(FUZZ_WEBHOOK_LONG_TIME) each
	@$(MAKE) --no-print-directory fuzz-webhook FUZZ_WEBHOOK_TIME=$(FUZZ_WEBHOOK_LONG_TIME)

.PHONY: bench-webhook
bench-webhook: ## pod-create p50/p99 through a real apiserver with and without underlink admission (policy and webhook injection, and none: the noise), interleaved runs
	$(GO) test -tags integration -run '^$$' -bench '^BenchmarkPodCreateLatency$$' -benchtime 1x -count 1 -timeout 30m \
		./test/bench/webhook/ -args -rate $(BENCH_WEBHOOK_RATE) -duration $(BENCH_WEBHOOK_DURATION) -rounds $(BENCH_WEBHOOK_ROUNDS)

FUZZ_SHORT += fuzz-webhook
FUZZ_LONG += fuzz-webhook-long
BENCH_TARGETS += bench-webhook
