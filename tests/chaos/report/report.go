// Package report prints the chaos suite's results: the run's seed, a summary
// of operations, faults and invariant checks, and the availability table.
package report

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/ringkv/ringkv/tests/chaos/traffic"
)

// Summary is one run's outcome.
type Summary struct {
	Scenario string
	Seed     uint64
	Duration time.Duration
	// Operations by outcome.
	Ops, OK, Failed, Indeterminate int
	Faults                         []string
	WriteOnceChecked, LostWrites   int
	RegistersChecked               int
	LinearizabilityViolations      int
	DeletesChecked                 int
	CountersChecked, CounterErrors int
	Resurrections, ExpiredReads    int
	// Members is the ring at the end of the run, after joins and
	// decommissions.
	Members []string
	// ConvergedPassively: replicas agreed without help from the checker
	// (through continuous anti-entropy and hints), before any explicit
	// repair.
	ConvergedPassively bool
	// ConvergedBy names what made the replicas agree.
	ConvergedBy string
	// RangesChecked is how many token ranges had their replicas' roots
	// compared.
	RangesChecked int
	Divergent     int
	// SettleTime is from the end of the run (the last heal) until every
	// member was up and normal again in every member's view;
	// ConvergenceTime from then until the replicas agreed (until the check
	// that found them agreeing read the roots); ConfirmTime is how long that check's key-by-key confirmation
	// took, reported apart because it measures the checker, not the cluster.
	SettleTime, ConvergenceTime, ConfirmTime time.Duration
}

// Count fills the operation totals from a history.
func (s *Summary) Count(ops []traffic.Op) {
	s.Ops = len(ops)
	for _, op := range ops {
		switch op.Outcome {
		case traffic.OK:
			s.OK++
		case traffic.Failed:
			s.Failed++
		default:
			s.Indeterminate++
		}
	}
}

// Print writes the summary table.
func (s *Summary) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "  %s\t%v\n", k, v) }
	fmt.Fprintf(tw, "chaos %s  seed=%d  (rerun: RINGKV_CHAOS_SEED=%d)\n", s.Scenario, s.Seed, s.Seed)
	row("duration", s.Duration.Round(time.Second))
	row("operations (ok/failed/indeterminate)", fmt.Sprintf("%d (%d/%d/%d)", s.Ops, s.OK, s.Failed, s.Indeterminate))
	row("faults injected", len(s.Faults))
	row("lost writes", fmt.Sprintf("%d of %d acknowledged", s.LostWrites, s.WriteOnceChecked))
	row("linearizability violations", fmt.Sprintf("%d of %d register keys", s.LinearizabilityViolations, s.RegistersChecked))
	row("resurrections", fmt.Sprintf("%d (%d deleted/expired keys re-read)", s.Resurrections, s.DeletesChecked))
	row("expired reads", s.ExpiredReads)
	if s.CountersChecked > 0 {
		row("counters off the acknowledged increments", fmt.Sprintf("%d of %d", s.CounterErrors, s.CountersChecked))
	}
	row("members at end", s.Members)
	row("converged without help", s.ConvergedPassively)
	row("converged by", s.ConvergedBy)
	if s.RangesChecked > 0 {
		row("ranges compared by root", s.RangesChecked)
	}
	row("divergent keys/ranges at end", s.Divergent)
	row("members up and normal after heal", s.SettleTime.Round(time.Millisecond))
	row("convergence time (after that)", s.ConvergenceTime.Round(time.Millisecond))
	if s.ConfirmTime > 0 {
		row("key-by-key confirmation took", s.ConfirmTime.Round(time.Millisecond))
	}
	tw.Flush()
	for _, f := range s.Faults {
		fmt.Fprintf(w, "    fault: %s\n", f)
	}
}

// PrintAvailability writes the per-phase, per-level availability table.
func PrintAvailability(w io.Writer, rows []traffic.Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tlevel\tok\tfailed\tindet.\tp50\tp99\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%v\t%v\t\n", r.Phase, r.Level, r.OK, r.Failed, r.Indeterminate,
			r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond))
	}
	tw.Flush()
}
