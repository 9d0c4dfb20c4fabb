package server

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/ringkv/ringkv/internal/antientropy"
	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/topology"
)

// aeState is the server's anti-entropy: the service, published through an
// atomic pointer because storage calls onApply from the moment it opens,
// before the service exists; and the last-alive recorder behind the gc-grace
// rule.
type aeState struct {
	svc       atomic.Pointer[antientropy.Service]
	stopAlive context.CancelFunc
	aliveDone chan struct{}
}

// onApply is storage's hook on every record change; anti-entropy keeps its
// bucket hashes current from it.
func (s *Server) onApply(token uint64, key []byte, old, new record.Record) {
	if svc := s.ae.svc.Load(); svc != nil {
		svc.OnApply(token, key, old, new)
	}
}

// onPrefetch is storage's OnPrefetch hook: see Tree.Prefetch.
func (s *Server) onPrefetch(tokens []uint64) {
	if svc := s.ae.svc.Load(); svc != nil {
		svc.Prefetch(tokens)
	}
}

// startAntiEntropy enforces the gc-grace rule, then starts the service, whose
// bucket hashes are rebuilt by a scan in the background. It runs before the
// node joins the gossip, so a refused node never rejoins.
func (s *Server) startAntiEntropy() error {
	meta := s.store.Keyspace(storage.PrefixMeta)
	if err := antientropy.CheckRejoin(meta, s.wall.Now(), s.cfg.GCGrace, s.store.ApproxCount() > 0,
		s.cfg.AllowStaleData, s.log); err != nil {
		return err
	}
	if err := antientropy.MarkAlive(meta, s.wall.Now()); err != nil {
		return err
	}
	svc, err := antientropy.New(antientropy.Config{
		NodeID:   s.cfg.NodeID,
		Interval: s.cfg.RepairInterval, Rate: float64(s.cfg.RepairRate),
		Clock: s.wall, Logger: s.log.With("component", "antientropy"), Registerer: s.reg,
	}, s.store, s.applyRepair, s.peers, aeTopology{s.topo})
	if err != nil {
		return err
	}
	// Published before the rebuild's scan starts, so no apply goes unseen.
	s.ae.svc.Store(svc)
	if err := svc.Start(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.ae.stopAlive, s.ae.aliveDone = cancel, make(chan struct{})
	go func() {
		defer close(s.ae.aliveDone)
		antientropy.KeepAlive(ctx, meta, s.wall.Now, antientropy.AliveInterval(s.cfg.GCGrace), s.log)
	}()
	return nil
}

// aeTopologyChanged passes a membership change on to anti-entropy.
func (s *Server) aeTopologyChanged() {
	if svc := s.ae.svc.Load(); svc != nil {
		svc.TopologyChanged()
	}
}

// applyRepair applies a record anti-entropy moved, with the clock guard a
// peer's write gets (the store checks it again; the HLC follows only what
// it accepts).
func (s *Server) applyRepair(key []byte, rec record.Record) (bool, error) {
	if err := s.guard.Check(rec.Version.TS); err != nil {
		return false, err
	}
	s.hlc.Observe(rec.Version.TS)
	res, err := s.store.Apply(key, rec)
	return res.Applied, err
}

func (s *Server) stopAntiEntropy(ctx context.Context) error {
	var err error
	if svc := s.ae.svc.Load(); svc != nil {
		err = svc.Shutdown(ctx)
	}
	if s.ae.stopAlive != nil {
		s.ae.stopAlive()
		select {
		case <-s.ae.aliveDone:
		case <-ctx.Done():
		}
	}
	return err
}

func (s *Server) serveAntiEntropy(ctx context.Context, from string, method uint8, payload []byte) ([]byte, error) {
	svc := s.ae.svc.Load()
	if svc == nil {
		return nil, errors.New("server: anti-entropy not running")
	}
	return svc.Serve(ctx, from, method, payload)
}

// lastRepairPass is the unix time of the last full anti-entropy pass, 0 if none.
func (s *Server) lastRepairPass() int64 {
	if svc := s.ae.svc.Load(); svc != nil {
		if t := svc.LastFullPass(); !t.IsZero() {
			return t.Unix()
		}
	}
	return 0
}

// aeRepairs is the anti-entropy service as the salvage restore and the
// admin endpoints drive it, through s.ae.svc: nil until startAntiEntropy.
type aeRepairs struct{ s *Server }

var errAENotRunning = errors.New("anti-entropy not running")

func (a aeRepairs) TreeReady() bool {
	svc := a.s.ae.svc.Load()
	return svc != nil && svc.Tree().Ready()
}

func (a aeRepairs) Repair() (uint64, error) {
	svc := a.s.ae.svc.Load()
	if svc == nil {
		return 0, errAENotRunning
	}
	return svc.Repair().ID, nil
}

func (a aeRepairs) LastRepair() (antientropy.Progress, bool) {
	if svc := a.s.ae.svc.Load(); svc != nil {
		return svc.LastRepair()
	}
	return antientropy.Progress{}, false
}

func (a aeRepairs) RepairStatus(withRoots bool) (apitypes.RepairStatus, error) {
	svc := a.s.ae.svc.Load()
	if svc == nil {
		return apitypes.RepairStatus{}, errAENotRunning
	}
	return svc.Status(withRoots)
}

// aeTopology shows anti-entropy the current ring and who is up.
type aeTopology struct{ t *topology.Topology }

func (a aeTopology) Ranges() []ring.Range { return a.t.Current().Ring.Ranges() }

func (a aeTopology) Peer(id string) (string, bool) {
	r, ok := a.t.Current().ByNode[id]
	return r.Addr, ok && r.Up && r.Addr != ""
}

var _ antientropy.Topology = aeTopology{}
