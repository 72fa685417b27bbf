# underlink — `make help` lists every target.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

export UNDERLINK_CACHE ?= $(HOME)/.cache/underlink
BIN_CACHE := $(UNDERLINK_CACHE)/bin
GO ?= go
# Integration test packages each start their own control plane; two at a time suit a 2-core machine.
INTEGRATION_P ?= 2
# Third-party binaries the tests and local clusters run; component fragments in hack/make add theirs.
TOOLS := etcd kube-apiserver kube-controller-manager kube-scheduler kubectl controller-gen

# Component fragments (bench-*, fuzz-*, images, chart): each owned beside its component.
include $(wildcard hack/make/*.mk)

.PHONY: help
help: ## show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_.-]+:.*##/ {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: packages
packages: ## install the Debian packages the tests and the demo run (containerd, runc, iptables, ...) when missing
	@hack/system-packages.sh

.PHONY: demo
demo: packages up ## the main job: start cluster-a and cluster-b with real nodes and run the user's scenario on them
	@hack/demo.sh

.PHONY: tools
tools: ## build the pinned Kubernetes, etcd and helper binaries into $UNDERLINK_CACHE/bin (once per machine)
	@hack/build-tools.sh $(TOOLS)

.PHONY: build
build: ## build underlink's binaries into bin/
	$(GO) build -o bin/ ./cmd/... ./test/cmd/...
	$(call c-build,bin)

.PHONY: generate
generate: tools ## regenerate deepcopy code and CRD manifests (controller-tools v0.23.0)
	$(BIN_CACHE)/controller-gen object:headerFile=hack/boilerplate.go.txt paths=./api/... \
		crd:crdVersions=v1 output:crd:artifacts:config=deploy/crds
	$(GENERATE_EXTRA)

.PHONY: verify
verify: generate ## fail when generated files are stale, code is unformatted or vet complains
	@git diff --exit-code -- api deploy || { echo "generated files are stale: run 'make generate' and commit the result" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- api deploy)" || { git status --porcelain -- api deploy; echo "untracked generated files: run 'make generate' and commit them" >&2; exit 1; }
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt needed: $$out" >&2; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags integration ./...

.PHONY: test
test: packages tools verify test-unit test-integration $(FUZZ_SHORT) ## unit + integration tests (real apiserver, real netns; run as root)

.PHONY: test-unit
test-unit: ## unit tests only (fast, no root, no apiserver)
	$(GO) test ./...

.PHONY: test-integration
# The end-to-end test runs alone, after the rest: its upgrade step creates pods at 20/s through a helm
# upgrade and allows no failed create, which holds only while no other test loads the 2 cores.
test-integration: tools ## integration tests against real control planes and network namespaces (test/e2e last, alone)
	$(GO) test -tags integration -p $(INTEGRATION_P) -timeout 30m $$($(GO) list -tags integration ./... | grep -v '/test/e2e$$')
	$(GO) test -tags integration -timeout 30m ./test/e2e/

.PHONY: bench
bench: tools $(BENCH_TARGETS) ## every benchmark report, each figure beside its peer's from the same run

.PHONY: fuzz
fuzz: $(FUZZ_LONG) ## run the fuzz targets for longer

.PHONY: up
up: tools ## start cluster-a and cluster-b (etcd, kube-apiserver, kube-controller-manager) under .local/
	@$(GO) build -o bin/underlink-localenv ./test/cmd/underlink-localenv
	@bin/underlink-localenv up

.PHONY: down
down: ## stop exactly the processes `make up` started and remove their state
	@$(GO) build -o bin/underlink-localenv ./test/cmd/underlink-localenv
	@bin/underlink-localenv down

.PHONY: status
status: ## show the local clusters' processes
	@$(GO) build -o bin/underlink-localenv ./test/cmd/underlink-localenv
	@bin/underlink-localenv status

.PHONY: kubectl-path
kubectl-path: ## print the path of the cached kubectl
	@echo $(BIN_CACHE)/kubectl

.PHONY: clean
clean: ## remove build outputs (not the tool cache, not running clusters: see `make down`)
	rm -rf bin _output
