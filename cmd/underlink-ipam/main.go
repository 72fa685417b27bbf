// Command underlink-ipam is underlink's CNI IPAM plugin: a thin client of underlink-agent's unix socket.
// See cni/ipam/plugin.
package main

import "github.com/underlink/underlink/cni/ipam/plugin"

func main() { plugin.Main() }
