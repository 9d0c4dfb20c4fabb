package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/internal/auth"
)

func newHashPasswordCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "hash-password",
		Short: "Read a password from stdin and print its bcrypt hash for --users-file",
		Long: `Read one password from standard input (its first line, without the line
break) and print its bcrypt hash, which goes in the password field of a user
in the --users-file. The password never appears on a command line.`,
		Example: `  ringkv hash-password            # type the password, then Enter
  printf '%s' "$PW" | ringkv hash-password`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// bcrypt reads 72 bytes; one more tells a longer password apart.
			line, err := bufio.NewReader(io.LimitReader(e.stdin, 1<<10)).ReadBytes('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			pw := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
			h, err := auth.HashPassword(pw)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), string(h))
			return err
		},
	}
}
