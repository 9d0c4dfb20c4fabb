package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A conn is one pipelined RESP connection to a node. Any number of goroutines
// send on it at once: each command is appended to an output buffer and its
// request queued, in the same order, under one lock; a writer goroutine sends
// whatever has accumulated in one write, and a reader goroutine matches the
// replies to the queued requests in order. Concurrent requests are therefore
// batched into one syscall each way without any caller waiting for another.
//
// The server runs one connection's commands one after another, so a conn
// serves concurrent callers at the rate of one request per server round; the
// pool (nodePool) opens more conns to a busy node.
type conn struct {
	nc   net.Conn
	node string // node id, for errors
	// readTimeout bounds the wait for the oldest outstanding reply.
	readTimeout time.Duration
	// slots bounds the requests outstanding on the connection (back-pressure);
	// a sender takes a slot before queueing and the reader returns it.
	slots chan struct{}
	// queue carries requests to the reader in the order their commands were
	// written. Its capacity is twice the slots, since each request may bring
	// an internal RINGKV.CONSISTENCY before it, so sending never blocks.
	queue chan *request
	kick  chan struct{} // wakes the writer
	done  chan struct{} // closed once the connection has failed or closed

	mu struct {
		sync.Mutex
		out      []byte // commands not yet handed to the writer
		level    Level  // the server connection's level once out is sent
		inflight int    // requests queued and not yet answered
		err      error  // why the connection failed; set once
	}
	spare []byte // writer-owned second buffer
	// inflight mirrors mu.inflight for the pool's lock-free load check.
	inflight atomic.Int32
}

// request is one command awaiting its reply.
type request struct {
	cmd []byte
	// level is the consistency level the command must run at; DefaultLevel
	// when the command does not care (SCAN at any level, internal commands).
	level Level
	// internal requests are the client's own (RINGKV.CONSISTENCY): their
	// replies are checked by the reader and never delivered.
	internal bool
	done     chan struct{}
	reply    reply
	err      error
}

// lostError is the error of a request whose command may have been written
// when the connection failed: any write it carried is indeterminate.
func (c *conn) lostError(cause error) error {
	return fmt.Errorf("%w: connection to node %s lost: %w", ErrTimeout, c.node, cause)
}

// dialConn opens a connection to a node and authenticates it.
func dialConn(ctx context.Context, cfg *Config, node, addr string) (*conn, error) {
	d := net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	var nc net.Conn
	var err error
	if cfg.TLSConfig != nil {
		td := tls.Dialer{NetDialer: &d, Config: cfg.TLSConfig}
		nc, err = td.DialContext(ctx, "tcp", addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	c := &conn{
		nc: nc, node: node, readTimeout: cfg.ReadTimeout,
		slots: make(chan struct{}, cfg.MaxPipeline),
		queue: make(chan *request, 2*cfg.MaxPipeline),
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	go c.readLoop(bufio.NewReaderSize(nc, 32<<10))
	go c.writeLoop()
	if cfg.Password != "" {
		args := []string{"AUTH", cfg.Password}
		if cfg.Username != "" {
			args = []string{"AUTH", cfg.Username, cfg.Password}
		}
		r, err := c.do(ctx, &request{cmd: command(args...)})
		if err == nil {
			err = r.err()
		}
		if err != nil {
			c.close(err)
			return nil, fmt.Errorf("authenticating: %w", err)
		}
	}
	return c, nil
}

// send queues req. It fails without sending when the connection is already
// broken or ctx ends while waiting for a pipeline slot.
func (c *conn) send(ctx context.Context, req *request) error {
	select {
	case c.slots <- struct{}{}:
	case <-c.done:
		return c.failure()
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	if err := c.mu.err; err != nil {
		c.mu.Unlock()
		<-c.slots
		return err
	}
	if req.level != DefaultLevel && req.level != c.mu.level {
		c.mu.out = appendArrayLen(c.mu.out, 2)
		c.mu.out = appendBulkString(c.mu.out, "RINGKV.CONSISTENCY")
		c.mu.out = appendBulkString(c.mu.out, req.level.String())
		c.queue <- &request{internal: true}
		c.mu.level = req.level
	}
	c.mu.out = append(c.mu.out, req.cmd...)
	c.queue <- req
	c.mu.inflight++
	c.inflight.Add(1)
	if c.mu.inflight == 1 && c.readTimeout > 0 {
		// A deadline fails only on a closed connection, whose read fails.
		_ = c.nc.SetReadDeadline(time.Now().Add(c.readTimeout))
	}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return nil
}

// do sends req and waits for its reply. An error that is not a server reply
// wraps ErrTimeout when the command may have reached the server.
func (c *conn) do(ctx context.Context, req *request) (reply, error) {
	req.done = make(chan struct{})
	if err := c.send(ctx, req); err != nil {
		return reply{}, err
	}
	select {
	case <-req.done:
		return req.reply, req.err
	case <-ctx.Done():
		// The reply, when it comes, goes to a request nobody waits for; the
		// connection stays in step.
		return reply{}, fmt.Errorf("%w: no reply from node %s: %w", ErrTimeout, c.node, ctx.Err())
	}
}

func (c *conn) writeLoop() {
	for {
		select {
		case <-c.done:
			return
		case <-c.kick:
		}
		c.mu.Lock()
		b := c.mu.out
		c.mu.out = c.spare[:0]
		c.mu.Unlock()
		if len(b) == 0 {
			c.spare = b
			continue
		}
		_, err := c.nc.Write(b)
		if err != nil {
			c.close(err)
			return
		}
		// Keep a large buffer only while it is needed.
		if cap(b) > 1<<20 {
			b = nil
		}
		c.spare = b
	}
}

func (c *conn) readLoop(rd *bufio.Reader) {
	for {
		// Peek first so that a connection the server closes while idle is
		// noticed at once, not when the next command is sent on it.
		if _, err := rd.Peek(1); err != nil {
			c.close(err)
			return
		}
		var req *request
		select {
		case req = <-c.queue:
		default:
			c.close(fmt.Errorf("%w: reply without a request", errProtocol))
			return
		}
		r, err := readReply(rd)
		if err != nil {
			c.fail(req, err)
			c.close(err)
			return
		}
		if req.internal {
			if e := r.err(); e != nil {
				// The commands after it would run at the wrong level.
				c.close(fmt.Errorf("setting consistency: %w", e))
				return
			}
			continue
		}
		c.mu.Lock()
		c.mu.inflight--
		c.inflight.Add(-1)
		if c.readTimeout > 0 {
			if c.mu.inflight == 0 {
				_ = c.nc.SetReadDeadline(time.Time{})
			} else {
				_ = c.nc.SetReadDeadline(time.Now().Add(c.readTimeout))
			}
		}
		c.mu.Unlock()
		<-c.slots
		if e := r.err(); e != nil {
			var se *ServerError
			if errors.As(e, &se) {
				se.Node = c.node
			}
			req.err = e
		}
		req.reply = r
		close(req.done)
	}
}

// fail answers req with a connection error.
func (c *conn) fail(req *request, err error) {
	if req.internal {
		return
	}
	req.err = c.lostError(err)
	close(req.done)
}

// close marks the connection failed with cause and answers every outstanding
// request with an indeterminate error. It is safe to call more than once.
func (c *conn) close(cause error) {
	c.mu.Lock()
	if c.mu.err != nil {
		c.mu.Unlock()
		return
	}
	if cause == nil {
		cause = ErrClosed
	}
	c.mu.err = fmt.Errorf("%w: connection to node %s closed: %w", ErrUnavailable, c.node, cause)
	close(c.done)
	c.nc.Close()
	c.mu.Unlock()
	// Senders check mu.err under the lock before queueing, so the queue is
	// complete now.
	for {
		select {
		case req := <-c.queue:
			c.fail(req, cause)
		default:
			return
		}
	}
}

// failure is the error a send sees on a broken connection: nothing was sent.
func (c *conn) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.err
}

func (c *conn) broken() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// nodePool holds the connections to one node. It opens up to size of them:
// a request takes an idle connection when there is one, opens a new one while
// under the limit, and otherwise pipelines onto the least loaded.
type nodePool struct {
	id, addr string
	cfg      *Config
	// downUntil (unix ns) skips a node that just refused a connection, so
	// requests go straight to the next replica instead of redialing.
	downUntil atomic.Int64
	mu        struct {
		sync.Mutex
		conns   []*conn
		dialing int
		// dialed is closed when a dial ends, waking callers that found
		// every slot taken by dials.
		dialed chan struct{}
		closed bool
	}
}

func newNodePool(cfg *Config, id, addr string) *nodePool {
	return &nodePool{id: id, addr: addr, cfg: cfg}
}

// errNotSent wraps the errors of requests that never left the client, which
// makes a write safe to send to another replica.
var errNotSent = errors.New("not sent")

// get returns a connection to the node, dialing one when needed.
func (p *nodePool) get(ctx context.Context) (*conn, error) {
	for {
		c, wait, err := p.pick()
		if c != nil || err != nil {
			return c, err
		}
		if wait == nil {
			return p.dial(ctx)
		}
		// Every slot is being dialed: wait for one of those to finish.
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: waiting for a connection to node %s: %w", errNotSent, p.id, ctx.Err())
		}
	}
}

// pick chooses an existing connection, or reserves a dial (nil, nil, nil), or
// returns a channel closed when a dial in progress ends.
func (p *nodePool) pick() (*conn, <-chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		return nil, nil, ErrClosed
	}
	var best *conn
	live := p.mu.conns[:0]
	for _, c := range p.mu.conns {
		if c.broken() {
			continue
		}
		live = append(live, c)
		if best == nil || c.inflight.Load() < best.inflight.Load() {
			best = c
		}
	}
	clear(p.mu.conns[len(live):])
	p.mu.conns = live
	full := len(live)+p.mu.dialing >= p.cfg.PoolSize
	switch {
	case best != nil && (best.inflight.Load() == 0 || full):
		return best, nil, nil
	case full:
		if p.mu.dialed == nil {
			p.mu.dialed = make(chan struct{})
		}
		return nil, p.mu.dialed, nil
	}
	p.mu.dialing++
	return nil, nil, nil
}

// dial opens a connection in the slot pick reserved.
func (p *nodePool) dial(ctx context.Context) (*conn, error) {
	c, err := dialConn(ctx, p.cfg, p.id, p.addr)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.dialing--
	if p.mu.dialed != nil {
		close(p.mu.dialed)
		p.mu.dialed = nil
	}
	if err != nil {
		if len(p.mu.conns) > 0 {
			// The node refused one more connection but still has working
			// ones: pipeline on the first.
			return p.mu.conns[0], nil
		}
		if ctx.Err() == nil {
			p.downUntil.Store(time.Now().Add(p.cfg.DownBackoff).UnixNano())
		}
		return nil, fmt.Errorf("%w: %w: dialing node %s at %s: %w", errNotSent, ErrUnavailable, p.id, p.addr, err)
	}
	if p.mu.closed {
		c.close(ErrClosed)
		return nil, ErrClosed
	}
	p.downUntil.Store(0)
	p.mu.conns = append(p.mu.conns, c)
	return c, nil
}

// do runs one request on the node. Errors from a request that never left the
// client wrap errNotSent.
func (p *nodePool) do(ctx context.Context, req *request) (reply, error) {
	c, err := p.get(ctx)
	if err != nil {
		if !errors.Is(err, errNotSent) {
			err = fmt.Errorf("%w: %w", errNotSent, err)
		}
		return reply{}, err
	}
	req.done = make(chan struct{})
	if err := c.send(ctx, req); err != nil {
		return reply{}, fmt.Errorf("%w: %w", errNotSent, err)
	}
	select {
	case <-req.done:
		return req.reply, req.err
	case <-ctx.Done():
		return reply{}, fmt.Errorf("%w: no reply from node %s: %w", ErrTimeout, p.id, ctx.Err())
	}
}

func (p *nodePool) skipped(now time.Time) bool {
	return p.downUntil.Load() > now.UnixNano()
}

func (p *nodePool) close() {
	p.mu.Lock()
	p.mu.closed = true
	conns := p.mu.conns
	p.mu.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.close(ErrClosed)
	}
}
