// Command underlink-cni-install is the agent DaemonSet's init container: it copies the CNI plugins the
// agent image carries (underlink-ipam, underlink-coordinator and the reference macvlan) into the host's CNI
// bin directory. See cni/cniinstall.
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
	plugins := flag.String("plugins", "underlink-ipam,underlink-coordinator,macvlan", "comma-separated plugins to install")
	flag.Parse()
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
