package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/peermethod"
)

// MethodFlush raises a node's flush barrier: payload barrier ts(8, BE) +
// sync(1); the answer is empty. Its number is in internal/peermethod.
const MethodFlush = peermethod.Flush

// Flusher is a local store with a flush barrier (FLUSHALL);
// *storage.Store implements it.
type Flusher interface {
	Barrier() clock.Timestamp
	SetBarrier(ts clock.Timestamp) error
	PurgeBelowBarrier() (int, error)
}

// flushSyncTimeout bounds a FLUSHALL SYNC, whose nodes each purge all
// their data before they answer.
const flushSyncTimeout = 5 * time.Minute

// ErrFlushPartial is a FLUSHALL that did not reach every node: those it
// reached hold the barrier, the others not yet. Running it again finishes it.
var ErrFlushPartial = errors.New("replication: FLUSHALL did not reach every node, run it again")

// FlushAll empties the cluster (FLUSHALL, FLUSHDB): it sets a barrier
// version on every node, below which every record is dead, whichever path
// brings it (a hint, a repair, a stream, anti-entropy), and each node
// purges the records below it. It needs every member up, and fails
// unattempted (ErrUnavailable) otherwise: a node that missed the barrier
// would bring the flushed data back. Each node moves its clock past the
// barrier before it answers, so a write coordinated anywhere after FlushAll
// returns is stamped above it. With sync each node purges before it
// answers; without, the purge runs behind the reply (reads no longer see
// the data either way). The opt-in hot-key cache may still serve a flushed
// key for up to its TTL, as it may a key written through another node.
func (c *Coordinator) FlushAll(ctx context.Context, sync bool) error {
	start := clock.Mono()
	if err := c.writeRefused(start); err != nil {
		return err
	}
	nodes := c.topo.Nodes()
	var down []string
	for _, n := range nodes {
		if !n.Up {
			down = append(down, n.ID)
		}
	}
	if len(down) > 0 {
		return fmt.Errorf("%w: FLUSHALL needs every node up, %s down", ErrUnavailable, strings.Join(down, ", "))
	}
	timeout := c.cfg.RequestTimeout
	if sync {
		timeout = flushSyncTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	barrier := c.hlc.Now()
	payload := binary.BigEndian.AppendUint64(nil, uint64(barrier))
	if sync {
		payload = append(payload, 1)
	} else {
		payload = append(payload, 0)
	}
	errs := make(chan error, len(nodes))
	for i := range nodes {
		n := nodes[i]
		go func() {
			var err error
			if c.isLocal(&n) {
				_, err = c.serveFlush(payload)
			} else {
				_, err = c.net.Call(ctx, n.Addr, MethodFlush, payload)
			}
			if err != nil {
				err = fmt.Errorf("%s: %w", n.ID, err)
			}
			errs <- err
		}()
	}
	var failed []error
	for range nodes {
		if err := <-errs; err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w: %d of %d nodes: %w", ErrFlushPartial, len(failed), len(nodes), errors.Join(failed...))
	}
	return nil
}

// serveFlush raises this node's barrier (MethodFlush).
func (c *Coordinator) serveFlush(p []byte) ([]byte, error) {
	if len(p) != 9 || p[8] > 1 {
		return nil, errWire
	}
	f, ok := c.local.(Flusher)
	if !ok {
		return nil, errors.New("replication: this node's store has no flush barrier")
	}
	barrier := clock.Timestamp(binary.BigEndian.Uint64(p))
	// Every write this node coordinates from now on is stamped above the
	// barrier: one below it would be acknowledged and dropped.
	if err := c.hlc.Update(barrier); err != nil {
		return nil, err
	}
	if err := f.SetBarrier(barrier); err != nil {
		return nil, err
	}
	if p[8] == 1 {
		if _, err := f.PurgeBelowBarrier(); err != nil {
			return nil, err
		}
		return nil, nil
	}
	go func() {
		if _, err := f.PurgeBelowBarrier(); err != nil {
			c.log.Error("purge below the flush barrier failed", "err", err)
		}
	}()
	return nil, nil
}

// barrier returns the local store's flush barrier, 0 without one.
func (c *Coordinator) barrier() clock.Timestamp {
	if f, ok := c.local.(Flusher); ok {
		return f.Barrier()
	}
	return 0
}
