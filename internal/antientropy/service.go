package antientropy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"

	"golang.org/x/time/rate"
)

// Errors.
var (
	// ErrNotReady: the bucket hashes are still being rebuilt after start, so
	// this node can neither answer a comparison nor start one.
	ErrNotReady = errors.New("antientropy: bucket hashes not rebuilt yet")
	// ErrRingChanged: a peer derives a different leaf list for a range, which
	// only a bug can cause, since leaves depend on the range bounds alone.
	ErrRingChanged = errors.New("antientropy: peer disagrees on the range's leaves")
)

// Caller sends a request to a peer; transport.Transport implements it. See
// package transport for what its errors mean.
type Caller interface {
	Call(ctx context.Context, addr string, method uint8, payload []byte) ([]byte, error)
}

// Topology is the node's current view of the cluster. Implementations must be
// safe for concurrent use; Ranges' slices are read-only.
type Topology interface {
	// Ranges returns every range of the current ring with its replicas.
	Ranges() []ring.Range
	// Peer returns a node's peer address and whether it is up.
	Peer(id string) (addr string, up bool)
}

// Store is the node's replica: a scanner plus point reads. storage.Store
// implements it; Get's record is the caller's.
type Store interface {
	Scanner
	Get(key []byte) (record.Record, bool, error)
}

// ApplyFunc stores a repaired record if it is newer than the stored one and
// reports whether it did. It must guard the node's clock as a peer write does.
type ApplyFunc func(key []byte, rec record.Record) (applied bool, err error)

// Defaults for Config fields left zero.
const (
	// DefaultCallTimeout bounds one peer request of a sync. Generous: a
	// request may carry a few MiB of records to a loaded peer.
	DefaultCallTimeout = 30 * time.Second
	// DefaultConcurrency is how many range comparisons run at once: enough to
	// hide round trips, few enough to leave the node to its clients.
	DefaultConcurrency = 4
)

// Batching limits. maxBatchBytes keeps every message far below the
// transport's frame limit while still amortising round trips.
const (
	maxLeavesPerDigest = 64
	maxKeysPerBatch    = 512
	maxBatchBytes      = 4 << 20
)

// Config configures a Service.
type Config struct {
	// NodeID is this node's ring id.
	NodeID string
	// Interval is the time between the starts of two continuous passes (a
	// pass that outlasts it is followed at once by the next); zero or
	// negative runs passes only on demand (Repair). Comparisons a pass could
	// not make (peer down, failed) are retried between passes, as soon as
	// the peer is up, so after a heal replicas converge within one period of
	// the peer coming back rather than two or more.
	Interval time.Duration
	// Rate bounds the records a pass repairs per second, pulled and pushed
	// together, so a large repair does not starve client traffic. Zero or
	// negative is unlimited.
	Rate float64
	// CallTimeout bounds each peer request; default DefaultCallTimeout.
	CallTimeout time.Duration
	// Concurrency is how many range comparisons run at once; default
	// DefaultConcurrency.
	Concurrency int
	// Clock stamps passes; default clock.System{}.
	Clock      clock.Clock
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Progress describes one on-demand repair (ringkv repair). It is the body
// `ringkv repair` reads, so its shape is declared with the others in apitypes.
type Progress = apitypes.RepairProgress

// Progress states.
const (
	StateQueued  = "queued"
	StateRunning = "running"
	StateDone    = "done"
)

// Service runs anti-entropy for one node: it owns the Tree, serves peers'
// comparisons, and runs passes continuously and on demand. All methods are
// safe for concurrent use.
type Service struct {
	cfg   Config
	log   *slog.Logger
	tree  *Tree
	store Store
	apply ApplyFunc
	net   Caller
	topo  Topology
	m     *metrics
	lim   *rate.Limiter // nil: unlimited

	kick chan struct{}
	// topoCh carries TopologyChanged's signals, coalesced, to the loop or,
	// while a pass runs, to the pass's watcher.
	topoCh chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	mu struct {
		sync.Mutex
		// repair is the latest on-demand repair; requested means it waits
		// for the loop to pick it up.
		repair    *Progress
		requested bool
		nextID    uint64
		// pending holds the comparisons owed since the last full pass: the
		// ones it skipped or that failed, and every (range, peer) pair that
		// is new or whose peer has come up since (a returning peer may have
		// missed writes while away, whether or not a pass ran meanwhile; a
		// new ring moves ranges to replicas that never compared them).
		pending map[pairKey]struct{}
		// known maps each (range, peer) pair of the topology as last noted
		// to whether the peer was up.
		known map[pairKey]bool
	}
	lastFull atomic.Int64 // unix seconds
	started  atomic.Bool
}

// New builds a service; nothing runs until Start, but OnApply is live at once.
func New(cfg Config, store Store, apply ApplyFunc, net Caller, topo Topology) (*Service, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("antientropy: Config.NodeID is required")
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("antientropy: registering metrics: %w", err)
	}
	return &Service{
		cfg: cfg, log: cfg.Logger, tree: NewTree(), store: store, apply: apply, net: net, topo: topo, m: m,
		lim: newLimiter(cfg.Rate), kick: make(chan struct{}, 1), topoCh: make(chan struct{}, 1), done: make(chan struct{}),
	}, nil
}

// Tree returns the service's bucket hashes.
func (s *Service) Tree() *Tree { return s.tree }

// OnApply keeps the bucket hashes current; it is storage's OnApply hook.
func (s *Service) OnApply(token uint64, key []byte, old, new record.Record) {
	s.tree.OnApply(token, key, old, new)
}

// Start rebuilds the bucket hashes from the store in the background, then
// runs passes every Interval and whenever Repair asks for one.
func (s *Service) Start() error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("antientropy: already started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(ctx)
	return nil
}

// Shutdown stops the service and waits for a running pass to notice, until
// ctx is done.
func (s *Service) Shutdown(ctx context.Context) error {
	if !s.started.Load() {
		return nil
	}
	s.cancel()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("antientropy: shutdown: %w", ctx.Err())
	}
}

func (s *Service) run(ctx context.Context) {
	defer close(s.done)
	t0 := time.Now()
	if err := s.tree.Rebuild(s.store); err != nil {
		if ctx.Err() == nil {
			s.log.Error("rebuilding anti-entropy buckets failed; this node will not take part in anti-entropy", "err", err)
		}
		return
	}
	s.m.treeReady.Set(1)
	s.log.Info("anti-entropy buckets rebuilt", "took", time.Since(t0))

	nextFull := time.Now().Add(s.nextWait())
	// retryAt, when set, is when the owed comparisons are retried; retry
	// backs off while they keep failing, up to one interval.
	var retryAt time.Time
	retry := s.retryBase()
	timer := time.NewTimer(time.Until(nextFull))
	defer timer.Stop()
	for {
		wake := nextFull
		if !retryAt.IsZero() && retryAt.Before(wake) {
			wake = retryAt
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(time.Until(wake), 0))
		topoChanged := false
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.kick:
		case <-s.topoCh:
			topoChanged = true
		}
		if topoChanged {
			s.noteTopology()
		}

		s.mu.Lock()
		var prog *Progress
		if s.mu.requested {
			s.mu.requested = false
			prog = s.mu.repair
			prog.State = StateRunning
			prog.StartedAt = s.cfg.Clock.Now().UnixMilli()
		}
		s.mu.Unlock()
		now := time.Now()
		var failed bool
		switch {
		case prog != nil || (s.cfg.Interval > 0 && !now.Before(nextFull)):
			// Counting the interval from the pass's start keeps the
			// period what it says, however long a pass takes.
			failed = s.pass(ctx, prog, false)
			if s.cfg.Interval > 0 && !now.Before(nextFull) {
				nextFull = now.Add(s.nextWait())
			}
		case s.cfg.Interval > 0 && s.owedReady() && (topoChanged || (!retryAt.IsZero() && !now.Before(retryAt))):
			failed = s.pass(ctx, nil, true)
		default:
			if !retryAt.IsZero() && !now.Before(retryAt) {
				retryAt = time.Time{} // nothing owed to a live peer: wait for one to come up
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		retryAt = time.Time{}
		if failed {
			retry = min(2*retry, s.cfg.Interval)
		} else {
			retry = s.retryBase()
		}
		if s.cfg.Interval > 0 && s.owedReady() {
			retryAt = time.Now().Add(retry)
		}
	}
}

// retryBase is the first pause before owed comparisons are retried: a
// fraction of the interval, so that a retry costs little next to the passes,
// and at most a second, so that a peer briefly not ready (rebuilding its
// hashes after a restart) is compared soon after it is.
func (s *Service) retryBase() time.Duration {
	return min(max(s.cfg.Interval/10, 50*time.Millisecond), time.Second)
}

// nextWait is the time from one continuous pass's start to the next, jittered
// by ±10% so that nodes started together do not compare in lockstep.
func (s *Service) nextWait() time.Duration {
	if s.cfg.Interval <= 0 {
		return time.Duration(1<<63 - 1)
	}
	j := float64(s.cfg.Interval) * (0.9 + 0.2*rand.Float64())
	return time.Duration(j)
}

// TopologyChanged tells the service that the ring or a node's liveness may
// have changed: the ranges shared with a peer that came up are compared with
// it promptly, and a running pass abandons the calls to a peer now down
// instead of waiting out their timeouts. It does not block; signals coalesce.
func (s *Service) TopologyChanged() {
	select {
	case s.topoCh <- struct{}{}:
	default:
	}
}

// noteTopology records the (range, peer) pairs of the current topology and
// owes a comparison of each pair that is new or whose peer came up.
func (s *Service) noteTopology() {
	ranges := s.topo.Ranges()
	up := map[string]bool{}
	known := make(map[pairKey]bool, 2*len(ranges))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rg := range ranges {
		if !slices.ContainsFunc(rg.Replicas, func(n ring.Node) bool { return n.ID == s.cfg.NodeID }) {
			continue
		}
		for _, n := range rg.Replicas {
			if n.ID == s.cfg.NodeID {
				continue
			}
			isUp, ok := up[n.ID]
			if !ok {
				_, isUp = s.topo.Peer(n.ID)
				up[n.ID] = isUp
			}
			k := pairKey{start: rg.Start, end: rg.End, peer: n.ID}
			known[k] = isUp
			if isUp && !s.mu.known[k] {
				if s.mu.pending == nil {
					s.mu.pending = map[pairKey]struct{}{}
				}
				s.mu.pending[k] = struct{}{}
			}
		}
	}
	s.mu.known = known
}

// owedReady reports whether a comparison is owed to a peer that is up now.
func (s *Service) owedReady() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.mu.pending {
		if addr, up := s.topo.Peer(k.peer); up && addr != "" {
			return true
		}
	}
	return false
}

// Repair asks for an on-demand pass and returns its progress. A repair already
// queued or running is joined rather than started twice.
func (s *Service) Repair() Progress {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.mu.repair; r != nil && !r.Done {
		return *r
	}
	s.mu.nextID++
	s.mu.repair = &Progress{ID: s.mu.nextID, State: StateQueued}
	s.mu.requested = true
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return *s.mu.repair
}

// LastRepair returns the latest on-demand repair's progress, if any.
func (s *Service) LastRepair() (Progress, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.repair == nil {
		return Progress{}, false
	}
	return *s.mu.repair, true
}

// LastFullPass returns when the last pass that compared every local range with
// every replica without error finished, or when the retries of what a pass
// left owed completed it (zero time if neither has happened).
func (s *Service) LastFullPass() time.Time {
	if v := s.lastFull.Load(); v != 0 {
		return time.Unix(v, 0)
	}
	return time.Time{}
}

// pairKey names one comparison: a ring range with one of its other replicas.
type pairKey struct {
	start, end uint64
	peer       string // ring id
}

type job struct {
	pairKey
	addr string
}

// errPeerDown cancels the calls to a peer that gossip marked down mid-pass.
var errPeerDown = errors.New("antientropy: peer marked down")

// pass compares local ranges with their other live replicas: every range
// when owed is false (a full pass), else only the comparisons owed since the
// last full pass (see Service.mu.pending). prog, when not nil, is the
// on-demand repair it reports to. It reports whether a comparison failed.
//
// Comparisons are grouped by peer: the first failure with a peer, or the
// peer going down, abandons its remaining comparisons (they stay owed), so a
// peer that is unreachable or paused costs a pass one call's timeout, not
// one per range, and never holds up the comparisons with the others.
func (s *Service) pass(ctx context.Context, prog *Progress, owed bool) (failedAny bool) {
	update := func(f func(p *Progress)) {
		if prog == nil {
			return
		}
		s.mu.Lock()
		f(prog)
		s.mu.Unlock()
	}
	t0 := time.Now()
	var want map[pairKey]struct{}
	if owed {
		s.mu.Lock()
		want = maps.Clone(s.mu.pending)
		s.mu.Unlock()
	}
	var jobs []job
	var missed []pairKey
	for _, rg := range s.topo.Ranges() {
		if !slices.ContainsFunc(rg.Replicas, func(n ring.Node) bool { return n.ID == s.cfg.NodeID }) {
			continue
		}
		for _, n := range rg.Replicas {
			if n.ID == s.cfg.NodeID {
				continue
			}
			k := pairKey{start: rg.Start, end: rg.End, peer: n.ID}
			if _, ok := want[k]; owed && !ok {
				continue
			}
			addr, up := s.topo.Peer(n.ID)
			if !up || addr == "" {
				missed = append(missed, k)
				continue
			}
			jobs = append(jobs, job{pairKey: k, addr: addr})
		}
	}
	skipped := len(missed)
	update(func(p *Progress) { p.RangesTotal, p.RangesSkipped = len(jobs), skipped })

	// One context per peer: cancelled on its first failure, or by the
	// watcher when gossip marks it down.
	type peerRun struct {
		ctx    context.Context
		cancel context.CancelCauseFunc
	}
	peers := map[string]*peerRun{}
	for _, j := range jobs {
		if peers[j.peer] == nil {
			pctx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			peers[j.peer] = &peerRun{ctx: pctx, cancel: cancel}
		}
	}
	watchDone := make(chan struct{})
	defer close(watchDone)
	go func() {
		for {
			select {
			case <-watchDone:
				return
			case <-s.topoCh:
			}
			s.noteTopology()
			for id, pr := range peers {
				if _, up := s.topo.Peer(id); !up {
					pr.cancel(errPeerDown)
				}
			}
			// The loop did not see this signal; it checks what is owed
			// after the pass.
		}
	}()

	var (
		doneMu  sync.Mutex
		done    []pairKey // compared without error
		abandon int
	)
	var compared, mismatched, failed atomic.Int64
	var pulled, pushed atomic.Int64
	ch := make(chan job)
	var wg sync.WaitGroup
	for range s.cfg.Concurrency {
		wg.Go(func() {
			for j := range ch {
				pr := peers[j.peer]
				if pr.ctx.Err() != nil {
					doneMu.Lock()
					abandon++
					doneMu.Unlock()
					update(func(p *Progress) { p.RangesSkipped++ })
					continue
				}
				res, err := s.SyncRange(pr.ctx, j.addr, j.start, j.end)
				s.m.compared.Inc()
				compared.Add(1)
				pulled.Add(int64(res.Pulled))
				pushed.Add(int64(res.Pushed))
				if res.Mismatch {
					s.m.mismatched.Inc()
					mismatched.Add(1)
				}
				if err != nil {
					cause := context.Cause(pr.ctx)
					pr.cancel(err)
					failed.Add(1)
					s.m.errors.Inc()
					if ctx.Err() == nil && cause == nil { // the peer's first failure, not a cancelled call
						s.log.Warn("anti-entropy range comparison failed; the peer's other ranges wait for a retry",
							"peer", j.peer, "addr", j.addr, "start", j.start, "end", j.end, "err", err)
					}
				} else {
					doneMu.Lock()
					done = append(done, j.pairKey)
					doneMu.Unlock()
				}
				update(func(p *Progress) {
					p.RangesCompared++
					if res.Mismatch {
						p.RangesMismatched++
					}
					p.RecordsPulled += int64(res.Pulled)
					p.RecordsPushed += int64(res.Pushed)
					p.RecordsRepaired += int64(res.Pulled + res.Pushed)
					if err != nil {
						p.Errors++
						p.LastError = err.Error()
					}
				})
			}
		})
	}
	for _, j := range jobs {
		select {
		case ch <- j:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(ch)
	wg.Wait()

	now := s.cfg.Clock.Now()
	complete := false
	s.mu.Lock()
	if !owed {
		// A full pass settles every comparison: what it could not make is
		// all that is owed now, and ranges gone from the ring drop out.
		s.mu.pending = make(map[pairKey]struct{}, len(jobs)+len(missed))
		for _, j := range jobs {
			s.mu.pending[j.pairKey] = struct{}{}
		}
		for _, k := range missed {
			s.mu.pending[k] = struct{}{}
		}
	}
	for _, k := range done {
		delete(s.mu.pending, k)
	}
	// Once nothing is owed, every comparison since the last full pass's
	// start has been made: that is a full pass, catch-ups included.
	complete = ctx.Err() == nil && len(s.mu.pending) == 0 && (owed || (failed.Load() == 0 && skipped == 0 && abandon == 0))
	s.mu.Unlock()
	if complete {
		s.lastFull.Store(now.Unix())
		s.m.lastPass.Set(float64(now.Unix()))
	}
	update(func(p *Progress) {
		p.State, p.Done, p.FinishedAt = StateDone, true, now.UnixMilli()
		if ctx.Err() != nil {
			p.Errors++
			p.LastError = "node shutting down"
		}
	})
	kind := "full"
	if owed {
		kind = "owed"
	}
	lvl := slog.LevelDebug
	if pulled.Load()+pushed.Load() > 0 || failed.Load() > 0 {
		lvl = slog.LevelInfo
	}
	s.log.Log(ctx, lvl, "anti-entropy pass done", "kind", kind, "took", time.Since(t0),
		"compared", compared.Load(), "mismatched", mismatched.Load(), "pulled", pulled.Load(), "pushed", pushed.Load(),
		"skipped_down", skipped, "failed", failed.Load(), "abandoned", abandon)
	return failed.Load() > 0
}

// RangeRoot is one local range's root, for status and tests.
type RangeRoot = apitypes.RangeRoot

// Roots returns the root of every range this node replicates, in ring order.
func (s *Service) Roots() ([]RangeRoot, error) {
	if !s.tree.Ready() {
		return nil, ErrNotReady
	}
	var out []RangeRoot
	for _, rg := range s.topo.Ranges() {
		ids := make([]string, len(rg.Replicas))
		mine := false
		for i, n := range rg.Replicas {
			ids[i] = n.ID
			mine = mine || n.ID == s.cfg.NodeID
		}
		if !mine {
			continue
		}
		root, err := s.tree.RangeRoot(s.store, rg.Start, rg.End)
		if err != nil {
			return nil, err
		}
		out = append(out, RangeRoot{Start: rg.Start, End: rg.End, Replicas: ids, Root: root})
	}
	return out, nil
}
