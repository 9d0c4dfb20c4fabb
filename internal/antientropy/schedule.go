package antientropy

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/ringkv/ringkv/internal/ring"
)

// run is the scheduler: it rebuilds the bucket hashes, then runs a full pass
// every Interval (jittered), an on-demand pass when Repair asks, and the
// comparisons owed to peers that came up or joined, retried with backoff.
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
