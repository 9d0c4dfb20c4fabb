package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/internal/antientropy"
	"github.com/ringkv/ringkv/internal/apitypes"
)

func newRepairCommand(e *env) *cobra.Command {
	var cr creds
	var (
		addr    string
		timeout time.Duration
		every   time.Duration
		output  string
	)
	cmd := &cobra.Command{
		Use:   "repair",
		Short: "Run anti-entropy now on one node and wait for it to finish",
		Long: `Ask one node (its HTTP address) to compare every range it replicates with
the other replicas now, exchanging the records that differ, and print its
progress until it is done. Run it on a node whose data directory was wiped, or
after an outage longer than the hint window. A repair already running on the
node is joined, not started twice. The node paces the work at its
--repair-rate.`,
		Example: `  ringkv repair
  ringkv repair --addr 10.0.0.3:8379 --timeout 2h`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := newPrinter(cmd.OutOrStdout(), output)
			if err != nil {
				return usageError{err: err, cmd: cmd.CommandPath()}
			}
			rp := p.(repairPrinter)
			ctx, cancel := context.WithTimeout(withCreds(cmd.Context(), resolveCreds(cmd, e, cr)), timeout)
			defer cancel()
			var st apitypes.RepairStatus
			if err := postJSON(ctx, addr, "/v1/repair", &st); err != nil {
				return err
			}
			if st.Repair == nil {
				return fmt.Errorf("%s did not start a repair", addr)
			}
			id := st.Repair.ID
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				if st.Repair == nil || st.Repair.ID != id {
					return fmt.Errorf("repair %d is no longer reported by %s (did the node restart?)", id, addr)
				}
				if err := rp.RepairProgress(*st.Repair); err != nil {
					return err
				}
				if st.Repair.Done {
					if st.Repair.Errors > 0 {
						return fmt.Errorf("repair finished with %d failed range comparisons; last: %s; run it again",
							st.Repair.Errors, st.Repair.LastError)
					}
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("repair still running on %s after --timeout %s: %w", addr, timeout, ctx.Err())
				case <-t.C:
				}
				if err := getJSON(ctx, addr, "/v1/repair/status", &st); err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8379", "HTTP address (host:port or URL) of the node to repair")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Hour, "give up waiting after this long (the repair goes on)")
	cmd.Flags().DurationVar(&every, "interval", 500*time.Millisecond, "how often to print progress")
	addOutputFlag(cmd, &output)
	addCredFlags(cmd, &cr)
	addNodeTLSFlags(cmd)
	return cmd
}

// repairPrinter is the printer with the repair command's output. Both
// printers implement it here, next to the only command that uses it.
type repairPrinter interface {
	printer
	RepairProgress(antientropy.Progress) error
}

var (
	_ repairPrinter = tablePrinter{}
	_ repairPrinter = jsonPrinter{}
)

// RepairProgress prints one progress line per poll, and a summary at the end.
func (p tablePrinter) RepairProgress(r antientropy.Progress) error {
	switch {
	case r.Done:
		_, err := fmt.Fprintf(p.w, "repair %d done: %d/%d ranges compared (%d differed, %d skipped: replica down), %d records repaired (%d pulled, %d pushed), %d errors, %s\n",
			r.ID, r.RangesCompared, r.RangesTotal, r.RangesMismatched, r.RangesSkipped, r.RecordsRepaired, r.RecordsPulled, r.RecordsPushed,
			r.Errors, time.Duration(r.FinishedAt-r.StartedAt)*time.Millisecond)
		return err
	case r.State == antientropy.StateQueued:
		_, err := fmt.Fprintf(p.w, "repair %d queued\n", r.ID)
		return err
	}
	_, err := fmt.Fprintf(p.w, "repair %d: %d/%d ranges compared, %d records repaired\n", r.ID, r.RangesCompared, r.RangesTotal, r.RecordsRepaired)
	return err
}

// RepairProgress prints only the final result, for scripts.
func (p jsonPrinter) RepairProgress(r antientropy.Progress) error {
	if !r.Done {
		return nil
	}
	return p.print(r)
}
