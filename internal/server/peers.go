package server

import (
	"slices"
	"strings"

	"github.com/ringkv/ringkv/internal/membership"
	"github.com/ringkv/ringkv/internal/rebalance"
)

// peersKey holds, in the metadata keyspace, the gossip addresses of the other
// members this node last knew, one per line. A node restarted without --join
// (the first node of a cluster usually is) dials them as seeds. Without them
// it started alone whenever it came back before the others noticed it die:
// they still held it alive, so nobody redialled it, and only memberlist's
// periodic push/pull (every 15-30 s, at random) brought the cluster back to
// it. Cassandra keeps its peers for the same reason.
var peersKey = []byte("gossip-peers")

// seeds returns the addresses Start joins: --join, the other members named
// by --initial-cluster, then the peers saved by savePeers.
func (s *Server) seeds() ([]string, error) {
	out := slices.Clone(s.cfg.Join)
	for _, a := range s.initialSeeds() {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	v, ok, err := s.store.Keyspace(rebalance.PrefixMeta).Get(peersKey)
	if err != nil || !ok {
		return out, err
	}
	s.savedPeers = string(v)
	for _, a := range strings.Fields(s.savedPeers) {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// savePeers records the gossip addresses of the members other than this node
// when they changed. Only watchMembership calls it.
func (s *Server) savePeers(members []membership.Member) {
	var addrs []string
	for _, m := range members {
		if m.ID != s.cfg.NodeID && m.GossipAddr != "" {
			addrs = append(addrs, m.GossipAddr)
		}
	}
	slices.Sort(addrs)
	v := strings.Join(addrs, "\n")
	if v == s.savedPeers {
		return
	}
	if err := s.store.Keyspace(rebalance.PrefixMeta).Set(peersKey, []byte(v)); err != nil {
		s.log.Warn("could not save the known peers; a restart without --join may start alone", "err", err)
		return
	}
	s.savedPeers = v
}
