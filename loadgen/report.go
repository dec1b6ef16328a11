package loadgen

import (
	"fmt"
	"io"
	"time"
)

// Quantiles are the latency quantiles a report shows.
var Quantiles = []struct {
	Name string
	Q    float64
}{{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}, {"p99.9", 0.999}}

// WriteReport prints a run the way redis-benchmark does: what was sent, the rate, the
// latency quantiles and the answers per status.
func (r *Result) WriteReport(w io.Writer) error {
	o := r.Options
	load := "as fast as answers return"
	if o.Rate > 0 {
		load = fmt.Sprintf("paced at %.0f/s", o.Rate)
	}
	keys := fmt.Sprintf("%d users, %s", o.Users, o.Dist)
	if o.NewRatio > 0 {
		keys += fmt.Sprintf(", %.0f%% new", o.NewRatio*100)
	}
	_, err := fmt.Fprintf(w, "%s: %d connections x %d frames in flight, %s; %s\n", o.Addr, o.Connections, o.Pipeline, load, keys)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  %d decisions in %s: %.0f decisions/s\n", r.Decisions, r.Elapsed.Round(time.Millisecond), r.Rate())
	fmt.Fprintf(w, "  latency")
	for _, q := range Quantiles {
		fmt.Fprintf(w, " %s %s", q.Name, fmtLatency(r.Latency.Quantile(q.Q)))
	}
	fmt.Fprintf(w, " max %s\n", fmtLatency(r.Latency.Max()))
	fmt.Fprintf(w, "  statuses")
	for _, s := range r.StatusNames() {
		fmt.Fprintf(w, " %s=%d", s, r.Statuses[s])
	}
	if len(r.StatusNames()) == 0 {
		fmt.Fprintf(w, " none")
	}
	if r.MaxPlace > 0 {
		fmt.Fprintf(w, " (places in line up to %d)", r.MaxPlace)
	}
	_, err = fmt.Fprintf(w, "\n  protocol errors %d\n", r.ProtocolErrors)
	return err
}

// fmtLatency prints a latency in µs or ms with three significant digits.
func fmtLatency(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.1fms", float64(d)/1e6)
}
