// Package cli implements the ringkv command line: one cobra command per file,
// built around an injectable environment (output streams, environment
// variables, the node constructor) so every command runs in tests without a
// process of its own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/hugepages"
	"github.com/ringkv/ringkv/internal/server"
	"github.com/ringkv/ringkv/internal/version"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// node is what the commands need from a server.Server.
type node interface {
	Start() error
	Shutdown(ctx context.Context) error
	Addrs() server.Addrs
}

// env is everything the commands take from the process, so tests can replace it.
type env struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	lookupEnv      func(string) (string, bool)
	newNode        func(config.Config, *slog.Logger) (node, error)
	// reserveHeap is hugepages.Reserve in a real process; nil skips it.
	reserveHeap func(int64) (hugepages.Result, error)
}

func processEnv() *env {
	return &env{
		stdout:    os.Stdout,
		stdin:     os.Stdin,
		stderr:    os.Stderr,
		lookupEnv: os.LookupEnv,
		newNode: func(cfg config.Config, logger *slog.Logger) (node, error) {
			s, err := server.New(cfg, logger)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
		reserveHeap: hugepages.Reserve,
	}
}

// Main runs the ringkv command line with args (without the program name) and
// returns the process exit code. SIGINT or SIGTERM cancels the running command
// gracefully; a second signal kills the process at once.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// Restore the default handlers so a second Ctrl-C ends a stuck shutdown.
		stop()
	}()
	return run(ctx, args, processEnv())
}

// run executes one command line in e and returns its exit code.
func run(ctx context.Context, args []string, e *env) int {
	root := newRootCommand(e)
	root.SetArgs(args)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(e.stderr, "ringkv: %v\n", err)
	if ue, ok := errors.AsType[usageError](err); ok {
		fmt.Fprintf(e.stderr, "Run '%s --help' for usage.\n", ue.cmd)
		return exitUsage
	}
	return exitError
}

// usageError is a command line the command cannot parse.
type usageError struct {
	err error
	cmd string
}

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func newRootCommand(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "ringkv",
		Short: "ringkv is a distributed key-value store that speaks the Redis protocol",
		Long: `ringkv is a leaderless, Dynamo-style distributed key-value store. Keys are
spread over a consistent-hash ring and replicated to N nodes; every request
picks its consistency level (ONE, QUORUM, ALL). Clients use any Redis client,
the HTTP API, or ringkv's Go client.

Start a local cluster to try it:
  ringkv demo

Run a node:
  ringkv server --node-id n1 --data-dir /var/lib/ringkv
  ringkv server --node-id n2 --join 10.0.0.1:7946 ...`,
		Version:       version.Get().Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{err: err, cmd: c.CommandPath()}
	})
	root.AddCommand(
		newServerCommand(e),
		newDemoCommand(e),
		newStatusCommand(e),
		newRepairCommand(e),
		newDecommissionCommand(e),
		newRemoveNodeCommand(e),
		newBenchCommand(e),
		newHotKeysCommand(e),
		newHashPasswordCommand(e),
		newCertCommand(),
		newReadyCommand(),
		newVersionCommand(),
	)
	return root
}

// newLogger builds the process logger in the configured format.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: oneLineAttr}
	if format == config.LogFormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// noArgs refuses stray arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{err: fmt.Errorf("unexpected argument %q", args[0]), cmd: cmd.CommandPath()}
	}
	return nil
}
