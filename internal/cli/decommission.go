package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/internal/apitypes"
)

func newDecommissionCommand(e *env) *cobra.Command {
	var cr creds
	var (
		addr    string
		timeout time.Duration
		wait    bool
	)
	cmd := &cobra.Command{
		Use:   "decommission",
		Short: "Stream a live node's ranges to their new owners and take it out of the ring",
		Long: `Tell the node at --addr (its HTTP address) to leave the cluster. It turns
"leaving", the nodes that take over its ranges pull them from it, and then it
turns "removed": out of the ring, still running until you stop it. With
--wait the command follows the progress until the node is removed.`,
		Example: `  ringkv decommission --addr 10.0.0.4:8379`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(withCreds(cmd.Context(), resolveCreds(cmd, e, cr)), timeout)
			defer cancel()
			var self apitypes.ClusterStatus
			if err := getJSON(ctx, addr, "/v1/cluster", &self); err != nil {
				return err
			}
			msg, err := postAdmin(ctx, addr, "/v1/admin/decommission")
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", self.Self, msg)
			if !wait {
				return nil
			}
			return waitGone(ctx, cmd, addr, self.Self)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8379", "HTTP address (host:port or URL) of the node to decommission")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Hour, "give up waiting after this long (the change goes on)")
	cmd.Flags().BoolVar(&wait, "wait", true, "follow progress until the node is removed")
	addCredFlags(cmd, &cr)
	addNodeTLSFlags(cmd)
	return cmd
}

// waitGone polls the node at addr until it no longer lists id as a member,
// printing the streaming progress as it changes.
func waitGone(ctx context.Context, cmd *cobra.Command, addr, id string) error {
	last := ""
	for {
		var st apitypes.ClusterStatus
		if err := getJSON(ctx, addr, "/v1/cluster", &st); err != nil {
			return err
		}
		var parts []string
		gone := true
		for _, n := range st.Nodes {
			if n.ID == id && n.State != "removed" {
				gone = false
			}
			if n.StreamRangesLeft > 0 {
				parts = append(parts, fmt.Sprintf("%s: %d ranges left", n.ID, n.StreamRangesLeft))
			}
		}
		if gone {
			fmt.Fprintf(cmd.OutOrStdout(), "%s removed\n", id)
			return nil
		}
		if line := strings.Join(parts, ", "); line != last && line != "" {
			fmt.Fprintln(cmd.OutOrStdout(), line)
			last = line
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not removed yet: %w", id, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// postAdmin POSTs to an admin endpoint and returns the status it reports.
func postAdmin(ctx context.Context, addr, path string) (string, error) {
	hc, scheme := nodeClient(ctx)
	base := addr
	if !strings.Contains(base, "://") {
		base = scheme + base
	}
	url := strings.TrimSuffix(base, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return "", err
	}
	authorize(req)
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return "", fmt.Errorf("POST %s: %w", url, err)
	}
	var out struct{ Status, Error, Code string }
	if json.Unmarshal(body, &out) != nil {
		return "", fmt.Errorf("POST %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("POST %s: %s: %s (%s)", url, resp.Status, out.Error, out.Code)
	}
	return out.Status, nil
}
