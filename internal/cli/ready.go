package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// errNotReady is a node that answered /readyz with anything but 200.
var errNotReady = errors.New("not ready")

// newReadyCommand is a health probe for images with no shell or curl (the
// FROM scratch image's Docker HEALTHCHECK): it asks a node's /readyz and
// exits 0 only when the node is ready.
func newReadyCommand() *cobra.Command {
	var (
		addr    string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "ready",
		Short: "Exit 0 if a node is ready to serve (its /readyz), 1 with the reason if not",
		Long: `Ask one node's HTTP port for /readyz and exit 0 when it is ready. Otherwise
print the node's reason (forming, joining, disk full, ...) and exit 1. Meant
for health checks where no curl is at hand, such as the container image.`,
		Example: `  ringkv ready --addr 127.0.0.1:8379`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			hc, scheme := nodeClient(ctx)
			url := addr
			if !strings.Contains(url, "://") {
				url = scheme + url
			}
			url = strings.TrimSuffix(url, "/") + "/readyz"
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			reason := strings.TrimSpace(string(body))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%w: %s: %s", errNotReady, resp.Status, reason)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), reason)
			return err
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8379", "HTTP address (host:port or URL) of the node")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	addNodeTLSFlags(cmd)
	return cmd
}
