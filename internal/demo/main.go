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
	whenFull := fs.String("when-full", "reject", "reject (the blog's procedure) or queue (clients 7, 8 and 9 wait in line)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *whenFull != "reject" && *whenFull != "queue" {
		return fmt.Errorf("--when-full %q: want reject or queue", *whenFull)
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
	queue := *whenFull == "queue"
	line := ""
	if queue {
		line = ", when full: wait in line"
	}
	fmt.Fprintf(out, "stickyseat demo: HAProxy (%s mode, key = %s), 3 servers x %d users, idle timeout %s%s\n", *mode, key, quota, *idle, line)
	s, err := testbed.StartStack(testbed.StackOptions{
		AgentBin: *agentBin, HAProxyBin: *haproxyBin, Dir: dir, Mode: *mode,
		Servers: servers, MaxUsers: quota, Idle: *idle, Queue: queue, Admin: queue,
	})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(out, "started: backends %s, agent on %s, haproxy on %s\n\n", backendList(s), s.AgentAddr, s.Frontend)

	var checks []testbed.Check
	if queue {
		clients := testbed.LineClients(*mode)
		rep, err := testbed.PlayLine(ctx, s, clients, *idle)
		if err != nil {
			return fmt.Errorf("%w\n%s", err, s.Logs())
		}
		printLineReport(out, rep, clients)
		checks = rep.Verify(servers, quota)
	} else {
		clients := testbed.BlogClients(*mode)
		rep, err := testbed.PlayBlog(ctx, s, clients, *idle)
		if err != nil {
			return fmt.Errorf("%w\n%s", err, s.Logs())
		}
		printReport(out, rep, clients)
		checks = rep.Verify(servers, quota)
	}

	fmt.Fprintln(out)
	failed := 0
	for _, c := range checks {
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

// keyOf renders the key a client sends.
func keyOf(clients []*testbed.Client) map[string]string {
	source := map[string]string{}
	for _, c := range clients {
		source[c.Name] = c.Source
		if c.User != "" {
			source[c.Name] = "x-user: " + c.User
		}
	}
	return source
}

// printLineReport prints the line's procedure like printReport; the step in which clients
// 7–9 wait shows, for each, the places it was told, its refused tries and the seat it got.
func printLineReport(out io.Writer, rep testbed.LineReport, clients []*testbed.Client) {
	source := keyOf(clients)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tCLIENT\tKEY\tSERVED BY")
	for i, st := range rep.Steps {
		if i == 3 {
			for j, c := range rep.Order {
				title := ""
				if j == 0 {
					title = st.Title
				}
				places := make([]string, len(rep.Places[c]))
				for k, p := range rep.Places[c] {
					places[k] = fmt.Sprint(p)
				}
				at := "place"
				if len(places) > 1 {
					at = "places"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s (seated %s), after %d refused tries at %s %s, %s after client %d's last request\n",
					title, c, source[c], rep.Seat[c], ordinal(j+1), rep.Tries[c], at, strings.Join(places, ", "), rep.Freed[j].Round(100*time.Millisecond), j+1)
			}
			continue
		}
		printStep(tw, st, source, func(r testbed.Reply) string {
			place := rep.Arrival[r.Client]
			if i == 4 {
				place = rep.BackPlace
			}
			if (i == 2 || i == 4) && !r.Seated() && r.Place == 0 {
				// tcp: HAProxy closed the connection; the place is the agent's.
				return fmt.Sprintf("waiting at place %d (connection closed)", place)
			}
			return r.String()
		})
	}
	tw.Flush()
}

func ordinal(n int) string {
	return [...]string{"", "1st", "2nd", "3rd"}[min(n, 3)]
}

// printStep prints a step's replies, one row per client.
func printStep(tw io.Writer, st testbed.Step, source map[string]string, render func(testbed.Reply) string) {
	var order []string
	got := map[string][]string{}
	for _, r := range st.Replies {
		if _, ok := got[r.Client]; !ok {
			order = append(order, r.Client)
		}
		got[r.Client] = append(got[r.Client], render(r))
	}
	for j, c := range order {
		title := ""
		if j == 0 {
			title = st.Title
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", title, c, source[c], strings.Join(got[c], ", "))
	}
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
