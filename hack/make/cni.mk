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

# The full chain's agent writes pools on a real apiserver: etcd and kube-apiserver come with `tools`.
.PHONY: bench-cni
bench-cni: tools ## CNI ADD p50/p99 of the full chain (macvlan+underlink-ipam+underlink-coordinator, real agent and apiserver) vs the floor macvlan+host-local, with its decomposition, one run (root)
	$(GO) test -tags integration -run '^$$' -bench '^Benchmark(CNIAdd|CoordinatorAddInProcess|ProbeInProcess)$$' -benchtime $(BENCH_CNI_N)x -count 1 -timeout 30m ./test/bench/cni/

BENCH_TARGETS += bench-cni
