// Command demo plays the blog's test procedure against a real stack on loopback: three
// tiny backends, the stickyseat agent and haproxy; `make demo` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/stickyseat/stickyseat/internal/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	agentBin := fs.String("agent", "bin/stickyseat", "stickyseat binary")
	haproxyBin := fs.String("haproxy", "", "haproxy binary (default: haproxy on PATH or /usr/sbin/haproxy)")
	mode := fs.String("mode", "tcp", "tcp (key = source address, as in the blog) or http (key = x-user header)")
	idle := fs.Duration("idle", 3*time.Second, "idle timeout of a seat (short, for the demo)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *haproxyBin == "" {
		bins, err := testbed.HAProxyBins()
		if err != nil {
			return err
		}
		*haproxyBin = bins[0]
	}
	dir, err := os.MkdirTemp("", "stickyseat-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	servers := []string{"s1", "s2", "s3"}
	const quota = 2
	key := "source address"
	if *mode == "http" {
		key = "x-user header"
	}
	fmt.Fprintf(out, "stickyseat demo: HAProxy (%s mode, key = %s), 3 servers x %d users, idle timeout %s\n", *mode, key, quota, *idle)
	s, err := testbed.StartStack(testbed.StackOptions{
		AgentBin: *agentBin, HAProxyBin: *haproxyBin, Dir: dir, Mode: *mode,
		Servers: servers, MaxUsers: quota, Idle: *idle,
	})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(out, "started: backends %s, agent on %s, haproxy on %s\n\n", backendList(s), s.AgentAddr, s.Frontend)

	clients := testbed.BlogClients(*mode)
	rep, err := testbed.PlayBlog(ctx, s, clients, *idle)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, s.Logs())
	}
	printReport(out, rep, clients)

	fmt.Fprintln(out)
	failed := 0
	for _, c := range rep.Verify(servers, quota) {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
			failed++
		}
		if c.Got == "" {
			fmt.Fprintf(out, "  %s %s\n", mark, c.What)
		} else {
			fmt.Fprintf(out, "  %s %s  (%s)\n", mark, c.What, c.Got)
		}
	}
	if failed > 0 {
		return errors.New("the demo did not behave as the blog requires; logs:\n" + s.Logs())
	}
	fmt.Fprintln(out, "\nall checks passed; stopping haproxy, the agent and the backends")
	return nil
}

func backendList(s *testbed.Stack) string {
	var parts []string
	for _, b := range s.Backends {
		parts = append(parts, b.Name+"="+b.Addr)
	}
	return strings.Join(parts, " ")
}

// printReport prints each step as rows of client, source address and what it got; a
// client's repeated requests in one step share a row.
func printReport(out io.Writer, rep testbed.BlogReport, clients []*testbed.Client) {
	source := map[string]string{}
	for _, c := range clients {
		source[c.Name] = c.Source
		if c.User != "" {
			source[c.Name] = "x-user: " + c.User
		}
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tCLIENT\tKEY\tSERVED BY")
	for i, st := range rep.Steps {
		replies := st.Replies
		if i == 3 && len(replies) > 0 {
			// Client 7's retries while it waits: show only how it ended.
			last := replies[len(replies)-1]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s after %d refused tries, %s after client 1's last request\n",
				st.Title, last.Client, source[last.Client], last, len(replies)-1, rep.Expired.Round(100*time.Millisecond))
			continue
		}
		var order []string
		got := map[string][]string{}
		for _, r := range replies {
			if _, ok := got[r.Client]; !ok {
				order = append(order, r.Client)
			}
			got[r.Client] = append(got[r.Client], r.String())
		}
		for j, c := range order {
			title := ""
			if j == 0 {
				title = st.Title
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", title, c, source[c], strings.Join(got[c], ", "))
		}
	}
	tw.Flush()
}
