// Command nodedebug debugs containers on a Kubernetes node: the agent runs
// on every node, the CLI attaches tool containers to targets through it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/nodedebug/nodedebug/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	stop()
	os.Exit(code)
}
