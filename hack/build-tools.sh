#!/usr/bin/env bash
# Builds the third-party binaries underlink's tests and local clusters run (the Kubernetes components, etcd,
# helm, the reference CNI plugins, ...) from their tool modules under hack/tools into $UNDERLINK_CACHE/bin,
# once per machine. A binary is rebuilt only when its tool module's go.mod/go.sum change (the stamp beside
# it records their hash). The versions a binary reports are read from its tool module, which pins them.
#
# usage: hack/build-tools.sh NAME...                  e.g. kube-apiserver etcd kubectl controller-gen
#        hack/build-tools.sh --print-ldflags NAME...  the version ldflags each NAME would be built with
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${UNDERLINK_CACHE:-$HOME/.cache/underlink}
bin=$cache/bin
mkdir -p "$bin"

# module_version DIR MODULE prints the version of MODULE that the tool module hack/tools/DIR requires.
module_version() {
	local v
	v=$(cd "$root/hack/tools/$1" && go list -m -f '{{.Version}}' "$2") || {
		echo "build-tools: cannot read the version of $2 from hack/tools/$1/go.mod" >&2
		return 1
	}
	echo "$v"
}

# version_ldflags DIR prints the -X flags that give the binaries of tool module DIR the version of the
# release it pins, as the release's own build would; nothing for modules whose binaries need none.
version_ldflags() {
	local v major minor
	case "$1" in
	kubernetes)
		# k8s.io/kubernetes vMAJOR.MINOR.PATCH; the components print it in --version and send it to the apiserver.
		v=$(module_version kubernetes k8s.io/kubernetes) || return 1
		major=${v#v}
		major=${major%%.*}
		minor=${v#v*.}
		minor=${minor%%.*}
		if ! [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]]; then
			echo "build-tools: k8s.io/kubernetes $v in hack/tools/kubernetes/go.mod is not vMAJOR.MINOR.PATCH" >&2
			return 1
		fi
		echo "-X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$v"
		;;
	helm)
		v=$(module_version helm helm.sh/helm/v4) || return 1
		echo "-X helm.sh/helm/v4/internal/version.version=$v -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
		;;
	cni-plugins)
		# Shown by `<plugin>` with CNI_COMMAND=VERSION and in the plugins' "about" string.
		v=$(module_version cni-plugins github.com/containernetworking/plugins) || return 1
		echo "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$v"
		;;
	esac
}

# name → tool module dir, package
module_of() {
	case "$1" in
	kube-apiserver | kube-controller-manager | kube-scheduler | kubectl | kubelet | kube-proxy) echo kubernetes ;;
	etcd) echo etcd ;;
	controller-gen) echo controller-tools ;;
	helm) echo helm ;;
	whereabouts) echo whereabouts ;;
	macvlan | host-local | bridge | loopback | static) echo cni-plugins ;;
	*) echo "build-tools: unknown tool '$1' (known: kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy etcd controller-gen helm whereabouts macvlan host-local bridge loopback static)" >&2; return 1 ;;
	esac
}
package_of() {
	case "$1" in
	kube-*|kubectl|kubelet) echo "k8s.io/kubernetes/cmd/$1" ;;
	etcd) echo "go.etcd.io/etcd/server/v3" ;;
	controller-gen) echo "sigs.k8s.io/controller-tools/cmd/controller-gen" ;;
	helm) echo "helm.sh/helm/v4/cmd/helm" ;;
	whereabouts) echo "github.com/k8snetworkplumbingwg/whereabouts/cmd" ;;
	macvlan | bridge) echo "github.com/containernetworking/plugins/plugins/main/$1" ;;
	host-local | static) echo "github.com/containernetworking/plugins/plugins/ipam/$1" ;;
	loopback) echo "github.com/containernetworking/plugins/plugins/main/loopback" ;;
	esac
}

# whereabouts needs its CRDs (IPPool, OverlappingRangeIPReservation) from the same module release; they are
# copied to $cache/crds/whereabouts next to the binary (make bench-ipam installs them).
whereabouts_crds="whereabouts.cni.cncf.io_ippools.yaml whereabouts.cni.cncf.io_overlappingrangeipreservations.yaml"
extras_present() {
	[ "$1" != whereabouts ] && return 0
	for f in $whereabouts_crds; do [ -f "$cache/crds/whereabouts/$f" ] || return 1; done
}
copy_extras() {
	[ "$1" != whereabouts ] && return 0
	local src
	src=$(cd "$root/hack/tools/whereabouts" && go list -m -f '{{.Dir}}' github.com/k8snetworkplumbingwg/whereabouts)
	mkdir -p "$cache/crds/whereabouts"
	for f in $whereabouts_crds; do install -m 0644 "$src/doc/crds/$f" "$cache/crds/whereabouts/$f"; done
}

if [ "${1:-}" = --print-ldflags ]; then
	shift
	for name in "$@"; do
		mod=$(module_of "$name")
		flags=$(version_ldflags "$mod")
		echo "$name: ${flags:-(none)}"
	done
	exit 0
fi

# Group the wanted names by module so one `go build` per module shares its compile work.
declare -A want=()
for name in "$@"; do
	mod=$(module_of "$name")
	dir=$root/hack/tools/$mod
	stamp=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-16)
	if [ -x "$bin/$name" ] && [ "$(cat "$bin/.$name.stamp" 2>/dev/null)" = "$stamp" ] && extras_present "$name"; then
		continue
	fi
	want[$mod]="${want[$mod]:-} $name"
done

for mod in "${!want[@]}"; do
	dir=$root/hack/tools/$mod
	stamp=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-16)
	out=$(mktemp -d "$bin/.build-XXXXXX")
	pkgs=()
	for name in ${want[$mod]}; do pkgs+=("$(package_of "$name")"); done
	versions=$(version_ldflags "$mod")
	ldflags="-s -w${versions:+ $versions}"
	start=$(date +%s)
	echo "build-tools: building${want[$mod]} from hack/tools/$mod (cold builds of Kubernetes take minutes)" >&2
	if [ "${#pkgs[@]}" -eq 1 ]; then
		(cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/${want[$mod]# }" "${pkgs[0]}")
	else
		(cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/" "${pkgs[@]}")
	fi
	for name in ${want[$mod]}; do
		# `go build -o dir/` names a binary after its package's last element.
		src=$out/$name
		[ -e "$src" ] || src=$out/$(basename "$(package_of "$name")")
		mv -f "$src" "$bin/$name"
		copy_extras "$name"
		echo "$stamp" >"$bin/.$name.stamp"
	done
	rm -rf "$out"
	echo "build-tools: built${want[$mod]} in $(($(date +%s) - start))s" >&2
done
