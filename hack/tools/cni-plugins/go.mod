// Tool module: builds the reference CNI plugins (macvlan, host-local, bridge, loopback, static) of
// github.com/containernetworking/plugins v1.9.1 that the network test bed chains with underlink's plugins,
// and that `make bench-cni` uses as the floor (macvlan + host-local).
module github.com/underlink/underlink/hack/tools/cni-plugins

go 1.26.0

require (
	github.com/alexflint/go-filemutex v1.3.0 // indirect
	github.com/containernetworking/cni v1.3.0 // indirect
	github.com/containernetworking/plugins v1.9.1
	github.com/coreos/go-iptables v0.8.0 // indirect
	github.com/networkplumbing/go-nft v0.4.0 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/safchain/ethtool v0.6.2 // indirect
	github.com/vishvananda/netlink v1.3.1 // indirect
	github.com/vishvananda/netns v0.0.5 // indirect
	golang.org/x/sys v0.35.0 // indirect
	sigs.k8s.io/knftables v0.0.18 // indirect
)
