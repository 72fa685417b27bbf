#!/usr/bin/env bash
# Builds the peer projects underlink runs beside (Multus, Spiderpool) from their pinned upstream source trees into
# $UNDERLINK_CACHE, once per machine. The Go module proxy does not serve them (`go list -m -versions
# gopkg.in/k8snetworkplumbingwg/multus-cni.v4`: 403 Forbidden), so the source is a release tarball with its
# vendor/ directory in $UNDERLINK_PEERS (default ../shared/peers from the repository root, or from the
# local checkout this one was cloned from), checked against
# the sha256 pinned here. Nothing falls back to anything else: without the tarball this fails and says what
# to put where.
#
# usage: hack/build-peers.sh PEER...           build (or find cached) the peer's binaries (multus, spiderpool)
#        hack/build-peers.sh --tree PEER      print the unpacked source tree (e.g. Multus' deployments/)
#        hack/build-peers.sh --version PEER   print the pinned version (the tag of the image `make images` builds)
#        hack/build-peers.sh --binaries PEER  print the names of the binaries it builds into $UNDERLINK_CACHE/bin
#
# Multus v4.3.0: the binaries its thin DaemonSet runs (deployments/multus-daemonset.yml): multus and passthru
# (which install_multus copies onto the node), install_multus and thin_entrypoint.
# Spiderpool v1.2.2: its agent, controller and init (its chart's post-install Job), its IPAM plugin (spiderpool), coordinator and ifacer, named
# as in its images; the spiderpool-* daemons keep their names, the CNI plugins are prefixed
# (spiderpool-ipam, spiderpool-coordinator, spiderpool-ifacer) so they never shadow another binary in
# $UNDERLINK_CACHE/bin. The trees stay unpacked in $UNDERLINK_CACHE/peers.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${UNDERLINK_CACHE:-$HOME/.cache/underlink}
bin=$cache/bin
# $UNDERLINK_PEERS, else ../shared/peers from the repository root; a clone of a local checkout (CI clones
# main elsewhere on the machine) also looks beside the checkout it was cloned from.
peers_default() {
	local origin
	if [ -d "$root/../shared/peers" ]; then
		echo "$root/../shared/peers"
		return
	fi
	origin=$(git -C "$root" config --get remote.origin.url 2>/dev/null || true)
	if [ -n "$origin" ] && [ -d "$origin/../shared/peers" ]; then
		echo "$origin/../shared/peers"
		return
	fi
	echo "$root/../shared/peers"
}
peers=${UNDERLINK_PEERS:-$(peers_default)}
# Messages name the folder as it is, not as a path through the repository.
peers=$(cd "$peers" 2>/dev/null && pwd || echo "$peers")

multus_version=v4.3.0
multus_tarball=multus-cni-$multus_version.tar.gz
multus_sha256=056e891779a4ef63b66c15ee6f0a7c52077260374368dd8dae8f54debf6394f9
multus_module=gopkg.in/k8snetworkplumbingwg/multus-cni.v4
# package → binary name (the names the upstream image uses under /usr/src/multus-cni/bin and /).
multus_pkgs="./cmd/multus ./cmd/passthru-cni ./cmd/install_multus ./cmd/thin_entrypoint"
multus_bins="multus passthru install_multus thin_entrypoint"

spiderpool_version=v1.2.2
spiderpool_tarball=spiderpool-$spiderpool_version.tar.gz
spiderpool_sha256=a9202a72362e5ebd1fcf76e08183871a7e12f61e1262366b2169027cd7e10f37
spiderpool_module=github.com/spidernet-io/spiderpool
spiderpool_pkgs="./cmd/spiderpool-agent ./cmd/spiderpool-controller ./cmd/spiderpool-init ./cmd/spiderpool ./cmd/coordinator ./cmd/ifacer"
spiderpool_bins="spiderpool-agent spiderpool-controller spiderpool-init spiderpool-ipam spiderpool-coordinator spiderpool-ifacer"

tree_of() { echo "$cache/peers/${1%.tar.gz}"; }

# unpack TARBALL SHA256 MODULE: verify the tarball and unpack it into the cache (once; the tree's stamp is
# the sha).
unpack() {
	local name=$1 sum=$2 src=$peers/$1 dst got tmp
	dst=$(tree_of "$name")
	if [ -d "$dst" ] && [ "$(cat "$dst/.underlink-sha256" 2>/dev/null)" = "$sum" ]; then
		return 0
	fi
	if [ ! -f "$src" ]; then
		cat >&2 <<EOF
build-peers: $name is not in \$UNDERLINK_PEERS ($peers).
  The Go module proxy does not serve $3, so the source comes from that folder only.
  Put the upstream release tree ($3, with its vendor/ directory, unpacking into ${name%.tar.gz}/)
  there as $name (sha256 $sum), or set UNDERLINK_PEERS to the folder that holds it.
EOF
		return 1
	fi
	got=$(sha256sum "$src" | cut -d' ' -f1)
	if [ "$got" != "$sum" ]; then
		echo "build-peers: $src has sha256 $got, want $sum (pinned in hack/build-peers.sh): not the release tree this repository was tested with" >&2
		return 1
	fi
	mkdir -p "$cache/peers"
	tmp=$(mktemp -d "$cache/peers/.unpack-XXXXXX")
	tar -xzf "$src" -C "$tmp"
	if [ ! -d "$tmp/${name%.tar.gz}" ]; then
		echo "build-peers: $src does not unpack into ${name%.tar.gz}/" >&2
		rm -rf "$tmp"
		return 1
	fi
	echo "$sum" >"$tmp/${name%.tar.gz}/.underlink-sha256"
	rm -rf "$dst"
	mv "$tmp/${name%.tar.gz}" "$dst"
	rm -rf "$tmp"
	echo "build-peers: unpacked $src (sha256 verified) into $dst" >&2
}

# build NAME VERSION TARBALL SHA256 MODULE LDFLAGS PKGS BINS [BUILT=NAME ...]: build the packages PKGS of the
# verified tree into $bin as BINS (once per pin: a change to the tarball's pin or to PKGS rebuilds). `go
# build -o dir/` names each binary after its package directory; BUILT=NAME renames one.
build() {
	local name=$1 version=$2 tarball=$3 sum=$4 module=$5 ldflags=$6 pkgs=$7 bins=$8
	shift 8
	local stamp dir out start b r missing=""
	stamp=$(echo "$sum $pkgs" | sha256sum | cut -c1-16)
	for b in $bins; do
		if [ ! -x "$bin/$b" ] || [ "$(cat "$bin/.$b.stamp" 2>/dev/null)" != "$stamp" ]; then
			missing="$missing $b"
		fi
	done
	unpack "$tarball" "$sum" "$module"
	[ -z "$missing" ] && return 0
	dir=$(tree_of "$tarball")
	mkdir -p "$bin"
	out=$(mktemp -d "$bin/.build-XXXXXX")
	echo "build-peers: building $name $version ($bins) from $dir (cold: minutes)" >&2
	start=$(date +%s)
	# shellcheck disable=SC2086 # the package list is words
	(cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=vendor GOTOOLCHAIN=local go build -trimpath -ldflags "$ldflags" -o "$out/" $pkgs)
	for r in "$@"; do
		mv -f "$out/${r%%=*}" "$out/${r#*=}"
	done
	for b in $bins; do
		mv -f "$out/$b" "$bin/$b"
		echo "$stamp" >"$bin/.$b.stamp"
	done
	rm -rf "$out"
	echo "build-peers: built $name $version in $(($(date +%s) - start))s" >&2
}

build_multus() {
	# As the upstream hack/build-go.sh stamps a release (pkg/multus: version, releaseStatus).
	build Multus "$multus_version" "$multus_tarball" "$multus_sha256" "$multus_module" \
		"-s -w -X $multus_module/pkg/multus.version=$multus_version -X $multus_module/pkg/multus.releaseStatus=,released -X $multus_module/pkg/multus.gitTreeState=clean" \
		"$multus_pkgs" "$multus_bins" passthru-cni=passthru
}

build_spiderpool() {
	build Spiderpool "$spiderpool_version" "$spiderpool_tarball" "$spiderpool_sha256" "$spiderpool_module" "-s -w" \
		"$spiderpool_pkgs" "$spiderpool_bins" spiderpool=spiderpool-ipam coordinator=spiderpool-coordinator ifacer=spiderpool-ifacer
}

if [ $# -eq 0 ]; then
	echo "usage: hack/build-peers.sh [--tree|--version|--binaries] multus|spiderpool" >&2
	exit 2
fi
if [ "$1" = --tree ] || [ "$1" = --version ] || [ "$1" = --binaries ]; then
	what=$1
	shift
	for name in "$@"; do
		case "$name:$what" in
		multus:--tree) unpack "$multus_tarball" "$multus_sha256" "$multus_module" || exit 1; tree_of "$multus_tarball" ;;
		multus:--version) echo "$multus_version" ;;
		multus:--binaries) echo "$multus_bins" ;;
		spiderpool:--tree) unpack "$spiderpool_tarball" "$spiderpool_sha256" "$spiderpool_module" || exit 1; tree_of "$spiderpool_tarball" ;;
		spiderpool:--version) echo "$spiderpool_version" ;;
		spiderpool:--binaries) echo "$spiderpool_bins" ;;
		*) echo "build-peers: unknown peer '$name' (known: multus, spiderpool)" >&2; exit 2 ;;
		esac
	done
	exit 0
fi
for name in "$@"; do
	case "$name" in
	multus) build_multus ;;
	spiderpool) build_spiderpool ;;
	*) echo "build-peers: unknown peer '$name' (known: multus, spiderpool)" >&2; exit 2 ;;
	esac
done
