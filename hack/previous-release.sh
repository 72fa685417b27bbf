#!/usr/bin/env bash
# The previous release of underlink, its chart and its own images, built from its commit into $2
# (chart/, images/, commit): the end-to-end scenario's upgrade step installs it, then upgrades to the
# working tree's chart and images under load. Built once per commit; a later call with the same commit
# is a no-op.
#   hack/previous-release.sh <commit> <out dir>
set -euo pipefail
rev=$1
out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if ! sha=$(git rev-parse --verify --quiet "$rev^{commit}"); then
	echo "previous release: commit $rev is not in this clone's history (a shallow clone?): git fetch --unshallow, or PREVIOUS_RELEASE=<a commit you have>" >&2
	exit 1
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ "$(cat "$out/commit" 2>/dev/null)" = "$sha" ] && [ -f "$out/chart/Chart.yaml" ] &&
	[ -f "$out/images/underlink-agent.tar" ] && [ -f "$out/images/underlink-webhook.tar" ] && [ -f "$out/images/underlink-scheduler.tar" ]; then
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git archive "$sha" | tar -x -C "$tmp"
echo "previous release: building the images of ${sha:0:12} (chart $(sed -n 's/^version: *//p' "$tmp/deploy/helm/underlink/Chart.yaml"))"
# Its own Makefile, so the images are what that release shipped (its binaries, its image layout).
make -C "$tmp" --no-print-directory images
rm -rf "$out/chart" "$out/images" "$out/commit"
mkdir -p "$out/images"
# Only underlink's own images: pause, Multus and the test app are the working tree's.
for i in underlink-agent underlink-webhook underlink-scheduler; do
	cp "$tmp/_output/images/$i.tar" "$out/images/"
done
cp -r "$tmp/deploy/helm/underlink" "$out/chart"
echo "$sha" >"$out/commit"
