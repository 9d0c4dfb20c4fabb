package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/internal/apitypes"
)

// printer renders the results of admin commands, one method per result type,
// one implementation per --output format. Admin commands print only through it.
type printer interface {
	ClusterStatus(apitypes.ClusterStatus) error
}

// Output formats.
const (
	outputTable = "table"
	outputJSON  = "json"
)

// addOutputFlag registers the --output flag every admin command shares.
func addOutputFlag(cmd *cobra.Command, format *string) {
	cmd.Flags().StringVarP(format, "output", "o", outputTable, "output format: table or json")
}

func newPrinter(w io.Writer, format string) (printer, error) {
	switch format {
	case outputTable:
		return tablePrinter{w}, nil
	case outputJSON:
		return jsonPrinter{w}, nil
	}
	return nil, fmt.Errorf("--output %q: want %s or %s", format, outputTable, outputJSON)
}

// jsonPrinter prints results as the API returned them, for scripts.
type jsonPrinter struct{ w io.Writer }

func (p jsonPrinter) ClusterStatus(s apitypes.ClusterStatus) error { return p.print(s) }

func (p jsonPrinter) print(v any) error {
	enc := json.NewEncoder(p.w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// tablePrinter prints aligned tables, for people.
type tablePrinter struct{ w io.Writer }

func (p tablePrinter) ClusterStatus(s apitypes.ClusterStatus) error {
	up := 0
	for _, n := range s.Nodes {
		if n.Up {
			up++
		}
	}
	fmt.Fprintf(p.w, "nodes: %d (%d up)   replicas: %d   vnodes: %d   as seen by: %s", len(s.Nodes), up, s.Replicas, s.VNodes, dash(s.Self))
	if s.Ready != "" { // absent from nodes older than the field
		fmt.Fprintf(p.w, "   readiness: %s", s.Ready)
	}
	fmt.Fprintln(p.w)
	for _, a := range s.Alarms {
		fmt.Fprintf(p.w, "ALARM on %s: %s\n", dash(s.Self), a)
	}
	fmt.Fprintln(p.w)

	nodes := slices.SortedFunc(slices.Values(s.Nodes), func(a, b apitypes.NodeStatus) int { return cmp.Compare(a.ID, b.ID) })
	rows := make([][]string, 0, len(nodes))
	for _, n := range nodes {
		rows = append(rows, []string{
			n.ID, dash(n.State), yesNo(n.Up), dash(n.Zone),
			dash(n.ClientAddr), dash(n.HTTPAddr), dash(n.PeerAddr), dash(n.GossipAddr),
			strconv.FormatFloat(n.Ownership*100, 'f', 1, 64) + "%",
			strconv.FormatInt(n.Hints, 10),
			streaming(n),
		})
	}
	return writeTable(p.w, []string{"ID", "STATE", "UP", "ZONE", "CLIENT", "HTTP", "PEER", "GOSSIP", "OWNERSHIP", "HINTS", "STREAMING"}, rows)
}

// writeTable writes header and rows as columns separated by at least two spaces.
func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// streaming summarises a node's part in a topology change: the share of
// its ranges pulled when known, else the ranges it has left.
func streaming(n apitypes.NodeStatus) string {
	switch {
	case n.StreamProgress > 0 && n.StreamProgress < 1:
		return strconv.FormatFloat(n.StreamProgress*100, 'f', 0, 64) + "%"
	case n.StreamRangesLeft > 0:
		return strconv.Itoa(n.StreamRangesLeft) + " ranges left"
	}
	return "-"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
