package antientropy

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/internal/ring"
)

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
