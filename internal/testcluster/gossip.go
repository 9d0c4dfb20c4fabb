package testcluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ringkv/ringkv/internal/transport"
)

// GossipNetwork carries memberlist's gossip between nodes in one process,
// cut by the same faults as the peer requests on a transport.MemNetwork:
// partition two nodes there and their failure detectors see it too.
//
// memberlist ships a MockNetwork for this, but it suits only nodes that never
// stop: its registry is unlocked (a node started later races the others'
// sends), a send to a stopped node blocks for ever on an unbuffered channel,
// and it knows no faults. This one is the same design with those three fixed.
type GossipNetwork struct {
	faults *transport.MemNetwork // nil: no faults

	mu     sync.Mutex
	byAddr map[string]*GossipTransport
	addrOf map[string]string // node id -> its stable gossip address
}

// NewGossipNetwork returns a gossip network cut by faults' partitions and
// down nodes; faults may be nil. Nodes are addressed on faults by their ids.
func NewGossipNetwork(faults *transport.MemNetwork) *GossipNetwork {
	return &GossipNetwork{faults: faults, byAddr: map[string]*GossipTransport{}, addrOf: map[string]string{}}
}

// Transport returns a fresh endpoint for node id, at the address id had
// before if it had one (a restarted process on the same host and port).
func (g *GossipNetwork) Transport(id string) *GossipTransport {
	g.mu.Lock()
	defer g.mu.Unlock()
	addr, ok := g.addrOf[id]
	if !ok {
		// Fake ports on loopback: memberlist wants an IP and a port, and
		// loopback makes the server pick the fast local failure detector.
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(10000+len(g.addrOf)))
		g.addrOf[id] = addr
	}
	t := &GossipTransport{
		g: g, id: id, addr: addr,
		packets: make(chan *memberlist.Packet, 256),
		streams: make(chan net.Conn),
		done:    make(chan struct{}),
	}
	g.byAddr[addr] = t
	return t
}

// route returns the live endpoint at addr that from may reach now.
func (g *GossipNetwork) route(from *GossipTransport, addr string) (*GossipTransport, error) {
	g.mu.Lock()
	dst := g.byAddr[addr]
	g.mu.Unlock()
	if dst == nil || dst.closed() {
		return nil, fmt.Errorf("gossip to %s: connection refused", addr)
	}
	if g.faults != nil && !g.faults.Reachable(from.id, dst.id) {
		return nil, fmt.Errorf("gossip from %s to %s: unreachable", from.id, dst.id)
	}
	return dst, nil
}

// GossipTransport is one node's endpoint on a GossipNetwork.
type GossipTransport struct {
	g        *GossipNetwork
	id, addr string
	packets  chan *memberlist.Packet
	streams  chan net.Conn
	done     chan struct{}
	once     sync.Once
}

var _ memberlist.NodeAwareTransport = (*GossipTransport)(nil)

func (t *GossipTransport) closed() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *GossipTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	host, port, err := net.SplitHostPort(t.addr)
	if err != nil {
		return nil, 0, err
	}
	p, err := strconv.Atoi(port)
	return net.ParseIP(host), p, err
}

// WriteTo implements memberlist.Transport.
func (t *GossipTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends a packet as UDP would: one that cannot pass, or that
// finds the receiver's queue full, is lost without an error.
func (t *GossipTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	dst, err := t.g.route(t, a.Addr)
	if err != nil {
		return now, nil
	}
	p := &memberlist.Packet{Buf: bytes.Clone(b), From: addr(t.addr), Timestamp: now}
	select {
	case dst.packets <- p:
	default:
	}
	return now, nil
}

// PacketCh implements memberlist.Transport.
func (t *GossipTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// IngestPacket implements memberlist.NodeAwareTransport.
func (t *GossipTransport) IngestPacket(conn net.Conn, from net.Addr, now time.Time, shouldClose bool) error {
	if shouldClose {
		defer conn.Close()
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, conn); err != nil {
		return fmt.Errorf("reading packet: %w", err)
	}
	if buf.Len() < 1 {
		return errors.New("packet too short")
	}
	select {
	case t.packets <- &memberlist.Packet{Buf: buf.Bytes(), From: from, Timestamp: now}:
		return nil
	case <-t.done:
		return errors.New("transport closed")
	}
}

// DialTimeout implements memberlist.Transport.
func (t *GossipTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream as a TCP dial would: refused at once
// across a cut or to a stopped node.
func (t *GossipTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	dst, err := t.g.route(t, a.Addr)
	if err != nil {
		return nil, err
	}
	local, remote := net.Pipe()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case dst.streams <- remote:
		return local, nil
	case <-dst.done:
	case <-t.done:
	case <-timer.C:
	}
	local.Close()
	remote.Close()
	return nil, fmt.Errorf("gossip stream to %s: not accepted", a.Addr)
}

// StreamCh implements memberlist.Transport.
func (t *GossipTransport) StreamCh() <-chan net.Conn { return t.streams }

// IngestStream implements memberlist.NodeAwareTransport.
func (t *GossipTransport) IngestStream(conn net.Conn) error {
	select {
	case t.streams <- conn:
		return nil
	case <-t.done:
		return errors.New("transport closed")
	}
}

// Shutdown implements memberlist.Transport: the node stops receiving, and
// senders to it are refused instead of blocking.
func (t *GossipTransport) Shutdown() error {
	t.once.Do(func() { close(t.done) })
	return nil
}

// addr is a net.Addr on the gossip network.
type addr string

func (a addr) Network() string { return "testcluster" }
func (a addr) String() string  { return string(a) }
