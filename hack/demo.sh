#!/usr/bin/env bash
# The user's scenario (shared/seed/spiderpool-submariner.md) on the local clusters that `make up` started:
# the seed's manifests, unchanged, applied where the user applies them, then the user's own checks.
# Each step says what it shows; the first missing piece fails loudly and names itself.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kubectl=${UNDERLINK_CACHE:-$HOME/.cache/underlink}/bin/kubectl
seed=$root/test/testdata/seed
a=(--kubeconfig "$root/.local/cluster-a.kubeconfig")
b=(--kubeconfig "$root/.local/cluster-b.kubeconfig")

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ kubectl %s\n' "$*" | sed "s|--kubeconfig $root/|--kubeconfig |"; "$kubectl" "$@"; }

step "Submariner's view: both clusters joined, as its broker sync records them"
show "${a[@]}" get clusters.submariner.io -A
show "${b[@]}" get clusters.submariner.io -A

step "cluster-a: the seed's SpiderIPPool (gateway 172.110.0.1 is outside subnet 172.110.1.0/24)"
show "${a[@]}" apply -f "$seed/cluster-a-ippool.yaml"
step "cluster-b: the seed's SpiderIPPool"
show "${b[@]}" apply -f "$seed/cluster-b-ippool.yaml"
step "both: the seed's SpiderMultusConfig kube-system/macvlan-conf"
show "${a[@]}" apply -f "$seed/cluster-a-multusconfig.yaml"
show "${b[@]}" apply -f "$seed/cluster-b-multusconfig.yaml"
step "cluster-a: the seed's Deployment (annotation names kube-system/macvlan-confg) and Service"
show "${a[@]}" apply -f "$seed/deployment-and-service.yaml"

step "what the clusters hold now"
show "${a[@]}" get sp,smc -A
show "${b[@]}" get sp,smc -A
