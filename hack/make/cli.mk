# The underlink command (cli/, cmd/underlink): its binary as the kubectl plugin `kubectl underlink`,
# the plugin's krew archives, and the command's tests.

KREW_VERSION ?= v0.0.0-dev
KREW_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
KREW_DIR := _output/krew
# Stamps `underlink version`; empty reads the module's version.
CLI_VERSION ?=
CLI_LDFLAGS := $(if $(CLI_VERSION),-X github.com/underlink/underlink/cli/command.Version=$(CLI_VERSION))

build: kubectl-plugin

.PHONY: kubectl-plugin
kubectl-plugin: ## build bin/kubectl-underlink, the underlink binary under krew's name: `kubectl underlink validate|doctor` (part of make build)
	$(GO) build -ldflags '$(CLI_LDFLAGS)' -o bin/kubectl-underlink ./cmd/underlink

.PHONY: krew-archive
krew-archive: ## krew archives of kubectl-underlink for KREW_PLATFORMS and their manifest (deploy/krew, filled in) in _output/krew
	@set -e; mkdir -p $(KREW_DIR); cp deploy/krew/underlink.yaml $(KREW_DIR)/underlink.yaml; \
	sed -i 's/VERSION/$(KREW_VERSION)/g' $(KREW_DIR)/underlink.yaml; \
	for p in $(KREW_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; d=$(KREW_DIR)/$${os}_$${arch}; mkdir -p $$d; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath \
			-ldflags '-s -w -X github.com/underlink/underlink/cli/command.Version=$(KREW_VERSION)' -o $$d/kubectl-underlink ./cmd/underlink; \
		tar -C $$d -czf $(KREW_DIR)/kubectl-underlink_$${os}_$${arch}.tar.gz kubectl-underlink; \
		sum=$$(sha256sum $(KREW_DIR)/kubectl-underlink_$${os}_$${arch}.tar.gz | cut -d' ' -f1); \
		sed -i "s/SHA256_$${os}_$${arch}/$$sum/" $(KREW_DIR)/underlink.yaml; \
		echo "$(KREW_DIR)/kubectl-underlink_$${os}_$${arch}.tar.gz $$sum"; \
	done; echo "manifest: $(KREW_DIR)/underlink.yaml"; \
	if grep -q SHA256_ $(KREW_DIR)/underlink.yaml; then echo "note: the platforms not in KREW_PLATFORMS keep their SHA256_ placeholder; a release builds all four"; fi

.PHONY: test-cli
test-cli: tools ## the underlink command's tests: unit (the 40+ case table, outputs, docs/ci.md's run line), then validate --kubeconfig and kubectl underlink against a real control plane
	$(GO) test ./cli/... ./cmd/underlink/... ./pkg/rules/... ./pkg/manifest/...
	$(GO) test -tags integration -run 'TestValidateLive|TestKubectlPlugin' ./cli/...
