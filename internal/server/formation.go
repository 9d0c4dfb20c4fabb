package server

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/membership"
	"github.com/ringkv/ringkv/internal/rebalance"
)

// formingKey marks, in the metadata keyspace, a node started with
// --initial-cluster that has not yet seen every named member up. A node
// killed while it waited keeps waiting after a restart, instead of taking
// its half-formed ring for a cluster.
var formingKey = []byte("forming")

// formationState is this node's part in forming a new cluster from the
// members --initial-cluster names (design §5).
//
// Every named member starts normal with no data: no node has anything to
// stream to another, so none joins. Each one refuses clients and reports not
// ready until it sees every named member up and normal; from then on its ring
// is the full one, and losing any single member leaves each key a majority.
// Nodes started one after another with --join went joining instead, took
// data as it arrived and streamed it for seconds, during which the cluster
// had fewer live replicas than its size promised.
type formationState struct {
	members []config.InitialMember // the named members while forming
	forming atomic.Bool
	mu      sync.Mutex // serialises completion: the store write and the log line
}

// startFormation decides, for a node with no stored lifecycle state and an
// empty store, whether it forms a new cluster, and records that it does.
func (s *Server) startFormation() (bool, error) {
	members, err := s.cfg.InitialMembers()
	if err != nil || len(members) == 0 {
		return false, err
	}
	if err := s.store.Keyspace(rebalance.PrefixMeta).Set(formingKey, []byte{1}); err != nil {
		return false, err
	}
	s.form.members = members
	s.form.forming.Store(true)
	s.log.Info("forming a new cluster: waiting for every member of --initial-cluster", "members", len(members))
	return true, nil
}

// resumeFormation resumes waiting after a restart, when the node had not
// seen every member before it stopped. A node that formed, or joined, or
// predates the flag ignores --initial-cluster: it is a member already.
func (s *Server) resumeFormation() error {
	_, ok, err := s.store.Keyspace(rebalance.PrefixMeta).Get(formingKey)
	if err != nil || !ok {
		return err
	}
	members, err := s.cfg.InitialMembers()
	if err != nil {
		return err
	}
	if len(members) == 0 {
		// Restarted without the flag: nothing says whom to wait for. The
		// operator dropped it on purpose; serve with the members gossip finds.
		s.log.Warn("the node stopped while forming its cluster and was restarted without --initial-cluster; not waiting for the others")
		return s.store.Keyspace(rebalance.PrefixMeta).Delete(formingKey)
	}
	s.form.members = members
	s.form.forming.Store(true)
	s.log.Info("still forming the cluster: waiting for every member of --initial-cluster", "members", len(members))
	return nil
}

// initialSeeds returns the gossip addresses of the other named members.
// They are seeds on every start, not only while forming, as a restarted
// node's --join is.
func (s *Server) initialSeeds() []string {
	members, _ := s.cfg.InitialMembers()
	var out []string
	for _, m := range members {
		if m.ID != s.cfg.NodeID {
			out = append(out, m.GossipAddr)
		}
	}
	return out
}

// formationReady is nil once this node is not forming a cluster. The first
// call that finds every named member up and normal completes the formation.
func (s *Server) formationReady() error {
	f := &s.form
	if !f.forming.Load() {
		return nil
	}
	v := s.topo.Current()
	var waiting []string
	for _, m := range f.members {
		if m.ID == s.cfg.NodeID {
			continue
		}
		if mem, ok := v.Members[m.ID]; !ok || !v.ByNode[m.ID].Up || mem.State != membership.Normal {
			waiting = append(waiting, m.ID)
		}
	}
	if len(waiting) > 0 {
		return notReadyf(reasonForming, "waiting for %s", strings.Join(waiting, ", "))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.forming.Load() {
		return nil
	}
	if err := s.store.Keyspace(rebalance.PrefixMeta).Delete(formingKey); err != nil {
		return notReadyf(reasonForming, "every member is up, but recording it failed: %v", err)
	}
	s.topo.ForgetPrevious()
	f.forming.Store(false)
	s.log.Info("cluster formed: every member of --initial-cluster is up", "members", len(f.members))
	return nil
}
