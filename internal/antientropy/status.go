package antientropy

import "github.com/ringkv/ringkv/internal/apitypes"

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
