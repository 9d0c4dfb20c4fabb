package antientropy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"

	"golang.org/x/time/rate"
)

// Errors.
var (
	// ErrNotReady: the bucket hashes are still being rebuilt after start, so
	// this node can neither answer a comparison nor start one.
	ErrNotReady = errors.New("antientropy: bucket hashes not rebuilt yet")
	// ErrRingChanged: a peer derives a different leaf list for a range, which
	// only a bug can cause, since leaves depend on the range bounds alone.
	ErrRingChanged = errors.New("antientropy: peer disagrees on the range's leaves")
)

// Caller sends a request to a peer; transport.Transport implements it. See
// package transport for what its errors mean.
type Caller interface {
	Call(ctx context.Context, addr string, method uint8, payload []byte) ([]byte, error)
}

// Topology is the node's current view of the cluster. Implementations must be
// safe for concurrent use; Ranges' slices are read-only.
type Topology interface {
	// Ranges returns every range of the current ring with its replicas.
	Ranges() []ring.Range
	// Peer returns a node's peer address and whether it is up.
	Peer(id string) (addr string, up bool)
}

// Store is the node's replica: a scanner plus point reads. storage.Store
// implements it; Get's record is the caller's.
type Store interface {
	Scanner
	Get(key []byte) (record.Record, bool, error)
}

// ApplyFunc stores a repaired record if it is newer than the stored one and
// reports whether it did. It must guard the node's clock as a peer write does.
type ApplyFunc func(key []byte, rec record.Record) (applied bool, err error)

// Defaults for Config fields left zero.
const (
	// DefaultCallTimeout bounds one peer request of a sync. Generous: a
	// request may carry a few MiB of records to a loaded peer.
	DefaultCallTimeout = 30 * time.Second
	// DefaultConcurrency is how many range comparisons run at once: enough to
	// hide round trips, few enough to leave the node to its clients.
	DefaultConcurrency = 4
)

// Batching limits. maxBatchBytes keeps every message far below the
// transport's frame limit while still amortising round trips.
const (
	maxLeavesPerDigest = 64
	maxKeysPerBatch    = 512
	maxBatchBytes      = 4 << 20
)

// Config configures a Service.
type Config struct {
	// NodeID is this node's ring id.
	NodeID string
	// Interval is the time between the starts of two continuous passes (a
	// pass that outlasts it is followed at once by the next); zero or
	// negative runs passes only on demand (Repair). Comparisons a pass could
	// not make (peer down, failed) are retried between passes, as soon as
	// the peer is up, so after a heal replicas converge within one period of
	// the peer coming back rather than two or more.
	Interval time.Duration
	// Rate bounds the records a pass repairs per second, pulled and pushed
	// together, so a large repair does not starve client traffic. Zero or
	// negative is unlimited.
	Rate float64
	// CallTimeout bounds each peer request; default DefaultCallTimeout.
	CallTimeout time.Duration
	// Concurrency is how many range comparisons run at once; default
	// DefaultConcurrency.
	Concurrency int
	// Clock stamps passes; default clock.System{}.
	Clock      clock.Clock
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Progress describes one on-demand repair (ringkv repair). It is the body
// `ringkv repair` reads, so its shape is declared with the others in apitypes.
type Progress = apitypes.RepairProgress

// Progress states.
const (
	StateQueued  = "queued"
	StateRunning = "running"
	StateDone    = "done"
)

// Service runs anti-entropy for one node: it owns the Tree, serves peers'
// comparisons, and runs passes continuously and on demand. All methods are
// safe for concurrent use.
type Service struct {
	cfg   Config
	log   *slog.Logger
	tree  *Tree
	store Store
	apply ApplyFunc
	net   Caller
	topo  Topology
	m     *metrics
	lim   *rate.Limiter // nil: unlimited

	kick chan struct{}
	// topoCh carries TopologyChanged's signals, coalesced, to the loop or,
	// while a pass runs, to the pass's watcher.
	topoCh chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	mu struct {
		sync.Mutex
		// repair is the latest on-demand repair; requested means it waits
		// for the loop to pick it up.
		repair    *Progress
		requested bool
		nextID    uint64
		// pending holds the comparisons owed since the last full pass: the
		// ones it skipped or that failed, and every (range, peer) pair that
		// is new or whose peer has come up since (a returning peer may have
		// missed writes while away, whether or not a pass ran meanwhile; a
		// new ring moves ranges to replicas that never compared them).
		pending map[pairKey]struct{}
		// known maps each (range, peer) pair of the topology as last noted
		// to whether the peer was up.
		known map[pairKey]bool
	}
	lastFull atomic.Int64 // unix seconds
	started  atomic.Bool
}

// New builds a service; nothing runs until Start, but OnApply is live at once.
func New(cfg Config, store Store, apply ApplyFunc, net Caller, topo Topology) (*Service, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("antientropy: Config.NodeID is required")
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("antientropy: registering metrics: %w", err)
	}
	return &Service{
		cfg: cfg, log: cfg.Logger, tree: NewTree(), store: store, apply: apply, net: net, topo: topo, m: m,
		lim: newLimiter(cfg.Rate), kick: make(chan struct{}, 1), topoCh: make(chan struct{}, 1), done: make(chan struct{}),
	}, nil
}

// Tree returns the service's bucket hashes.
func (s *Service) Tree() *Tree { return s.tree }

// OnApply keeps the bucket hashes current; it is storage's OnApply hook.
func (s *Service) OnApply(token uint64, key []byte, old, new record.Record) {
	s.tree.OnApply(token, key, old, new)
}

// Prefetch warms the bucket hashes of a batch of writes about to be applied;
// it is storage's OnPrefetch hook.
func (s *Service) Prefetch(tokens []uint64) { s.tree.Prefetch(tokens) }

// Start rebuilds the bucket hashes from the store in the background, then
// runs passes every Interval and whenever Repair asks for one.
func (s *Service) Start() error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("antientropy: already started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(ctx)
	return nil
}

// Shutdown stops the service and waits for a running pass to notice, until
// ctx is done.
func (s *Service) Shutdown(ctx context.Context) error {
	if !s.started.Load() {
		return nil
	}
	s.cancel()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("antientropy: shutdown: %w", ctx.Err())
	}
}
