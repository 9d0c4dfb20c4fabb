package membership

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Profiles select memberlist's timing.
const (
	// ProfileLAN suits a data centre network: a failure is detected in a few
	// seconds without false alarms from a busy peer.
	ProfileLAN = "lan"
	// ProfileLocal detects failures in about a second, for tests and the
	// local demo on one host.
	ProfileLocal = "local"
)

// Config configures a Membership.
type Config struct {
	// NodeID names the node: its memberlist name and its ring identity. A
	// node restarted with the same ID rejoins as itself.
	NodeID string
	// BindAddr is the gossip host:port (TCP and UDP); port 0 picks a free one.
	BindAddr string
	// AdvertiseAddr is the gossip host:port peers should dial when it differs
	// from BindAddr (NAT, containers). Empty means BindAddr.
	AdvertiseAddr string
	// Join lists gossip addresses of seed nodes. Start keeps trying them in
	// the background until one answers, so nodes may start in any order.
	Join []string
	// Meta is gossiped to the cluster. Its ID must be empty or NodeID.
	Meta Meta
	// Keys, when set, encrypt and authenticate gossip (AES-GCM; each key 16,
	// 24 or 32 bytes): the first encrypts what this node sends, every one is
	// accepted, and a packet or stream under none of them is dropped, so a
	// process without a key can neither join nor feed the cluster a word.
	// More than one key is how a key is rotated.
	Keys [][]byte
	// Logger receives memberlist's logs too. Nil discards.
	Logger *slog.Logger
	// Profile is ProfileLAN (the default) or ProfileLocal.
	Profile string
	// Transport, when set, carries the gossip instead of UDP and TCP sockets
	// at BindAddr: tests run many nodes in one process on a simulated
	// network (internal/testcluster). Its advertised address is the node's.
	Transport memberlist.NodeAwareTransport
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	if c.NodeID == "" {
		return errors.New("membership: empty node id")
	}
	if c.Meta.ID != "" && c.Meta.ID != c.NodeID {
		return fmt.Errorf("membership: meta id %q differs from node id %q", c.Meta.ID, c.NodeID)
	}
	for _, a := range []string{c.BindAddr, c.AdvertiseAddr} {
		if a == "" {
			continue
		}
		if _, _, err := splitHostPort(a); err != nil {
			return fmt.Errorf("membership: address %q: %w", a, err)
		}
	}
	for i, k := range c.Keys {
		switch len(k) {
		case 16, 24, 32:
		default:
			return fmt.Errorf("membership: gossip key %d is %d bytes, want 16, 24 or 32", i+1, len(k))
		}
	}
	switch c.Profile {
	case "", ProfileLAN, ProfileLocal:
	default:
		return fmt.Errorf("membership: unknown profile %q", c.Profile)
	}
	meta := c.Meta
	meta.ID = c.NodeID
	_, err := meta.encode()
	return err
}

// Member is a node as this node last heard of it.
type Member struct {
	Meta
	// Up is the failure detector's verdict. A down node keeps its tokens: it
	// is still a member, only unreachable.
	Up bool
	// GossipAddr is the node's memberlist host:port.
	GossipAddr string
}

// Membership tracks the cluster's members. All methods are safe for
// concurrent use.
type Membership struct {
	cfg    Config
	logger *slog.Logger
	mlc    *memberlist.Config

	// reconnectEvery is how often the background loop dials down members.
	// memberlist itself never probes or push/pulls a node it declared dead,
	// so after a partition heals these dials are what brings the two halves
	// back together: it bounds how long a healed node stays down in its
	// peers' views, during which coordinators refuse QUORUM and ALL.
	reconnectEvery time.Duration

	ml atomic.Pointer[memberlist.Memberlist] // set by Start
	// logw carries memberlist's log lines, sampled; it counts bad input.
	logw *logWriter
	// reannounced counts the updates reannounce sent again.
	// joinFailures counts the failed seed joins in a row (see JoinFailures).
	joinFailures atomic.Int64
	reannounced  atomic.Uint64
	stop         chan struct{}
	done         chan struct{} // closed when run returns
	// life serialises Leave and Shutdown: memberlist panics on a Leave after
	// Shutdown.
	life sync.Mutex

	mu struct {
		sync.Mutex
		meta    Meta   // own metadata
		encoded []byte // own metadata, encoded
		// gossiped is the metadata memberlist last reported for this node,
		// which is what it sends peers. It lags encoded while an update is
		// in flight, and stays behind for good when memberlist drops one:
		// see reannounce.
		gossiped []byte
		members  map[string]*entry // every node ever seen, by id
		marks    map[string]State  // states decided for nodes by the cluster: see MarkState
		subs     []chan struct{}
		started  bool
		closed   bool
	}
}

type entry struct {
	Member
	left bool // left on purpose: not worth dialling
}

// New validates cfg and prepares a Membership; Start binds and joins.
func New(cfg Config) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Meta.ID = cfg.NodeID
	cfg.Join = slices.Clone(cfg.Join)
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "membership")

	var mlc *memberlist.Config
	m := &Membership{cfg: cfg, logger: logger, stop: make(chan struct{}), done: make(chan struct{})}
	// A dial to a down member is one TCP connect (refused at once by a host
	// whose process is dead) and, when it answers, two push/pulls. That is
	// cheap enough to repeat at the probe interval, so a healed partition is
	// seen within about a second instead of after up to two 30 s rounds.
	if cfg.Profile == ProfileLocal {
		mlc = memberlist.DefaultLocalConfig()
		mlc.DeadNodeReclaimTime = 10 * time.Millisecond
	} else {
		mlc = memberlist.DefaultLANConfig()
		mlc.DeadNodeReclaimTime = time.Second
	}
	m.reconnectEvery = mlc.ProbeInterval
	// A node restarted under the same id often comes back at a new address
	// (a new pod IP, a new port). memberlist refuses a known name at a new
	// address until the old one has been dead this long; ids are unique by
	// configuration, so the wait only needs to outlast stray gossip about
	// the old incarnation. A restart detected before the old address is
	// declared dead is accepted at the next push/pull instead.
	mlc.Name = cfg.NodeID
	host, port, err := splitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, err
	}
	mlc.BindAddr, mlc.BindPort = host, port
	mlc.AdvertiseAddr, mlc.AdvertisePort = "", port
	if cfg.AdvertiseAddr != "" {
		if mlc.AdvertiseAddr, mlc.AdvertisePort, err = splitHostPort(cfg.AdvertiseAddr); err != nil {
			return nil, err
		}
	}
	if len(cfg.Keys) > 0 {
		keys := make([][]byte, len(cfg.Keys))
		for i, k := range cfg.Keys {
			keys[i] = slices.Clone(k)
		}
		kr, err := memberlist.NewKeyring(keys, keys[0])
		if err != nil {
			return nil, fmt.Errorf("membership: keyring: %w", err)
		}
		mlc.Keyring = kr
		// Both on: a node with the key never falls back to the clear, and
		// takes nothing in the clear.
		mlc.GossipVerifyIncoming, mlc.GossipVerifyOutgoing = true, true
	}
	if cfg.Transport != nil {
		mlc.Transport = cfg.Transport
	}
	m.logw = newLogWriter(logger)
	mlc.Logger = log.New(m.logw, "", 0)
	mlc.LogOutput = nil
	mlc.Delegate = delegate{m}
	mlc.Events = events{m}
	m.mlc = mlc

	m.mu.meta = cfg.Meta
	m.mu.encoded, _ = cfg.Meta.encode() // Validate checked the size
	m.mu.members = map[string]*entry{}
	return m, nil
}

// splitHostPort splits "host:port"; an empty address means every interface
// and a port picked by the system.
func splitHostPort(addr string) (string, int, error) {
	if addr == "" {
		return "0.0.0.0", 0, nil
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, int(port), nil
}

// Start binds the gossip listener and joins the seeds. It waits for the first
// join attempt (or ctx); if no seed answers, it keeps retrying in the
// background and returns nil, because seeds that are not up yet will be.
func (m *Membership) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.mu.started {
		m.mu.Unlock()
		return errors.New("membership: already started")
	}
	m.mu.started = true
	m.mu.Unlock()

	ml, err := memberlist.Create(m.mlc)
	if err != nil {
		close(m.done)
		return fmt.Errorf("membership: %w", err)
	}
	m.ml.Store(ml)
	m.logger.Info("gossip listening", "addr", ml.LocalNode().Address())

	first := make(chan struct{})
	go m.run(ml, first)
	select {
	case <-first:
	case <-ctx.Done():
	}
	return nil
}

// The seeds are dialled with exponential backoff from joinBackoffFirst up to
// joinBackoffMax. A seed address that is wrong or long gone then costs a
// log line and a dial every half minute rather than every second, while seeds
// that start a little after this node are still found within a second or two.
const (
	joinBackoffFirst = 250 * time.Millisecond
	joinBackoffMax   = 30 * time.Second
)

// waitForPeer sleeps for d, or until another node has joined this one, and
// reports false when Shutdown began.
func (m *Membership) waitForPeer(ml *memberlist.Memberlist, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 || ml.NumMembers() > 1 {
			return true
		}
		select {
		case <-m.stop:
			return false
		case <-time.After(min(left, m.reconnectEvery)):
		}
	}
}

// JoinFailures returns how many times in a row no seed answered, while
// Start's background join is still retrying; 0 once the node is in a cluster
// or had no seeds.
func (m *Membership) JoinFailures() int { return int(m.joinFailures.Load()) }

// Seeds returns the gossip addresses Start joins.
func (m *Membership) Seeds() []string { return slices.Clone(m.cfg.Join) }

// run joins the seeds, with backoff until one answers, then keeps dialling
// down members now and then. It closes first after the first join attempt.
func (m *Membership) run(ml *memberlist.Memberlist, first chan struct{}) {
	defer close(m.done)
	self := ml.LocalNode().Address()
	var seeds []string
	for _, s := range m.cfg.Join {
		if s != self && s != m.cfg.BindAddr {
			seeds = append(seeds, s)
		}
	}
	backoff := joinBackoffFirst
	for attempt := 1; len(seeds) > 0; attempt++ {
		if ml.NumMembers() > 1 {
			// A peer joined this node while it waited: it is in a
			// cluster, and the reconnect loop below dials whoever drops.
			m.logger.Info("joined cluster: a peer reached this node first", "members", ml.NumMembers())
			break
		}
		n, err := ml.Join(seeds)
		if first != nil {
			close(first)
			first = nil
		}
		if n > 0 {
			m.logger.Info("joined cluster", "contacted", n, "attempts", attempt)
			break
		}
		m.joinFailures.Store(int64(attempt))
		m.logger.Warn("no seed answered; retrying", "seeds", seeds, "attempt", attempt, "err", err, "next_in", backoff)
		if !m.waitForPeer(ml, backoff) {
			return
		}
		backoff = min(2*backoff, joinBackoffMax)
	}
	m.joinFailures.Store(0)
	if first != nil {
		close(first)
	}

	// Each down member is dialled every tick on its own goroutine. A dial
	// into a partition that drops packets hangs for memberlist's TCPTimeout
	// (10 s on a LAN): it must hold up neither the members that are
	// reachable again nor the next dial to the same member, which is the
	// one that gets through once the partition heals. The hung dials per
	// member are bounded by TCPTimeout / reconnectEvery anyway; the cap
	// only guards against a configuration that makes that large.
	maxDials := int(m.mlc.TCPTimeout/m.reconnectEvery) + 1
	var dials sync.WaitGroup
	defer dials.Wait()
	inFlight := map[string]int{} // gossip address → dials running
	var flightMu sync.Mutex
	t := time.NewTicker(m.reconnectEvery)
	defer t.Stop()
	var behind bool
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		behind = m.reannounce(ml, behind)
		for _, addr := range m.downAddrs() {
			flightMu.Lock()
			busy := inFlight[addr] >= maxDials
			if !busy {
				inFlight[addr]++
			}
			flightMu.Unlock()
			if busy {
				continue
			}
			dials.Go(func() {
				defer func() {
					flightMu.Lock()
					if inFlight[addr]--; inFlight[addr] == 0 {
						delete(inFlight, addr)
					}
					flightMu.Unlock()
				}()
				m.reconnect(ml, addr)
			})
		}
	}
}

// reconnect push/pulls with a member this node sees down (see exchange).
func (m *Membership) reconnect(ml *memberlist.Memberlist, addr string) {
	if m.exchange(ml, addr) {
		m.logger.Info("reconnected to a down member", "addr", addr)
	}
}

// exchange push/pulls with addr and, when it answers, once more right away,
// and reports whether it answered. One exchange is not enough to settle what
// either side got wrong about the other: each learns there that the other
// holds it dead, or holds another version of its metadata, and refutes by
// raising its incarnation, but the states it got carry the old incarnation,
// which memberlist ignores. The second exchange carries both refutations.
func (m *Membership) exchange(ml *memberlist.Memberlist, addr string) bool {
	if n, _ := ml.Join([]string{addr}); n == 0 {
		return false
	}
	select {
	case <-m.stop:
	default:
		_, _ = ml.Join([]string{addr})
	}
	return true
}

// reannounce gossips this node's metadata again when memberlist still sends
// an older one than SetState last set, and did on the previous tick too (one
// tick behind is an update in flight). memberlist drops an update for good
// when a refutation takes a newer incarnation between UpdateNode picking its
// own and applying it: the refutation carries the old metadata, and the
// update, now older, is ignored. Peers would then act on the node's previous
// state until its next change. It returns whether the metadata was behind.
func (m *Membership) reannounce(ml *memberlist.Memberlist, wasBehind bool) bool {
	m.mu.Lock()
	behind := m.mu.gossiped != nil && !bytes.Equal(m.mu.gossiped, m.mu.encoded)
	state := m.mu.meta.State
	m.mu.Unlock()
	if !behind || !wasBehind {
		return behind
	}
	m.logger.Info("gossiping this node's state again: an update was lost", "state", state)
	m.reannounced.Add(1)
	if err := ml.UpdateNode(m.reconnectEvery); err != nil {
		m.logger.Debug("re-announced state not yet sent", "err", err)
	}
	return behind
}

// Reannounced returns how many times this node gossiped its state again
// because memberlist had dropped an update (see reannounce).
func (m *Membership) Reannounced() uint64 { return m.reannounced.Load() }

// Sync exchanges full state with every member up (see exchange) and returns
// how many answered. Gossip delivers each update a few times and push/pull
// runs every 15 to 30 s with one random member, so a node that missed an
// update can act on stale metadata for a while; and a peer holding another
// version of a node's metadata at the same incarnation keeps it until that
// node hears of it, which the exchange with the node itself does. The members
// are dialled at once, so one that does not answer costs a TCP timeout, not
// one each.
func (m *Membership) Sync() int {
	ml := m.ml.Load()
	if ml == nil {
		return 0
	}
	m.mu.Lock()
	if m.mu.closed {
		// A push/pull would tell the peers this node is alive.
		m.mu.Unlock()
		return 0
	}
	var addrs []string
	for id, e := range m.mu.members {
		if e.Up && id != m.cfg.NodeID && e.GossipAddr != "" {
			addrs = append(addrs, e.GossipAddr)
		}
	}
	m.mu.Unlock()
	var answered atomic.Int64
	var wg sync.WaitGroup
	for _, addr := range addrs {
		wg.Go(func() {
			if m.exchange(ml, addr) {
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	return int(answered.Load())
}

// downAddrs lists the gossip addresses of members that failed rather than
// left, worth a dial in case they are back or were only cut off.
func (m *Membership) downAddrs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, e := range m.mu.members {
		if !e.Up && !e.left && m.effectiveLocked(e.ID, e.State) != Removed && e.GossipAddr != "" {
			out = append(out, e.GossipAddr)
		}
	}
	return out
}

// LocalID returns this node's id.
func (m *Membership) LocalID() string { return m.cfg.NodeID }

// LocalAddr returns the gossip host:port peers reach this node at, once
// Start has bound it; "" before.
func (m *Membership) LocalAddr() string {
	if ml := m.ml.Load(); ml != nil {
		return ml.LocalNode().Address()
	}
	return ""
}

// LocalMeta returns this node's current metadata.
func (m *Membership) LocalMeta() Meta {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.meta
}

// Members returns every node seen since Start, down ones included, sorted by
// id. Nodes whose state is Removed are left out.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.mu.members))
	for _, e := range m.mu.members {
		mem := e.Member
		mem.State = m.effectiveLocked(mem.ID, mem.State)
		if mem.State != Removed {
			out = append(out, mem)
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Subscribe returns a channel that receives a value after any change to
// Members: a node seen, a state or address change, up or down. Signals are
// coalesced, so a slow reader sees one signal for many changes and must
// re-read Members. The channel is closed by Shutdown.
func (m *Membership) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		close(ch)
		return ch
	}
	m.mu.subs = append(m.mu.subs, ch)
	return ch
}

// notifyLocked wakes every subscriber without blocking.
func (m *Membership) notifyLocked() {
	for _, ch := range m.mu.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// SetState changes this node's lifecycle state and gossips it, waiting until
// the update is sent or ctx ends. The state is set locally even when the
// broadcast times out: gossip will carry it later (see reannounce).
func (m *Membership) SetState(ctx context.Context, s State) error {
	if s > Removed {
		return fmt.Errorf("membership: invalid state %d", s)
	}
	m.mu.Lock()
	m.mu.meta.State = s
	m.mu.encoded, _ = m.mu.meta.encode() // a state byte never changes the size
	if e, ok := m.mu.members[m.cfg.NodeID]; ok && e.State != s {
		e.State = s
		m.notifyLocked()
	}
	m.mu.Unlock()
	ml := m.ml.Load()
	if ml == nil {
		return nil // gossiped once Start runs
	}
	if err := ml.UpdateNode(timeoutFrom(ctx)); err != nil {
		return fmt.Errorf("membership: gossip state %s: %w", s, err)
	}
	return nil
}

// timeoutFrom turns ctx's deadline into the timeout memberlist takes.
func timeoutFrom(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 5 * time.Second
}

// Leave tells the cluster this node is going away on purpose, waiting until
// the message is sent or ctx ends. Peers mark it down without suspecting it
// first. Call Shutdown afterwards.
func (m *Membership) Leave(ctx context.Context) error {
	m.life.Lock()
	defer m.life.Unlock()
	m.mu.Lock()
	closed := m.mu.closed
	m.mu.Unlock()
	ml := m.ml.Load()
	if ml == nil || closed {
		return errors.New("membership: not running")
	}
	if err := ml.Leave(timeoutFrom(ctx)); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	return nil
}

// Shutdown stops gossip without telling peers (they will detect the node as
// down) and closes subscriber channels. It is safe to call more than once.
func (m *Membership) Shutdown(ctx context.Context) error {
	m.life.Lock()
	defer m.life.Unlock()
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		return nil
	}
	m.mu.closed = true
	started := m.mu.started
	m.mu.Unlock()

	var err error
	if ml := m.ml.Load(); started && ml != nil {
		close(m.stop)
		err = ml.Shutdown()
		// The loop may sit in a Join dial until its TCP timeout.
		select {
		case <-m.done:
		case <-ctx.Done():
			err = errors.Join(err, ctx.Err())
		}
	}

	m.mu.Lock()
	for _, ch := range m.mu.subs {
		close(ch)
	}
	m.mu.subs = nil
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("membership: shutdown: %w", err)
	}
	return nil
}

// observe records what memberlist says about node n.
func (m *Membership) observe(n *memberlist.Node, up bool) {
	meta, err := decodeMeta(n.Meta)
	if err != nil || meta.ID != n.Name {
		// Not a ringkv node, or a newer one speaking a format we cannot
		// read: leave it out rather than guess its tokens.
		m.logger.Warn("ignoring member with unreadable metadata", "member", n.Name, "addr", n.Address(), "err", err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return
	}
	if meta.ID == m.cfg.NodeID {
		m.mu.gossiped = slices.Clone(n.Meta)
	}
	e, ok := m.mu.members[meta.ID]
	next := entry{
		Member: Member{Meta: meta, Up: up, GossipAddr: n.Address()},
		left:   !up && n.State == memberlist.StateLeft,
	}
	if ok && *e == next {
		return
	}
	if !ok || e.Up != up || e.State != meta.State {
		m.logger.Info("member changed", "member", meta.ID, "up", up, "state", meta.State, "addr", next.GossipAddr)
	}
	m.mu.members[meta.ID] = &next
	m.notifyLocked()
}

// delegate gives memberlist this node's metadata, and exchanges the
// cluster's marks (see MarkState) in push/pull state sync.
type delegate struct{ m *Membership }

func (d delegate) NodeMeta(limit int) []byte {
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	if len(d.m.mu.encoded) > limit {
		// Validate keeps metadata under memberlist's limit, so this is a
		// programmer error; memberlist itself would panic.
		panic("membership: metadata over limit")
	}
	return slices.Clone(d.m.mu.encoded)
}

func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

func (d delegate) LocalState(join bool) []byte {
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	if len(d.m.mu.marks) == 0 {
		return nil
	}
	return encodeMarks(d.m.mu.marks)
}

func (d delegate) MergeRemoteState(buf []byte, join bool) {
	if len(buf) == 0 {
		return
	}
	marks, err := decodeMarks(buf)
	if err != nil {
		d.m.logger.Warn("ignoring unreadable marks from a peer", "err", err)
		return
	}
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	if d.m.mu.closed {
		return
	}
	for id, s := range marks {
		if s == Leaving || s == Removed {
			d.m.markLocked(id, s)
		}
	}
}

// events feeds memberlist's view into the member map. memberlist calls it
// from one goroutine at a time and expects it not to block.
type events struct{ m *Membership }

func (e events) NotifyJoin(n *memberlist.Node)   { e.m.observe(n, true) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.m.observe(n, true) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.m.observe(n, false) }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = events{}
)

// BadGossip counts warnings memberlist logged about what other hosts sent
// (packets it could not decrypt or decode, streams it refused), the ones
// the log shows only once per interval.
func (m *Membership) BadGossip() uint64 { return m.logw.bad.Load() }

// Alive reports whether gossip currently holds node id alive: not suspected,
// not dead, not left. It is what a node asked from the wire to mark id
// removed checks first (a live node is decommissioned through its own
// admin API, never marked away by a peer).
func (m *Membership) Alive(id string) bool {
	ml := m.ml.Load()
	if ml == nil {
		return false
	}
	for _, n := range ml.Members() {
		if n.Name == id {
			return n.State == memberlist.StateAlive
		}
	}
	return false
}
