package podnet

// PoolChoice is the pools a network's configuration names, per address family, and where.
type PoolChoice struct {
	IPv4, IPv6 []string
	// Source says where the names come from, e.g. "SpiderMultusConfig kube-system/macvlan-conf
	// spec.macvlan.ippools", for messages.
	Source string
	// IPv4Field and IPv6Field name the two lists in messages, e.g. "... spec.macvlan.ippools.ipv4".
	IPv4Field, IPv6Field string
	// MatchMaster, when not empty, is the host NIC of a network with matchMasterSubnet: on a node, only
	// pools whose subnet holds an address of that NIC serve (poolchoice.NetworkPools.MatchMaster).
	MatchMaster string
}

// Empty reports whether the choice names no pool.
func (c PoolChoice) Empty() bool { return len(c.IPv4) == 0 && len(c.IPv6) == 0 }
