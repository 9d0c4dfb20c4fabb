package resp

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/ring"
)

// memBackend is a single-node, in-memory Backend: the seam the server tests run
// against. It keeps tombstones and expired records as the real store does, so
// the server's liveness checks are exercised.
type memBackend struct {
	clock clock.Clock
	// notAlone makes ReadsAlone false: GETs then leave the event loop.
	notAlone atomic.Bool
	// scanCount is the count the last Scan was asked for.
	scanCount atomic.Int64

	mu struct {
		sync.Mutex
		data   map[string]record.Record
		seq    clock.Timestamp
		err    error // returned by every call while set
		levels []replication.Level
		// batches and getBatches record the size of each PutBatch and
		// GetBatch call.
		batches, getBatches []int
	}
}

var (
	_ Backend     = (*memBackend)(nil)
	_ BatchPutter = (*memBackend)(nil)
	_ GetBatcher  = (*memBackend)(nil)
)

func (b *memBackend) GetBatchInto(ctx context.Context, dst []replication.GetResult, keys [][]byte, lvl replication.Level) []replication.GetResult {
	b.mu.Lock()
	b.mu.getBatches = append(b.mu.getBatches, len(keys))
	b.mu.Unlock()
	// As the coordinator does: dst's memory, whatever it held.
	out := slices.Grow(dst[:0], len(keys))[:len(keys)]
	clear(out)
	for i, k := range keys {
		out[i].Rec, out[i].Found, out[i].Err = b.Get(ctx, k, lvl)
	}
	return out
}

// errBatchRefused is what PutBatch answers for keys starting "refuse:", so a
// test can see one write of a batch fail alone.
var errBatchRefused = errors.New("refused by the test backend")

func (b *memBackend) PutBatch(ctx context.Context, keys [][]byte, muts []replication.Mutation, lvl replication.Level) []error {
	b.mu.Lock()
	b.mu.batches = append(b.mu.batches, len(keys))
	b.mu.Unlock()
	errs := make([]error, len(keys))
	for i, k := range keys {
		if bytes.HasPrefix(k, []byte("refuse:")) {
			errs[i] = errBatchRefused
			continue
		}
		_, _, errs[i] = b.Put(ctx, k, muts[i], lvl)
	}
	return errs
}

func newMemBackend(c clock.Clock) *memBackend {
	b := &memBackend{clock: c}
	b.mu.data = make(map[string]record.Record)
	return b
}

func (b *memBackend) setErr(err error) {
	b.mu.Lock()
	b.mu.err = err
	b.mu.Unlock()
}

func (b *memBackend) Get(ctx context.Context, key []byte, lvl replication.Level) (record.Record, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.levels = append(b.mu.levels, lvl)
	if b.mu.err != nil {
		return record.Record{}, false, b.mu.err
	}
	rec, ok := b.mu.data[string(key)]
	return rec.Clone(), ok, nil
}

func (b *memBackend) Put(ctx context.Context, key []byte, m replication.Mutation, lvl replication.Level) (record.Record, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.levels = append(b.mu.levels, lvl)
	if b.mu.err != nil {
		return record.Record{}, false, b.mu.err
	}
	prev, ok := b.mu.data[string(key)]
	b.mu.seq++
	b.mu.data[string(key)] = record.Record{
		Value:     bytes.Clone(m.Value),
		Version:   record.Version{TS: b.mu.seq, Node: "n1"},
		ExpireAt:  m.ExpireAt,
		Tombstone: m.Tombstone,
	}
	return prev, ok, nil
}

func (b *memBackend) Scan(ctx context.Context, cursor uint64, count int, lvl replication.Level) ([][]byte, uint64, error) {
	b.scanCount.Store(int64(count))
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.err != nil {
		return nil, 0, b.mu.err
	}
	now := b.clock.Now().UnixMilli()
	var keys []string
	for k, r := range b.mu.data {
		if r.Live(now) && ring.Token([]byte(k)) >= cursor {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(x, y string) int {
		tx, ty := ring.Token([]byte(x)), ring.Token([]byte(y))
		switch {
		case tx < ty:
			return -1
		case tx > ty:
			return 1
		}
		return 0
	})
	var out [][]byte
	for i, k := range keys {
		if i == count {
			return out, ring.Token([]byte(k)), nil
		}
		out = append(out, []byte(k))
	}
	return out, 0, nil
}

func (b *memBackend) DBSize(ctx context.Context) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now().UnixMilli()
	var n int64
	for _, r := range b.mu.data {
		if r.Live(now) {
			n++
		}
	}
	return n, nil
}

func (b *memBackend) Now() time.Time { return b.clock.Now() }

// ReadsAlone implements SoloReader: a map answers every read at once.
func (b *memBackend) ReadsAlone() bool { return !b.notAlone.Load() }

// record returns the stored record of key, tombstones included.
func (b *memBackend) record(key string) (record.Record, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.mu.data[key]
	return r, ok
}
