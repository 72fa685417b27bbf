#!/usr/bin/env bash
# Builds the third-party binaries underlink's tests and local clusters run (Kubernetes v1.37.2 components,
# etcd v3.6.16, ...) from their tool modules under hack/tools into $UNDERLINK_CACHE/bin, once per machine.
# A binary is rebuilt only when its tool module's go.mod/go.sum change (the stamp beside it records their hash).
#
# usage: hack/build-tools.sh NAME...   e.g. kube-apiserver etcd kubectl controller-gen
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${UNDERLINK_CACHE:-$HOME/.cache/underlink}
bin=$cache/bin
mkdir -p "$bin"

# name → tool module dir, package, extra ldflags
k8s_ldflags="-X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=v1.37.2"
# helm reports the release its tool module pins (hack/tools/helm/go.mod).
helm_ldflags="-X helm.sh/helm/v4/internal/version.version=v4.3.1 -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
# The reference CNI plugins report the release their tool module pins (hack/tools/cni-plugins/go.mod) in
# `<plugin>` with CNI_COMMAND=VERSION and in their "about" string.
cni_plugins_ldflags="-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=v1.9.1"
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
	ldflags="-s -w"
	[ "$mod" = kubernetes ] && ldflags="$ldflags $k8s_ldflags"
	[ "$mod" = helm ] && ldflags="$ldflags $helm_ldflags"
	[ "$mod" = cni-plugins ] && ldflags="$ldflags $cni_plugins_ldflags"
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
