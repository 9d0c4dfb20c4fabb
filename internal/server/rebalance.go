package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/membership"
	"github.com/ringkv/ringkv/internal/rebalance"
)

// The rebalance coordinator (internal/rebalance) runs topology changes; this
// file builds it from the node's parts and runs it for the node's lifetime.

// ringSettle is rebalance.Settle for this node's gossip profile.
func ringSettle(cfg config.Config) time.Duration {
	return rebalance.Settle(gossipProfile(cfg.GossipAddr) == membership.ProfileLocal, cfg.RequestTimeout)
}

// initialState decides, and persists, the state the node announces when it
// starts gossiping (rebalance.InitialState); formation.go forms or resumes
// forming a cluster on the way.
func (s *Server) initialState() (membership.State, error) {
	return rebalance.InitialState(rebalance.Boot{
		Meta: s.store.Keyspace(rebalance.PrefixMeta), Empty: s.store.ApproxCount() == 0, Join: len(s.cfg.Join) > 0,
		Form: s.startFormation, Resume: s.resumeFormation,
	})
}

func (s *Server) startRebalance() error {
	s.rebal = rebalance.NewCoordinator(rebalance.CoordinatorConfig{
		Self: s.cfg.NodeID, Store: s.store, Apply: s.coord.ApplyLocal, Caller: s.peers,
		Topology: s.topo, Members: s.member, Rate: s.cfg.StreamRate,
		Settle: ringSettle(s.cfg), RequestTimeout: s.cfg.RequestTimeout,
		// The system clock, as the topology's settle: the wall clock the
		// fault suite skews would stretch or cut the settle time.
		Clock:     clock.System{},
		Ready:     s.ready.Load,
		Tick:      func() { _ = s.formationReady() },
		CheckMark: s.checkWireMark,
		Logger:    s.log, Registerer: s.reg,
	})
	// Membership's counter beside the coordinator's view syncs: the two
	// ways a lost state update is made good (docs/operations.md).
	if s.reg != nil {
		s.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "membership", Name: "state_reannounced_total",
			Help: "Times this node gossiped its own state again because memberlist had dropped the update.",
		}, func() float64 { return float64(s.member.Reannounced()) }))
	}
	s.rebal.Start()
	return nil
}

func (s *Server) stopRebalance(ctx context.Context) error {
	if s.rebal == nil {
		return nil
	}
	return s.rebal.Stop(ctx)
}
