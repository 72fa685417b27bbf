// Command underlink is the operator's CLI (cli/command): `underlink validate` checks manifests with the
// admission rules, `underlink doctor` checks a live cluster. Installed as kubectl-underlink it is the
// kubectl plugin `kubectl underlink`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/underlink/underlink/cli/command"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := command.Execute(ctx, os.Args[0], os.Args[1:], command.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
