#!/usr/bin/env bash
# The user's scenario (test/testdata/seed/spiderpool-submariner.md) on the local clusters that `make up` started:
# real nodes (containerd + kubelet in network namespaces), Submariner's part simulated, underlink installed
# with its Helm chart, then the seed step by step with its checks and a summary (test/e2e, run by
# test/cmd/underlink-demo). Exits non-zero if any check failed. `make down` removes everything.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ "$(id -u)" != 0 ]; then
	echo "make demo: the nodes are network namespaces running kubelet and containerd: run as root" >&2
	exit 1
fi
# containerd, runc, iptables, ... (`make demo` installs them first; this is for a direct call).
hack/system-packages.sh
# Node binaries (kubelet, kube-proxy, the reference CNI plugins, helm): built once per machine.
hack/build-tools.sh kubelet kube-proxy kube-scheduler kubectl helm loopback bridge host-local macvlan
# Multus v4.3.0 from its release tarball in $UNDERLINK_PEERS: built once per machine.
hack/build-peers.sh multus
# The pause image, the test app, Multus' and underlink's images, imported into every node.
make --no-print-directory images
# The previous release's chart and images, which the upgrade step starts from: built once per machine.
make --no-print-directory images-previous
go build -o bin/underlink-demo ./test/cmd/underlink-demo
exec bin/underlink-demo -dir .local run
