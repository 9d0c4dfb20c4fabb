package server

import (
	"context"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/memberlist"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/transport"
)

// Option replaces one of the node's links to the outside world. A production
// node takes none; tests give many nodes in one process a simulated network,
// gossip, clock and filesystem (internal/testcluster), so faults can be injected and the
// whole node, anti-entropy and rebalancing included, runs under them; a
// filesystem (WithFS) lets a test crash a node's disk.
type Option func(*seams)

// seams are the node's replaceable links; the zero value is production.
type seams struct {
	peerNet *transport.MemNetwork
	gossip  memberlist.NodeAwareTransport
	clock   clock.Clock
	fs      vfs.FS
}

// WithPeerNetwork carries peer requests over net instead of TCP; the node's
// peer address there is its node id, and cfg.PeerAddr is not used.
func WithPeerNetwork(net *transport.MemNetwork) Option {
	return func(s *seams) { s.peerNet = net }
}

// WithGossipTransport carries the gossip over t instead of sockets at
// cfg.GossipAddr. t serves one Start: a restarted node needs a new one.
func WithGossipTransport(t memberlist.NodeAwareTransport) Option {
	return func(s *seams) { s.gossip = t }
}

// WithClock bases the node's wall clock (record timestamps, the clock guard,
// hint windows, expiry) on c instead of the system clock.
func WithClock(c clock.Clock) Option {
	return func(s *seams) { s.clock = c }
}

// WithFS keeps the node's data on fs, under cfg.DataDir, instead of the
// disk: a test can then crash the node at any write (vfs.NewCrashableMem and
// CrashClone) or fail its writes, and restart it on what survived.
func WithFS(fs vfs.FS) Option {
	return func(s *seams) { s.fs = fs }
}

// peerTransport is what the node needs of its peer endpoint: the TCP
// transport, or a MemTransport under WithPeerNetwork.
type peerTransport interface {
	Call(ctx context.Context, addr string, method uint8, payload []byte) ([]byte, error)
	Addr() string
	// Reset drops the connection to addr, which may sit in TCP backoff after
	// a partition healed.
	Reset(addr string)
	Close() error
}

var (
	_ peerTransport = (*transport.TCP)(nil)
	_ peerTransport = (*transport.MemTransport)(nil)
)

// listenPeers opens the peer endpoint: on the simulated network when one is
// set, else on TCP.
func (s *Server) listenPeers(cfg transport.TCPConfig) (peerTransport, error) {
	if s.seams.peerNet != nil {
		return s.seams.peerNet.Listen(s.cfg.NodeID, cfg.Handler), nil
	}
	t, err := transport.Listen(cfg)
	if err != nil {
		// Not t: a nil *TCP in the interface is not a nil interface, and
		// the cleanup after a failed Start would close it.
		return nil, err
	}
	return t, nil
}

// baseClock is the wall clock the node's offset clock runs on.
func (s *Server) baseClock() clock.Clock {
	if s.seams.clock != nil {
		return s.seams.clock
	}
	return clock.System{}
}
