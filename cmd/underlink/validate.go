package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/underlink/underlink/cli/validate"
)

func init() {
	register(command{
		name:    "validate",
		summary: "check a set of manifests offline with the admission rules (exit 1 when one is denied)",
		run:     runValidate,
	})
}

// pathList is a repeatable -f flag.
type pathList []string

func (p *pathList) String() string     { return strings.Join(*p, ",") }
func (p *pathList) Set(v string) error { *p = append(*p, v); return nil }

func runValidate(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("underlink validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var paths pathList
	var o validate.Options
	fs.Var(&paths, "f", "manifest file or directory (YAML/JSON, multi-document); - reads stdin; repeatable")
	fs.Var(&paths, "filename", "same as -f")
	fs.StringVar(&o.LocalCluster, "local-cluster", "", "the local cluster's Submariner ID (default: inferred from the pools and Cluster objects)")
	fs.StringVar(&o.DefaultNetwork, "default-network", "", "the network the webhook injects into pods that name none; checked to resolve when set")
	fs.BoolVar(&o.InOrder, "in-order", false, "judge the objects one after the other as kubectl apply -f sends them (each against the pools and configs admitted before it), not as a set")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: underlink validate -f PATH... [--local-cluster NAME] [--default-network NS/NAME] [--in-order]\n\n"+
			"Prints one line per object: DENY|WARN|ALLOW <kind>/<namespace>/<name>: <message>.\n"+
			"The manifests are judged as a set, as they stand once all applied: each object against every\n"+
			"other one, whatever the order of the files; an object given twice is denied. Then one line\n"+
			"ORDER <file#doc>: ... per object that a first kubectl apply -f in the given order would deny\n"+
			"because objects it needs come later, naming them. --in-order judges the objects in the given\n"+
			"order instead, as the webhook sees them on one kubectl apply -f.\n"+
			"Exit 1 if any object is denied (ORDER lines do not count), 2 if the input cannot be read.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	paths = append(paths, fs.Args()...)
	return validate.Run(paths, o, stdin, stdout, stderr)
}
