package rebalance

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/membership"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/topology"
)

// Topology is the routing view the coordinator reads, and rebuilds after it
// changed a state. *topology.Topology implements it.
type Topology interface {
	Peers
	Current() *topology.View
	Update(source func() []membership.Member) []replication.Replica
}

// Members is this node's membership: the member list views are built from,
// the node's own state, the states the cluster decided for other nodes
// (marks), and the full state exchange. *membership.Membership implements it.
type Members interface {
	Members() []membership.Member
	SetState(ctx context.Context, st membership.State) error
	MarkState(id string, st membership.State) (bool, error)
	Marks() map[string]membership.State
	Sync() int
}

// LocalStore is the node's own store: what a puller needs, and its record
// count for the empty-cluster check. *storage.Store implements it.
type LocalStore interface {
	Store
	ApproxCount() int64
}

// CoordinatorConfig configures a Coordinator.
type CoordinatorConfig struct {
	// Self is this node's id.
	Self  string
	Store LocalStore
	// Apply stores a pulled record if it is newer than the local one.
	Apply    func(key []byte, rec record.Record) error
	Caller   Caller
	Topology Topology
	Members  Members
	// Rate caps the bytes per second the pulls receive; <= 0 is unlimited.
	Rate int64
	// Settle is how long after every up node agreed on a change the pulls
	// wait (see Settle).
	Settle time.Duration
	// RequestTimeout bounds each peer's answer to the empty-cluster check;
	// 0 means 2 s.
	RequestTimeout time.Duration
	// Clock measures the settle time and how long views have differed;
	// nil is the system clock.
	Clock clock.Clock
	// Ready reports whether the node takes part yet; nil is always.
	Ready func() bool
	// Tick, when set, runs at each step of a ready node, before the step:
	// the server completes a cluster's formation there as soon as every
	// member is up, not at the next client request or readiness probe.
	Tick func()
	// CheckMark vets a mark a peer asks this node to apply; nil refuses
	// every one. The server refuses marks of itself and of live nodes.
	CheckMark  func(from, id string, st membership.State) error
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Coordinator drives this node's part in topology changes: pulling the ranges
// it gains, and moving nodes on (joining → normal, leaving → removed) once
// every range is where it must be.
type Coordinator struct {
	cfg    CoordinatorConfig
	log    *slog.Logger
	clock  clock.Clock
	puller *Puller
	stop   chan struct{}
	done   chan struct{}

	mu struct {
		sync.Mutex
		confirmedFP uint64    // fingerprint every up node agreed on
		confirmedAt time.Time // when that agreement was seen
		left        map[string]int
		differFP    uint64    // our fingerprint when a peer's first differed
		differSince time.Time // zero while views agree
		lastSync    time.Time
	}
	remaining atomic.Int64
	// syncing is set while a membership Sync runs. Stop does not wait for
	// it: a member that does not answer holds it for a TCP timeout.
	syncing   atomic.Bool
	viewSyncs atomic.Uint64
}

// Gossip spreads a member's change to every node within a second or two. A
// peer whose view of the members still differs from ours after viewSyncAfter
// has missed an update, and this node exchanges full state with every member
// (Members.Sync), at most once per viewSyncEvery. Without it, the node that
// missed it waits for the next periodic push/pull to reach the right peer,
// and a change waits for the views to agree.
const (
	viewSyncAfter = 2 * time.Second
	viewSyncEvery = 5 * time.Second
)

// stepEvery paces the coordinator's checks.
const stepEvery = 250 * time.Millisecond

// Settle is how long a node keeps writing to the previous owners after the
// ring switched, and how long the pulls wait after every node agreed on a
// change. Every node switches when gossip brings it the change, so this must
// outlast the spread of one gossip update (localGossip: every member on this
// machine, where it is faster) plus a request timeout for writes already in
// flight.
func Settle(localGossip bool, requestTimeout time.Duration) time.Duration {
	if localGossip {
		return 3*time.Second + requestTimeout
	}
	return 10*time.Second + requestTimeout
}

// NewCoordinator returns a coordinator; Start runs it.
func NewCoordinator(cfg CoordinatorConfig) *Coordinator {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 2 * time.Second
	}
	c := &Coordinator{
		cfg: cfg, log: cfg.Logger, clock: cfg.Clock,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	c.puller = NewPuller(Config{
		Self: cfg.Self, PageMethod: MethodPage,
		Store: cfg.Store, Apply: cfg.Apply, Caller: cfg.Caller, Peers: cfg.Topology,
		Rate: cfg.Rate, Logger: cfg.Logger, Registerer: cfg.Registerer,
	})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "ringkv", Subsystem: "membership", Name: "view_syncs_total",
			Help: "Full state exchanges with every member, started because a peer's view of the member states kept differing.",
		}, func() float64 { return float64(c.viewSyncs.Load()) }))
	}
	return c
}

// Start runs the coordinator until Stop.
func (c *Coordinator) Start() { go c.run() }

// Stop ends the coordinator and waits for its step in progress, or for ctx.
func (c *Coordinator) Stop(ctx context.Context) error {
	close(c.stop)
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run checks every tick whether this node has ranges to pull or a change to
// complete. Ticks, not membership events, drive it: the checks ask peers,
// and a change waits for them to agree anyway.
func (c *Coordinator) run() {
	defer close(c.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-c.stop
		cancel()
	}()
	t := time.NewTicker(stepEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if err := c.step(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("topology change step failed; retrying", "err", err)
		}
	}
}

func (c *Coordinator) step(ctx context.Context) error {
	if c.cfg.Ready != nil && !c.cfg.Ready() {
		return nil
	}
	if c.cfg.Tick != nil {
		c.cfg.Tick()
	}
	v := c.cfg.Topology.Current()
	self := c.cfg.Self
	if v.Future == nil {
		c.remaining.Store(0)
		c.mu.Lock()
		c.mu.left = nil
		c.mu.Unlock()
		if p := c.puller.Progress(); p.Total > 0 {
			return c.puller.Reset()
		}
		return nil
	}
	// A cluster with no owner yet (every node joining, as when a whole
	// cluster starts with --join pointing at each other) has no data: its
	// smallest id bootstraps it.
	if me, ok := v.Members[self]; ok && me.State == membership.Joining && v.Ring.Len() == 0 {
		if len(v.Members) > 1 && smallestID(v) == self {
			return c.SetOwnState(ctx, membership.Normal)
		}
		return nil
	}
	// A node joining a cluster that holds no data (nodes of a new cluster
	// started one after the other with --join, as `ringkv demo` does) has
	// nothing to stream: it goes normal at once instead of leaving the
	// cluster at a smaller replica set for a settle period.
	if me, ok := v.Members[self]; ok && me.State == membership.Joining && c.puller.Progress().Total == 0 {
		if empty, err := c.clusterEmpty(ctx, v); err == nil && empty {
			c.log.Info("joining an empty cluster: nothing to stream")
			return c.SetOwnState(ctx, membership.Normal)
		}
	}
	tasks := Plan(v.Ring, v.Future, self)
	left, err := c.puller.Remaining(tasks)
	if err != nil {
		return err
	}
	c.remaining.Store(int64(left))
	agreed, replies := c.agree(ctx, v)
	if !agreed {
		return nil
	}
	if left > 0 {
		c.mu.Lock()
		wait := c.mu.confirmedAt.Add(c.cfg.Settle).Sub(c.clock.Now())
		c.mu.Unlock()
		if wait > 0 {
			// Writes routed before the others heard of the change may
			// still be landing on the old owners only.
			return nil
		}
		if err := c.puller.Pull(ctx, tasks); err != nil {
			return err
		}
		c.remaining.Store(0)
		return nil
	}
	return c.complete(ctx, v, replies)
}

// agree asks every up member for its view and returns whether all share ours.
// It remembers when agreement on this view was first seen.
func (c *Coordinator) agree(ctx context.Context, v *topology.View) (bool, map[string]StatusReply) {
	replies := map[string]StatusReply{}
	for id, rep := range v.ByNode {
		if _, member := v.Members[id]; !member || !rep.Up || id == c.cfg.Self {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := c.cfg.Caller.Call(cctx, rep.Addr, MethodStatus, nil)
		cancel()
		if err != nil {
			return false, nil
		}
		st, err := DecodeStatus(resp)
		if err != nil {
			return false, nil
		}
		if st.Fingerprint != v.Fingerprint {
			c.viewsDiffer(v.Fingerprint)
			return false, nil
		}
		replies[id] = st
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.differSince = time.Time{}
	if c.mu.confirmedFP != v.Fingerprint || c.mu.confirmedAt.IsZero() {
		c.mu.confirmedFP, c.mu.confirmedAt = v.Fingerprint, c.clock.Now()
	}
	left := map[string]int{}
	for id, st := range replies {
		left[id] = st.Remaining
	}
	left[c.cfg.Self] = int(c.remaining.Load())
	c.mu.left = left
	return true, replies
}

// viewsDiffer notes that a peer's view of the members differs from ours
// (fingerprint fp), and starts a full state exchange once the difference has
// lasted viewSyncAfter.
func (c *Coordinator) viewsDiffer(fp uint64) {
	now := c.clock.Now()
	c.mu.Lock()
	if c.mu.differFP != fp || c.mu.differSince.IsZero() {
		c.mu.differFP, c.mu.differSince = fp, now
	}
	due := now.Sub(c.mu.differSince) >= viewSyncAfter && now.Sub(c.mu.lastSync) >= viewSyncEvery
	if due {
		c.mu.lastSync = now
	}
	c.mu.Unlock()
	if !due || !c.syncing.CompareAndSwap(false, true) {
		return
	}
	c.viewSyncs.Add(1)
	go func() {
		defer c.syncing.Store(false)
		n := c.cfg.Members.Sync()
		c.log.Info("a peer's view of the members differs from ours; exchanged full state", "members", n)
	}()
}

// complete moves the change on once every node that gains ranges has pulled
// them: this node, when it is the one joining or leaving; the smallest up
// normal node for nodes an operator marked leaving.
func (c *Coordinator) complete(ctx context.Context, v *topology.View, replies map[string]StatusReply) error {
	self := c.cfg.Self
	for id, m := range v.Members {
		if len(Plan(v.Ring, v.Future, id)) == 0 {
			continue
		}
		if id == self {
			continue // c.remaining is 0 here
		}
		st, ok := replies[id]
		if !ok || st.Remaining > 0 || !m.Up {
			return nil // a gaining node is down or not done
		}
	}
	me := v.Members[self]
	switch me.State {
	case membership.Joining:
		return c.SetOwnState(ctx, membership.Normal)
	case membership.Leaving:
		if _, marked := c.cfg.Members.Marks()[self]; !marked {
			return c.SetOwnState(ctx, membership.Removed)
		}
	}
	if me.State != membership.Normal || smallestNormalUp(v) != self {
		return nil
	}
	for id, st := range c.cfg.Members.Marks() {
		if m, ok := v.Members[id]; ok && st == membership.Leaving && m.State == membership.Leaving {
			if err := c.MarkEverywhere(ctx, id, membership.Removed); err != nil {
				return err
			}
			c.log.Info("removed node: its ranges are re-replicated", "member", id)
		}
	}
	return nil
}

// SetOwnState persists this node's lifecycle state, so a restart resumes it
// (InitialState), then gossips it.
func (c *Coordinator) SetOwnState(ctx context.Context, st membership.State) error {
	if err := saveState(c.cfg.Store.Keyspace(PrefixMeta), st); err != nil {
		return err
	}
	c.log.Info("node state changed", "state", st)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := c.cfg.Members.SetState(cctx, st)
	c.refresh()
	return err
}

// refresh rebuilds the view from the members after a state changed here.
func (c *Coordinator) refresh() { c.cfg.Topology.Update(c.cfg.Members.Members) }

func smallestID(v *topology.View) string {
	best := ""
	for id := range v.Members {
		if best == "" || id < best {
			best = id
		}
	}
	return best
}

func smallestNormalUp(v *topology.View) string {
	best := ""
	for id, m := range v.Members {
		if m.State == membership.Normal && v.ByNode[id].Up && (best == "" || id < best) {
			best = id
		}
	}
	return best
}

// MarkEverywhere marks node id with st here and on every up member, so a
// dead node's state changes at once everywhere instead of waiting for the
// next push/pull round of gossip.
func (c *Coordinator) MarkEverywhere(ctx context.Context, id string, st membership.State) error {
	if _, err := c.cfg.Members.MarkState(id, st); err != nil {
		return err
	}
	c.refresh()
	v := c.cfg.Topology.Current()
	var errs []error
	for mid, rep := range v.ByNode {
		if _, ok := v.Members[mid]; !ok || !rep.Up || mid == c.cfg.Self {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.cfg.Caller.Call(cctx, rep.Addr, MethodMark, EncodeMark(id, uint8(st)))
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("marking %s %s on %s: %w", id, st, mid, err))
		}
	}
	// Gossip's push/pull reaches any node missed here.
	return errors.Join(errs...)
}

// Serve answers a peer's rebalance request: a page of a range it pulls, this
// node's status in the change, or a mark of another node.
func (c *Coordinator) Serve(_ context.Context, from string, method uint8, payload []byte) ([]byte, error) {
	switch method {
	case MethodPage:
		return ServePage(c.cfg.Store, payload)
	case MethodStatus:
		// What is left is counted for the view the reply names, not taken
		// from the last step: a node that has not stepped since the change
		// reached it would report the previous state's 0 under the new
		// fingerprint, and a leaving node would take itself out before its
		// ranges were pulled.
		v := c.cfg.Topology.Current()
		left := 0
		if v.Future != nil {
			n, err := c.puller.Remaining(Plan(v.Ring, v.Future, c.cfg.Self))
			if err != nil {
				return nil, err
			}
			left = n
		}
		return StatusReply{Fingerprint: v.Fingerprint, Remaining: left}.Encode(), nil
	case MethodMark:
		id, st, err := DecodeMark(payload)
		if err != nil {
			return nil, err
		}
		if c.cfg.CheckMark == nil {
			return nil, fmt.Errorf("rebalance: refusing mark %s %s from peer %s: marks are not accepted here", id, membership.State(st), from)
		}
		if err := c.cfg.CheckMark(from, id, membership.State(st)); err != nil {
			return nil, err
		}
		if _, err := c.cfg.Members.MarkState(id, membership.State(st)); err != nil {
			return nil, err
		}
		c.refresh()
		return nil, nil
	}
	return nil, fmt.Errorf("rebalance: unknown method %d", method)
}

// StreamStatus returns, for the status page, the ranges each node still had
// to pull at the last check, and this node's own progress.
func (c *Coordinator) StreamStatus() (left map[string]int, own Progress) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.left, c.puller.Progress()
}

// Progress reports how far this node's pulls got.
func (c *Coordinator) Progress() Progress { return c.puller.Progress() }

// clusterEmpty reports whether this node and every member that owns ranges
// hold no records at all. Any member that does not answer makes it false.
func (c *Coordinator) clusterEmpty(ctx context.Context, v *topology.View) (bool, error) {
	if c.cfg.Store.ApproxCount() != 0 {
		return false, nil
	}
	owners := v.Ring.Nodes()
	if len(owners) == 0 {
		return false, nil
	}
	for _, n := range owners {
		rep, ok := v.ByNode[n.ID]
		if !ok || !rep.Up || rep.Addr == "" {
			return false, nil
		}
		cctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		resp, err := c.cfg.Caller.Call(cctx, rep.Addr, replication.MethodCount, nil)
		cancel()
		if err != nil {
			return false, err
		}
		// The count leads the reply; what follows it (since issue 32, the
		// values with an expiry) is no concern here.
		if len(resp) < 8 || binary.BigEndian.Uint64(resp) != 0 {
			return false, nil
		}
	}
	return true, nil
}
