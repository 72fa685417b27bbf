package command

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// BuildInfo is what `underlink version -o json` prints.
type BuildInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Build is this binary's version: Version when stamped, else the main module's, else "(devel)".
func Build() BuildInfo {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "(devel)"
	}
	return BuildInfo{Version: v, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
}

func newVersion(s Streams) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "version",
		Short: "print underlink's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			b := Build()
			switch output {
			case "text":
				fmt.Fprintf(s.Out, "underlink %s (%s, %s)\n", b.Version, b.GoVersion, b.Platform)
			case "json":
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(b)
			default:
				return usage("-o %q: use text or json", output)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return c
}
