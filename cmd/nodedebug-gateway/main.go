// Command nodedebug-gateway serves nodedebug's aggregated API in the
// cluster and forwards attach sessions to the agents.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/nodedebug/nodedebug/cli"
	"github.com/nodedebug/nodedebug/cli/gatewaycli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := gatewaycli.Run(ctx, os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	stop()
	os.Exit(code)
}
