// Package command is the underlink command line: `underlink validate`, `underlink doctor`, `version` and
// `completion`, built with cobra as kubectl is (flags anywhere, `--` ends them, help on stdout). The same
// binary installed as kubectl-underlink is the kubectl plugin `kubectl underlink`. cmd/underlink only
// calls Execute; the logic of each subcommand lives in its own package (cli/validate, cli/doctor).
package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes, the same for every subcommand (cli/README.md, "Exit codes").
const (
	// ExitOK: every object admitted, every check passed (warnings allowed).
	ExitOK = 0
	// ExitDenied: an object would be denied (validate) or a check failed (doctor).
	ExitDenied = 1
	// ExitUsage: the command line is wrong: an unknown command or flag, a bad flag value, an unknown
	// --local-cluster.
	ExitUsage = 2
	// ExitUnaligned: pools or configs could not be checked against the Submariner clusters (none given,
	// or the local cluster unknown), so their alignment has no verdict; --allow-unaligned makes it 0.
	// A denial wins: the code is then 1.
	ExitUnaligned = 3
	// ExitUnreadable: the input cannot be read: a manifest that does not decode, a missing file, a
	// cluster that cannot be reached or read in time.
	ExitUnreadable = 4
)

// Version is the version `underlink version` prints, set at build time with
// -ldflags "-X github.com/underlink/underlink/cli/command.Version=v0.3.0"; empty reads the module's.
var Version = ""

// PluginName is the name of the binary as a kubectl plugin (krew's naming: kubectl-<plugin>).
const PluginName = "kubectl-underlink"

// Streams are the command's standard input, output and error.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// exitError ends the command with a code; err, when set, is printed first.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exit is an error that ends the command with code, printing err when it is not nil.
func exit(code int, err error) error { return &exitError{code: code, err: err} }

// usage is a usage error.
func usage(format string, args ...any) error { return exit(ExitUsage, fmt.Errorf(format, args...)) }

// Execute runs one command line (args without the program's name) and returns the exit code. program
// is the name it was invoked as: invoked as kubectl-underlink, help and completion say `kubectl
// underlink`.
func Execute(ctx context.Context, program string, args []string, s Streams) int {
	root := New(s)
	if strings.TrimSuffix(filepath.Base(program), ".exe") == PluginName {
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl underlink"}
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		// cobra's own errors: an unknown command, a flag that does not parse, wrong arguments.
		ee = &exitError{code: ExitUsage, err: err}
	}
	if ee.err != nil {
		fmt.Fprintf(s.Err, "%s: %v\n", cmd.CommandPath(), ee.err)
		if ee.code == ExitUsage {
			fmt.Fprintf(s.Err, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return ee.code
}

// New returns the root command with every subcommand.
func New(s Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "underlink",
		Short: "check underlay networks (Spiderpool pools and configs, pods, Submariner clusters) before and after they reach a cluster",
		Long: `underlink checks Kubernetes underlay networking for Spiderpool and Submariner users with the rules
its admission webhook applies: pools, multus configs and pods against each other and against the
Submariner clusters' CIDRs.

  underlink validate   manifests, offline or against a live cluster (for CI: -o json|junit|sarif)
  underlink doctor     a live cluster, as a checklist

Exit codes: 0 admitted, 1 denied or a check failed, 2 usage error, 3 alignment unchecked
(--allow-unaligned accepts it), 4 input or cluster unreadable.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			c.SetOut(s.Out)
			_ = c.Help()
			return exit(ExitUsage, nil)
		},
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exit(ExitUsage, err) })
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(newValidate(s), newDoctor(s), newVersion(s), newCompletion(s))
	return root
}
