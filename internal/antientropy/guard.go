package antientropy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ErrStaleNode is returned by CheckRejoin for a node that was away longer than
// gc-grace with data on disk.
var ErrStaleNode = errors.New("antientropy: node was down longer than gc-grace")

// lastAliveKey is where the node records, in its metadata keyspace, the last
// instant it was known to be running.
var lastAliveKey = []byte("antientropy/last-alive")

// MetaStore is a small durable key-value space for node metadata; the
// storage's 'm' Keyspace implements it. Values returned are the caller's.
type MetaStore interface {
	Get(k []byte) ([]byte, bool, error)
	Set(k, v []byte) error
}

// CheckRejoin enforces the gc-grace rule at startup. A node that holds records
// and was last alive more than gcGrace ago may hold values whose tombstones
// the other replicas have purged since; rejoining would resurrect them through
// reads, repair and anti-entropy, so it is refused unless allowStale is set.
// A node with no records (wiped, or new) always passes, as does one that has
// never recorded a time.
func CheckRejoin(meta MetaStore, now time.Time, gcGrace time.Duration, hasData, allowStale bool, log *slog.Logger) error {
	last, ok, err := LastAlive(meta)
	if err != nil {
		return err
	}
	if !ok || !hasData {
		return nil
	}
	away := now.Sub(last)
	if away <= gcGrace {
		return nil
	}
	if allowStale {
		log.Warn("starting with data older than gc-grace because --allow-stale-data is set; deleted keys may come back",
			"last_alive", last.UTC().Format(time.RFC3339), "away", away.Round(time.Second), "gc_grace", gcGrace)
		return nil
	}
	return fmt.Errorf("%w: last alive %s, %s ago, and --gc-grace is %s: its data may hold keys that were deleted "+
		"since and whose tombstones are already purged elsewhere, so rejoining would bring them back. "+
		"Wipe the data directory, start the node, and run `ringkv repair --addr <this node's HTTP address>`; "+
		"pass --allow-stale-data only if no key was deleted cluster-wide while it was away (for example, every node was down)",
		ErrStaleNode, last.UTC().Format(time.RFC3339), away.Round(time.Second), gcGrace)
}

// LastAlive returns the last-alive time recorded by MarkAlive.
func LastAlive(meta MetaStore) (time.Time, bool, error) {
	v, ok, err := meta.Get(lastAliveKey)
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	if len(v) != 8 {
		return time.Time{}, false, fmt.Errorf("antientropy: last-alive record is %d bytes, want 8", len(v))
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(v))), true, nil
}

// MarkAlive records now as the last instant the node was running.
func MarkAlive(meta MetaStore, now time.Time) error {
	return meta.Set(lastAliveKey, binary.BigEndian.AppendUint64(nil, uint64(now.UnixMilli())))
}

// AliveInterval is how often a node refreshes its last-alive time for a given
// gc-grace: every 10 s, or a tenth of gc-grace when that is shorter, so the
// time recorded lags the truth by a small fraction of the grace period.
func AliveInterval(gcGrace time.Duration) time.Duration {
	return max(min(10*time.Second, gcGrace/10), 10*time.Millisecond)
}

// KeepAlive calls MarkAlive every interval until ctx is done, and once more
// then, so a clean shutdown records its own time.
func KeepAlive(ctx context.Context, meta MetaStore, now func() time.Time, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := MarkAlive(meta, now()); err != nil {
				log.Warn("recording last-alive time at shutdown", "err", err)
			}
			return
		case <-t.C:
			if err := MarkAlive(meta, now()); err != nil {
				log.Warn("recording last-alive time", "err", err)
			}
		}
	}
}
