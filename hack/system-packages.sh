#!/usr/bin/env bash
# Installs the Debian packages underlink's tests and demo run, when any is missing: iproute2 (network
# namespaces), iputils-ping, util-linux (nsenter, unshare), iptables and conntrack (kube-proxy),
# containerd and runc (the demo's and the end-to-end test's nodes), libc6-dev's static C library (the
# underlink-ipam relay is built with gcc -static), and a static busybox (the shell of Spiderpool's agent
# image, for the migration test and bench-podstart). Does nothing when all are present.
set -euo pipefail
missing=()
need() { command -v "$1" >/dev/null || missing+=("$2"); }
needFile() { [ -e "$1" ] || missing+=("$2"); }
need ip iproute2
need ping iputils-ping
need nsenter util-linux
need unshare util-linux
need iptables iptables
need conntrack conntrack
need containerd containerd
need ctr containerd
need runc runc
needFile "/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/libc.a" libc6-dev
# Debian's busybox package is linked dynamically; busybox-static replaces it.
{ [ -x /bin/busybox ] && ! readelf -l /bin/busybox 2>/dev/null | grep -q 'program interpreter'; } || missing+=(busybox-static)
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
# One name per package, in the order found.
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
if [ "$(id -u)" != 0 ]; then
	echo "missing packages ${pkgs[*]}: run as root, or: apt-get install -y ${pkgs[*]}" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null; then
	echo "missing packages ${pkgs[*]} and no apt-get to install them: install them with your package manager" >&2
	exit 1
fi
echo "installing: ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
