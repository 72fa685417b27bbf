// Command underlink-multus-standin is the test bed's stand-in for Multus (see package test/multus): the
// CNI plugin every node of the local clusters is configured with. It is not part of underlink.
package main

import (
	"context"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/underlink/underlink/test/multus"
)

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: func(args *skel.CmdArgs) error {
			p, err := multus.New(args)
			if err != nil {
				return err
			}
			res, err := p.Add(context.Background())
			if err != nil {
				return err
			}
			return types.PrintResult(res, p.Conf.CNIVersion)
		},
		Del: func(args *skel.CmdArgs) error {
			p, err := multus.New(args)
			if err != nil {
				return err
			}
			return p.Del(context.Background())
		},
		Check: func(args *skel.CmdArgs) error {
			p, err := multus.New(args)
			if err != nil {
				return err
			}
			return p.Check(context.Background())
		},
		Status: func(args *skel.CmdArgs) error {
			_, err := multus.New(args)
			return err
		},
	}, version.All, "underlink test bed: Multus stand-in (default-network annotation → NAD chain via libcni)")
}
