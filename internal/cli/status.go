package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/internal/apitypes"
)

func newStatusCommand(e *env) *cobra.Command {
	var cr creds
	var (
		addr    string
		timeout time.Duration
		output  string
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's nodes, states, zones, ownership and hint backlog",
		Long: `Ask one node (its HTTP address) for its view of the cluster and print it.
Nodes disagree only briefly, while gossip spreads a change.`,
		Example: `  ringkv status
  ringkv status --addr 10.0.0.1:8379 -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := newPrinter(cmd.OutOrStdout(), output)
			if err != nil {
				return usageError{err: err, cmd: cmd.CommandPath()}
			}
			ctx, cancel := context.WithTimeout(withCreds(cmd.Context(), resolveCreds(cmd, e, cr)), timeout)
			defer cancel()
			var s apitypes.ClusterStatus
			if err := getJSON(ctx, addr, "/v1/cluster", &s); err != nil {
				return err
			}
			// The clock is the asked node's own; a node too old to answer
			// /v1/clock gets the status without it.
			var clk apitypes.ClockStatus
			if err := getJSON(ctx, addr, "/v1/clock", &clk); err != nil {
				return p.ClusterStatus(s)
			}
			if jp, ok := p.(jsonPrinter); ok {
				return jp.print(struct {
					apitypes.ClusterStatus
					Clock apitypes.ClockStatus `json:"clock"`
				}{s, clk})
			}
			if err := p.ClusterStatus(s); err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "\n"+clockLine(s.Self, clk))
			return err
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8379", "HTTP address (host:port or URL) of any node")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	addOutputFlag(cmd, &output)
	addCredFlags(cmd, &cr)
	addNodeTLSFlags(cmd)
	return cmd
}

// maxResponseBytes bounds what an admin command reads from a node.
const maxResponseBytes = 64 << 20

// getJSON fetches path from the node at addr and decodes its JSON body into v.
func getJSON(ctx context.Context, addr, path string, v any) error {
	return callJSON(ctx, http.MethodGet, addr, path, v)
}

// postJSON posts an empty body to path on the node at addr and decodes its
// JSON answer into v.
func postJSON(ctx context.Context, addr, path string, v any) error {
	return callJSON(ctx, http.MethodPost, addr, path, v)
}

// callJSON is the admin commands' one HTTP call: it turns a node's JSON error
// body into a readable error and says so when addr is not a ringkv HTTP port.
func callJSON(ctx context.Context, method, addr, path string, v any) error {
	hc, scheme := nodeClient(ctx)
	base := addr
	if !strings.Contains(base, "://") {
		base = scheme + base
	}
	url := strings.TrimSuffix(base, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	authorize(req)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e apitypes.ErrorBody
		if json.Unmarshal(body, &e) == nil && e.Code != "" {
			return fmt.Errorf("%s %s: %s: %s (%s)", method, url, resp.Status, e.Error, e.Code)
		}
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("%s %s: not a JSON answer (is %s a ringkv HTTP address?): %w", method, url, addr, err)
		}
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	return nil
}

// clockLine summarises the asked node's clock for the table output: whether
// it refuses writes for its clock, and its offset from each peer.
func clockLine(self string, c apitypes.ClockStatus) string {
	var b strings.Builder
	if c.Skewed {
		fmt.Fprintf(&b, "clock of %s: SKEWED, %s", dash(self), c.Error)
	} else {
		fmt.Fprintf(&b, "clock of %s: ok, %+dms from its peers (writes stop beyond ±%dms)", dash(self), c.OffsetMS, c.ThresholdMS)
	}
	for _, p := range c.Peers {
		fmt.Fprintf(&b, "\n  vs %s: %+dms ±%dms", p.Peer, p.OffsetMS, p.UncertaintyMS)
	}
	if c.GuardRefused > 0 {
		fmt.Fprintf(&b, "\n  records refused as from the future: %d", c.GuardRefused)
	}
	return b.String()
}
