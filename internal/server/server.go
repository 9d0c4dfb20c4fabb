// Package server is ringkv's composition root: it builds every component of a
// node from one config, wires them together and owns their lifecycles. Start
// brings them up in dependency order and Shutdown takes them down in reverse:
// first stop taking client work, then let in-flight work finish, then leave the
// cluster, then sync and close the store.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/auth"
	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/diskspace"
	"github.com/ringkv/ringkv/internal/handoff"
	"github.com/ringkv/ringkv/internal/httpapi"
	"github.com/ringkv/ringkv/internal/membership"
	"github.com/ringkv/ringkv/internal/peermethod"
	"github.com/ringkv/ringkv/internal/rebalance"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/resp"
	"github.com/ringkv/ringkv/internal/salvage"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/topology"
	"github.com/ringkv/ringkv/internal/transport"
	"github.com/ringkv/ringkv/internal/ui"
)

// Addrs are the addresses a started server listens on; --addr-file holds
// them as JSON.
type Addrs = apitypes.ListenAddrs

// Server is one ringkv node.
type Server struct {
	cfg    config.Config
	log    *slog.Logger
	reg    *prometheus.Registry
	wall   *clock.Offset
	hlc    *clock.HLC
	guard  *clock.Guard            // see clockcheck.go
	clock  *replication.ClockCheck // see clockcheck.go
	store  *storage.Store
	peers  peerTransport // TCP, or in memory under WithPeerNetwork (seams.go)
	seams  seams
	member *membership.Membership
	topo   *topology.Topology
	rebal  *rebalance.Coordinator
	hints  *handoff.Queue
	coord  *replication.Coordinator
	resp   *resp.Server
	http   *http.Server
	httpLn net.Listener
	respLn net.Listener
	ae     aeState     // anti-entropy; see antientropy.go
	hot    hotKeyState // hot keys; see hotkeys.go
	stats  *ui.Stats   // the dashboard's figures; see dashboard.go
	// started is when Start began: INFO's uptime and the dashboard's.
	started time.Time
	disk    *diskspace.Guard // the data disk's guard; see diskguard.go
	salv    *salvage.Restore // restoring after a salvage; see salvage.go

	form formationState // cluster formation; see formation.go

	ready     atomic.Bool
	stopWatch chan struct{}
	watchDone chan struct{}
	// savedPeers is what peersKey holds (see savePeers).
	savedPeers string
	shutdown   sync.Once
}

// New builds a node from cfg; nothing listens until Start. Options replace
// its network, gossip, clock or filesystem, for tests (seams.go).
func New(cfg config.Config, logger *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: logger.With("node", cfg.NodeID)}
	for _, o := range opts {
		o(&s.seams)
	}
	return s, nil
}

// Start opens storage, joins the cluster and starts serving. On error it
// releases whatever it had started.
func (s *Server) Start() (err error) {
	defer func() {
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			// Through the Once: a Shutdown after a failed Start is a no-op,
			// not a second close that reports "store is closed".
			s.shutdown.Do(func() { s.close(ctx) })
		}
	}()
	cfg := s.cfg
	s.started = time.Now()
	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newBuildInfo())
	// The offset lets the fault suite skew this one process's clock; it is
	// zero unless a test sets it through the debug endpoint.
	s.wall = clock.NewOffset(s.baseClock(), 0)
	s.hlc = clock.NewHLC(s.wall, cfg.MaxClockSkew)
	s.guard = clock.NewGuard(s.wall, cfg.MaxClockSkew)
	// Users first: a bad users file must stop the node before it opens
	// its storage or joins the gossip.
	users, err := auth.New(auth.Config{
		Password: cfg.Password, UsersFile: cfg.UsersFile,
		Logger: s.log, Registerer: s.reg,
	})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}

	sync := storage.SyncPeriodic
	if cfg.Sync == config.SyncAlways {
		sync = storage.SyncAlways
	}
	s.startDiskGuard()
	s.store, err = storage.Open(storage.Options{
		Engine: cfg.Engine, MaxMemory: cfg.MaxMemory, Salvage: cfg.Salvage,
		Dir: cfg.DataDir, InMemory: cfg.InMemory, Sync: sync, GCGrace: cfg.GCGrace,
		Clock: s.wall, Logger: s.log.With("component", "storage"), Registerer: s.reg,
		OnApply: s.onApply, OnPrefetch: s.onPrefetch, LowPriorityBackground: cfg.LowPriorityBackground, Guard: s.storeGuard,
		FS: s.seams.fs,
	})
	if err != nil {
		return fmt.Errorf("server: opening storage: %w", salvage.OpenError(err))
	}
	if err := s.checkTokenScheme(); err != nil {
		return err
	}
	s.noteSalvage()

	// The coordinator is the transport's handler, and the transport is the
	// coordinator's caller: servePeer reads s.coord once it is set.
	var coord *replication.Coordinator
	peerTLS, gossipKeys, err := s.peerSecurity()
	if err != nil {
		return err
	}
	s.peers, err = s.listenPeers(transport.TCPConfig{
		Addr: cfg.PeerAddr, NodeID: cfg.NodeID, Logger: s.log, Registerer: s.reg,
		Handler: s.servePeer, ServerTLS: peerTLS.server, ClientTLS: peerTLS.client,
	})
	if err != nil {
		return fmt.Errorf("server: peer listener: %w", err)
	}

	clientTLS, err := clientTLS(cfg)
	if err != nil {
		return err
	}
	s.respLn, err = net.Listen("tcp", cfg.ClientAddr)
	if err != nil {
		return fmt.Errorf("server: client listener: %w", err)
	}
	s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("server: http listener: %w", err)
	}

	initial, err := s.initialState()
	if err != nil {
		return err
	}
	seeds, err := s.seeds()
	if err != nil {
		return fmt.Errorf("server: reading known peers: %w", err)
	}
	s.member, err = membership.New(membership.Config{
		NodeID: cfg.NodeID, BindAddr: cfg.GossipAddr, Join: seeds, Keys: gossipKeys,
		Profile: gossipProfile(cfg.GossipAddr), Transport: s.seams.gossip,
		Logger: s.log,
		Meta: membership.Meta{
			ID: cfg.NodeID, Zone: cfg.Zone,
			ClientAddr: s.respLn.Addr().String(), PeerAddr: s.peers.Addr(), HTTPAddr: s.httpLn.Addr().String(),
			State: initial,
		},
	})
	if err != nil {
		return fmt.Errorf("server: membership: %w", err)
	}
	if err := s.registerGossipMetrics(); err != nil {
		return err
	}
	s.topo = topology.New(cfg.NodeID, cfg.Replicas, cfg.VNodes, ringSettle(cfg), nil)

	s.hints, err = handoff.New(handoff.Config{
		// A hint older than gc-grace could carry a value whose delete the
		// target already purged, and resurrect it: never keep one that long.
		MaxWindow: min(cfg.MaxHintWindow, cfg.GCGrace), MaxBytes: cfg.MaxHintBytes, Clock: s.wall,
		Logger: s.log, Registerer: s.reg,
	}, s.store.Keyspace('h'), s.deliverHint, s.topo.IsUp)
	if err != nil {
		return err
	}

	if err := s.startHotKeys(); err != nil {
		return err
	}
	rcfg := replication.DefaultConfig()
	rcfg.HotKeys = s.hot.tracker
	if s.hot.cache != nil {
		rcfg.HotCache = s.hot.cache
	}
	rcfg.NodeID = cfg.NodeID
	rcfg.RequestTimeout = cfg.RequestTimeout
	rcfg.Logger = s.log
	rcfg.Registerer = s.reg
	rcfg.Guard = s.guard
	var hinter replication.Hinter
	if cfg.HintedHandoff {
		hinter = s.guardHints(s.hints)
	}
	coord = replication.New(rcfg, s.hlc, s.store, s.peers, s.topo, hinter)
	s.coord = coord
	if err := s.startClockCheck(); err != nil {
		return fmt.Errorf("server: clock check: %w", err)
	}
	s.startStats()
	// Before ready: peer requests and readiness reach s.rebal from then on.
	if err := s.startRebalance(); err != nil {
		return fmt.Errorf("server: rebalance: %w", err)
	}
	s.ready.Store(true)

	if err := s.startAntiEntropy(); err != nil {
		return fmt.Errorf("server: anti-entropy: %w", err)
	}

	if err := s.member.Start(context.Background()); err != nil {
		return fmt.Errorf("server: joining the cluster: %w", err)
	}
	s.topo.Update(s.member.Members)
	s.stopWatch, s.watchDone = make(chan struct{}), make(chan struct{})
	go s.watchMembership()
	s.hints.Start()
	s.salv.Start()

	s.resp = resp.New(resp.Config{
		Addr: cfg.ClientAddr, MaxKeyBytes: cfg.MaxKeyBytes, MaxValueBytes: cfg.MaxValueBytes,
		// Twice the value limit: a value somewhat over it is read and refused
		// with a clear error on a connection that stays usable; only far
		// larger input is a protocol error that closes it, as in Redis.
		MaxBulkBytes: 2 * max(cfg.MaxValueBytes, cfg.MaxKeyBytes),
		Auth:         users, DefaultLevel: cfg.Consistency, RequestTimeout: cfg.RequestTimeout,
		TLS: clientTLS, MaxClientMemory: maxClientMemoryCap(cfg.MaxClientMemory),
		IdleTimeout: cfg.ClientIdleTimeout, ReadTimeout: cfg.ClientReadTimeout,
		Cluster: s.clusterView, Info: s.info, MemoryInfo: s.memoryInfo, Started: s.started, Logger: s.log, Registerer: s.reg,
		// A pipeline's plain GETs and SETs run as batches: a clustered
		// node sends each peer one request for them, and every node looks
		// up a batch's keys together (Store.Prefetch), which overlaps their
		// cache misses. Once a batch of only GETs or only SETs ran on the
		// connection's goroutine, this paid on a single node too: GET P16
		// CPU per request -20%, SET -7% (docs/performance.md).
		ConcurrentPipeline: true,
		EventLoops:         cfg.EventLoops,
		Loading:            s.salv.Gate,
	}, s.clientGate(coord))
	go func() {
		if err := s.resp.Serve(s.respLn); err != nil && !errors.Is(err, resp.ErrServerClosed) {
			s.log.Error("client listener stopped", "err", err)
		}
	}()

	api := httpapi.New(httpapi.Config{
		MaxKeyBytes: cfg.MaxKeyBytes, MaxValueBytes: cfg.MaxValueBytes, DefaultLevel: cfg.Consistency,
		Logger: s.log.With("component", "http"), Ready: s.readyCheck,
		Auth: users, MetricsOpen: cfg.MetricsOpen,
	}, s.clientGate(coord))
	s.reg.MustRegister(s.newReadinessCollector())
	api.Handle("GET /metrics", s.metricsHandler())
	s.mountAdmin(api)
	s.http = httpapi.NewServer(api.Handler(), httpapi.ServerConfig{
		ReadTimeout: cfg.ClientReadTimeout, IdleTimeout: cfg.ClientIdleTimeout,
		TLS: clientTLS, Logger: s.log.With("component", "http"),
	})
	go func() {
		serve := s.http.Serve
		if clientTLS != nil {
			serve = func(ln net.Listener) error { return s.http.ServeTLS(ln, "", "") }
		}
		if err := serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http listener stopped", "err", err)
		}
	}()
	return nil
}

// deliverHint replays one hint to its target with the peer Apply request.
func (s *Server) deliverHint(ctx context.Context, target string, key []byte, rec *record.Record) error {
	addr, ok := s.topo.PeerAddr(target)
	if !ok {
		return fmt.Errorf("server: unknown hint target %q", target)
	}
	return s.coord.SendApply(ctx, addr, key, rec)
}

// watchMembership rebuilds the topology on every membership change, wakes
// the hint replayer when a node comes back and tells anti-entropy, which
// compares promptly what a returning node or a new ring owes.
func (s *Server) watchMembership() {
	defer close(s.watchDone)
	ch := s.member.Subscribe()
	// Changes between Start and Subscribe would be lost without this.
	s.topo.Update(s.member.Members)
	s.savePeers(s.member.Members())
	s.aeTopologyChanged()
	for {
		select {
		case <-s.stopWatch:
			return
		case <-ch:
			s.savePeers(s.member.Members())
			if up := s.topo.Update(s.member.Members); len(up) > 0 {
				// Connections that lived through a partition may sit in
				// TCP retransmission backoff for seconds after the heal.
				for _, r := range up {
					s.peers.Reset(r.Addr)
				}
				s.hints.Kick()
			}
			s.aeTopologyChanged()
		}
	}
}

// readyCheck answers /readyz, the readiness metric and the status page: nil
// when the node can serve, else the first failing check's reason. Each check
// is one entry (see readiness.go).
func (s *Server) readyCheck() error {
	if !s.ready.Load() {
		return &notReady{reason: reasonStarting}
	}
	for _, check := range []func() error{
		s.membershipReady,
		s.formationReady,
		s.quorumReady,
		s.clockReady,
		s.diskReady,
		s.salvageReady,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// servePeer routes a peer request to the component that owns its method
// (internal/peermethod holds the table).
func (s *Server) servePeer(ctx context.Context, from string, method uint8, payload []byte) ([]byte, error) {
	if !s.ready.Load() {
		return nil, errors.New("server: node is starting")
	}
	if err := s.salv.RefusesPeer(method); err != nil {
		return nil, err
	}
	owner, _ := peermethod.OwnerOf(method)
	switch owner {
	case peermethod.Replication:
		return s.coord.Serve(ctx, from, method, payload)
	case peermethod.AntiEntropy:
		return s.serveAntiEntropy(ctx, from, method, payload)
	case peermethod.Rebalance:
		return s.rebal.Serve(ctx, from, method, payload)
	case peermethod.Stats:
		return s.stats.ServePeer(method)
	}
	return nil, fmt.Errorf("server: unknown peer method %d", method)
}

// Addrs returns the addresses the node listens on.
func (s *Server) Addrs() Addrs {
	var a Addrs
	if s.respLn != nil {
		a.Client = s.respLn.Addr().String()
	}
	if s.httpLn != nil {
		a.HTTP = s.httpLn.Addr().String()
	}
	if s.peers != nil {
		a.Peer = s.peers.Addr()
	}
	a.Gossip = s.cfg.GossipAddr
	if s.member != nil {
		// The bound address: with port 0 the configured one cannot be joined.
		if addr := s.member.LocalAddr(); addr != "" {
			a.Gossip = addr
		}
	}
	return a
}

// Shutdown stops the node gracefully: client listeners drain, the node leaves
// the gossip, hints stop, the store syncs and closes.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.shutdown.Do(func() { err = s.close(ctx) })
	return err
}

func (s *Server) close(ctx context.Context) error {
	var errs []error
	if s.resp != nil {
		errs = append(errs, s.resp.Shutdown(ctx))
	} else if s.respLn != nil {
		s.respLn.Close()
	}
	if s.http != nil {
		errs = append(errs, s.http.Shutdown(ctx))
	} else if s.httpLn != nil {
		s.httpLn.Close()
	}
	if s.stopWatch != nil {
		close(s.stopWatch)
		<-s.watchDone
	}
	s.salv.Stop()
	s.stats.Stop()
	errs = append(errs, s.stopRebalance(ctx), s.stopAntiEntropy(ctx), s.stopHotKeys(ctx), s.stopClockCheck(ctx))
	if s.hints != nil {
		errs = append(errs, s.hints.Shutdown(ctx))
	}
	if s.member != nil {
		errs = append(errs, s.member.Shutdown(ctx))
	}
	if s.peers != nil {
		errs = append(errs, s.peers.Close())
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
	}
	s.disk.Close()
	return errors.Join(errs...)
}

// gossipProfile picks memberlist's fast failure detection when the node gossips
// on loopback: every member is then on this machine (demo, tests), where a
// missed probe means a dead process, not a slow network.
func gossipProfile(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return membership.ProfileLAN
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return membership.ProfileLocal
	}
	return membership.ProfileLAN
}
