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

	"github.com/ringkv/ringkv/internal/httpapi"
)

func newStatusCommand() *cobra.Command {
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
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			var s httpapi.ClusterStatus
			if err := getJSON(ctx, addr, "/v1/cluster", &s); err != nil {
				return err
			}
			return p.ClusterStatus(s)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8379", "HTTP address (host:port or URL) of any node")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	addOutputFlag(cmd, &output)
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
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	url := strings.TrimSuffix(base, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e httpapi.ErrorBody
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
