package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/config"
	"github.com/ringkv/ringkv/internal/httpapi"
	"github.com/ringkv/ringkv/internal/membership"
	"github.com/ringkv/ringkv/internal/rebalance"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/topology"
)

// nodeStateKey holds, in the metadata keyspace, the lifecycle state this node
// last took, so a restart resumes a join or a decommission instead of
// starting over as a normal node that lacks data.
var nodeStateKey = []byte("node-state")

// ringSettle is how long a node keeps writing to the previous owners after the
// ring switched. Every node switches when gossip brings it the change, so
// this must outlast the spread of one gossip update plus a request timeout
// for writes already in flight.
func ringSettle(cfg config.Config) time.Duration {
	if gossipProfile(cfg.GossipAddr) == membership.ProfileLocal {
		return 3*time.Second + cfg.RequestTimeout
	}
	return 10*time.Second + cfg.RequestTimeout
}

// initialState decides the state the node announces when it starts gossiping.
// A node that took a state before resumes it. A node with an empty store
// started with --initial-cluster forms a new cluster: it is normal, and waits
// for the other named members (see formation.go). A node with an empty store
// that is told to --join an existing cluster is new: it joins, streaming its
// ranges. Anything else (the first node of a new cluster, a node that held
// data before this feature kept its state) is normal. A node started
// alongside a fresh cluster joins too, and its streams are empty.
func (s *Server) initialState() (membership.State, error) {
	meta := s.store.Keyspace(rebalance.PrefixMeta)
	v, ok, err := meta.Get(nodeStateKey)
	if err != nil {
		return 0, err
	}
	if ok && len(v) == 1 {
		st := membership.State(v[0])
		if st == membership.Removed {
			return 0, errors.New("server: this node was decommissioned or removed; wipe its data directory to add it again")
		}
		return st, s.resumeFormation()
	}
	st := membership.Normal
	if s.store.ApproxCount() == 0 {
		forming, err := s.startFormation()
		if err != nil {
			return 0, err
		}
		if !forming && len(s.cfg.Join) > 0 {
			st = membership.Joining
		}
	}
	return st, meta.Set(nodeStateKey, []byte{byte(st)})
}

// rebalancer drives this node's part in topology changes: pulling the ranges
// it gains, and moving nodes on (joining → normal, leaving → removed) once
// every range is where it must be.
type rebalancer struct {
	s      *Server
	puller *rebalance.Puller
	stop   chan struct{}
	done   chan struct{}
	settle time.Duration

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
	// syncing is set while a membership.Sync runs. Shutdown does not wait
	// for it: a member that does not answer holds it for a TCP timeout.
	syncing   atomic.Bool
	viewSyncs atomic.Uint64
}

// Gossip spreads a member's change to every node within a second or two. A
// peer whose view of the members still differs from ours after viewSyncAfter
// has missed an update, and this node exchanges full state with every member
// (membership.Sync), at most once per viewSyncEvery. Without it, the node
// that missed it waits for the next periodic push/pull to reach the right
// peer, and a change waits for the views to agree.
const (
	viewSyncAfter = 2 * time.Second
	viewSyncEvery = 5 * time.Second
)

func (s *Server) startRebalance() error {
	r := &rebalancer{s: s, stop: make(chan struct{}), done: make(chan struct{}), settle: ringSettle(s.cfg)}
	r.puller = rebalance.NewPuller(rebalance.Config{
		Self: s.cfg.NodeID, PageMethod: rebalance.MethodPage,
		Store: s.store, Apply: s.coord.ApplyLocal, Caller: s.peers, Peers: s.topo,
		Rate: s.cfg.StreamRate, Logger: s.log, Registerer: s.reg,
	})
	s.rebal = r
	if s.reg != nil {
		s.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: "ringkv", Subsystem: "membership", Name: "view_syncs_total",
				Help: "Full state exchanges with every member, started because a peer's view of the member states kept differing.",
			}, func() float64 { return float64(r.viewSyncs.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: "ringkv", Subsystem: "membership", Name: "state_reannounced_total",
				Help: "Times this node gossiped its own state again because memberlist had dropped the update.",
			}, func() float64 { return float64(s.member.Reannounced()) }),
		)
	}
	go r.run()
	return nil
}

func (s *Server) stopRebalance(ctx context.Context) error {
	r := s.rebal
	if r == nil {
		return nil
	}
	close(r.stop)
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) serveRebalance(ctx context.Context, from string, method uint8, payload []byte) ([]byte, error) {
	switch method {
	case rebalance.MethodPage:
		return rebalance.ServePage(s.store, payload)
	case rebalance.MethodStatus:
		v := s.topo.Current()
		return rebalance.StatusReply{Fingerprint: v.Fingerprint, Remaining: int(s.rebal.remaining.Load())}.Encode(), nil
	case rebalance.MethodMark:
		id, st, err := rebalance.DecodeMark(payload)
		if err != nil {
			return nil, err
		}
		if err := s.checkWireMark(from, id, membership.State(st)); err != nil {
			return nil, err
		}
		if _, err := s.member.MarkState(id, membership.State(st)); err != nil {
			return nil, err
		}
		s.topo.Update(s.member.Members)
		return nil, nil
	}
	return nil, fmt.Errorf("server: unknown rebalance method %d", method)
}

// run checks every tick whether this node has ranges to pull or a change to
// complete. Ticks, not membership events, drive it: the checks ask peers,
// and a change waits for them to agree anyway.
func (r *rebalancer) run() {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-r.stop
		cancel()
	}()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		if err := r.step(ctx); err != nil && ctx.Err() == nil {
			r.s.log.Warn("topology change step failed; retrying", "err", err)
		}
	}
}

func (r *rebalancer) step(ctx context.Context) error {
	s := r.s
	if s.member == nil || !s.ready.Load() {
		return nil
	}
	// Completes a formation as soon as every member is up, not at the
	// next client request or readiness probe.
	_ = s.formationReady()
	v := s.topo.Current()
	self := s.cfg.NodeID
	if v.Future == nil {
		r.remaining.Store(0)
		r.mu.Lock()
		r.mu.left = nil
		r.mu.Unlock()
		if p := r.puller.Progress(); p.Total > 0 {
			return r.puller.Reset()
		}
		return nil
	}
	// A cluster with no owner yet (every node joining, as when a whole
	// cluster starts with --join pointing at each other) has no data: its
	// smallest id bootstraps it.
	if me, ok := v.Members[self]; ok && me.State == membership.Joining && v.Ring.Len() == 0 {
		if len(v.Members) > 1 && smallestID(v) == self {
			return r.setOwnState(ctx, membership.Normal)
		}
		return nil
	}
	// A node joining a cluster that holds no data (nodes of a new cluster
	// started one after the other with --join, as `ringkv demo` does) has
	// nothing to stream: it goes normal at once instead of leaving the
	// cluster at a smaller replica set for a settle period.
	if me, ok := v.Members[self]; ok && me.State == membership.Joining && r.puller.Progress().Total == 0 {
		if empty, err := r.clusterEmpty(ctx, v); err == nil && empty {
			s.log.Info("joining an empty cluster: nothing to stream")
			return r.setOwnState(ctx, membership.Normal)
		}
	}
	tasks := rebalance.Plan(v.Ring, v.Future, self)
	left, err := r.puller.Remaining(tasks)
	if err != nil {
		return err
	}
	r.remaining.Store(int64(left))
	agreed, replies := r.agree(ctx, v)
	if !agreed {
		return nil
	}
	if left > 0 {
		r.mu.Lock()
		wait := time.Until(r.mu.confirmedAt.Add(r.settle))
		r.mu.Unlock()
		if wait > 0 {
			// Writes routed before the others heard of the change may
			// still be landing on the old owners only.
			return nil
		}
		if err := r.puller.Pull(ctx, tasks); err != nil {
			return err
		}
		r.remaining.Store(0)
		return nil
	}
	return r.complete(ctx, v, replies)
}

// agree asks every up member for its view and returns whether all share ours.
// It remembers when agreement on this view was first seen.
func (r *rebalancer) agree(ctx context.Context, v *topology.View) (bool, map[string]rebalance.StatusReply) {
	replies := map[string]rebalance.StatusReply{}
	for id, rep := range v.ByNode {
		if _, member := v.Members[id]; !member || !rep.Up || id == r.s.cfg.NodeID {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := r.s.peers.Call(cctx, rep.Addr, rebalance.MethodStatus, nil)
		cancel()
		if err != nil {
			return false, nil
		}
		st, err := rebalance.DecodeStatus(resp)
		if err != nil {
			return false, nil
		}
		if st.Fingerprint != v.Fingerprint {
			r.viewsDiffer(v.Fingerprint)
			return false, nil
		}
		replies[id] = st
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.differSince = time.Time{}
	if r.mu.confirmedFP != v.Fingerprint || r.mu.confirmedAt.IsZero() {
		r.mu.confirmedFP, r.mu.confirmedAt = v.Fingerprint, time.Now()
	}
	left := map[string]int{}
	for id, st := range replies {
		left[id] = st.Remaining
	}
	left[r.s.cfg.NodeID] = int(r.remaining.Load())
	r.mu.left = left
	return true, replies
}

// viewsDiffer notes that a peer's view of the members differs from ours
// (fingerprint fp), and starts a full state exchange once the difference has
// lasted viewSyncAfter.
func (r *rebalancer) viewsDiffer(fp uint64) {
	now := time.Now()
	r.mu.Lock()
	if r.mu.differFP != fp || r.mu.differSince.IsZero() {
		r.mu.differFP, r.mu.differSince = fp, now
	}
	due := now.Sub(r.mu.differSince) >= viewSyncAfter && now.Sub(r.mu.lastSync) >= viewSyncEvery
	if due {
		r.mu.lastSync = now
	}
	r.mu.Unlock()
	if !due || !r.syncing.CompareAndSwap(false, true) {
		return
	}
	r.viewSyncs.Add(1)
	go func() {
		defer r.syncing.Store(false)
		n := r.s.member.Sync()
		r.s.log.Info("a peer's view of the members differs from ours; exchanged full state", "members", n)
	}()
}

// complete moves the change on once every node that gains ranges has pulled
// them: this node, when it is the one joining or leaving; the smallest up
// normal node for nodes an operator marked leaving.
func (r *rebalancer) complete(ctx context.Context, v *topology.View, replies map[string]rebalance.StatusReply) error {
	self := r.s.cfg.NodeID
	for id, m := range v.Members {
		if len(rebalance.Plan(v.Ring, v.Future, id)) == 0 {
			continue
		}
		if id == self {
			continue // r.remaining is 0 here
		}
		st, ok := replies[id]
		if !ok || st.Remaining > 0 || !m.Up {
			return nil // a gaining node is down or not done
		}
	}
	me := v.Members[self]
	switch me.State {
	case membership.Joining:
		return r.setOwnState(ctx, membership.Normal)
	case membership.Leaving:
		if _, marked := r.s.member.Marks()[self]; !marked {
			return r.setOwnState(ctx, membership.Removed)
		}
	}
	if me.State != membership.Normal || smallestNormalUp(v) != self {
		return nil
	}
	for id, st := range r.s.member.Marks() {
		if m, ok := v.Members[id]; ok && st == membership.Leaving && m.State == membership.Leaving {
			if err := r.s.markEverywhere(ctx, id, membership.Removed); err != nil {
				return err
			}
			r.s.log.Info("removed node: its ranges are re-replicated", "member", id)
		}
	}
	return nil
}

func (r *rebalancer) setOwnState(ctx context.Context, st membership.State) error {
	if err := r.s.store.Keyspace(rebalance.PrefixMeta).Set(nodeStateKey, []byte{byte(st)}); err != nil {
		return err
	}
	r.s.log.Info("node state changed", "state", st)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := r.s.member.SetState(cctx, st)
	r.s.topo.Update(r.s.member.Members)
	return err
}

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

// markEverywhere marks node id with st here and on every up member, so a
// dead node's state changes at once everywhere instead of waiting for the
// next push/pull round of gossip.
func (s *Server) markEverywhere(ctx context.Context, id string, st membership.State) error {
	if _, err := s.member.MarkState(id, st); err != nil {
		return err
	}
	s.topo.Update(s.member.Members)
	v := s.topo.Current()
	var errs []error
	for mid, rep := range v.ByNode {
		if _, ok := v.Members[mid]; !ok || !rep.Up || mid == s.cfg.NodeID {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := s.peers.Call(cctx, rep.Addr, rebalance.MethodMark, rebalance.EncodeMark(id, uint8(st)))
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("marking %s %s on %s: %w", id, st, mid, err))
		}
	}
	// Gossip's push/pull reaches any node missed here.
	return errors.Join(errs...)
}

// streamStatus returns, for the status page, the ranges each node still had
// to pull at the last check, and this node's own progress.
func (r *rebalancer) streamStatus() (left map[string]int, own rebalance.Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.left, r.puller.Progress()
}

func (s *Server) mountRebalance(api *httpapi.API) {
	api.Handle("POST /v1/admin/decommission", http.HandlerFunc(s.handleDecommission))
	api.Handle("POST /v1/admin/removenode", http.HandlerFunc(s.handleRemoveNode))
}

// adminError answers an admin request with the JSON error body the CLI reads.
func adminError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"error\":%q,\"code\":%q}\n", msg, code)
}

func adminOK(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, "{\"status\":%q}\n", msg)
}

// handleDecommission starts streaming this node's ranges away. The node ends
// removed: out of the ring, still running until the operator stops it.
func (s *Server) handleDecommission(w http.ResponseWriter, r *http.Request) {
	v := s.topo.Current()
	me := v.Members[s.cfg.NodeID]
	switch {
	case me.State == membership.Leaving:
		adminOK(w, "already leaving")
		return
	case me.State != membership.Normal:
		adminError(w, http.StatusConflict, "BADSTATE", fmt.Sprintf("node is %s, only a normal node can be decommissioned", me.State))
		return
	case v.Future != nil:
		adminError(w, http.StatusConflict, "BUSY", "another topology change is in progress; retry when it completes")
		return
	case v.Ring.Len() < 2:
		adminError(w, http.StatusConflict, "LASTNODE", "the last node of a cluster cannot be decommissioned")
		return
	}
	if err := s.rebal.setOwnState(r.Context(), membership.Leaving); err != nil {
		adminError(w, http.StatusInternalServerError, "ERR", err.Error())
		return
	}
	adminOK(w, "leaving")
}

// handleRemoveNode takes a dead node out: it is marked leaving everywhere,
// its ranges' new owners pull them from the surviving replicas, then the
// smallest normal node marks it removed.
func (s *Server) handleRemoveNode(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	v := s.topo.Current()
	m, ok := v.Members[id]
	switch {
	case id == "":
		adminError(w, http.StatusBadRequest, "BADREQUEST", "missing ?id=")
		return
	case !ok:
		adminError(w, http.StatusNotFound, "NOTFOUND", fmt.Sprintf("no member %q (already removed?)", id))
		return
	case id == s.cfg.NodeID || m.Up:
		adminError(w, http.StatusConflict, "NODEUP", fmt.Sprintf("%s is up: decommission a live node instead", id))
		return
	case m.State == membership.Leaving:
		adminOK(w, "already being removed")
		return
	case v.Future != nil:
		adminError(w, http.StatusConflict, "BUSY", "another topology change is in progress; retry when it completes")
		return
	}
	if err := s.markEverywhere(r.Context(), id, membership.Leaving); err != nil {
		// The mark is set here and spreads by gossip: report, but go on.
		s.log.Warn("removenode: some members not told directly", "err", err)
	}
	adminOK(w, "removing")
}

var _ rebalance.Peers = (*topology.Topology)(nil)

// addStreamStatus fills the streaming fields of the status page.
func (s *Server) addStreamStatus(nodes []apitypes.NodeStatus) {
	if s.rebal == nil {
		return
	}
	left, own := s.rebal.streamStatus()
	for i := range nodes {
		n := &nodes[i]
		n.StreamRangesLeft = left[n.ID]
		if n.ID == s.cfg.NodeID {
			n.StreamedBytes = own.Bytes
			if own.Total > 0 {
				n.StreamProgress = float64(own.Done) / float64(own.Total)
			}
		}
	}
}

// clusterEmpty reports whether this node and every member that owns ranges
// hold no records at all. Any member that does not answer makes it false.
func (r *rebalancer) clusterEmpty(ctx context.Context, v *topology.View) (bool, error) {
	if r.s.store.ApproxCount() != 0 {
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
		cctx, cancel := context.WithTimeout(ctx, r.s.cfg.RequestTimeout)
		resp, err := r.s.peers.Call(cctx, rep.Addr, replication.MethodCount, nil)
		cancel()
		if err != nil {
			return false, err
		}
		if len(resp) != 8 || binary.BigEndian.Uint64(resp) != 0 {
			return false, nil
		}
	}
	return true, nil
}
