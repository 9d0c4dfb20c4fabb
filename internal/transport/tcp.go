package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/logsample"
	"github.com/ringkv/ringkv/internal/sockio"
)

// TCPConfig configures a TCP transport. Zero fields take the defaults of
// DefaultTCPConfig.
type TCPConfig struct {
	// Addr is the peer address to listen on ("host:port", port 0 in tests).
	// Ignored when Listener is set.
	Addr string
	// Listener, if set, is used instead of listening on Addr (a test
	// wrapper); TLS is ServerTLS's job, on top of it. Close closes it.
	Listener net.Listener
	// NodeID is announced in the handshake and passed to handlers as "from".
	NodeID string
	// Handler serves inbound requests. Required.
	Handler Handler
	// Logger receives connection-level events; nil discards them.
	Logger *slog.Logger
	// Registerer receives the transport's metrics (metrics.go); nil records
	// none. Two transports cannot share one Registerer.
	Registerer prometheus.Registerer
	// Dial opens outbound connections; nil uses a net.Dialer. Like Listener,
	// it is the seam for tests that count syscalls.
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	// ServerTLS, when set, makes the peer port speak only TLS: an accepted
	// connection must finish a TLS handshake with it, within
	// HandshakeTimeout, before a byte of the peer protocol is read. With
	// pki.PeerConfigs it requires a certificate from the cluster's CA, so
	// a process without one can call no method at all.
	ServerTLS *tls.Config
	// ClientTLS, when set, is used for every outbound connection (dialling
	// peers that set ServerTLS): it presents this node's certificate and
	// verifies the peer's.
	ClientTLS *tls.Config

	// DialTimeout bounds connecting plus the handshake. Default 2s: peers sit
	// on one network, and a longer wait only delays the hint path.
	DialTimeout time.Duration
	// HandshakeTimeout is how long an accepted connection may take to
	// identify itself. Default 5s, generous for a loaded peer but short enough
	// that idle scanners do not hold sockets.
	HandshakeTimeout time.Duration
	// FrameTimeout bounds each wait for more of a frame that has begun to
	// arrive, so a half-sent frame cannot hold a connection and its buffer
	// forever. Default 15s: longer than any stall of a live peer, which
	// writes a frame in one go. Between frames there is no deadline.
	FrameTimeout time.Duration
	// WriteTimeout bounds one batched write. Default 10s: a peer that stops
	// reading for that long is treated as gone and its calls fail.
	WriteTimeout time.Duration
	// MaxFrame bounds one frame, payload plus 10 bytes. Default 64 MiB: room
	// for a 16 MiB value (design §2) in any message plus batching headroom.
	MaxFrame int
	// ConnsPerPeer is the number of connections kept to each peer. Default 2:
	// one connection multiplexes every small call, so that concurrent calls
	// share its writes; the others carry frames of LargeFrame bytes or more,
	// so that a large value being written does not delay the small requests
	// queued behind it.
	ConnsPerPeer int
	// MaxConcurrentRequests bounds handlers running for one inbound
	// connection. Default 1024; beyond it reading pauses (TCP backpressure).
	MaxConcurrentRequests int
	// RedialBackoff is the wait after a failed dial before the next attempt;
	// it doubles on each failure up to MaxRedialBackoff. Calls during the wait
	// fail at once as unreachable. Defaults 50ms and 1s: short, because a
	// restarted peer should get traffic back quickly.
	RedialBackoff    time.Duration
	MaxRedialBackoff time.Duration
}

// DefaultTCPConfig returns the defaults; the caller fills Addr, NodeID and
// Handler.
func DefaultTCPConfig() TCPConfig {
	return TCPConfig{
		DialTimeout:           2 * time.Second,
		HandshakeTimeout:      5 * time.Second,
		WriteTimeout:          10 * time.Second,
		FrameTimeout:          15 * time.Second,
		MaxFrame:              64 << 20,
		ConnsPerPeer:          2,
		MaxConcurrentRequests: 1024,
		RedialBackoff:         50 * time.Millisecond,
		MaxRedialBackoff:      time.Second,
	}
}

func (c TCPConfig) withDefaults() TCPConfig {
	d := DefaultTCPConfig()
	setDefault(&c.DialTimeout, d.DialTimeout)
	setDefault(&c.HandshakeTimeout, d.HandshakeTimeout)
	setDefault(&c.WriteTimeout, d.WriteTimeout)
	setDefault(&c.FrameTimeout, d.FrameTimeout)
	setDefault(&c.MaxFrame, d.MaxFrame)
	setDefault(&c.ConnsPerPeer, d.ConnsPerPeer)
	setDefault(&c.MaxConcurrentRequests, d.MaxConcurrentRequests)
	setDefault(&c.RedialBackoff, d.RedialBackoff)
	setDefault(&c.MaxRedialBackoff, d.MaxRedialBackoff)
	return c
}

func setDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Validate reports the first invalid field, after defaults are applied.
func (c TCPConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Handler == nil:
		return errors.New("transport: config: Handler is required")
	case c.Addr == "" && c.Listener == nil:
		return errors.New("transport: config: Addr or Listener is required")
	case len(c.NodeID) > maxNodeID:
		return fmt.Errorf("transport: config: NodeID longer than %d bytes", maxNodeID)
	case c.MaxFrame < minMaxFrame || c.MaxFrame > 1<<31-1:
		return fmt.Errorf("transport: config: MaxFrame %d outside [%d, 2^31)", c.MaxFrame, minMaxFrame)
	case c.DialTimeout < 0 || c.HandshakeTimeout < 0 || c.WriteTimeout < 0 || c.FrameTimeout < 0:
		return errors.New("transport: config: timeouts must not be negative")
	case c.ConnsPerPeer < 0 || c.MaxConcurrentRequests < 0:
		return errors.New("transport: config: ConnsPerPeer and MaxConcurrentRequests must not be negative")
	case c.RedialBackoff < 0 || c.MaxRedialBackoff < c.RedialBackoff:
		return errors.New("transport: config: need 0 <= RedialBackoff <= MaxRedialBackoff")
	}
	return nil
}

// TCP is the production transport: it listens for peers and keeps a small
// pool of persistent, multiplexed connections to each peer it calls.
type TCP struct {
	cfg     TCPConfig
	logger  *slog.Logger
	metrics *metrics
	ln      net.Listener
	// refusedLog samples the refused-connection warning: anyone who can
	// reach the port can cause one, and must not fill the log with them.
	refusedLog *logsample.Sampler

	// ctx is cancelled by Close; it parents dials and handler contexts.
	ctx    context.Context
	cancel context.CancelFunc
	closed atomic.Bool
	// wg counts every goroutine the transport starts. Add is only called
	// with mu held and closed false, or from a goroutine wg already counts,
	// so Close's Wait cannot race with it.
	wg sync.WaitGroup

	closeOnce sync.Once
	mu        struct {
		sync.Mutex
		closed bool
		peers  map[string]*peer
		conns  map[*conn]struct{} // every live conn, both directions
	}
}

var _ Transport = (*TCP)(nil)

// LargeFrame is the payload size from which a call leaves the connection
// that small calls share (see TCPConfig.ConnsPerPeer): at 64 KiB a frame
// takes longer to write than the small ones queued behind it take to fill a
// batch.
const LargeFrame = 64 << 10

// refusedLogEvery is how often a refused inbound connection is logged at
// most; the refused_connections_total metric counts every one.
const refusedLogEvery = 10 * time.Second

// peer is the connection pool for one address.
type peer struct {
	addr  string
	next  atomic.Uint32
	slots []slot
}

// slot holds one lazily dialled connection. Concurrent callers share one dial;
// after a failed dial, calls fail fast until retryAt.
type slot struct {
	mu      sync.Mutex
	c       *conn
	dialing chan struct{} // closed when the dial in progress ends
	err     error         // last dial error
	retryAt time.Time
	backoff time.Duration
}

// Listen starts a TCP transport listening on cfg.Addr (or cfg.Listener).
func Listen(cfg TCPConfig) (*TCP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("transport: metrics: %w", err)
	}
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, fmt.Errorf("transport: listen: %w", err)
		}
	}
	if cfg.Dial == nil {
		d := &net.Dialer{}
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	t := &TCP{cfg: cfg, ln: ln, metrics: m, logger: logger.With("component", "transport", "addr", ln.Addr().String()),
		refusedLog: logsample.New(refusedLogEvery)}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.mu.peers = make(map[string]*peer)
	t.mu.conns = make(map[*conn]struct{})
	t.wg.Go(t.acceptLoop)
	return t, nil
}

// Addr returns the address the transport listens on.
func (t *TCP) Addr() string { return t.ln.Addr().String() }

// Call implements Transport.
func (t *TCP) Call(ctx context.Context, addr string, method uint8, payload []byte) ([]byte, error) {
	resp, err := t.call(ctx, addr, method, payload)
	t.metrics.call(err)
	return resp, err
}

func (t *TCP) call(ctx context.Context, addr string, method uint8, payload []byte) ([]byte, error) {
	if t.closed.Load() {
		return nil, notSent(ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, notSent(fmt.Errorf("transport: %s: request not sent: %w", addr, err))
	}
	if n := frameOverhead + len(payload); n > t.cfg.MaxFrame {
		return nil, notSent(fmt.Errorf("%w: request of %d bytes, limit %d", ErrFrameTooLarge, n, t.cfg.MaxFrame))
	}
	for attempt := 0; ; attempt++ {
		c, err := t.getConn(ctx, addr, len(payload))
		if err != nil {
			return nil, err
		}
		resp, err := c.call(ctx, method, payload)
		// A connection that broke before writing our frame is retried once on
		// a fresh one: typically the peer restarted and we had not noticed yet.
		if attempt == 0 && errors.Is(err, errNotWritten) && !t.closed.Load() && ctx.Err() == nil {
			continue
		}
		return resp, err
	}
}

// errReset fails the calls on a connection Reset closed.
var errReset = errors.New("transport: connection reset: the peer came back")

// Reset closes the pooled connections to addr and forgets their dial
// backoff, so that the next call dials afresh. Calls waiting on those
// connections fail as ErrConnectionLost (or not sent). A node calls it for a
// peer gossip saw come back: a connection that lived through a partition
// that dropped its packets sits in TCP's retransmission backoff, and until
// its next retransmission, seconds after the heal, every call on it hangs.
func (t *TCP) Reset(addr string) {
	t.mu.Lock()
	p := t.mu.peers[addr]
	t.mu.Unlock()
	if p == nil {
		return
	}
	for i := range p.slots {
		s := &p.slots[i]
		s.mu.Lock()
		c := s.c
		s.c = nil
		s.err, s.retryAt, s.backoff = nil, time.Time{}, 0
		s.mu.Unlock()
		if c != nil {
			c.fail(errReset)
		}
	}
}

func (t *TCP) peer(addr string) *peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.mu.peers[addr]
	if p == nil {
		p = &peer{addr: addr, slots: make([]slot, t.cfg.ConnsPerPeer)}
		t.mu.peers[addr] = p
	}
	return p
}

// getConn returns a live connection to addr, dialling if needed. Its errors
// are all NotSent.
//
// Small calls all share the first connection: a syscall per write costs more
// than the frames it carries, and calls spread round-robin over two
// connections coalesced half as well (at -P 1 on three nodes, 12% more CPU
// per request). Large ones take the others in turn.
func (t *TCP) getConn(ctx context.Context, addr string, size int) (*conn, error) {
	p := t.peer(addr)
	i := 0
	if size >= LargeFrame && len(p.slots) > 1 {
		i = 1 + int(p.next.Add(1))%(len(p.slots)-1)
	}
	s := &p.slots[i]
	for {
		s.mu.Lock()
		if s.c != nil && !s.c.closed() {
			c := s.c
			s.mu.Unlock()
			return c, nil
		}
		if s.dialing == nil {
			if time.Now().Before(s.retryAt) {
				err := s.err
				s.mu.Unlock()
				return nil, notSent(fmt.Errorf("%w: %s: %w", ErrUnreachable, addr, err))
			}
			if err := t.startDialLocked(s, addr); err != nil {
				s.mu.Unlock()
				return nil, notSent(err)
			}
		}
		ch := s.dialing
		s.mu.Unlock()
		// The dial runs on its own goroutine, bounded by DialTimeout rather
		// than this caller's ctx, so one impatient caller cannot fail the
		// dial for everyone waiting on it.
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, notSent(fmt.Errorf("transport: %s: still connecting: %w", addr, ctx.Err()))
		}
		s.mu.Lock()
		if s.c == nil && s.dialing == nil && s.err != nil && time.Now().Before(s.retryAt) {
			err := s.err
			s.mu.Unlock()
			return nil, notSent(fmt.Errorf("%w: %s: %w", ErrUnreachable, addr, err))
		}
		s.mu.Unlock()
	}
}

// startDialLocked starts a dial for s; s.mu is held.
func (t *TCP) startDialLocked(s *slot, addr string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return ErrClosed
	}
	ch := make(chan struct{})
	s.dialing = ch
	t.wg.Go(func() {
		c, err := t.dial(addr)
		t.metrics.dial(err)
		s.mu.Lock()
		defer s.mu.Unlock()
		defer close(ch)
		s.dialing = nil
		if err != nil {
			s.err = err
			s.backoff = min(max(2*s.backoff, t.cfg.RedialBackoff), t.cfg.MaxRedialBackoff)
			s.retryAt = time.Now().Add(s.backoff)
			t.logger.Debug("dial failed", "peer", addr, "err", err, "backoff", s.backoff)
			return
		}
		s.c, s.err, s.backoff = c, nil, 0
	})
	return nil
}

// dial connects to addr, exchanges handshakes and starts the connection's
// goroutines.
func (t *TCP) dial(addr string) (*conn, error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.DialTimeout)
	defer cancel()
	nc, err := t.cfg.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	// Raw socket calls: a busy node's writes then hand no processor to
	// another thread (package sockio).
	nc = sockio.Wrap(nc)
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	// Close the socket if the transport closes mid-handshake. The closure
	// holds the raw socket: nc becomes the TLS connection below.
	raw := nc
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if tcfg := t.cfg.ClientTLS; tcfg != nil {
		if tcfg.ServerName == "" && !tcfg.InsecureSkipVerify {
			// A config that checks host names checks the one dialled.
			// (pki.PeerConfigs checks the chain only; see there.)
			tcfg = tcfg.Clone()
			tcfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(nc, tcfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		nc = tc
	}
	if _, err := nc.Write(appendHandshake(nil, handshake{nodeID: t.cfg.NodeID, maxFrame: uint32(t.cfg.MaxFrame)})); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	// Straight from the socket, not through the read buffer: the buffer is
	// only made for a connection that has handshaken (see serveConn).
	hs, err := readHandshake(nc)
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if !stop() {
		_ = nc.Close()
		return nil, fmt.Errorf("handshake: %w", context.Cause(ctx))
	}
	_ = nc.SetDeadline(time.Time{})
	c := newConn(t.ctx, nc, addr, hs, t.cfg.MaxFrame, t.cfg.WriteTimeout, t.logger, t.metrics)
	if !t.track(c) {
		_ = nc.Close()
		return nil, ErrClosed
	}
	fr := t.frameReader(nc)
	t.wg.Go(c.writeLoop)
	t.wg.Go(func() {
		c.readResponses(fr)
		t.untrack(c)
	})
	return c, nil
}

// frameReader makes the reader for a handshaken connection.
func (t *TCP) frameReader(nc net.Conn) *frameReader {
	return &frameReader{br: bufio.NewReaderSize(nc, readBufSize), nc: nc, timeout: t.cfg.FrameTimeout}
}

// track registers a live connection; false once the transport is closed.
func (t *TCP) track(c *conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return false
	}
	t.mu.conns[c] = struct{}{}
	t.metrics.connDelta(1)
	return true
}

func (t *TCP) untrack(c *conn) {
	t.mu.Lock()
	if _, ok := t.mu.conns[c]; ok {
		delete(t.mu.conns, c)
		t.metrics.connDelta(-1)
	}
	t.mu.Unlock()
}

func (t *TCP) acceptLoop() {
	var delay time.Duration
	for {
		nc, err := t.ln.Accept()
		if err != nil {
			if t.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off rather than spin,
			// as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.logger.Warn("accept failed", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-t.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		t.mu.Lock()
		if t.mu.closed {
			t.mu.Unlock()
			_ = nc.Close()
			return
		}
		t.wg.Go(func() { t.serveConn(nc) })
		t.mu.Unlock()
	}
}

// serveConn handshakes an accepted connection and serves its requests. A
// connection that does not open with a valid handshake (garbage, an HTTP
// request, a port scanner) is closed without affecting any other.
func (t *TCP) serveConn(nc net.Conn) {
	nc = sockio.Wrap(nc) // as in dial
	remote := nc.RemoteAddr().String()
	_ = nc.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	raw := nc // as in dial
	stop := context.AfterFunc(t.ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	var err error
	if t.cfg.ServerTLS != nil {
		tc := tls.Server(nc, t.cfg.ServerTLS)
		if err = tc.HandshakeContext(t.ctx); err != nil {
			err = fmt.Errorf("tls handshake: %w", err)
		}
		nc = tc
	}
	// Before the handshake the peer is unknown, so all it can make this side
	// hold is the handshake itself, at most 265 bytes read straight from the
	// socket; the frame buffer is made only after it.
	var hs handshake
	if err == nil {
		hs, err = readHandshake(nc)
	}
	if err == nil {
		_, err = nc.Write(appendHandshake(nil, handshake{nodeID: t.cfg.NodeID, maxFrame: uint32(t.cfg.MaxFrame)}))
	}
	if !stop() {
		err = ErrClosed
	}
	if err != nil {
		if !t.closed.Load() {
			t.metrics.refusedConn()
			if ok, suppressed := t.refusedLog.Allow(); ok {
				t.logger.Warn("refused peer connection", "remote", remote, "err", err, "refused_since_last_logged", suppressed)
			}
		}
		_ = nc.Close()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	c := newConn(t.ctx, nc, remote, hs, t.cfg.MaxFrame, t.cfg.WriteTimeout, t.logger, t.metrics)
	if !t.track(c) {
		_ = nc.Close()
		return
	}
	defer t.untrack(c)
	t.wg.Go(c.writeLoop)
	c.serveRequests(t.frameReader(nc), t.cfg.Handler, make(chan struct{}, t.cfg.MaxConcurrentRequests), &t.wg)
}

// Close stops listening, fails outstanding calls with ErrClosed, closes every
// connection and waits for the transport's goroutines, running handlers
// included (their ctx is cancelled).
func (t *TCP) Close() error {
	var err error
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		t.mu.Lock()
		t.mu.closed = true
		conns := make([]*conn, 0, len(t.mu.conns))
		for c := range t.mu.conns {
			conns = append(conns, c)
		}
		t.mu.Unlock()
		if cerr := t.ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = fmt.Errorf("transport: close listener: %w", cerr)
		}
		// Connections fail before handler contexts are cancelled, so a handler
		// that returns ctx.Err() cannot send that back as if the peer had
		// refused: its caller sees the connection lost, which is the truth.
		for _, c := range conns {
			c.fail(ErrClosed)
		}
		t.cancel()
		t.wg.Wait()
	})
	return err
}
