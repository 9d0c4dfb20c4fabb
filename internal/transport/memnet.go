package transport

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// MemNetwork is an in-process network for tests: nodes are addresses, and
// messages between them can be dropped, delayed and partitioned. It uses only
// goroutines, channels and timers, so a cluster on it runs under
// testing/synctest.
//
// Faults mimic what TCP shows the caller:
//   - a partition, Isolate or Down in force when a call starts refuses it at
//     once as unreachable (NotSent), like a failed dial;
//   - a partition or Down that starts while a message is in flight loses it,
//     and the caller waits for its ctx, like a dead connection;
//   - a dropped message also leaves the caller waiting for its ctx; whether
//     the request reached the handler before the response was lost is drawn
//     at random, so both "applied" and "not applied" timeouts occur.
//
// Callers must therefore give every call a deadline. A handler's "from" is the
// caller's address.
type MemNetwork struct {
	mu       sync.Mutex
	rng      *rand.Rand
	nodes    map[string]*MemTransport
	down     map[string]bool
	blocked  map[memLink]bool
	isolated map[string]bool
	paused   map[string]chan struct{} // closed on Resume
	dropRate float64
	delayMin time.Duration
	delayMax time.Duration
}

type memLink struct{ from, to string }

// NewMemNetwork returns a healthy network whose random choices (drops, delays)
// come from seed. Goroutine scheduling still varies between runs, so the seed
// fixes the odds and the draws, not the interleaving.
func NewMemNetwork(seed int64) *MemNetwork {
	return &MemNetwork{
		rng:      rand.New(rand.NewPCG(uint64(seed), 0x72696e676b76)),
		nodes:    make(map[string]*MemTransport),
		down:     make(map[string]bool),
		blocked:  make(map[memLink]bool),
		isolated: make(map[string]bool),
		paused:   make(map[string]chan struct{}),
	}
}

// MemTransport is one node's endpoint on a MemNetwork.
type MemTransport struct {
	net    *MemNetwork
	addr   string
	h      Handler
	ctx    context.Context // cancelled by Close; parents handler contexts
	cancel context.CancelFunc

	mu struct {
		sync.Mutex
		closed bool
	}
	handlers sync.WaitGroup // running handler invocations
}

var _ Transport = (*MemTransport)(nil)

// Listen attaches a node at addr whose inbound requests h serves. Listening
// again after the previous node at addr closed models a restart. It panics if
// a live node already holds addr: that is a bug in the test.
func (n *MemNetwork) Listen(addr string, h Handler) *MemTransport {
	m := &MemTransport{net: n, addr: addr, h: h}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	n.mu.Lock()
	defer n.mu.Unlock()
	if old := n.nodes[addr]; old != nil && old.ctx.Err() == nil {
		panic(fmt.Sprintf("transport: MemNetwork address %q already in use", addr))
	}
	n.nodes[addr] = m
	return m
}

// Partition cuts both directions between a and b.
func (n *MemNetwork) Partition(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocked[memLink{a, b}] = true
	n.blocked[memLink{b, a}] = true
}

// PartitionOneWay cuts messages from one node to another; the reverse
// direction still works, so from's calls to to are refused while to's calls to
// from reach from but lose their responses.
func (n *MemNetwork) PartitionOneWay(from, to string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocked[memLink{from, to}] = true
}

// Isolate cuts addr off from every other node, present or future.
func (n *MemNetwork) Isolate(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.isolated[addr] = true
}

// Heal removes every partition and isolation. Down nodes, drop rate and delay
// are left as they are.
func (n *MemNetwork) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.blocked)
	clear(n.isolated)
}

// Down marks addr's process as down: calls to or from it are refused as
// unreachable and messages in flight to or from it are lost.
func (n *MemNetwork) Down(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down[addr] = true
}

// Up undoes Down.
func (n *MemNetwork) Up(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.down, addr)
}

// SetDropRate makes each call lose a message with probability p, clamped to
// [0, 1].
func (n *MemNetwork) SetDropRate(p float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dropRate = min(max(p, 0), 1)
}

// SetDelay delays every message, request and response alike, by a duration
// drawn uniformly from [lo, hi]. Zero for both removes the delay.
func (n *MemNetwork) SetDelay(lo, hi time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.delayMin, n.delayMax = max(lo, 0), max(hi, lo, 0)
}

// Pause freezes addr's process, as SIGSTOP does: requests to it wait,
// unanswered, until Resume (or their caller's ctx ends), and then run.
func (n *MemNetwork) Pause(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.paused[addr] == nil {
		n.paused[addr] = make(chan struct{})
	}
}

// Resume undoes Pause; the requests that waited are served.
func (n *MemNetwork) Resume(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ch := n.paused[addr]; ch != nil {
		close(ch)
		delete(n.paused, addr)
	}
}

// resumed returns a channel closed when addr is not paused (nil: it is not).
func (n *MemNetwork) resumed(addr string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused[addr]
}

// Reachable reports whether a message from -> to would pass the network's
// partitions, isolations, down and paused nodes now (drops and delays
// aside), so that another protocol simulated beside it (gossip, in
// internal/testcluster) suffers the same faults as the peer requests: a
// paused node's failure detector neither hears nor answers.
func (n *MemNetwork) Reachable(from, to string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.cutLocked(from, to) && n.paused[from] == nil && n.paused[to] == nil
}

// memFate is what the network decided for one call when it started.
type memFate uint8

const (
	memDeliver memFate = iota
	memDropRequest
	memDropResponse
)

// cutLocked reports whether a message from -> to cannot pass now.
func (n *MemNetwork) cutLocked(from, to string) bool {
	return n.down[from] || n.down[to] || n.isolated[from] || n.isolated[to] || n.blocked[memLink{from, to}]
}

func (n *MemNetwork) delayLocked() time.Duration {
	if n.delayMax <= 0 {
		return 0
	}
	return n.delayMin + time.Duration(n.rng.Int64N(int64(n.delayMax-n.delayMin)+1))
}

// route decides a call's fate when it starts; a nil node means refused.
func (n *MemNetwork) route(from, to string) (dst *MemTransport, fate memFate, d1, d2 time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	dst = n.nodes[to]
	if dst == nil || dst.ctx.Err() != nil || n.cutLocked(from, to) {
		return nil, 0, 0, 0
	}
	if n.dropRate > 0 && n.rng.Float64() < n.dropRate {
		fate = memDropRequest
		if n.rng.IntN(2) == 0 {
			fate = memDropResponse
		}
	}
	return dst, fate, n.delayLocked(), n.delayLocked()
}

// passes reports whether a message from -> to arriving now reaches dst, the
// node that was at to when the call started (not a restarted successor).
func (n *MemNetwork) passes(from, to string, dst *MemTransport) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[to] == dst && dst.ctx.Err() == nil && !n.cutLocked(from, to)
}

// Addr returns the node's address.
func (m *MemTransport) Addr() string { return m.addr }

// Reset does nothing: an in-memory endpoint keeps no connection that could
// sit in backoff after a partition heals. It lets a MemTransport stand where
// the server resets its TCP connections.
func (m *MemTransport) Reset(string) {}

// Call implements Transport.
func (m *MemTransport) Call(ctx context.Context, addr string, method uint8, payload []byte) ([]byte, error) {
	if m.ctx.Err() != nil {
		return nil, notSent(ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, notSent(fmt.Errorf("transport: %s: request not sent: %w", addr, err))
	}
	dst, fate, d1, d2 := m.net.route(m.addr, addr)
	if dst == nil {
		return nil, notSent(fmt.Errorf("%w: %s", ErrUnreachable, addr))
	}
	// The caller may reuse payload once Call returns, and the handler may run
	// after that (the caller timed out), so the request travels as a copy.
	req := bytes.Clone(payload)
	ch := make(chan result, 1)
	go m.deliver(dst, fate, d1, d2, method, req, ch)
	select {
	case r := <-ch:
		return r.payload, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("transport: %s: no response, request may have been applied: %w", addr, ctx.Err())
	case <-m.ctx.Done():
		return nil, fmt.Errorf("%w: %s: %w", ErrConnectionLost, addr, ErrClosed)
	}
}

// deliver carries one call through the network. Lost messages simply end it:
// the caller is left to its ctx, as with a real network.
func (m *MemTransport) deliver(dst *MemTransport, fate memFate, d1, d2 time.Duration, method uint8, req []byte, ch chan<- result) {
	if !m.sleep(d1, dst) || fate == memDropRequest || !m.waitResumed(dst) || !m.net.passes(m.addr, dst.addr, dst) {
		return
	}
	r, ran := dst.serve(m.addr, method, req)
	if !ran || fate == memDropResponse || !m.sleep(d2, dst) || !m.net.passes(dst.addr, m.addr, m) {
		return
	}
	if r.err != nil {
		// Only the message crosses a real wire; keep tests honest about that.
		r = result{err: &RemoteError{Peer: dst.addr, Message: r.err.Error()}}
	}
	ch <- r
}

// waitResumed waits while dst is paused, unless either end closes first.
func (m *MemTransport) waitResumed(dst *MemTransport) bool {
	ch := m.net.resumed(dst.addr)
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	case <-m.ctx.Done():
		return false
	case <-dst.ctx.Done():
		return false
	}
}

// sleep waits d unless either end closes first.
func (m *MemTransport) sleep(d time.Duration, dst *MemTransport) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-m.ctx.Done():
		return false
	case <-dst.ctx.Done():
		return false
	}
}

// serve runs the handler unless the node has closed; ran reports whether it did.
func (m *MemTransport) serve(from string, method uint8, req []byte) (result, bool) {
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		return result{}, false
	}
	m.handlers.Add(1)
	m.mu.Unlock()
	defer m.handlers.Done()
	resp, err := m.h(m.ctx, from, method, req)
	return result{payload: resp, err: err}, true
}

// Close detaches the node: its outstanding calls fail with ErrClosed, calls to
// it are refused, and Close waits for its running handlers (whose ctx it
// cancels).
func (m *MemTransport) Close() error {
	m.mu.Lock()
	m.mu.closed = true
	m.mu.Unlock()
	m.cancel()
	m.handlers.Wait()
	return nil
}
