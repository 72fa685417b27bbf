// Command underlink-ipam-full is underlink's CNI IPAM plugin process: every CNI command, through
// underlink-agent's unix socket. The relay cmd/underlink-ipam, installed beside it, hands the ADD and DEL
// that need no probe to the agent and execs this for everything else. See cni/ipam/plugin.
package main

import "github.com/underlink/underlink/cni/ipam/plugin"

func main() { plugin.Main() }
