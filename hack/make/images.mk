# Images: OCI image tarballs of underlink's binaries, built without a Docker engine (hack/imagebuild, with
# github.com/google/go-containerregistry), for `ctr -n k8s.io images import _output/images/<name>.tar`.

IMAGE_REPO ?= ghcr.io/underlink
# The chart's appVersion, so the chart's default image references name what `make images` built.
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$$/\1/p' deploy/helm/underlink/Chart.yaml)
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)
IMAGES_DIR := _output/images
IMAGE_BIN_DIR := $(IMAGES_DIR)/bin/linux-$(IMAGE_ARCH)
# Every Go binary an image carries (the C ones, hack/make/c.mk, are built beside them); macvlan (the reference plugin) and Multus' binaries (hack/make/peers.mk)
# come from the tool cache.
IMAGE_CMDS := underlink-webhook underlink-agent underlink-ipam-full underlink-coordinator underlink-scheduler \
	underlink-cni-install
# The seed scenario's test application, built from test/.
IMAGE_TEST_CMDS := underlink-testapp

.PHONY: images
images: ## OCI image tarballs (webhook, agent with its CNI plugins, scheduler, testapp, pause, multus-cni) in _output/images
	@hack/build-tools.sh macvlan
	@mkdir -p $(IMAGE_BIN_DIR)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags "-s -w" -o $(IMAGE_BIN_DIR)/ \
		$(addprefix ./cmd/,$(IMAGE_CMDS)) $(addprefix ./test/cmd/,$(IMAGE_TEST_CMDS)) ./hack/imagebuild/pause
	$(call c-build,$(IMAGE_BIN_DIR))
	$(GO) run ./hack/imagebuild --bin $(IMAGE_BIN_DIR) --binary macvlan=$(BIN_CACHE)/macvlan \
		$(foreach b,$(MULTUS_BINARIES),--binary $(b)=$(BIN_CACHE)/$(b)) --image-tag multus-cni=$(MULTUS_VERSION) \
		--repo $(IMAGE_REPO) --tag $(IMAGE_TAG) --arch $(IMAGE_ARCH) --out $(IMAGES_DIR)

.PHONY: images-import
images-import: images ## import the tarballs into a containerd: make images-import CONTAINERD_ADDRESS=/run/containerd/containerd.sock
	@for t in $(IMAGES_DIR)/*.tar; do ctr --address $(or $(CONTAINERD_ADDRESS),/run/containerd/containerd.sock) -n k8s.io images import $$t || exit 1; done

# The previous release (chart 0.4.0) for the upgrade step of the end-to-end scenario: its chart and its own
# images, built from its commit.
PREVIOUS_RELEASE ?= 68bc31c955a51c14cbb5c7a7e749323d2cf23cde
PREVIOUS_DIR := _output/previous

.PHONY: images-previous
images-previous: ## the previous release's chart and images (PREVIOUS_RELEASE, chart 0.4.0) in _output/previous, for the e2e upgrade step
	@hack/previous-release.sh $(PREVIOUS_RELEASE) $(PREVIOUS_DIR)
