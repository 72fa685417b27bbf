# End to end (test/e2e, test/nodes, test/submariner): `make demo`'s nodes and scenario.

# The node binaries `make up` builds with the rest, so `make demo` finds them.
TOOLS += kubelet kube-proxy

# `make down` first stops the demo's nodes (they use the control planes' PKI and egress sockets).
down: e2e-down

.PHONY: e2e-down
e2e-down: ## stop the demo's nodes (kubelet, containerd, kube-proxy in their namespaces) and remove all they made; stop control planes of killed tests
	@$(GO) build -o bin/underlink-demo ./test/cmd/underlink-demo
	@bin/underlink-demo -dir .local down

.PHONY: e2e-status
e2e-status: ## show the demo's node host and nodes
	@$(GO) build -o bin/underlink-demo ./test/cmd/underlink-demo
	@bin/underlink-demo -dir .local status

.PHONY: test-e2e
test-e2e: tools images images-previous ## the end-to-end test alone: the seed's scenario on two fresh clusters with real nodes (root)
	$(GO) test -tags integration -run TestSeedScenarioEndToEnd -timeout 30m -v ./test/e2e/

# The end-to-end test (part of test-integration) imports the images into its nodes; its upgrade step
# starts from the previous release.
test-integration: images images-previous

.PHONY: test-migration
test-migration: tools images spiderpool-images ## Spiderpool v1.2.2 → underlink → Spiderpool on real nodes with 24+ running pods (root; builds Spiderpool, not part of make test)
	$(GO) test -tags integration,spiderpool -run TestSpiderpoolMigration -timeout 45m -v ./test/e2e/

BENCH_PODS ?= 200
BENCH_ROUNDS ?= 1
.PHONY: bench-podstart
bench-podstart: tools images spiderpool-images whereabouts ## pod start at scale: $(BENCH_PODS) pods at once on 2 real nodes, until all Running, under the floor (macvlan + host-local), whereabouts v0.9.2, Spiderpool v1.2.2 and underlink; BENCH_ROUNDS=3 runs the floor, Spiderpool and underlink twice more, each round's ratios within it (root; builds Spiderpool and whereabouts)
	UNDERLINK_BENCH_PODS=$(BENCH_PODS) UNDERLINK_BENCH_ROUNDS=$(BENCH_ROUNDS) $(GO) test -tags integration,spiderpool -run '^TestPodStartAtScale$$' -count 1 -v -timeout 130m ./test/e2e/
BENCH_TARGETS += bench-podstart
