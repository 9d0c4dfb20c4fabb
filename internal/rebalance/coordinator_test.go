package rebalance

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/membership"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/storage"
	"github.com/ringkv/ringkv/internal/testutil"
	"github.com/ringkv/ringkv/internal/topology"
)

// The coordinator's tests run one real coordinator, with a real topology and
// real stores, against peers that are fakes at its seams: the membership it
// reads and changes, and the peer calls it makes.

const testSettle = 10 * time.Second

// fakeMembers is the membership: each node's own state, the marks the
// cluster set, and who is up. Like the real one, a mark overrides an earlier
// own state.
type fakeMembers struct {
	mu     sync.Mutex
	self   string
	states map[string]membership.State
	down   map[string]bool
	marks  map[string]membership.State
	syncs  int
}

func (f *fakeMembers) Members() []membership.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []membership.Member
	for id, st := range f.states {
		if m, ok := f.marks[id]; ok && m > st {
			st = m
		}
		out = append(out, membership.Member{Meta: membership.Meta{ID: id, PeerAddr: id, State: st}, Up: !f.down[id]})
	}
	return out
}

func (f *fakeMembers) SetState(_ context.Context, st membership.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states[f.self] = st
	return nil
}

func (f *fakeMembers) MarkState(id string, st membership.State) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cur, ok := f.marks[id]; ok && cur >= st {
		return false, nil
	}
	f.marks[id] = st
	return true, nil
}

func (f *fakeMembers) Marks() map[string]membership.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.marks)
}

func (f *fakeMembers) Sync() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	return len(f.states) - 1
}

func (f *fakeMembers) state(id string) membership.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.states[id]
}

func (f *fakeMembers) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// fakePeers answers the coordinator's calls as the other nodes would: pages
// and record counts from their stores, a status with this node's view's
// fingerprint unless told they differ, and marks recorded.
type fakePeers struct {
	mu        sync.Mutex
	stores    map[string]*storage.Store
	view      func() *topology.View
	differ    map[string]bool
	remaining map[string]int
	calls     map[uint8]int
	marked    []string // "node id state" as each peer was told
}

func (p *fakePeers) Call(_ context.Context, addr string, method uint8, payload []byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[method]++
	switch method {
	case MethodPage:
		return ServePage(p.stores[addr], payload)
	case MethodStatus:
		fp := p.view().Fingerprint
		if p.differ[addr] {
			fp++
		}
		return StatusReply{Fingerprint: fp, Remaining: p.remaining[addr]}.Encode(), nil
	case MethodMark:
		id, st, err := DecodeMark(payload)
		if err != nil {
			return nil, err
		}
		p.marked = append(p.marked, fmt.Sprintf("%s %s %s", addr, id, membership.State(st)))
		return nil, nil
	case replication.MethodCount:
		// As replication answers: the record count, then the values with
		// an expiry.
		b := binary.BigEndian.AppendUint64(nil, uint64(p.stores[addr].ApproxCount()))
		return binary.BigEndian.AppendUint64(b, uint64(p.stores[addr].Expiring())), nil
	}
	return nil, fmt.Errorf("fake peer: method %d", method)
}

func (p *fakePeers) count(method uint8) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[method]
}

func (p *fakePeers) set(fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn()
}

type env struct {
	t       *testing.T
	self    string
	clk     *clock.Manual
	members *fakeMembers
	peers   *fakePeers
	topo    *topology.Topology
	stores  map[string]*storage.Store
	logs    *testutil.Buffer
	reg     *prometheus.Registry
	c       *Coordinator
}

// newEnv sets up node self in a cluster of the nodes of states, each with its
// own store, and the same records in every store but self's.
func newEnv(t *testing.T, self string, states cluster, records int) *env {
	t.Helper()
	e := &env{
		t: t, self: self, clk: clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		members: &fakeMembers{self: self, states: states, down: map[string]bool{}, marks: map[string]membership.State{}},
		stores:  map[string]*storage.Store{},
	}
	for id := range states {
		e.stores[id] = openStore(t)
		if id != self {
			fill(t, e.stores[id], records)
		}
	}
	e.topo = topology.New(self, 3, 8, testSettle, e.clk.Now)
	e.peers = &fakePeers{stores: e.stores, view: e.topo.Current, differ: map[string]bool{}, remaining: map[string]int{}, calls: map[uint8]int{}}
	e.restart()
	return e
}

// restart builds a fresh coordinator over the same store, as a restarted
// node does.
func (e *env) restart() {
	e.logs, e.reg = &testutil.Buffer{}, prometheus.NewRegistry()
	st := e.stores[e.self]
	e.c = NewCoordinator(CoordinatorConfig{
		Self: e.self, Store: st, Caller: e.peers, Topology: e.topo, Members: e.members,
		Apply:  func(k []byte, r record.Record) error { _, err := st.Apply(k, r); return err },
		Settle: testSettle, Clock: e.clk,
		CheckMark: func(from, id string, _ membership.State) error {
			if id == e.self {
				return errors.New("refusing mark of this node")
			}
			return nil
		},
		Logger: slog.New(slog.NewTextHandler(e.logs, nil)), Registerer: e.reg,
	})
	e.topo.Update(e.members.Members)
}

func (e *env) step() {
	e.t.Helper()
	e.topo.Update(e.members.Members) // as the membership watcher does
	if err := e.c.step(e.t.Context()); err != nil {
		e.t.Fatalf("step: %v", err)
	}
}

func (e *env) stored() membership.State {
	e.t.Helper()
	v, ok, err := e.stores[e.self].Keyspace(PrefixMeta).Get(NodeStateKey)
	if err != nil || !ok || len(v) != 1 {
		e.t.Fatalf("persisted state: %v, %v, %v", v, ok, err)
	}
	return membership.State(v[0])
}

func (e *env) viewSyncs() float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "ringkv_membership_view_syncs_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	e.t.Fatal("ringkv_membership_view_syncs_total not registered")
	return 0
}

func fill(t *testing.T, s *storage.Store, n int) {
	t.Helper()
	for i := range n {
		rec := record.Record{Value: []byte("v" + strconv.Itoa(i)), Version: record.Version{TS: 100, Node: "x"}}
		if _, err := s.Apply([]byte("key"+strconv.Itoa(i)), rec); err != nil {
			t.Fatal(err)
		}
	}
}

// cluster is each node's own state.
type cluster map[string]membership.State

const (
	joining = membership.Joining
	normal  = membership.Normal
	leaving = membership.Leaving
)

// A joining node pulls its ranges once every up node agreed on the change and
// the settle time passed since, then goes normal, persisting the state.
func TestJoinCompletesOnceEveryNodeAgrees(t *testing.T) {
	e := newEnv(t, "d", cluster{"a": normal, "b": normal, "c": normal, "d": joining}, 300)
	e.step()
	e.clk.Advance(testSettle - time.Millisecond)
	e.step()
	if n := e.peers.count(MethodPage); n != 0 {
		t.Fatalf("pulled %d pages before the settle time passed", n)
	}
	if got := e.members.state("d"); got != joining {
		t.Fatalf("d is %s before pulling", got)
	}
	e.clk.Advance(time.Millisecond)
	e.step()
	if e.peers.count(MethodPage) == 0 || e.stores["d"].ApproxCount() == 0 {
		t.Fatal("nothing pulled once the settle time passed")
	}
	if left, _ := e.c.StreamStatus(); left["d"] != len(Plan(e.topo.Current().Ring, e.topo.Current().Future, "d")) {
		t.Errorf("status page: d has %d ranges left before its pull, want all", left["d"])
	}
	e.step()
	if got := e.members.state("d"); got != normal {
		t.Fatalf("d is %s after pulling every range, want normal", got)
	}
	if got := e.stored(); got != normal {
		t.Fatalf("persisted state %s, want normal", got)
	}
	if e.topo.Current().Future != nil {
		t.Error("the view still has a change in progress after d went normal")
	}
}

// While a peer's view of the members differs, the change waits; the
// difference is logged and counted once it outlasts gossip's spread, and the
// settle time counts from agreement, not from the first look.
func TestDifferingViewsDelayCompletion(t *testing.T) {
	e := newEnv(t, "d", cluster{"a": normal, "b": normal, "c": normal, "d": joining}, 300)
	e.peers.set(func() { e.peers.differ["b"] = true })
	e.step()
	e.clk.Advance(testSettle)
	e.step()
	if n := e.peers.count(MethodPage); n != 0 || e.members.state("d") != joining {
		t.Fatalf("pulled %d pages, d %s, while b's view differs", n, e.members.state("d"))
	}
	if got := e.viewSyncs(); got != 1 {
		t.Fatalf("view syncs %v after the views differed %v, want 1", got, testSettle)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(e.logs.String(), "view of the members differs from ours") {
			return errors.New("the difference is not logged")
		}
		return nil
	})
	e.clk.Advance(time.Second)
	e.step()
	if got := e.viewSyncs(); got != 1 {
		t.Fatalf("view syncs %v a second after the last, want 1", got)
	}

	e.peers.set(func() { e.peers.differ["b"] = false })
	e.step()
	if n := e.peers.count(MethodPage); n != 0 {
		t.Fatalf("pulled %d pages as soon as the views agreed, before the settle time", n)
	}
	e.clk.Advance(testSettle)
	e.step()
	e.step()
	if got := e.members.state("d"); got != normal {
		t.Fatalf("d is %s once the views agreed and it pulled, want normal", got)
	}
	e.members.set(func() {
		if e.members.syncs != 1 {
			t.Errorf("membership synced %d times, want 1", e.members.syncs)
		}
	})
}

// A decommissioned node goes removed only when every node that gains its
// ranges is up and reports them all pulled.
func TestDecommissionCompletesOnlyWhenStreamsAreDone(t *testing.T) {
	e := newEnv(t, "a", cluster{"a": leaving, "b": normal, "c": normal, "d": normal}, 0)
	e.peers.set(func() { e.peers.remaining["b"] = 2 })
	e.step()
	if got := e.members.state("a"); got != leaving {
		t.Fatalf("a is %s while b still pulls", got)
	}
	if left, _ := e.c.StreamStatus(); left["b"] != 2 {
		t.Errorf("status page: b has %d ranges left, want 2", left["b"])
	}
	e.peers.set(func() { e.peers.remaining["b"] = 0 })
	e.members.set(func() { e.members.down["d"] = true })
	e.step()
	if got := e.members.state("a"); got != leaving {
		t.Fatalf("a is %s while d, which gains ranges, is down", got)
	}
	e.members.set(func() { e.members.down["d"] = false })
	e.step()
	if got := e.members.state("a"); got != membership.Removed {
		t.Fatalf("a is %s once every stream is done, want removed", got)
	}
	if got := e.stored(); got != membership.Removed {
		t.Fatalf("persisted state %s, want removed", got)
	}
}

// A node's status answer counts the ranges it has left for the change its
// fingerprint names, also before its next step: the leaving node asks the
// moment every view agrees, and a count from the step before the change (0)
// made it go removed before anything was pulled (seen in the chaos
// simulation: a decommission done in 0.1 s, its ranges missing on their new
// owner).
func TestStatusCountsRangesLeftBeforeTheNextStep(t *testing.T) {
	e := newEnv(t, "d", cluster{"a": normal, "b": normal, "c": normal, "d": normal}, 300)
	e.step()
	e.members.set(func() { e.members.states["a"] = leaving })
	e.topo.Update(e.members.Members) // gossip brought the change; d has not stepped since
	v := e.topo.Current()
	want := len(Plan(v.Ring, v.Future, "d"))
	if want == 0 {
		t.Fatal("d gains no range from a's decommission; the test needs one")
	}
	b, err := e.c.Serve(t.Context(), "a", MethodStatus, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := DecodeStatus(b)
	if err != nil {
		t.Fatal(err)
	}
	if st.Fingerprint != v.Fingerprint || st.Remaining != want {
		t.Fatalf("status %+v, want fingerprint %d with %d ranges left", st, v.Fingerprint, want)
	}
}

// A dead node an operator marked leaving is marked removed, on every up
// member, by the smallest normal node once its ranges were pulled again.
func TestRemovedNodeIsMarkedBySmallestNormalNode(t *testing.T) {
	all := cluster{"a": normal, "b": normal, "c": normal, "d": normal}
	for _, self := range []string{"b", "a"} {
		e := newEnv(t, self, maps.Clone(all), 300)
		e.members.set(func() { e.members.down["d"], e.members.marks["d"] = true, leaving })
		e.step()
		e.clk.Advance(testSettle)
		e.step() // pulls what it gains from the live replicas
		e.step()
		marked := e.members.Marks()["d"]
		if self != "a" {
			if marked != leaving {
				t.Fatalf("%s, not the smallest normal node, marked d %s", self, marked)
			}
			continue
		}
		if marked != membership.Removed {
			t.Fatalf("d marked %s after its ranges were pulled, want removed", marked)
		}
		slices.Sort(e.peers.marked)
		if want := []string{"b d removed", "c d removed"}; !slices.Equal(e.peers.marked, want) {
			t.Fatalf("peers told %v, want %v", e.peers.marked, want)
		}
	}
}

// A node restarted mid-join announces the state it persisted, not normal for
// the data it already holds, and completes without pulling its ranges again.
func TestRestartResumesPersistedState(t *testing.T) {
	e := newEnv(t, "d", cluster{"a": normal, "b": normal, "c": normal, "d": joining}, 300)
	meta := e.stores["d"].Keyspace(PrefixMeta)
	resumed := 0
	boot := func() (membership.State, error) {
		return InitialState(Boot{
			Meta: meta, Empty: e.stores["d"].ApproxCount() == 0, Join: true,
			Form:   func() (bool, error) { return false, nil },
			Resume: func() error { resumed++; return nil },
		})
	}
	if st, err := boot(); err != nil || st != joining {
		t.Fatalf("first start: %s, %v; want joining", st, err)
	}
	e.step()
	e.clk.Advance(testSettle)
	e.step()
	pages := e.peers.count(MethodPage)
	if pages == 0 {
		t.Fatal("nothing pulled before the restart")
	}

	st, err := boot()
	if err != nil || st != joining {
		t.Fatalf("restart holding the pulled data: %s, %v; want joining", st, err)
	}
	if resumed != 1 {
		t.Errorf("formation resumed %d times, want once", resumed)
	}
	e.restart()
	e.step()
	if got := e.members.state("d"); got != normal {
		t.Fatalf("d is %s after the restart, want normal", got)
	}
	if n := e.peers.count(MethodPage) - pages; n != 0 {
		t.Fatalf("pulled %d pages again after the restart", n)
	}
}

// InitialState's choices for a node with no persisted state, and its refusal
// to bring back a node that was removed.
func TestInitialState(t *testing.T) {
	for _, c := range []struct {
		name              string
		empty, join, form bool
		want              membership.State
	}{
		{"first node", true, false, false, normal},
		{"new node told to join", true, true, false, joining},
		{"forming a cluster", true, true, true, normal},
		{"data from before states were kept", false, true, false, normal},
	} {
		meta := openStore(t).Keyspace(PrefixMeta)
		st, err := InitialState(Boot{Meta: meta, Empty: c.empty, Join: c.join, Form: func() (bool, error) { return c.form, nil }})
		if err != nil || st != c.want {
			t.Errorf("%s: %s, %v; want %s", c.name, st, err, c.want)
			continue
		}
		if v, _, _ := meta.Get(NodeStateKey); !bytes.Equal(v, []byte{byte(c.want)}) {
			t.Errorf("%s: persisted %v, want %s", c.name, v, c.want)
		}
	}
	meta := openStore(t).Keyspace(PrefixMeta)
	if err := saveState(meta, membership.Removed); err != nil {
		t.Fatal(err)
	}
	if _, err := InitialState(Boot{Meta: meta, Empty: true}); err == nil || !strings.Contains(err.Error(), "wipe its data directory") {
		t.Fatalf("removed node restarted: %v, want a refusal", err)
	}
}

// A node joining a cluster whose owners hold no record goes normal at once,
// without a settle period; one record anywhere makes it stream as usual.
func TestJoinIntoEmptyClusterSkipsStreaming(t *testing.T) {
	e := newEnv(t, "d", cluster{"a": normal, "b": normal, "c": normal, "d": joining}, 0)
	fill(t, e.stores["b"], 1)
	e.step()
	if got := e.members.state("d"); got != joining {
		t.Fatalf("d is %s at once though b holds a record", got)
	}

	e = newEnv(t, "d", cluster{"a": normal, "b": normal, "c": normal, "d": joining}, 0)
	e.step()
	if got := e.members.state("d"); got != normal {
		t.Fatalf("d is %s after joining an empty cluster, want normal at once", got)
	}
	if !strings.Contains(e.logs.String(), "joining an empty cluster") {
		t.Error("the shortcut is not logged")
	}
}

// When every node joins at once there is no owner to stream from: the
// smallest id goes normal and the others join it.
func TestAllJoiningClusterBootstrapsFromSmallestID(t *testing.T) {
	for self, want := range map[string]membership.State{"a": normal, "b": joining} {
		e := newEnv(t, self, cluster{"a": joining, "b": joining, "c": joining}, 0)
		e.step()
		if got := e.members.state(self); got != want {
			t.Errorf("%s is %s, want %s", self, got, want)
		}
	}
}

// A difference between member views starts a full state exchange only once
// it has outlasted gossip's spread, and then at most once per viewSyncEvery.
func TestViewsDifferSyncsOnlyWhenDifferencePersists(t *testing.T) {
	e := newEnv(t, "a", cluster{"a": normal}, 0)
	syncs := func() int {
		t.Helper()
		// The exchange runs in the background; Sync counts it once it started.
		want := int(e.viewSyncs())
		testutil.Eventually(t, 5*time.Second, func() error {
			e.members.mu.Lock()
			defer e.members.mu.Unlock()
			if e.members.syncs != want {
				return fmt.Errorf("%d exchanges, %d counted", e.members.syncs, want)
			}
			return nil
		})
		return want
	}
	e.c.viewsDiffer(1)
	e.clk.Advance(viewSyncAfter - time.Millisecond)
	e.c.viewsDiffer(1)
	if n := syncs(); n != 0 {
		t.Fatalf("%d syncs on a difference seen for less than %v", n, viewSyncAfter)
	}
	e.clk.Advance(time.Millisecond)
	e.c.viewsDiffer(1)
	if n := syncs(); n != 1 {
		t.Fatalf("%d syncs after the difference lasted %v, want 1", n, viewSyncAfter)
	}
	e.clk.Advance(viewSyncEvery - time.Millisecond)
	e.c.viewsDiffer(1)
	if n := syncs(); n != 1 {
		t.Fatalf("%d syncs within %v of the last, want 1", n, viewSyncEvery)
	}
	// Our own view changed: the new difference starts its own wait.
	e.clk.Advance(time.Millisecond)
	e.c.viewsDiffer(2)
	if n := syncs(); n != 1 {
		t.Fatalf("%d syncs on a difference in a view just taken, want 1", n)
	}
	e.clk.Advance(viewSyncAfter)
	e.c.viewsDiffer(2)
	if n := syncs(); n != 2 {
		t.Fatalf("%d syncs once the new difference lasted %v, want 2", n, viewSyncAfter)
	}
}

// A peer's mark is applied only when CheckMark lets it through.
func TestServeMarkIsVetted(t *testing.T) {
	e := newEnv(t, "a", cluster{"a": normal, "b": normal}, 0)
	if _, err := e.c.Serve(t.Context(), "b", MethodMark, EncodeMark("a", uint8(membership.Removed))); err == nil {
		t.Fatal("a mark of this node was applied")
	}
	if _, err := e.c.Serve(t.Context(), "b", MethodMark, EncodeMark("c", uint8(leaving))); err != nil {
		t.Fatal(err)
	}
	if got := e.members.Marks(); len(got) != 1 || got["c"] != leaving {
		t.Fatalf("marks %v, want c leaving only", got)
	}
	e.c.cfg.CheckMark = nil
	if _, err := e.c.Serve(t.Context(), "b", MethodMark, EncodeMark("d", uint8(leaving))); err == nil {
		t.Fatal("a mark was applied with no CheckMark")
	}
}
