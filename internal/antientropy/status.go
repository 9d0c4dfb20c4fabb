package antientropy

import (
	"time"

	"github.com/ringkv/ringkv/internal/apitypes"
)

// Status reports the service as GET /v1/repair/status shows it: the bucket
// hashes' readiness, the last full pass, the last on-demand repair and, with
// withRoots once the hashes are built, every local range's root.
func (s *Service) Status(withRoots bool) (apitypes.RepairStatus, error) {
	st := apitypes.RepairStatus{Node: s.cfg.NodeID, TreeReady: s.tree.Ready()}
	if t := s.LastFullPass(); !t.IsZero() {
		st.LastFullPass = t.Unix()
	}
	if p, ok := s.LastRepair(); ok {
		st.Repair = &p
	}
	if withRoots && st.TreeReady {
		roots, err := s.Roots()
		if err != nil {
			return st, err
		}
		st.Ranges = roots
	}
	return st, nil
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
