# Peers (hack/build-peers.sh): upstream projects underlink runs beside, built once per machine from their
# pinned release trees in $UNDERLINK_PEERS (default ../shared/peers), which the Go module proxy does not serve.

# The Multus release the local clusters install (its thin DaemonSet) and `make images` packs.
MULTUS_VERSION := $(shell hack/build-peers.sh --version multus)
# The binaries of Multus' thin mode, in $UNDERLINK_CACHE/bin.
MULTUS_BINARIES := $(shell hack/build-peers.sh --binaries multus)

.PHONY: peers
peers: multus 

.PHONY: multus
multus: ## build Multus' thin-mode binaries from its release tarball in $UNDERLINK_PEERS (version and sha256 pinned in hack/build-peers.sh)
	@hack/build-peers.sh multus

# The multus-cni image packs them; the end-to-end test and the demo install it on their nodes.
images: multus

# Spiderpool, the peer underlink's users would otherwise run, for the benchmarks beside it and the
# migration test. Not part of `peers` (and so not of CI's `make test`): a cold build takes about 15 minutes.
.PHONY: spiderpool
spiderpool: ## build Spiderpool v1.2.2's agent, controller and CNI plugins from its release tarball in $UNDERLINK_PEERS (not part of make peers)
	@hack/build-peers.sh spiderpool

SPIDERPOOL_VERSION := $(shell hack/build-peers.sh --version spiderpool)
SPIDERPOOL_IMAGES_DIR := _output/spiderpool-images

# Spiderpool's images for its own chart on the local clusters' nodes (the migration test). Its agent's
# postStart hook is a shell script, so the image carries Debian's static busybox (busybox-static, which
# make packages installs).
.PHONY: spiderpool-images
spiderpool-images: packages spiderpool ## Spiderpool v1.2.2's agent and controller images (ghcr.io/spidernet-io/spiderpool/*:v1.2.2, its chart's defaults) in _output/spiderpool-images
	$(GO) run ./hack/imagebuild --set spiderpool --binary busybox=/bin/busybox \
		$(foreach b,$(shell hack/build-peers.sh --binaries spiderpool),--binary $(b)=$(BIN_CACHE)/$(b)) \
		--image-tag spiderpool-agent=v$(SPIDERPOOL_VERSION:v%=%) --image-tag spiderpool-controller=v$(SPIDERPOOL_VERSION:v%=%) \
		--arch $(IMAGE_ARCH) --out $(SPIDERPOOL_IMAGES_DIR)
