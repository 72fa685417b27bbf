// Command underlink-coordinator is underlink's chained CNI plugin for underlay pods: after macvlan, it
// adds a veth pair between the pod and its node and routes the remote clusters' pod and service CIDRs,
// the local service CIDR and the node's addresses through the node. See cni/coordinator and cni/routes.
package main

import (
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/go-logr/logr/funcr"

	"github.com/underlink/underlink/api/cniconf"
	"github.com/underlink/underlink/cni/coordinator"
)

func main() {
	// The runtime keeps a plugin's stderr in its own log; one JSON line per decision.
	log := funcr.NewJSON(func(obj string) { fmt.Fprintln(os.Stderr, obj) }, funcr.Options{}).WithName(cniconf.CoordinatorType)
	p := &coordinator.Plugin{Log: log}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: func(args *skel.CmdArgs) error {
			res, err := p.Add(args)
			if err != nil {
				return err
			}
			return types.PrintResult(res, res.Version())
		},
		Del:    p.Del,
		Check:  p.Check,
		GC:     p.GC,
		Status: p.Status,
	}, coordinator.SupportedVersions, "underlink-coordinator: veth to the node and route hijacking for underlay pods")
}
