package command

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/cli/live"
	"github.com/underlink/underlink/cli/output"
	"github.com/underlink/underlink/cli/validate"
	"github.com/underlink/underlink/pkg/rules"
	"github.com/underlink/underlink/webhook/snapshot"
)

// clusterFlags are the flags that say which cluster is local and what the clusters are; validate and
// doctor share them.
type clusterFlags struct {
	localCluster   string
	defaultNetwork string
	statics        []string
	allowUnaligned bool
}

func (f *clusterFlags) add(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.localCluster, "local-cluster", "", "the local cluster's Submariner ID (spec.cluster_id); an ID that names no cluster is a usage error")
	fl.StringArrayVar(&f.statics, "static-cluster", nil, "a cluster without a Submariner Cluster object, as the webhook's --static-cluster: id=ID,cluster-cidr=CIDR,service-cidr=CIDR[,global-cidr=CIDR] (repeatable)")
	fl.BoolVar(&f.allowUnaligned, "allow-unaligned", false, "exit 0, not 3, when pools or configs cannot be checked against the Submariner clusters (clusters without Submariner)")
}

// staticClusters parses --static-cluster with the webhook's parser (webhook/snapshot).
func (f *clusterFlags) staticClusters() ([]submarinerv1.Cluster, error) {
	var out []submarinerv1.Cluster
	for _, s := range f.statics {
		c, err := snapshot.ParseClusterFlag(s)
		if err != nil {
			return nil, usage("--static-cluster: %v", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// liveFlags are the flags that read a cluster.
type liveFlags struct {
	kubeconfig, context string
	timeout             time.Duration
}

func (f *liveFlags) add(c *cobra.Command, what string) {
	fl := c.Flags()
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", what)
	fl.StringVar(&f.context, "context", "", "the kubeconfig context to use")
	fl.DurationVar(&f.timeout, "request-timeout", live.DefaultTimeout, "the longest to wait for each request to the cluster (e.g. 5s, 1m)")
}

func (f *liveFlags) connect() (*live.Options, error) {
	if f.timeout <= 0 {
		return nil, usage("--request-timeout %s: give a positive duration such as 10s", f.timeout)
	}
	return &live.Options{Kubeconfig: f.kubeconfig, Context: f.context, Timeout: f.timeout}, nil
}

// outputFlags are -o and --quiet.
type outputFlags struct {
	format string
	quiet  bool
}

func (f *outputFlags) add(c *cobra.Command) {
	c.Flags().StringVarP(&f.format, "output", "o", "text", "output format: text, json, junit or sarif")
	c.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "text output: print only what denies or warns (and what fails or warns, for doctor)")
	_ = c.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		names := make([]string, len(output.Formats))
		for i, f := range output.Formats {
			names[i] = string(f)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	})
}

func (f *outputFlags) parse() (output.Format, error) {
	format, err := output.ParseFormat(f.format)
	if err != nil {
		return "", exit(ExitUsage, err)
	}
	return format, nil
}

func newValidate(s Streams) *cobra.Command {
	var (
		files    []string
		clusters clusterFlags
		lf       liveFlags
		of       outputFlags
		inOrder  bool
	)
	c := &cobra.Command{
		Use:   "validate [-f] PATH... [flags]",
		Short: "check manifests with the admission rules, offline or against a live cluster",
		Long: `Checks manifests (YAML or JSON files, directories, - for stdin) with the rules underlink's
admission webhook applies, and prints one line per finding:

  DENY|WARN <file>#<document>: <kind>/<namespace>/<name>: <field>: <value>: <why>; <fix> [rule]

and an ALLOW line per checked object that passes. Objects no rule reads (a Service, a ConfigMap) get no
line each; the summary on stderr counts them by kind.

The manifests are judged as a set, as they stand once all applied, whatever the order of the files;
ORDER lines say where a first kubectl apply -f in the given order would fail. --in-order judges them
one after the other instead, as the webhook sees one kubectl apply -f.

The local cluster is never guessed. It is --local-cluster, or with --kubeconfig the Cluster whose
service CIDR holds the cluster's API server service IP. Without one, pools and configs cannot be
checked against the Submariner clusters: they get the warning "alignment unchecked", and the run exits
3 unless --allow-unaligned. The clusters are the Cluster objects of the manifests, --static-cluster,
and with --kubeconfig the cluster's.

With --kubeconfig (or --context) validate reads the cluster, read-only: its Submariner clusters, its
networks, pools and namespaces, and the default network the chart configured. An application
repository can then check its Deployments alone.

Exit codes: 0 admitted (warnings allowed), 1 an object denied, 2 usage error, 3 alignment unchecked,
4 a manifest or the cluster cannot be read.`,
		Example: `  underlink validate deploy/ --local-cluster cluster-a
  underlink validate -f pools.yaml -f configs.yaml --static-cluster id=cluster-b,cluster-cidr=172.111.0.0/16,service-cidr=10.243.0.0/18 --local-cluster cluster-a
  underlink validate app/deployment.yaml --kubeconfig ~/.kube/config -o sarif > underlink.sarif
  kubectl kustomize overlays/prod | underlink validate - --local-cluster cluster-a -o junit`,
		RunE: func(c *cobra.Command, args []string) error {
			format, err := of.parse()
			if err != nil {
				return err
			}
			o := validate.Options{LocalCluster: clusters.localCluster, DefaultNetwork: clusters.defaultNetwork, InOrder: inOrder}
			if o.StaticClusters, err = clusters.staticClusters(); err != nil {
				return err
			}
			paths := append(append([]string(nil), files...), args...)
			if len(paths) == 0 {
				return usage("no manifests; pass paths, -f FILE|DIR, or - for stdin")
			}
			objs, err := validate.Read(paths, s.In)
			if err != nil {
				return exit(ExitUnreadable, err)
			}
			if lf.kubeconfig != "" || lf.context != "" {
				opts, err := lf.connect()
				if err != nil {
					return err
				}
				if o.Live, err = readLive(c.Context(), *opts); err != nil {
					return exit(ExitUnreadable, err)
				}
			}
			rep, err := validate.Evaluate(objs, o)
			var unknown *rules.UnknownLocalClusterError
			if errors.As(err, &unknown) {
				return usage("--local-cluster: %v", err)
			}
			if err != nil {
				return exit(ExitUnreadable, err)
			}
			if err := writeValidate(s, rep, format, of.quiet); err != nil {
				return exit(ExitUnreadable, err)
			}
			switch {
			case rep.Denied():
				return exit(ExitDenied, nil)
			case rep.Unaligned() && !clusters.allowUnaligned:
				fmt.Fprintf(s.Err, "%s: alignment unchecked (%s): exit %d; name the local cluster with --local-cluster, add the clusters (Cluster objects, --static-cluster or --kubeconfig), or pass --allow-unaligned\n",
					c.CommandPath(), rep.LocalReason, ExitUnaligned)
				return exit(ExitUnaligned, nil)
			}
			return nil
		},
	}
	c.Flags().StringArrayVarP(&files, "filename", "f", nil, "manifest file or directory (YAML/JSON, multi-document, concatenated JSON); - reads stdin; repeatable, and paths may be given as arguments too")
	clusters.add(c)
	c.Flags().StringVar(&clusters.defaultNetwork, "default-network", "", "the network the webhook injects into pods that name none, checked to resolve (default: with --kubeconfig, the chart's configured one)")
	c.Flags().BoolVar(&inOrder, "in-order", false, "judge the objects one after the other as kubectl apply -f sends them (each against the pools and configs admitted before it), not as a set")
	lf.add(c, "read the live cluster of this kubeconfig (read-only): its Submariner clusters, networks, pools, namespaces and default network")
	of.add(c)
	return c
}

// readLive connects and reads the cluster's world.
func readLive(ctx context.Context, o live.Options) (*validate.Live, error) {
	r, host, err := live.Connect(o)
	if err != nil {
		return nil, err
	}
	l, err := validate.ReadLive(ctx, r, host)
	if err != nil {
		return nil, fmt.Errorf("read cluster %s: %w", host, err)
	}
	return l, nil
}

func writeValidate(s Streams, rep validate.Report, format output.Format, quiet bool) error {
	switch format {
	case output.JSON:
		return rep.WriteJSON(s.Out)
	case output.JUnit:
		return output.WriteJUnit(s.Out, "underlink validate", rep.Cases())
	case output.SARIF:
		return output.WriteSARIF(s.Out, validate.Tool(Build().Version), rep.Findings())
	}
	if err := rep.Write(s.Out, quiet); err != nil {
		return err
	}
	if !quiet {
		for _, l := range strings.Split(rep.Summary(), "\n") {
			fmt.Fprintf(s.Err, "underlink validate: %s\n", l)
		}
	}
	return nil
}
