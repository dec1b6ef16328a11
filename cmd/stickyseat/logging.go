package main

import (
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"STICKYSEAT_LOG_LEVEL"}},
		&cli.StringFlag{Name: "log-format", Value: "json", Usage: "json or console", EnvVars: []string{"STICKYSEAT_LOG_FORMAT"}},
	}
}

// newLogger builds the process logger from the log flags.
func newLogger(c *cli.Context, w io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(c.String("log-level"))
	if err != nil || level == zerolog.NoLevel {
		return zerolog.Logger{}, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", c.String("log-level"))
	}
	switch c.String("log-format") {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	default:
		return zerolog.Logger{}, fmt.Errorf("--log-format: %q is not json or console", c.String("log-format"))
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}
