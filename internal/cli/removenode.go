package cli

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

func newRemoveNodeCommand(e *env) *cobra.Command {
	var cr creds
	var (
		addr    string
		id      string
		timeout time.Duration
		wait    bool
	)
	cmd := &cobra.Command{
		Use:   "removenode",
		Short: "Take a dead node out of the ring and re-replicate its ranges",
		Long: `Remove a node that is down for good. Any live node (--addr, its HTTP address)
marks it leaving cluster-wide; the nodes that take over its ranges pull them
from the surviving replicas; then it is marked removed. A live node must be
decommissioned instead. A removed node must not come back under the same id
with its old data.`,
		Example: `  ringkv removenode --id n3 --addr 10.0.0.1:8379`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return usageError{err: fmt.Errorf("--id is required"), cmd: cmd.CommandPath()}
			}
			ctx, cancel := context.WithTimeout(withCreds(cmd.Context(), resolveCreds(cmd, e, cr)), timeout)
			defer cancel()
			msg, err := postAdmin(ctx, addr, "/v1/admin/removenode?id="+url.QueryEscape(id))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", id, msg)
			if !wait {
				return nil
			}
			return waitGone(ctx, cmd, addr, id)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8379", "HTTP address (host:port or URL) of any live node")
	cmd.Flags().StringVar(&id, "id", "", "id of the dead node to remove")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Hour, "give up waiting after this long (the removal goes on)")
	cmd.Flags().BoolVar(&wait, "wait", true, "follow progress until the node is removed")
	addCredFlags(cmd, &cr)
	addNodeTLSFlags(cmd)
	return cmd
}
