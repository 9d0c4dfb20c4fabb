package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/version"
)

func newServerCommand(e *env) *cobra.Command {
	cfg := config.Default()
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a ringkv node",
		Long: `Run one ringkv node until SIGINT or SIGTERM, then shut it down gracefully:
stop accepting requests, drain connections, sync and close storage.

Every flag can also be set in the environment as RINGKV_<FLAG> (upper case,
'-' as '_', e.g. RINGKV_MAX_VALUE_BYTES=16MiB) or in a YAML file given with
--config (or RINGKV_CONFIG) whose keys are the flag names. A flag on the
command line wins over the environment, which wins over the file.`,
		Example: `  ringkv server --node-id n1 --data-dir /var/lib/ringkv --client-addr 0.0.0.0:7379 --password s3cret
  RINGKV_JOIN=10.0.0.1:7946 ringkv server --config /etc/ringkv.yaml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Load(cmd.Flags(), e.lookupEnv); err != nil {
				return err
			}
			logger := newLogger(cmd.ErrOrStderr(), cfg.LogFormat, cfg.LogLevel)
			return runServer(cmd.Context(), cfg, logger, e)
		},
	}
	cmd.Flags().SortFlags = false // Keep related flags together, in AddFlags order.
	cfg.AddFlags(cmd.Flags())
	return cmd
}

// heapReserve is the heap a node grows into under load: Pebble's block cache,
// which its two memtables are charged to, and the row cache, twice over for
// the garbage the collector lets build up between cycles at GOGC=100.
const heapReserve = 2 * (storage.DefaultCacheSize + 2*storage.DefaultMemTableSize + storage.DefaultRowCacheSize)

// runServer starts a node and stops it once ctx is done.
func runServer(ctx context.Context, cfg config.Config, logger *slog.Logger, e *env) error {
	for _, w := range cfg.Warnings() {
		logger.Warn(w)
	}
	if cfg.HugePages && e.reserveHeap != nil {
		// Before the node is built: the advice covers only the heap grown
		// afterwards.
		res, err := e.reserveHeap(heapReserve)
		if err != nil {
			logger.Warn("heap not advised for huge pages", "err", err)
		} else {
			logger.Info("heap advised for huge pages", "thp_mode", res.Mode, "advised_mib", res.Advised>>20)
		}
	}
	if err := removeStaleAddrFile(cfg.AddrFile); err != nil {
		return err
	}
	n, err := e.newNode(cfg, logger)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	// Start runs apart so that a signal is heard while it runs: opening the
	// store can take long (a large log to replay) or never end (an engine
	// retrying a flush on a full disk), and SIGTERM must always work.
	started := make(chan error, 1)
	go func() { started <- n.Start() }()
	select {
	case err := <-started:
		if err != nil {
			// Start may fail after opening storage or a listener; release them.
			return errors.Join(fmt.Errorf("server: start: %w", err), shutdown(ctx, n, cfg.ShutdownTimeout))
		}
	case <-ctx.Done():
		return abandonStart(ctx, n, cfg, logger, started)
	}
	a := n.Addrs()
	if cfg.AddrFile != "" {
		// Once every listener is bound (Start returned), so that the file
		// holds the ports the kernel picked for port 0.
		if err := writeAddrFile(cfg.AddrFile, a); err != nil {
			return errors.Join(err, shutdown(ctx, n, cfg.ShutdownTimeout))
		}
	}
	logger.Info("ringkv node started", "node", cfg.NodeID, "version", version.Get().Version, "commit", version.Get().Commit,
		"client", a.Client, "http", a.HTTP, "peer", a.Peer, "gossip", a.Gossip, "replicas", cfg.Replicas)

	<-ctx.Done()
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	if err := shutdown(ctx, n, cfg.ShutdownTimeout); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// startGrace is how long a signal received during Start waits for it to end
// before the process leaves without it (a variable for tests).
var startGrace = 5 * time.Second

// abandonStart handles a signal that came while n was starting: a start that
// ends within startGrace is shut down as usual; one that does not is left,
// and the process exits. Nothing is lost by that: no client was served yet,
// and what storage recovered is still on disk.
func abandonStart(ctx context.Context, n node, cfg config.Config, logger *slog.Logger, started <-chan error) error {
	logger.Warn("signal received while starting; stopping", "grace", startGrace)
	select {
	case err := <-started:
		if err != nil {
			return errors.Join(fmt.Errorf("server: start: %w", err), shutdown(ctx, n, cfg.ShutdownTimeout))
		}
		if err := shutdown(ctx, n, cfg.ShutdownTimeout); err != nil {
			return err
		}
		logger.Info("stopped")
		return nil
	case <-time.After(startGrace):
		return fmt.Errorf("server: interrupted while starting: the start did not finish within %v of the signal "+
			"(a storage open that cannot complete, e.g. on a full disk); exiting without it", startGrace)
	}
}

// shutdown stops n within timeout. It detaches from ctx, which is usually the
// cancelled signal context that asked for the shutdown in the first place.
func shutdown(ctx context.Context, n node, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	return nil
}
