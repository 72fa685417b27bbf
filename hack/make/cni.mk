# Node datapath (cni/): reference CNI plugins for the network test bed, and the CNI ADD benchmark.

# The reference plugins of github.com/containernetworking/plugins v1.9.1 (hack/tools/cni-plugins) that
# test/netbed chains with underlink's plugins; `make tools` builds them with the rest.
CNI_REFERENCE_PLUGINS := macvlan host-local bridge loopback static
TOOLS += $(CNI_REFERENCE_PLUGINS)
# ADDs per chain in bench-cni.
BENCH_CNI_N ?= 200

.PHONY: cni-plugins
cni-plugins: ## build the reference CNI plugins (containernetworking/plugins v1.9.1) into $UNDERLINK_CACHE/bin
	@hack/build-tools.sh $(CNI_REFERENCE_PLUGINS)

# The full chain's agent writes pools on a real apiserver: etcd and kube-apiserver come with `tools`; the
# peer's chain (Spiderpool v1.2.2's agent and plugins) comes with `spiderpool`. UNDERLINK_BENCH_SKIP_PEER=1
# leaves the peer out, for profiling.
.PHONY: bench-cni
bench-cni: tools spiderpool ## CNI ADD p50/p99 of the full chain (macvlan+underlink-ipam+underlink-coordinator, real agent and apiserver) vs Spiderpool v1.2.2's (macvlan+spiderpool+coordinator, underlay, its agent) and the floor macvlan+host-local, with its decomposition, one run (root)
	$(GO) test -tags integration -run '^$$' -bench '^Benchmark(CNIAdd|CoordinatorAddInProcess|ProbeInProcess)$$' -benchtime $(BENCH_CNI_N)x -count 1 -timeout 45m ./test/bench/cni/

BENCH_TARGETS += bench-cni
