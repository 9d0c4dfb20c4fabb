package replication

import (
	"context"
	"errors"
	"sync"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
)

// ErrNotInteger refuses INCR on a value that is not an integer in range;
// the text is Redis' own.
var ErrNotInteger = errors.New("value is not an integer or out of range")

// ErrOverflow refuses an increment that would take a counter out of
// int64; the text is Redis' own.
var ErrOverflow = record.ErrOverflow

// incrLockStripes spreads the per-key locks of Incr.
const incrLockStripes = 256

// incrLocks serialise the increments of one key through this node: each
// reads this node's entry of the counter, adds to it and writes it back,
// and two that overlapped would both write the same total, one increment
// lost. Increments through other nodes need no lock: they raise only
// their own entries.
type incrLocks [incrLockStripes]sync.Mutex

func (l *incrLocks) lock(tok uint64) *sync.Mutex {
	return &l[tok&(incrLockStripes-1)]
}

// Incr adds delta to key's counter and returns its new value: INCR, DECR,
// INCRBY and DECRBY. It reads the key from the replicas (the merge of
// their states), adds delta to this node's own entry of the PN-counter and
// writes the new state to the replicas, which merge it with theirs.
// Increments made at once through other nodes all count.
//
// It reads and writes at QUORUM at least, whatever lvl asks: this node's
// entry must never go back, and a read that missed this node's last
// acknowledged write would write an older total, losing increments. A
// key that holds a string which is not an integer is refused with
// ErrNotInteger, a result outside int64 with ErrOverflow; a counter
// starts from a string that holds an integer, as Redis does, and from 0 on
// a missing, deleted or expired key.
func (c *Coordinator) Incr(ctx context.Context, key []byte, delta int64, lvl Level) (v int64, err error) {
	if lvl < Quorum {
		lvl = Quorum
	}
	start := clock.Mono()
	if err := c.writeRefused(start); err != nil {
		return 0, err
	}
	if c.cfg.HotCache != nil {
		defer c.cfg.HotCache.Invalidate(key)
	}
	tok := ring.Token(key)
	mu := c.incr.lock(tok)
	mu.Lock()
	defer mu.Unlock()
	reps, tally := c.writeReplicas(tok, lvl)
	if err := tally.check(); err != nil {
		return 0, err
	}
	for attempt := 0; ; attempt++ {
		prev, found, err := c.get(ctx, tok, key, lvl, false)
		if err != nil {
			return 0, err
		}
		now := c.Now().UnixMilli()
		ctr, ok := record.CounterFrom(&prev, found, now)
		if !ok {
			return 0, ErrNotInteger
		}
		if v, err = ctr.Add(c.cfg.NodeID, delta); err != nil {
			return 0, err
		}
		if found {
			// The new state must win over the record it starts from,
			// stamped by a node whose clock may run ahead of ours.
			if err := c.hlc.Update(prev.Version.TS); err != nil {
				return 0, err
			}
		}
		rec := record.Record{Version: record.Version{TS: c.hlc.Now(), Node: c.cfg.NodeID}}
		if found && prev.Live(now) {
			rec.ExpireAt = prev.ExpireAt // INCR keeps a TTL, as in Redis
		}
		rec.SetCounter(&ctr)
		start := clock.Mono()
		_, _, newer, err := c.write(ctx, key, &rec, reps, tally)
		c.metrics.observe("write", lvl, start, err)
		if err != nil {
			return 0, err
		}
		if newer == nil || attempt == maxSupersededRetries {
			return v, nil
		}
		// A replica held a newer write that this one lost to (a SET
		// racing the INCR, or one through a node whose clock runs
		// ahead): read again and add to what is there now.
		if err := c.hlc.Update(newer.Version.TS); err != nil {
			return 0, err
		}
		c.metrics.superseded.Inc()
	}
}
