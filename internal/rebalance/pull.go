package rebalance

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/storage"

	"golang.org/x/time/rate"
)

// PrefixMeta is the store keyspace the puller keeps its progress in; its keys
// start with progressPrefix so other users of the keyspace are untouched.
const PrefixMeta = 'm'

var progressPrefix = []byte("rebalance/")

// ErrNoSources is returned when too few replicas of a range are up to pull it
// safely; the pull is retried later.
var ErrNoSources = errors.New("rebalance: not enough live replicas to stream from")

// Peers resolves node ids to peer addresses and liveness. It must be safe for
// concurrent use.
type Peers interface {
	Peer(id string) (addr string, up bool)
}

// Caller sends a request to a peer. transport.Transport implements it.
type Caller interface {
	Call(ctx context.Context, addr string, method uint8, payload []byte) ([]byte, error)
}

// Config configures a Puller.
type Config struct {
	// Self is this node's id; it is never a source.
	Self string
	// PageMethod is the transport method number the sources serve ServePage on.
	PageMethod uint8
	Store      Store
	// Apply stores a received record if it is newer than the local one.
	Apply  func(key []byte, rec record.Record) error
	Caller Caller
	Peers  Peers
	// Rate caps the bytes per second all pulls together receive.
	Rate int64
	// PageBytes is the size of one page; 0 means 256 KiB, large enough to
	// amortise a round trip, small enough to pace smoothly.
	PageBytes int
	// Parallel is how many ranges are pulled at once; 0 means 4.
	Parallel   int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Progress is a snapshot of the pulls of the current plan.
type Progress struct {
	Total, Done int   // ranges
	Bytes       int64 // received since the process started
}

// Puller pulls planned ranges into the local store. Pull may be called again
// with a new plan at any time, also concurrently with Progress.
type Puller struct {
	cfg      Config
	log      *slog.Logger
	meta     *storage.Keyspace
	lim      *rate.Limiter
	metrics  *metrics
	total    atomic.Int64
	done     atomic.Int64
	received atomic.Int64
}

// NewPuller returns a Puller.
func NewPuller(cfg Config) *Puller {
	if cfg.PageBytes <= 0 {
		cfg.PageBytes = 256 << 10
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Puller{
		cfg: cfg, log: cfg.Logger.With("component", "rebalance"),
		meta: cfg.Store.Keyspace(PrefixMeta), lim: newLimiter(cfg.Rate),
		metrics: newMetrics(cfg.Registerer),
	}
}

// Progress reports how far the last Pull got.
func (p *Puller) Progress() Progress {
	return Progress{Total: int(p.total.Load()), Done: int(p.done.Load()), Bytes: p.received.Load()}
}

func doneKey(t Task) []byte {
	k := append(bytes.Clone(progressPrefix), "done/"...)
	k = binary.BigEndian.AppendUint64(k, t.Start)
	return binary.BigEndian.AppendUint64(k, t.End)
}

func cursorKey(t Task, src string) []byte {
	k := append(bytes.Clone(progressPrefix), "cursor/"...)
	k = binary.BigEndian.AppendUint64(k, t.Start)
	k = binary.BigEndian.AppendUint64(k, t.End)
	return append(k, src...)
}

// Remaining counts the tasks not pulled completely yet.
func (p *Puller) Remaining(tasks []Task) (int, error) {
	n := 0
	for _, t := range tasks {
		_, ok, err := p.meta.Get(doneKey(t))
		if err != nil {
			return 0, err
		}
		if !ok {
			n++
		}
	}
	return n, nil
}

// Pull pulls every task not done yet, Parallel at a time, and returns once
// all are done or one failed (the others finish their current range first).
// A failed range keeps its progress: the next Pull resumes it.
func (p *Puller) Pull(ctx context.Context, tasks []Task) error {
	left, err := p.Remaining(tasks)
	if err != nil {
		return err
	}
	p.total.Store(int64(len(tasks)))
	p.done.Store(int64(len(tasks) - left))
	p.metrics.remaining.Set(float64(left))
	if left == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan Task)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range p.cfg.Parallel {
		wg.Go(func() {
			for t := range work {
				if err := p.pullTask(ctx, t); err != nil {
					p.metrics.errors.Inc()
					once.Do(func() { first = err; cancel() })
					continue
				}
			}
		})
	}
feed:
	for _, t := range tasks {
		select {
		case work <- t:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return first
}

func (p *Puller) pullTask(ctx context.Context, t Task) error {
	if _, ok, err := p.meta.Get(doneKey(t)); err != nil || ok {
		return err
	}
	srcs, err := p.sources(t)
	if err != nil {
		return err
	}
	for _, s := range srcs {
		if err := p.pullFrom(ctx, t, s); err != nil {
			return fmt.Errorf("rebalance: range (%d, %d] from %s: %w", t.Start, t.End, s.id, err)
		}
	}
	if err := p.meta.Set(doneKey(t), nil); err != nil {
		return err
	}
	for _, s := range srcs {
		_ = p.meta.Delete(cursorKey(t, s.id))
	}
	p.done.Add(1)
	p.metrics.ranges.Inc()
	p.metrics.remaining.Dec()
	return nil
}

type source struct{ id, addr string }

// sources picks the replicas to pull t from: the leaving ones when all are up
// (enough, see the package doc), else every live current replica, of which a
// majority must be up.
func (p *Puller) sources(t Task) ([]source, error) {
	var out []source
	if len(t.Leaving) > 0 {
		for _, n := range t.Leaving {
			addr, up := p.cfg.Peers.Peer(n.ID)
			if !up || n.ID == p.cfg.Self {
				out = nil
				break
			}
			out = append(out, source{n.ID, addr})
		}
		if out != nil {
			return out, nil
		}
	}
	for _, n := range t.Current {
		if n.ID == p.cfg.Self {
			continue
		}
		if addr, up := p.cfg.Peers.Peer(n.ID); up {
			out = append(out, source{n.ID, addr})
		}
	}
	if need := len(t.Current)/2 + 1; len(out) < need {
		return nil, fmt.Errorf("%w: range (%d, %d] has %d of %d current replicas up", ErrNoSources, t.Start, t.End, len(out), need)
	}
	return out, nil
}

// pullFrom copies t's records from one source, page by page, saving the
// cursor after each applied page.
func (p *Puller) pullFrom(ctx context.Context, t Task, src source) error {
	segs := segments(t.Start, t.End)
	ck := cursorKey(t, src.id)
	segIdx, cursor := 0, segs[0].from
	if v, ok, err := p.meta.Get(ck); err != nil {
		return err
	} else if ok && len(v) == 9 && int(v[0]) < len(segs) {
		segIdx, cursor = int(v[0]), binary.BigEndian.Uint64(v[1:])
	}
	for segIdx < len(segs) {
		req := pageRequest{seg: segs[segIdx], cursor: cursor, maxBytes: uint32(p.cfg.PageBytes)}
		resp, err := p.cfg.Caller.Call(ctx, src.addr, p.cfg.PageMethod, req.encode())
		if err != nil {
			return err
		}
		n := 0
		next, done, err := decodePage(resp, func(key []byte, rec record.Record) error {
			n++
			err := p.cfg.Apply(key, rec)
			if clock.IsClockSkew(err) {
				// Refused on every retry while it stays in this node's
				// future: skipped, or the range would never finish.
				// Anti-entropy brings it once it is no longer refused.
				p.metrics.refused.Inc()
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
		p.received.Add(int64(len(resp)))
		p.metrics.bytes.Add(float64(len(resp)))
		p.metrics.records.Add(float64(n))
		if done {
			segIdx++
			if segIdx < len(segs) {
				cursor = segs[segIdx].from
			}
		} else {
			cursor = next
		}
		v := binary.BigEndian.AppendUint64([]byte{byte(segIdx)}, cursor)
		if err := p.meta.Set(ck, v); err != nil {
			return err
		}
		if err := p.lim.WaitN(ctx, min(len(resp), p.lim.Burst())); err != nil {
			return err
		}
	}
	return nil
}

// Reset forgets all progress, once a topology change is over, so the next
// change starts clean even if it plans the same ranges.
func (p *Puller) Reset() error {
	var keys [][]byte
	err := p.meta.Iterate(progressPrefix, func(k, _ []byte) error {
		if !bytes.HasPrefix(k, progressPrefix) {
			return storage.ErrStop
		}
		keys = append(keys, bytes.Clone(k))
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := p.meta.Delete(k); err != nil {
			return err
		}
	}
	p.total.Store(0)
	p.done.Store(0)
	p.metrics.remaining.Set(0)
	return nil
}
