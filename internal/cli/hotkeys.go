package cli

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/internal/apitypes"
)

// hotKeysPrinter prints GET /v1/hotkeys; both printers implement it below.
type hotKeysPrinter interface {
	HotKeys(apitypes.HotKeysReport) error
}

var (
	_ hotKeysPrinter = tablePrinter{}
	_ hotKeysPrinter = jsonPrinter{}
)

func newHotKeysCommand(e *env) *cobra.Command {
	var cr creds
	var (
		addr    string
		n       int
		timeout time.Duration
		output  string
	)
	cmd := &cobra.Command{
		Use:   "hotkeys",
		Short: "Show one node's hottest keys by request rate",
		Long: `Ask one node (its HTTP address) for the keys it coordinated most often over
its sliding window (--hot-keys-window), with each key's rate and share of the
node's requests. Keys marked hot (rate at or above --hot-keys-min-rate) are
the ones reads at ONE spread across replicas and the cache (--hot-cache-ttl)
serves. Each node sees only the requests it coordinated: ask each node, or
send clients through all of them, to see the whole cluster.`,
		Example: `  ringkv hotkeys
  ringkv hotkeys --addr 10.0.0.1:8379 -n 20 -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 0 {
				return usageError{err: fmt.Errorf("-n %d: want 0 (all) or more", n), cmd: cmd.CommandPath()}
			}
			p, err := newPrinter(cmd.OutOrStdout(), output)
			if err != nil {
				return usageError{err: err, cmd: cmd.CommandPath()}
			}
			ctx, cancel := context.WithTimeout(withCreds(cmd.Context(), resolveCreds(cmd, e, cr)), timeout)
			defer cancel()
			var rep apitypes.HotKeysReport
			path := "/v1/hotkeys?" + url.Values{"n": {strconv.Itoa(n)}}.Encode()
			if err := getJSON(ctx, addr, path, &rep); err != nil {
				return err
			}
			return p.(hotKeysPrinter).HotKeys(rep)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8379", "HTTP address (host:port or URL) of the node to ask")
	cmd.Flags().IntVarP(&n, "n", "n", 20, "show at most this many keys (0: all the node tracks)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	addOutputFlag(cmd, &output)
	addCredFlags(cmd, &cr)
	addNodeTLSFlags(cmd)
	return cmd
}

func (p jsonPrinter) HotKeys(r apitypes.HotKeysReport) error { return p.print(r) }

func (p tablePrinter) HotKeys(r apitypes.HotKeysReport) error {
	cache := "off"
	if r.CacheTTL != "" && r.CacheTTL != "0s" {
		cache = "ttl " + r.CacheTTL
	}
	fmt.Fprintf(p.w, "node: %s   window: %s   requests: %s/s   hot at: %s/s   cache: %s\n\n",
		dash(r.Node), dash(r.Window), formatRate(r.Rate), formatRate(r.MinRate), cache)
	if len(r.Keys) == 0 {
		_, err := fmt.Fprintln(p.w, "no keys observed in the window")
		return err
	}
	rows := make([][]string, 0, len(r.Keys))
	for i, k := range r.Keys {
		rows = append(rows, []string{
			strconv.Itoa(i + 1), strconv.Quote(k.Key), formatRate(k.Rate),
			strconv.FormatFloat(k.Share*100, 'f', 2, 64) + "%", yesNo(k.Hot),
		})
	}
	return writeTable(p.w, []string{"RANK", "KEY", "RATE/S", "SHARE", "HOT"}, rows)
}

// formatRate prints a rate with one decimal below 100/s, where the decimal
// still means something, and as a whole number above.
func formatRate(r float64) string {
	if r < 100 {
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
	return strconv.FormatFloat(r, 'f', 0, 64)
}
