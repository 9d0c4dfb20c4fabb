package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/internal/version"
)

func newVersionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build date of this binary",
		Long: `Print what was stamped into this binary when it was built. A running node
reports the same in INFO server (ringkv_version), /v1/cluster and the
ringkv_build_info metric.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := version.Get()
			switch output {
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				return enc.Encode(b)
			case "", "text":
				_, err := fmt.Fprintln(cmd.OutOrStdout(), b.String())
				return err
			}
			return usageError{err: fmt.Errorf("unknown output format %q (text or json)", output), cmd: cmd.CommandPath()}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
