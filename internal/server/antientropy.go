package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/ringkv/ringkv/internal/antientropy"
	"github.com/ringkv/ringkv/internal/httpapi"
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

// RepairStatus is the body of GET /v1/repair/status and of POST /v1/repair.
type RepairStatus struct {
	Node      string `json:"node"`
	TreeReady bool   `json:"tree_ready"`
	// LastFullPass is the unix time (seconds) of the last pass that compared
	// every local range with every replica; 0 if none yet.
	LastFullPass int64                   `json:"last_full_pass"`
	Repair       *antientropy.Progress   `json:"repair,omitempty"`
	Ranges       []antientropy.RangeRoot `json:"ranges,omitempty"`
}

// onApply is storage's hook on every record change; anti-entropy keeps its
// bucket hashes current from it.
func (s *Server) onApply(token uint64, key []byte, old, new record.Record) {
	if svc := s.ae.svc.Load(); svc != nil {
		svc.OnApply(token, key, old, new)
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

func (s *Server) repairStatus(withRoots bool) (RepairStatus, error) {
	svc := s.ae.svc.Load()
	if svc == nil {
		return RepairStatus{}, errors.New("anti-entropy not running")
	}
	st := RepairStatus{Node: s.cfg.NodeID, TreeReady: svc.Tree().Ready(), LastFullPass: s.lastRepairPass()}
	if p, ok := svc.LastRepair(); ok {
		st.Repair = &p
	}
	if withRoots && st.TreeReady {
		roots, err := svc.Roots()
		if err != nil {
			return st, err
		}
		st.Ranges = roots
	}
	return st, nil
}

// mountAntiEntropy serves POST /v1/repair (start an on-demand repair, or join
// the one running, and answer its progress) and GET /v1/repair/status
// (progress, last full pass and, with ?roots=true, every local range's root).
func (s *Server) mountAntiEntropy(api *httpapi.API) {
	api.Handle("POST /v1/repair", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		svc := s.ae.svc.Load()
		if svc == nil {
			http.Error(w, "anti-entropy not running", http.StatusServiceUnavailable)
			return
		}
		svc.Repair()
		s.writeRepairStatus(w, false)
	}))
	api.Handle("GET /v1/repair/status", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeRepairStatus(w, r.URL.Query().Get("roots") == "true")
	}))
}

func (s *Server) writeRepairStatus(w http.ResponseWriter, withRoots bool) {
	st, err := s.repairStatus(withRoots)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(st); err != nil {
		s.log.Debug("writing repair status", "err", err)
	}
}

// aeTopology shows anti-entropy the current ring and who is up.
type aeTopology struct{ t *topology.Topology }

func (a aeTopology) Ranges() []ring.Range { return a.t.Current().Ring.Ranges() }

func (a aeTopology) Peer(id string) (string, bool) {
	r, ok := a.t.Current().ByNode[id]
	return r.Addr, ok && r.Up && r.Addr != ""
}

var _ antientropy.Topology = aeTopology{}
