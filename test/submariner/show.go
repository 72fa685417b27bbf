package submariner

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
)

// Connection is the state of the cable from the local gateway to one remote endpoint.
type Connection struct {
	// RemoteClusterID names the remote endpoint's cluster.
	RemoteClusterID string
	// Connected and RTT come from a probe through the cable; Err says why it failed.
	Connected bool
	RTT       time.Duration
	Err       error
}

// ShowInput is what `subctl show all` reads for one cluster: the Cluster and Endpoint objects of that
// cluster's apiserver, and the local gateway's connections.
type ShowInput struct {
	// LocalClusterID is the cluster being shown.
	LocalClusterID string
	Clusters       []submarinerv1.Cluster
	Endpoints      []submarinerv1.Endpoint
	Connections    []Connection
	// NetworkPlugin is what subctl reports as the discovered network plugin.
	NetworkPlugin string
}

// Show prints one cluster's view in the shape of `subctl show all` (connections, endpoints, gateways,
// network details), marking a section ✗ when something in it is wrong. It returns false if any section
// failed.
func Show(w io.Writer, in ShowInput) bool {
	ok := true
	mark := func(good bool) string {
		if good {
			return "✓"
		}
		ok = false
		return "✗"
	}
	var local *submarinerv1.Endpoint
	remotes := map[string]submarinerv1.Endpoint{}
	for i, ep := range in.Endpoints {
		if ep.Spec.ClusterID == in.LocalClusterID {
			local = &in.Endpoints[i]
		} else {
			remotes[ep.Spec.ClusterID] = ep
		}
	}
	fmt.Fprintf(w, "Cluster %q\n", in.LocalClusterID)

	allUp := len(in.Connections) > 0
	for _, c := range in.Connections {
		allUp = allUp && c.Connected
	}
	fmt.Fprintf(w, " %s Showing Connections\n", mark(allUp))
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "GATEWAY\tCLUSTER\tREMOTE IP\tNAT\tCABLE DRIVER\tSUBNETS\tSTATUS\tRTT avg.")
	gw := ""
	if local != nil {
		gw = local.Spec.Hostname
	}
	for _, c := range in.Connections {
		ep, found := remotes[c.RemoteClusterID]
		status, rtt := "connected", c.RTT.Round(time.Microsecond).String()
		if !c.Connected {
			status, rtt = "error", "-"
			if c.Err != nil {
				status = "error: " + c.Err.Error()
			}
		}
		if !found {
			status = "error: no Endpoint object for this cluster"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", gw, c.RemoteClusterID, ep.Spec.PrivateIP, yesNo(ep.Spec.NATEnabled),
			ep.Spec.Backend, strings.Join(ep.Spec.Subnets, ", "), status, rtt)
	}
	tw.Flush()

	fmt.Fprintf(w, "\n %s Showing Endpoints\n", mark(local != nil && len(remotes) > 0))
	tw = tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tENDPOINT IP\tPUBLIC IP\tCABLE DRIVER\tTYPE")
	for _, ep := range in.Endpoints {
		typ := "remote"
		if ep.Spec.ClusterID == in.LocalClusterID {
			typ = "local"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ep.Spec.ClusterID, ep.Spec.PrivateIP, ep.Spec.PublicIP, ep.Spec.Backend, typ)
	}
	tw.Flush()

	fmt.Fprintf(w, "\n %s Showing Gateways\n", mark(local != nil && allUp))
	tw = tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NODE\tHA STATUS\tSUMMARY")
	if local != nil {
		summary := fmt.Sprintf("All connections (%d) are established", len(in.Connections))
		if !allUp {
			summary = "Some connections are not established"
		}
		fmt.Fprintf(tw, "%s\tactive\t%s\n", local.Spec.Hostname, summary)
	}
	tw.Flush()

	var self *submarinerv1.Cluster
	for i, c := range in.Clusters {
		if c.Spec.ClusterID == in.LocalClusterID {
			self = &in.Clusters[i]
		}
	}
	fmt.Fprintf(w, "\n %s Showing Network details\n", mark(self != nil))
	if self != nil {
		fmt.Fprintf(w, "    Discovered network details via Submariner:\n")
		fmt.Fprintf(w, "        Network plugin:  %q\n", in.NetworkPlugin)
		fmt.Fprintf(w, "        Service CIDRs:   [%s]\n", strings.Join(self.Spec.ServiceCIDR, " "))
		fmt.Fprintf(w, "        Cluster CIDRs:   [%s]\n", strings.Join(self.Spec.ClusterCIDR, " "))
	}
	return ok
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
