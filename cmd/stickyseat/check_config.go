package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

func checkConfigCommand() *cli.Command {
	return &cli.Command{
		Name:   "check-config",
		Usage:  "validate a config file and print one line per pool",
		Flags:  []cli.Flag{configFlag()},
		Action: checkConfig,
	}
}

func checkConfig(c *cli.Context) error {
	path := c.String("config")
	if path == "" {
		return errors.New("--config: no config file given (or set STICKYSEAT_CONFIG)")
	}
	cfg, err := loadConfigFile(path)
	if err != nil {
		return err
	}
	for _, p := range cfg.Pools {
		fmt.Fprintln(c.App.Writer, p.summary())
	}
	return nil
}

// summary is the pool in one line, as check-config prints it:
//
//	pool web: 3 servers (s1=4 up, s2=2 drain, s3=2 up), idle 24h, down grace 10s, policy move, key from body xml:CustomerId
func (p filePool) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pool %s: %d server", p.Pool.Name, len(p.Pool.Servers))
	if len(p.Pool.Servers) != 1 {
		b.WriteString("s")
	}
	for i, s := range p.Pool.Servers {
		sep := ", "
		if i == 0 {
			sep = " ("
		}
		fmt.Fprintf(&b, "%s%s=%d %s", sep, s.Name, s.Quota, s.State)
	}
	fmt.Fprintf(&b, "), idle %s, down grace %s, policy %s", shortDuration(p.Pool.IdleTimeout), shortDuration(p.Pool.DownGrace), p.Pool.DownPolicy)
	if p.KeyRule.FromBody != nil {
		fmt.Fprintf(&b, ", key from body %s", p.KeyRule.FromBody)
	}
	if p.KeyRule.Fallback != "" {
		fmt.Fprintf(&b, ", key fallback %s", p.KeyRule.Fallback)
	}
	return b.String()
}

// shortDuration prints d as people write it in the file: 24h rather than 24h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
