// Command stickyseat is the stickyseat SPOE agent and its tools.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "stickyseat: %v\n", err)
		os.Exit(1)
	}
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// run is main without the process: tests call it with their own arguments and writers.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	app := &cli.App{
		Name:      "stickyseat",
		Usage:     "sticky seats with per-server user quotas for HAProxy (SPOE agent)",
		Version:   version,
		Writer:    stdout,
		ErrWriter: stderr,
		// Errors are printed once, by main, as one line.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			serveCommand(),
			haproxyConfigCommand(),
			checkConfigCommand(),
			benchCommand(),
			adminCommand(),
		},
	}
	app.OnUsageError = usageError
	for _, cmd := range app.Commands {
		cmd.OnUsageError = usageError
		if len(cmd.Subcommands) == 0 {
			cmd.Before = noArgs
		}
	}
	return app.RunContext(ctx, args)
}
