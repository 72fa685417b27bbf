package command

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/underlink/underlink/cli/doctor"
	"github.com/underlink/underlink/cli/live"
	"github.com/underlink/underlink/cli/output"
	"github.com/underlink/underlink/pkg/rules"
)

func newDoctor(s Streams) *cobra.Command {
	var (
		clusters clusterFlags
		lf       liveFlags
		of       outputFlags
	)
	c := &cobra.Command{
		Use:   "doctor [flags]",
		Short: "check a live cluster against every rule, as a checklist",
		Long: `Reads the cluster (read-only) and checks its Submariner clusters, pools, multus configs, their NADs,
pods and workloads, the webhook configurations and the default network against every underlink rule:
one line per check, ✓ holds, ! warning, ✗ broken (with the object, the field, why and the fix).

It sees the cluster as the webhook does: the local cluster is --local-cluster, else the Cluster whose
service CIDR holds the API server's service IP, else what the webhook infers (reported as a warning).
The default network checked is --default-network, else the one the chart configured (the
underlink-webhook Deployment's --default-network, or the injection policy).

Exit codes: 0 every check passed (warnings allowed), 1 a check failed, 2 usage error, 3 alignment
unchecked (--allow-unaligned accepts it), 4 the cluster cannot be read.`,
		Example: `  underlink doctor --kubeconfig .local/cluster-a.kubeconfig
  underlink doctor --context prod -o json --request-timeout 5s
  kubectl underlink doctor --quiet`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			format, err := of.parse()
			if err != nil {
				return err
			}
			o := doctor.Options{}
			o.Snapshot.LocalCluster, o.Snapshot.DefaultNetwork = clusters.localCluster, clusters.defaultNetwork
			if o.Snapshot.StaticClusters, err = clusters.staticClusters(); err != nil {
				return err
			}
			opts, err := lf.connect()
			if err != nil {
				return err
			}
			r, host, err := live.Connect(*opts)
			if err != nil {
				return exit(ExitUnreadable, err)
			}
			o.Server = host
			rep, err := doctor.Run(c.Context(), r, o)
			var unknown *rules.UnknownLocalClusterError
			switch {
			case errors.As(err, &unknown):
				return usage("--local-cluster: %v", err)
			case err != nil:
				return exit(ExitUnreadable, fmt.Errorf("read cluster %s: %w", host, err))
			}
			switch format {
			case output.JSON:
				err = rep.WriteJSON(s.Out)
			case output.JUnit:
				err = output.WriteJUnit(s.Out, "underlink doctor", rep.Cases())
			case output.SARIF:
				err = output.WriteSARIF(s.Out, doctor.Tool(Build().Version), rep.Findings())
			default:
				err = rep.WriteText(s.Out, of.quiet)
			}
			if err != nil {
				return exit(ExitUnreadable, err)
			}
			switch {
			case rep.Failed():
				return exit(ExitDenied, nil)
			case rep.Unaligned() && !clusters.allowUnaligned:
				fmt.Fprintf(s.Err, "%s: alignment unchecked (%s): exit %d; pass --local-cluster, or --allow-unaligned\n", c.CommandPath(), rep.LocalReason, ExitUnaligned)
				return exit(ExitUnaligned, nil)
			}
			return nil
		},
	}
	clusters.add(c)
	c.Flags().StringVar(&clusters.defaultNetwork, "default-network", "", "the network the webhook injects into pods that name none (default: the chart's configured one, read from the cluster)")
	lf.add(c, "kubeconfig of the cluster to check (default: $KUBECONFIG, then ~/.kube/config)")
	of.add(c)
	return c
}
