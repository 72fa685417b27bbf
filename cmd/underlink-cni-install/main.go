// Command underlink-cni-install is the agent DaemonSet's init container: it copies the CNI plugins the
// agent image carries (underlink-ipam, underlink-coordinator and underlink-macvlan, the reference macvlan
// under underlink's name) into the host's CNI bin directory, and records them for uninstall. With
// --uninstall it removes what it recorded. See cni/cniinstall.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/underlink/underlink/cni/cniinstall"
)

func main() {
	from := flag.String("from", "/opt/underlink/cni", "directory in the image holding the plugins")
	to := flag.String("to", "/host/opt/cni/bin", "the host's CNI bin directory, mounted")
	plugins := flag.String("plugins", "underlink-ipam,underlink-coordinator,underlink-macvlan", "comma-separated plugins to install (each named underlink-*)")
	uninstall := flag.Bool("uninstall", false, "remove what an earlier install recorded in --to (files changed since are left)")
	flag.Parse()
	if *uninstall {
		removed, left, err := cniinstall.Uninstall(*to)
		for _, n := range removed {
			fmt.Printf("underlink-cni-install: removed %s/%s\n", *to, n)
		}
		for _, n := range left {
			fmt.Printf("underlink-cni-install: left %s/%s (changed since underlink installed it)\n", *to, n)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "underlink-cni-install:", err)
			os.Exit(1)
		}
		return
	}
	res, err := cniinstall.Install(*from, *to, strings.Split(*plugins, ","))
	for _, r := range res {
		state := "unchanged"
		if r.Changed {
			state = "installed"
		}
		fmt.Printf("underlink-cni-install: %s %s/%s\n", state, *to, r.Name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "underlink-cni-install:", err)
		os.Exit(1)
	}
}
