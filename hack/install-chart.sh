#!/usr/bin/env bash
# Installs (or upgrades) underlink from deploy/helm/underlink into the cluster of a kubeconfig, with the helm
# built from hack/tools/helm into $UNDERLINK_CACHE/bin. Extra arguments go to `helm upgrade --install`,
# e.g. for nodes that had `make images` imported with ctr:
#
#   hack/install-chart.sh .local/cluster-a.kubeconfig --set image.pullPolicy=Never
#
# UNDERLINK_NAMESPACE (default underlink-system) and UNDERLINK_RELEASE (default underlink) name the release.
set -euo pipefail

if [ $# -lt 1 ] || [ ! -r "$1" ]; then
	echo "usage: hack/install-chart.sh KUBECONFIG [helm upgrade flags...] (KUBECONFIG must be a readable file)" >&2
	exit 2
fi
kubeconfig=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${UNDERLINK_CACHE:-$HOME/.cache/underlink}
"$root/hack/build-tools.sh" helm
exec "$cache/bin/helm" upgrade --install "${UNDERLINK_RELEASE:-underlink}" "$root/deploy/helm/underlink" \
	--kubeconfig "$kubeconfig" \
	--namespace "${UNDERLINK_NAMESPACE:-underlink-system}" --create-namespace \
	--wait --timeout 5m "$@"
