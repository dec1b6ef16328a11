package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/stickyseat/stickyseat/agent"
	"github.com/stickyseat/stickyseat/assign"
)

func checkConfigCommand() *cli.Command {
	return &cli.Command{
		Name:   "check-config",
		Usage:  "validate a config file as serve would and print one line per pool",
		Flags:  []cli.Flag{configFlag(), maxSeatsFlag()},
		Action: checkConfig,
	}
}

// checkConfig loads the file through serve's own path (loadPools), so it passes exactly the
// files serve accepts with the same --max-seats.
func checkConfig(c *cli.Context) error {
	if c.String("config") == "" {
		return errors.New("--config: no config file given (or set STICKYSEAT_CONFIG)")
	}
	p, err := loadPools(c)
	if err != nil {
		return err
	}
	for _, pool := range p.Policy.Pools {
		fmt.Fprintln(c.App.Writer, poolSummary(pool, p.KeyRules[pool.Name]))
	}
	return nil
}

// poolSummary is the pool in one line, as check-config prints it:
//
//	pool web: 3 servers (s1=4 up, s2=2 drain, s3=2 up), idle 24h, down grace 10s, policy move, key from body xml:CustomerId
func poolSummary(p assign.Pool, rule agent.KeyRule) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pool %s: %d server", p.Name, len(p.Servers))
	if len(p.Servers) != 1 {
		b.WriteString("s")
	}
	for i, s := range p.Servers {
		sep := ", "
		if i == 0 {
			sep = " ("
		}
		fmt.Fprintf(&b, "%s%s=%d %s", sep, s.Name, s.Quota, s.State)
	}
	fmt.Fprintf(&b, "), idle %s, down grace %s, policy %s", shortDuration(p.IdleTimeout), shortDuration(p.DownGrace), p.DownPolicy)
	if p.WhenFull == assign.WhenFullQueue {
		fmt.Fprintf(&b, ", when full queue (timeout %s, max %d)", shortDuration(p.QueueTimeout), p.QueueMax)
	}
	if rule.FromBody != nil {
		fmt.Fprintf(&b, ", key from body %s", rule.FromBody)
	}
	if rule.Fallback != "" {
		fmt.Fprintf(&b, ", key fallback %s", rule.Fallback)
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
