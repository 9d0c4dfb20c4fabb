// Package handoff is hinted handoff (design §4): when a replica misses a write,
// the coordinator keeps the write as a durable hint and replays it, with its
// original version, once the replica is back. Hints never count toward a write's
// consistency level; they shorten the time a replica stays stale, and read repair
// and anti-entropy catch whatever a dropped hint leaves behind.
package handoff

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
)

// KV is the durable keyspace hints live in (storage's 'h' keyspace). Iterate
// visits keys in order from `from` and stops early when fn returns an error,
// which it passes on.
type KV interface {
	Set(k, v []byte) error
	Delete(k []byte) error
	Iterate(from []byte, fn func(k, v []byte) error) error
}

// Deliver sends one hinted write to its target replica.
type Deliver func(ctx context.Context, target string, key []byte, rec *record.Record) error

// Up reports whether a target replica is alive now.
type Up func(target string) bool

// Config tunes the queue.
type Config struct {
	// MaxWindow is how long a hint is kept: older hints are dropped unreplayed
	// and left to anti-entropy, as a replica down that long needs a repair anyway.
	MaxWindow time.Duration
	// MaxBytes bounds the hints on disk; hints over it are dropped and counted.
	MaxBytes int64
	// ReplayInterval is how often the queue looks for targets that came back.
	ReplayInterval time.Duration
	// Parallel bounds the hints in flight to one target during replay.
	Parallel int
	Clock    clock.Clock
	Logger   *slog.Logger
	// Registerer receives the queue's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// DefaultConfig returns the defaults of `ringkv server`.
func DefaultConfig() Config {
	return Config{
		MaxWindow:      3 * time.Hour, // Cassandra's default max_hint_window
		MaxBytes:       1 << 30,
		ReplayInterval: time.Second, // a returning replica is caught up within seconds
		Parallel:       32,
		Clock:          clock.System{},
	}
}

// Queue is the durable hint queue and its replayer.
type Queue struct {
	cfg     Config
	kv      KV
	deliver Deliver
	up      Up
	log     *slog.Logger
	seq     atomic.Uint64
	bytes   atomic.Int64
	metrics *metrics

	mu struct {
		sync.Mutex
		backlog map[string]int
	}
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	replay sync.Mutex // one replay pass at a time
}

// New opens the queue over kv, counting the hints already there.
func New(cfg Config, kv KV, deliver Deliver, up Up) (*Queue, error) {
	def := DefaultConfig()
	if cfg.MaxWindow <= 0 {
		cfg.MaxWindow = def.MaxWindow
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = def.MaxBytes
	}
	if cfg.ReplayInterval <= 0 {
		cfg.ReplayInterval = def.ReplayInterval
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = def.Parallel
	}
	if cfg.Clock == nil {
		cfg.Clock = def.Clock
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	q := &Queue{
		cfg: cfg, kv: kv, deliver: deliver, up: up,
		log:     cfg.Logger.With("component", "handoff"),
		metrics: newMetrics(cfg.Registerer),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	q.mu.backlog = map[string]int{}
	// Sequence numbers start at the wall clock in ns so hints written after a
	// restart never reuse a key.
	q.seq.Store(uint64(cfg.Clock.Now().UnixNano()))
	err := kv.Iterate(nil, func(k, v []byte) error {
		target, _, ok := parseKey(k)
		if ok {
			q.mu.backlog[target]++
			q.bytes.Add(int64(len(k) + len(v)))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("handoff: counting hints: %w", err)
	}
	q.updateGauge()
	return q, nil
}

// hint key: target 0x00 createdAt-ms(8) seq(8). Node ids never hold 0x00.
func hintKey(target string, createdMS int64, seq uint64) []byte {
	k := make([]byte, 0, len(target)+17)
	k = append(k, target...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(createdMS))
	return binary.BigEndian.AppendUint64(k, seq)
}

func parseKey(k []byte) (target string, createdMS int64, ok bool) {
	i := bytes.IndexByte(k, 0)
	if i < 0 || len(k)-i-1 != 16 {
		return "", 0, false
	}
	return string(k[:i]), int64(binary.BigEndian.Uint64(k[i+1:])), true
}

func encodeHint(key []byte, rec *record.Record) []byte {
	b := binary.AppendUvarint(make([]byte, 0, 4+len(key)+rec.EncodedLen()), uint64(len(key)))
	b = append(b, key...)
	return rec.AppendEncode(b)
}

func decodeHint(v []byte) (key []byte, rec record.Record, err error) {
	n, w := binary.Uvarint(v)
	if w <= 0 || n > uint64(len(v)-w) {
		return nil, rec, errors.New("handoff: corrupt hint")
	}
	key = v[w : w+int(n)]
	rec, err = record.Decode(v[w+int(n):])
	return key, rec, err
}

// Hint stores a write that target missed. It never blocks on the network.
func (q *Queue) Hint(target string, key []byte, rec *record.Record) {
	v := encodeHint(key, rec)
	k := hintKey(target, q.cfg.Clock.Now().UnixMilli(), q.seq.Add(1))
	size := int64(len(k) + len(v))
	if q.bytes.Load()+size > q.cfg.MaxBytes {
		q.metrics.dropped.WithLabelValues("full").Inc()
		return
	}
	if err := q.kv.Set(k, v); err != nil {
		q.metrics.dropped.WithLabelValues("error").Inc()
		q.log.Error("storing hint failed", "target", target, "err", err)
		return
	}
	q.bytes.Add(size)
	q.metrics.stored.Inc()
	q.mu.Lock()
	q.mu.backlog[target]++
	q.mu.Unlock()
	q.updateGauge()
}

// Backlog returns the number of hints waiting per target.
func (q *Queue) Backlog() map[string]int {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make(map[string]int, len(q.mu.backlog))
	for t, n := range q.mu.backlog {
		if n > 0 {
			out[t] = n
		}
	}
	return out
}

func (q *Queue) updateGauge() { q.metrics.bytes.Set(float64(q.bytes.Load())) }

// Start runs the replayer until Shutdown.
func (q *Queue) Start() {
	go func() {
		defer close(q.done)
		t := time.NewTicker(q.cfg.ReplayInterval)
		defer t.Stop()
		for {
			select {
			case <-q.stop:
				return
			case <-t.C:
			case <-q.kick:
			}
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-q.stop:
				case <-ctx.Done():
				}
				cancel()
			}()
			q.ReplayNow(ctx)
			cancel()
		}
	}()
}

// Kick asks the replayer to run now, e.g. when membership saw a node come back.
func (q *Queue) Kick() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// Shutdown stops the replayer.
func (q *Queue) Shutdown(ctx context.Context) error {
	select {
	case <-q.stop:
		return nil
	default:
		close(q.stop)
	}
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ReplayNow replays the hints of every target that is up, and drops hints past
// the window. It returns the number delivered.
func (q *Queue) ReplayNow(ctx context.Context) int {
	q.replay.Lock()
	defer q.replay.Unlock()
	delivered := 0
	for target, n := range q.Backlog() {
		if n == 0 || !q.up(target) {
			continue
		}
		delivered += q.replayTarget(ctx, target)
	}
	return delivered
}

type pendingHint struct {
	k, key []byte
	rec    record.Record
	size   int64
}

func (q *Queue) replayTarget(ctx context.Context, target string) int {
	prefix := append([]byte(target), 0)
	oldest := q.cfg.Clock.Now().Add(-q.cfg.MaxWindow).UnixMilli()
	delivered := 0
	for ctx.Err() == nil {
		var batch []pendingHint
		errBatchFull := errors.New("batch full")
		err := q.kv.Iterate(prefix, func(k, v []byte) error {
			if !bytes.HasPrefix(k, prefix) {
				return errBatchFull // past this target's hints
			}
			_, created, ok := parseKey(k)
			size := int64(len(k) + len(v))
			key, rec, err := decodeHint(v)
			if !ok || err != nil || created < oldest {
				reason := "expired"
				if !ok || err != nil {
					reason = "corrupt"
				}
				q.remove(target, k, size, reason)
				return nil
			}
			batch = append(batch, pendingHint{k: bytes.Clone(k), key: bytes.Clone(key), rec: rec.Clone(), size: size})
			if len(batch) >= 4*q.cfg.Parallel {
				return errBatchFull
			}
			return nil
		})
		if err != nil && !errors.Is(err, errBatchFull) {
			q.log.Error("reading hints failed", "target", target, "err", err)
			return delivered
		}
		if len(batch) == 0 {
			return delivered
		}
		ok, settled := q.deliverBatch(ctx, target, batch)
		delivered += ok
		if settled < len(batch) {
			return delivered // target failing again; retry on a later pass
		}
	}
	return delivered
}

// deliverBatch returns how many hints of batch it delivered, and how many it
// settled: delivered, or dropped as refused for good.
func (q *Queue) deliverBatch(ctx context.Context, target string, batch []pendingHint) (delivered, settled int) {
	sem := make(chan struct{}, q.cfg.Parallel)
	var wg sync.WaitGroup
	var ok, dropped atomic.Int64
	for i := range batch {
		h := &batch[i]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := q.deliver(ctx, target, h.key, &h.rec); err != nil {
				if clock.IsClockSkew(err) {
					// The target refuses the version as from its future
					// and would on every retry; kept, the hint would also
					// stop the target's later hints behind it. The
					// coordinator's replica still holds the record, which
					// anti-entropy carries over once it is no longer in
					// the target's future.
					q.remove(target, h.k, h.size, "clock_skew")
					dropped.Add(1)
					return
				}
				q.log.Debug("hint replay failed", "target", target, "err", err)
				return
			}
			q.remove(target, h.k, h.size, "")
			q.metrics.replayed.Inc()
			ok.Add(1)
		}()
	}
	wg.Wait()
	return int(ok.Load()), int(ok.Load() + dropped.Load())
}

func (q *Queue) remove(target string, k []byte, size int64, dropReason string) {
	if err := q.kv.Delete(k); err != nil {
		q.log.Error("deleting hint failed", "err", err)
		return
	}
	if dropReason != "" {
		q.metrics.dropped.WithLabelValues(dropReason).Inc()
	}
	q.bytes.Add(-size)
	q.mu.Lock()
	q.mu.backlog[target]--
	q.mu.Unlock()
	q.updateGauge()
}
