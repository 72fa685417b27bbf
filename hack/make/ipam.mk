# IPAM (cni/ipam, cni/agent, cmd/underlink-agent, cmd/underlink-ipam): the allocator's fuzz target and the
# allocations/s benchmark against Spiderpool v1.2.2 and whereabouts v0.9.2.

# whereabouts v0.9.2 and its CRDs (hack/tools/whereabouts) are the peer bench-ipam measures against;
# they are built by `make whereabouts`, not by `make tools`, so `make test` does not wait for them.
FUZZ_SHORT += fuzz-ipam
FUZZ_LONG += fuzz-ipam-long
BENCH_TARGETS += bench-ipam
# bench-ipam's scale: nodes, ADDs per node, ADDs in flight per node.
BENCH_IPAM_NODES ?= 10
BENCH_IPAM_ADDS_PER_NODE ?= 100
BENCH_IPAM_PARALLEL_PER_NODE ?= 10

.PHONY: whereabouts
whereabouts: ## build whereabouts v0.9.2 and copy its CRDs into $UNDERLINK_CACHE (about 4 minutes cold)
	@hack/build-tools.sh whereabouts

.PHONY: bench-ipam
bench-ipam: whereabouts spiderpool ## IPAM allocations/s, 10 nodes × 100 ADDs through underlink-ipam, Spiderpool v1.2.2 and whereabouts v0.9.2, same apiserver, 0 duplicates; then underlink and Spiderpool at 10/50/90 % of a 4094-address pool (10 × 20 ADDs a level) and each format's largest pool (root)
	UNDERLINK_BENCH_NODES=$(BENCH_IPAM_NODES) UNDERLINK_BENCH_ADDS_PER_NODE=$(BENCH_IPAM_ADDS_PER_NODE) \
	UNDERLINK_BENCH_PARALLEL_PER_NODE=$(BENCH_IPAM_PARALLEL_PER_NODE) \
	UNDERLINK_BENCH_OCCUPANCY_ADDS_PER_NODE=$(or $(BENCH_IPAM_OCCUPANCY_ADDS_PER_NODE),20) \
	$(GO) test -tags integration -run '^$$' -bench '^BenchmarkIPAM(Allocations|Occupancy)$$' -benchtime 1x -count 1 -timeout 60m ./test/bench/ipam/

.PHONY: fuzz-ipam
fuzz-ipam: ## fuzz the pool allocator briefly (part of make test): 200000 inputs, about 20 s
	$(GO) test -run '^$$' -fuzz '^FuzzPool$$' -fuzztime 200000x ./cni/ipam/

.PHONY: fuzz-ipam-long
fuzz-ipam-long: ## fuzz the pool allocator for 5 minutes
	$(GO) test -run '^$$' -fuzz '^FuzzPool$$' -fuzztime 5m ./cni/ipam/

.PHONY: storm-ipam-big
storm-ipam-big: ## the IPAM storm at 10000 ADDs on 8 nodes (the default 2000 runs in make test; root)
	UNDERLINK_STORM_ADDS=10000 UNDERLINK_STORM_PARALLEL=128 $(GO) test -tags integration -run '^TestIPAMStorm$$' -count 1 -timeout 60m ./test/integration/ipam/
