package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/hotkeys"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/ring"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/transport"
)

// Replica is one replica of a key as the coordinator sees it.
type Replica struct {
	ID   string
	Addr string // peer address; ignored for the local node
	Up   bool
}

// Topology tells the coordinator where keys live. It is called on every request,
// so it must be fast and safe for concurrent use; returned slices are shared and
// must not be modified.
type Topology interface {
	// ReplicasAt returns the replica set, in ring order and down replicas
	// included, of the keys whose ring token (ring.Token) is token: a
	// request takes its key's token once and hands it on.
	ReplicasAt(token uint64) []Replica
	// PendingAt returns the nodes that are taking over part of the token's
	// range (a joining node, the new owner when a node leaves), nil when
	// none. Writes go to them as well, and each one's ack is required on top
	// of the level's count, as in Cassandra: whichever replica set is in
	// force once the range has moved, a majority of it then holds every
	// acknowledged write.
	PendingAt(token uint64) []Replica
	// Nodes returns every member of the cluster, down ones included.
	Nodes() []Replica
}

// LocalStore is this node's own replica. *storage.Store implements it.
type LocalStore interface {
	Get(key []byte) (record.Record, bool, error)
	// GetAt is Get for a caller that holds key's token, ring.Token(key).
	GetAt(token uint64, key []byte) (record.Record, bool, error)
	Apply(key []byte, rec record.Record) (storage.ApplyResult, error)
	Scan(from uint64, fn func(token uint64, key []byte, rec *record.Record) error) error
	ApproxCount() int64
	// Expiring counts the stored values that have an expiry.
	Expiring() int64
}

// Caller sends requests to peers. transport.Transport implements it.
type Caller interface {
	Call(ctx context.Context, addr string, method uint8, payload []byte) ([]byte, error)
}

// Hinter keeps a write that a replica missed, for replay when it is back.
// Hint must be safe for concurrent use and must not block on the network.
type Hinter interface {
	Hint(target string, key []byte, rec *record.Record)
}

// HotKeys tracks request rates per key (design §10). ObserveHashed counts a
// request and reports whether the key is hot; it is called on every request
// and must be cheap and safe for concurrent use. h is the key's ring token.
type HotKeys interface {
	ObserveHashed(h uint64, key []byte) (hot bool)
}

// HotCache is the opt-in coordinator cache for hot keys, with a staleness
// bound of its TTL for writes made through other nodes. A read takes a Ticket
// before asking the replicas, so a fill that raced a local write is dropped.
type HotCache interface {
	Get(key []byte) (rec record.Record, found, hit bool)
	Ticket(key []byte) hotkeys.Ticket
	Put(key []byte, t hotkeys.Ticket, rec record.Record, found bool)
	Invalidate(key []byte)
}

// Config tunes a coordinator.
type Config struct {
	// NodeID is this node's id: it tie-breaks versions and marks the local replica.
	NodeID string
	// RequestTimeout bounds every replica request, also those that go on after
	// the client got its answer (the rest of a write, repairs).
	RequestTimeout time.Duration
	// SpeculativeDelay is how long a read waits on a replica before asking
	// another one as well. It trades a little extra load for a shorter tail.
	SpeculativeDelay time.Duration
	// ReadRepairChance is the share of ONE reads that compare all replicas in the
	// background and repair the stale ones. QUORUM and ALL reads always repair.
	ReadRepairChance float64
	// HotKeys, when set, sees every request; reads at ONE of a hot key
	// then go to a random live replica instead of always the first, so a
	// hot key's read load spreads over all its replicas.
	HotKeys HotKeys
	// HotCache, when set, serves reads below ALL of hot keys for up to its
	// TTL; this node's own writes invalidate it.
	HotCache HotCache
	// Guard, when set, is the node's clock guard (the one its store applies):
	// reads do not pick as their answer a version it refuses, nor repair
	// replicas with one (see resolve).
	Guard      *clock.Guard
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// DefaultConfig returns the defaults used by `ringkv server`.
func DefaultConfig() Config {
	return Config{
		// Long enough to ride out a GC pause or a busy peer on a loaded box,
		// short enough that a client sees a dead replica as an error quickly.
		RequestTimeout: 2 * time.Second,
		// About a healthy p99 on a LAN: speculation then costs a few percent
		// more reads and cuts the tail a slow replica would cause.
		SpeculativeDelay: 20 * time.Millisecond,
		// Cassandra's old default: enough to heal cold keys over time without
		// doubling the cost of every ONE read.
		ReadRepairChance: 0.1,
	}
}

// Coordinator runs client requests against a key's replicas.
type Coordinator struct {
	cfg     Config
	hlc     *clock.HLC
	local   LocalStore
	net     Caller
	topo    Topology
	hints   Hinter
	log     *slog.Logger
	metrics *metrics
	// prefetcher is local, when it can prefetch; nil otherwise.
	prefetcher Prefetcher
	// batcher is local, when it can apply a batch in one commit; nil
	// otherwise.
	batcher BatchApplier
	// batchTurn turns the peer a GetBatch asks first (see askPeers).
	batchTurn atomic.Uint32
	// gate, when set, is why this node refuses to coordinate writes (its
	// clock is off; see ClockCheck).
	gate atomic.Pointer[writeGate]
	// clockCheck, when running, checks before each write that the clock
	// has not stepped since it last agreed with the peers'.
	clockCheck atomic.Pointer[ClockCheck]
	// skewLog bounds the log lines for records refused by the HLC.
	skewLog sometimes
	// incr serialises Incr per key (see incrLocks).
	incr incrLocks
}

// New returns a coordinator. hints may be nil (then missed writes are only
// healed by read repair and anti-entropy).
func New(cfg Config, hlc *clock.HLC, local LocalStore, net Caller, topo Topology, hints Hinter) *Coordinator {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultConfig().RequestTimeout
	}
	pf, _ := local.(Prefetcher)
	ba, _ := local.(BatchApplier)
	return &Coordinator{
		cfg: cfg, hlc: hlc, local: local, net: net, topo: topo, hints: hints,
		log:        cfg.Logger.With("component", "replication"),
		metrics:    newMetrics(cfg.Registerer),
		prefetcher: pf,
		batcher:    ba,
	}
}

// Now returns the node's wall clock reading.
func (c *Coordinator) Now() time.Time { return c.hlc.Wall().Now() }

// ReadsAlone reports whether this node is the only member of the cluster, so
// that every read at every level is answered by its own replica and never
// waits on a peer (the RESP server's event loops run such reads inline). A
// node joining makes it false at once: the topology lists it from the start.
func (c *Coordinator) ReadsAlone() bool {
	nodes := c.topo.Nodes()
	return len(nodes) == 1 && nodes[0].ID == c.cfg.NodeID
}

func (c *Coordinator) isLocal(r *Replica) bool { return r.ID == c.cfg.NodeID }

// detached returns a context for replica requests: it keeps the caller's values
// but not its cancellation, so the part of a write or repair that goes on after
// the client got its answer still completes or leaves a hint.
func (c *Coordinator) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), c.cfg.RequestTimeout)
}

type applyResult struct {
	rep       *Replica
	applied   bool
	prev      record.Record
	prevFound bool
	err       error
}

// Put writes m to key's replicas under a fresh version and returns once the
// level's number of replicas acknowledged it. It returns the newest record the
// acknowledging replicas held before the write.
func (c *Coordinator) Put(ctx context.Context, key []byte, m Mutation, lvl Level) (prev record.Record, prevFound bool, err error) {
	start := clock.Mono()
	defer func() { c.metrics.observe("write", lvl, start, err) }()
	if err := c.writeRefused(start); err != nil {
		return prev, false, err
	}
	tok := ring.Token(key)
	if c.cfg.HotKeys != nil {
		c.cfg.HotKeys.ObserveHashed(tok, key)
	}
	if c.cfg.HotCache != nil {
		// Whatever the outcome (a TIMEOUT may have landed), no read that
		// began before the write may be served from the cache after it.
		defer c.cfg.HotCache.Invalidate(key)
	}
	reps, tally := c.writeReplicas(tok, lvl)
	if err := tally.check(); err != nil {
		return prev, false, err
	}
	for attempt := 0; ; attempt++ {
		rec := c.stamp(m)
		var newer *record.Record
		prev, prevFound, newer, err = c.write(ctx, key, &rec, reps, tally)
		if err != nil || newer == nil || attempt == maxSupersededRetries {
			return prev, prevFound, err
		}
		// An acknowledging replica already held a newer version: a write
		// through a node whose clock runs ahead, acknowledged before this
		// one began. Left as is, this write would be silently lost to it
		// (a DEL after a SET would not delete). The HLC moves past that
		// version and the write goes out again under a newer one, so a
		// write that starts after another was acknowledged wins over it,
		// whatever the skew within --max-clock-skew.
		if c.hlc.Update(newer.Version.TS) != nil {
			return prev, prevFound, err
		}
		c.metrics.superseded.Inc()
	}
}

// maxSupersededRetries bounds the rewrites of one write that found a newer
// version: one suffices for a write that follows an acknowledged one; more
// would only matter against a concurrent writer, whose order LWW leaves open.
const maxSupersededRetries = 1

// stamp returns the record a write of m sends: m under a fresh version from
// this node's clock.
func (c *Coordinator) stamp(m Mutation) record.Record { return c.stampAt(m, c.hlc.Now()) }

// stampAt is stamp with a timestamp the caller took from the clock.
func (c *Coordinator) stampAt(m Mutation, ts clock.Timestamp) record.Record {
	rec := record.Record{
		Value:     m.Value,
		Version:   record.Version{TS: ts, Node: c.cfg.NodeID},
		ExpireAt:  m.ExpireAt,
		Tombstone: m.Tombstone,
	}
	if rec.Tombstone {
		rec.Value = nil
	}
	return rec
}

// write sends rec to every live replica and waits for the acks tally asks
// for. Replicas that are down, or fail in a way that may mean they missed
// it, get a hint.
//
// newer, when set, is a version newer than rec that an acknowledging replica
// already held, so that rec was not applied there.
func (c *Coordinator) write(ctx context.Context, key []byte, rec *record.Record, reps []Replica, tally writeTally) (prev record.Record, prevFound bool, newer *record.Record, err error) {
	// One replica and it is this node (a single node, RF 1): no fan-out.
	if len(reps) == 1 && reps[0].Up && c.isLocal(&reps[0]) {
		res, err := c.local.Apply(key, *rec)
		if err != nil {
			return prev, false, nil, err
		}
		if superseding(res.Applied, res.PrevFound, &res.Prev, rec) != nil {
			held := res.Prev
			newer = &held
		}
		return res.Prev, res.PrevFound, newer, nil
	}
	return c.fanOut(ctx, key, rec, reps, tally)
}

// fanOut is write to several replicas. It is apart from write so that the
// single-node path above pays nothing for a fan-out it never makes.
func (c *Coordinator) fanOut(ctx context.Context, key []byte, in *record.Record, reps []Replica, tally writeTally) (prev record.Record, prevFound bool, newer *record.Record, err error) {
	st := &fanOutState{c: c, results: make(chan applyResult, len(reps)), key: key, rec: *in}
	var localRep *Replica
	for i := range reps {
		r := &reps[i]
		switch {
		case !r.Up:
			c.hint(r.ID, st.key, &st.rec)
		case c.isLocal(r):
			localRep = r
		default:
			if st.payload == nil {
				st.payload = encodeApply(st.key, &st.rec)
				st.bg, st.flight.cancel = c.detached(ctx)
				// Hints for remotes that fail outlive this call, and the
				// caller owns key and value (a connection's read buffer):
				// one copy of both.
				slab := make([]byte, 0, len(st.key)+len(st.rec.Value))
				st.key, slab = carve(slab, st.key)
				if st.rec.Value != nil {
					st.rec.Value, _ = carve(slab, st.rec.Value)
				}
				// Held until every remote request has started, so that an
				// early finisher cannot end the context of a later one.
				st.flight.add(1)
			}
			st.flight.add(1)
			callers.run(func() { st.remote(r) })
		}
	}
	var timeout <-chan struct{}
	if st.payload != nil {
		st.flight.done()
		// bg carries RequestTimeout: the wait for acks ends with it at the
		// latest, without a timer of its own.
		timeout = st.bg.Done()
	}
	// The local replica goes last so that the remote requests are already on
	// the wire while Pebble commits.
	if localRep != nil {
		res, err := c.local.Apply(st.key, st.rec)
		st.results <- applyResult{rep: localRep, applied: res.Applied, prev: res.Prev, prevFound: res.PrevFound, err: err}
	}
	for !tally.done() {
		select {
		case res := <-st.results:
			if res.err != nil {
				tally.fail(res.err)
				continue
			}
			acked := c.tallyApplied(&tally, res.applied, res.prevFound, &res.prev, &st.rec)
			if acked && res.prevFound && (!prevFound || record.Newer(&res.prev, &prev)) {
				prev, prevFound = res.prev, true
			}
		case <-ctx.Done():
			tally.abandon(ctx.Err())
		case <-timeout:
			if errors.Is(st.bg.Err(), context.Canceled) {
				// Every remote request finished, and its result is
				// already buffered in results.
				timeout = nil
				continue
			}
			tally.abandon(context.DeadlineExceeded)
		}
	}
	if err := tally.err(); err != nil {
		return prev, false, nil, err
	}
	return prev, prevFound, tally.newer, nil
}

// fanOutState is what fanOut shares with its remote requests, which may
// outlive it once it has its acks. One allocation: the goroutines' closure
// over fanOut's locals had moved each of them to the heap on its own, a
// dozen allocations per write.
type fanOutState struct {
	c       *Coordinator
	results chan applyResult
	key     []byte
	rec     record.Record
	payload []byte
	bg      context.Context
	// flight counts the requests still running, plus one while fanOut is
	// still starting them, and ends bg after the last.
	flight inFlight
}

func (st *fanOutState) remote(r *Replica) {
	st.results <- st.c.remoteApply(st.bg, r, st.key, &st.rec, st.payload)
	st.flight.done()
}

// inFlight ends the context that a write's remote requests share once the
// last of them is done. They outlive the write when it returns at its acks,
// and no goroutine waits for them (one more per write was a measurable share
// of a cluster SET's CPU).
type inFlight struct {
	n      atomic.Int32
	cancel context.CancelFunc
}

func (f *inFlight) add(n int32) { f.n.Add(n) }

func (f *inFlight) done() {
	if f.n.Add(-1) == 0 {
		f.cancel()
	}
}

// superseding returns prev, the record a replica held when it answered a
// write of rec, if it is what kept rec from being applied: newer than rec.
// It is nil when rec was applied, or lost only to itself (a replay).
//
// A counter state that the replica did not apply because its own state of
// the counter already held it (a read repair got there first) is in, not
// superseded.
func superseding(applied, prevFound bool, prev, rec *record.Record) *record.Record {
	if applied || !prevFound || !record.Newer(prev, rec) || record.Mergeable(prev, rec) {
		return nil
	}
	return prev
}

func (c *Coordinator) remoteApply(ctx context.Context, r *Replica, key []byte, rec *record.Record, payload []byte) applyResult {
	resp, err := c.net.Call(ctx, r.Addr, MethodApply, payload)
	if err != nil {
		c.metrics.replicaErrors.WithLabelValues("apply").Inc()
		// A refusal (e.g. clock skew) would be refused again on replay.
		if !transport.IsRemote(err) {
			c.hint(r.ID, key, rec)
		}
		return applyResult{rep: r, err: err}
	}
	applied, prev, prevFound, err := decodeApplyResp(resp)
	return applyResult{rep: r, applied: applied, prev: prev, prevFound: prevFound, err: err}
}

func (c *Coordinator) hint(target string, key []byte, rec *record.Record) {
	if c.hints != nil {
		c.hints.Hint(target, key, rec)
	}
}

type readResult struct {
	rep   *Replica
	rec   record.Record
	found bool
	err   error
	// digest: rec's value is the replica's valueDigest of it (a
	// MethodReadBatch digest answer), not the value.
	digest bool
}

// Get returns the newest record the level's number of replicas hold for key,
// tombstones and expired records included (callers check Live). At QUORUM and
// ALL it repairs the answering replicas that were stale before it returns, so
// a later read at those levels cannot go back in time.
func (c *Coordinator) Get(ctx context.Context, key []byte, lvl Level) (rec record.Record, found bool, err error) {
	hot := false
	tok := ring.Token(key)
	if c.cfg.HotKeys != nil {
		hot = c.cfg.HotKeys.ObserveHashed(tok, key)
	}
	return c.get(ctx, tok, key, lvl, hot)
}

// get is Get for a key whose token is tok and whose request the hot-key
// tracker has already counted.
func (c *Coordinator) get(ctx context.Context, tok uint64, key []byte, lvl Level, hot bool) (rec record.Record, found bool, err error) {
	start := clock.Mono()
	defer func() { c.metrics.observe("read", lvl, start, err) }()
	if hot && lvl != All && c.cfg.HotCache != nil {
		if rec, found, hit := c.cfg.HotCache.Get(key); hit {
			return rec, found, nil
		}
		tk := c.cfg.HotCache.Ticket(key)
		defer func() {
			if err == nil {
				c.cfg.HotCache.Put(key, tk, rec, found)
			}
		}()
	}
	reps := c.topo.ReplicasAt(tok)
	need := lvl.Required(len(reps))
	live := c.liveOrder(reps)
	if len(live) < need {
		return rec, false, fmt.Errorf("%w: %s read needs %d of %d replicas, %d up", ErrUnavailable, lvl, need, len(reps), len(live))
	}
	if hot && need == 1 && len(live) > 1 {
		// Spread a hot key's ONE reads over all its live replicas.
		i := rand.IntN(len(live))
		live[0], live[i] = live[i], live[0]
	}
	// Fast path: one answer wanted and this node holds a replica.
	if need == 1 && c.isLocal(live[0]) {
		c.metrics.replicaReads.Inc()
		rec, found, err = c.local.GetAt(tok, key)
		if err == nil && found && c.future(&rec) {
			// Our replica holds a version from the future (stamped while
			// this node's clock was ahead): not an answer; ask the peers,
			// and with none up, it holds nothing usable (as in resolve).
			if len(live) == 1 {
				return record.Record{}, false, nil
			}
			err = errFuture
		}
		if err == nil {
			if len(live) > 1 {
				c.maybeRepair(ctx, key, reps)
			}
			return rec, found, nil
		}
		live = live[1:] // the local read failed; ask a peer
	}

	wait := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
	}
	results := make(chan readResult, len(live))
	next := 0
	launch := func() bool {
		if next >= len(live) {
			return false
		}
		r := live[next]
		next++
		callers.run(func() { results <- c.read(wait, r, tok, key) })
		return true
	}
	// The local replica, if asked, is read inline after the remote requests
	// are on their way: no goroutine, no network hop.
	var localRep *Replica
	for range need {
		if next < len(live) && c.isLocal(live[next]) {
			localRep = live[next]
			next++
			continue
		}
		launch()
	}
	if localRep != nil {
		results <- c.read(wait, localRep, tok, key)
	}
	spec := specTimers.Get().(*time.Timer)
	spec.Reset(c.cfg.SpeculativeDelay)
	defer func() {
		spec.Stop()
		specTimers.Put(spec)
	}()
	answers := make([]readResult, 0, need)
	inflight := need
	var lastErr error
	for len(answers) < need {
		if inflight == 0 {
			return rec, false, fmt.Errorf("%w: %s read got %d of %d answers: %v", ErrTimeout, lvl, len(answers), need, lastErr)
		}
		select {
		case res := <-results:
			inflight--
			if res.err != nil {
				lastErr = res.err
				if launch() {
					inflight++
				}
				continue
			}
			answers = append(answers, res)
		case <-spec.C:
			if c.cfg.SpeculativeDelay > 0 && launch() {
				inflight++
				c.metrics.speculative.Inc()
			}
		case <-wait.Done():
			return rec, false, fmt.Errorf("%w: %s read got %d of %d answers: %v", ErrTimeout, lvl, len(answers), need, wait.Err())
		}
	}
	rec, found, stale := c.resolve(answers)
	if !found {
		return rec, false, nil
	}
	if len(stale) > 0 {
		c.metrics.readRepairs.Add(float64(len(stale)))
		// A copy for the repair, so that rec, returned on every read,
		// stays off the heap.
		newest := rec
		if lvl == One {
			go c.repair(context.WithoutCancel(ctx), bytes.Clone(key), &newest, stale)
		} else {
			c.repair(ctx, key, &newest, stale)
		}
	}
	return rec, true, nil
}

// specTimers recycles the timers of speculative reads, two allocations per
// read otherwise. Since Go 1.23 a timer that is stopped or reset delivers no
// tick from before, so one from the pool is as good as a new one.
var specTimers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// liveOrder returns the up replicas, the local one first: it answers without a
// network hop.
func (c *Coordinator) liveOrder(reps []Replica) []*Replica {
	return c.appendLive(make([]*Replica, 0, len(reps)), reps)
}

// appendLive appends liveOrder(reps) to dst.
func (c *Coordinator) appendLive(dst []*Replica, reps []Replica) []*Replica {
	from := len(dst)
	live := dst
	for i := range reps {
		if reps[i].Up {
			live = append(live, &reps[i])
			if c.isLocal(&reps[i]) {
				// Move it to the front, keeping the others in ring order.
				copy(live[from+1:], live[from:len(live)-1])
				live[from] = &reps[i]
			}
		}
	}
	return live
}

// read asks replica r for the key whose token is tok.
func (c *Coordinator) read(ctx context.Context, r *Replica, tok uint64, key []byte) readResult {
	if c.isLocal(r) {
		c.metrics.replicaReads.Inc()
		rec, found, err := c.local.GetAt(tok, key)
		return readResult{rep: r, rec: rec, found: found, err: err}
	}
	resp, err := c.net.Call(ctx, r.Addr, MethodGet, key)
	if err != nil {
		c.metrics.replicaErrors.WithLabelValues("get").Inc()
		return readResult{rep: r, err: err}
	}
	// resp is ours (the Transport contract), so rec may alias it.
	rec, found, err := decodeGetResp(resp)
	return readResult{rep: r, rec: rec, found: found, err: err}
}

// repair writes rec to the stale replicas and waits for them, within the
// request timeout. Failures are left to hints and anti-entropy.
func (c *Coordinator) repair(ctx context.Context, key []byte, rec *record.Record, stale []*Replica) {
	bg, cancel := c.detached(ctx)
	defer cancel()
	done := make(chan struct{}, len(stale))
	var payload []byte
	for _, r := range stale {
		if c.isLocal(r) {
			// A refusal by the clock guard is counted and logged, at a
			// bounded rate, by the clock check; resolve keeps such a
			// version from getting here at all.
			if _, err := c.local.Apply(key, *rec); err != nil && !errors.Is(err, clock.ErrClockSkew) {
				c.log.Warn("local read repair failed", "err", err)
			}
			done <- struct{}{}
			continue
		}
		if payload == nil {
			payload = encodeApply(key, rec)
		}
		go func() {
			if _, err := c.net.Call(bg, r.Addr, MethodApply, payload); err != nil {
				c.metrics.replicaErrors.WithLabelValues("repair").Inc()
			}
			done <- struct{}{}
		}()
	}
	for range stale {
		<-done
	}
}

// maybeRepair starts a background repair of key across reps for the share
// ReadRepairChance of the ONE reads one replica answered.
func (c *Coordinator) maybeRepair(ctx context.Context, key []byte, reps []Replica) {
	if c.cfg.ReadRepairChance > 0 && rand.Float64() < c.cfg.ReadRepairChance {
		c.backgroundRepair(ctx, key, reps)
	}
}

// backgroundRepair compares every live replica of key and repairs the stale ones,
// behind the client's reply.
func (c *Coordinator) backgroundRepair(ctx context.Context, key []byte, reps []Replica) {
	key = append([]byte(nil), key...)
	go func() {
		bg, cancel := c.detached(ctx)
		defer cancel()
		live := c.liveOrder(reps)
		answers := make([]readResult, 0, len(live))
		tok := ring.Token(key)
		for _, r := range live {
			if res := c.read(bg, r, tok, key); res.err == nil {
				answers = append(answers, res)
			}
		}
		rec, found, stale := c.resolve(answers)
		if found && len(stale) > 0 {
			c.metrics.readRepairs.Add(float64(len(stale)))
			c.repair(bg, key, &rec, stale)
		}
	}()
}

// GetLocal reads only this node's replica.
func (c *Coordinator) GetLocal(key []byte) (record.Record, bool, error) { return c.local.Get(key) }

func countUp(reps []Replica) int {
	n := 0
	for i := range reps {
		if reps[i].Up {
			n++
		}
	}
	return n
}

// errHeldFuture is a replica's answer to a write that it did not apply,
// because it holds a version of the key from the future (stamped by a node
// whose clock ran ahead), which no read returns.
// It is a refusal: the write is not there.
var errHeldFuture error = refusal{fmt.Errorf("%w: the replica holds a version of the key from the future", clock.ErrClockSkew)}

// errFuture marks a local read whose record the clock guard refuses.
var errFuture = errors.New("replication: local replica holds a version from the future")

// future reports whether the clock guard refuses rec's version.
func (c *Coordinator) future(rec *record.Record) bool {
	return c.cfg.Guard != nil && c.cfg.Guard.Future(rec.Version.TS)
}

// resolve is resolve with the clock guard: a version the guard refuses is
// not an answer. This node could not store it (the guard turns it away on
// every apply path), so returning it would answer with what no read repair
// can make durable here, and, under last-write-wins, hide every write made
// since until real time catches up with it: the bug of a node whose clock
// ran an hour ahead. A replica holding such a version answers as if it held
// nothing usable, and is not repaired: LWW would keep its version anyway.
func (c *Coordinator) resolve(answers []readResult) (newest record.Record, found bool, stale []*Replica) {
	return resolve(answers, c.cfg.Guard)
}

// resolve picks the newest record among answers by last-write-wins and lists
// the answering replicas that hold something older, or nothing. Answers
// whose version guard (when not nil) calls future are left out, neither
// picked nor repaired.
func resolve(answers []readResult, guard *clock.Guard) (newest record.Record, found bool, stale []*Replica) {
	skip := func(a *readResult) bool { return guard != nil && a.found && guard.Future(a.rec.Version.TS) }
	for i := range answers {
		if answers[i].found && !skip(&answers[i]) && (!found || record.Newer(&answers[i].rec, &newest)) {
			newest, found = answers[i].rec, true
		}
	}
	if !found {
		return newest, false, nil
	}
	if newest.Counter != nil {
		// A counter's answer is the merge of every replica's state of it:
		// each may hold increments the others lack.
		for i := range answers {
			if answers[i].found && !skip(&answers[i]) && record.Mergeable(&answers[i].rec, &newest) {
				newest = record.Merge(&answers[i].rec, &newest)
			}
		}
	}
	for i := range answers {
		if skip(&answers[i]) {
			continue
		}
		// Older, or for a counter missing increments of the merge.
		if !answers[i].found || record.Compare(&answers[i].rec, &newest) != 0 {
			stale = append(stale, answers[i].rep)
		}
	}
	return newest, true, stale
}
