# Peers (hack/build-peers.sh): upstream projects underlink runs beside, built once per machine from their
# pinned release trees in $UNDERLINK_PEERS (default ../shared/peers), which the Go module proxy does not serve.

# The Multus release the local clusters install (its thin DaemonSet) and `make images` packs.
MULTUS_VERSION := $(shell hack/build-peers.sh --version multus)
# The binaries of Multus' thin mode, in $UNDERLINK_CACHE/bin.
MULTUS_BINARIES := $(shell hack/build-peers.sh --binaries multus)

.PHONY: peers
peers: multus ## build every peer project from $UNDERLINK_PEERS into $UNDERLINK_CACHE (once per machine)

.PHONY: multus
multus: ## build Multus' thin-mode binaries from its release tarball in $UNDERLINK_PEERS (version and sha256 pinned in hack/build-peers.sh)
	@hack/build-peers.sh multus

# The multus-cni image packs them; the end-to-end test and the demo install it on their nodes.
images: multus
