package transport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"
)

// errNotWritten marks a call whose frame was still queued when its connection
// failed: the peer never saw it, so TCP.Call may retry it once on a fresh
// connection.
var errNotWritten = errors.New("transport: connection failed before the request was written")

// bufSize is the read buffer and the size above which the writer drops its
// spare buffer instead of keeping it, so one 16 MiB value does not pin 16 MiB
// per connection forever.
const (
	readBufSize    = 64 << 10
	keepBufMaxSize = 1 << 20
	// maxErrorMessage bounds the error text a handler can send back.
	maxErrorMessage = 4 << 10
)

type result struct {
	payload []byte
	err     error
}

// queuedFrame locates a request frame that is queued but not yet taken by the
// writer, so a caller that gives up can pull it back and report it not sent.
type queuedFrame struct {
	id  uint64
	off int
}

// conn is one established, handshaken connection. A dialled conn carries our
// requests and their responses; an accepted conn carries the peer's requests
// and our responses. Either way one writer goroutine owns the socket's write
// side and flushes everything queued since its last write in one syscall:
// frames queue up while a write is in progress, which is what turns N
// concurrent calls into about one syscall.
type conn struct {
	nc      net.Conn
	peer    string // address dialled, or remote address of an accepted conn
	peerID  string // node id from the handshake
	maxOut  int    // largest frame the peer accepts
	maxIn   int    // largest frame we accept
	logger  *slog.Logger
	metrics *metrics

	writeTimeout time.Duration
	wake         chan struct{} // cap 1: "pending is not empty"
	done         chan struct{} // closed by fail
	ctx          context.Context
	cancel       context.CancelFunc

	mu struct {
		sync.Mutex
		closed  bool
		nextID  uint64
		calls   map[uint64]chan result // outstanding calls (dialled conns only)
		pending []byte                 // encoded frames not yet taken by the writer
		frames  int                    // frames in pending
		queued  []queuedFrame          // request frames in pending, by ascending id
	}
}

func newConn(parent context.Context, nc net.Conn, peer string, hs handshake, maxIn int, writeTimeout time.Duration, logger *slog.Logger, m *metrics) *conn {
	c := &conn{
		nc:           nc,
		peer:         peer,
		peerID:       hs.nodeID,
		maxOut:       min(maxIn, int(hs.maxFrame)),
		maxIn:        maxIn,
		logger:       logger,
		metrics:      m,
		writeTimeout: writeTimeout,
		wake:         make(chan struct{}, 1),
		done:         make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(parent)
	c.mu.calls = make(map[uint64]chan result)
	return c
}

func (c *conn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *conn) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// resultChans recycles the one-slot channels calls wait on (a channel is
// two allocations). Each comes back empty with no sender left: a call's id
// leaves c.mu.calls exactly once, and whoever removes it sends exactly once,
// which the call receives, unless the call removed it itself and nobody sends.
var resultChans = sync.Pool{New: func() any { return make(chan result, 1) }}

// call sends one request and waits for its response, for ctx, or for the
// connection to fail.
func (c *conn) call(ctx context.Context, method uint8, payload []byte) ([]byte, error) {
	if n := frameOverhead + len(payload); n > c.maxOut {
		return nil, notSent(fmt.Errorf("%w: request of %d bytes, peer %s accepts %d", ErrFrameTooLarge, n, c.peer, c.maxOut))
	}
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil, notSent(fmt.Errorf("%w: %s", errNotWritten, c.peer))
	}
	ch := resultChans.Get().(chan result)
	c.mu.nextID++
	id := c.mu.nextID
	c.mu.calls[id] = ch
	c.mu.queued = append(c.mu.queued, queuedFrame{id: id, off: len(c.mu.pending)})
	c.mu.pending = appendFrame(c.mu.pending, kindRequest, id, method, payload)
	c.mu.frames++
	c.mu.Unlock()
	c.kick()

	select {
	case r := <-ch:
		resultChans.Put(ch)
		return r.payload, r.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	_, waiting := c.mu.calls[id]
	delete(c.mu.calls, id)
	unsent := waiting && c.unqueueLocked(id)
	c.mu.Unlock()
	if !waiting {
		// The response or the connection failure won the race and is being
		// delivered; it is more informative than the deadline.
		r := <-ch
		resultChans.Put(ch)
		return r.payload, r.err
	}
	resultChans.Put(ch)
	if unsent {
		return nil, notSent(fmt.Errorf("transport: %s: request not sent: %w", c.peer, ctx.Err()))
	}
	return nil, fmt.Errorf("transport: %s: no response, request may have been applied: %w", c.peer, ctx.Err())
}

// unqueueLocked removes request id from pending if the writer has not taken it
// yet, reporting whether it did. Ids are queued in ascending order.
func (c *conn) unqueueLocked(id uint64) bool {
	q := c.mu.queued
	i, found := slices.BinarySearchFunc(q, id, byID)
	if !found {
		return false
	}
	end := len(c.mu.pending)
	if i+1 < len(q) {
		end = q[i+1].off
	}
	n := end - q[i].off
	c.mu.pending = append(c.mu.pending[:q[i].off], c.mu.pending[end:]...)
	for j := i + 1; j < len(q); j++ {
		q[j].off -= n
	}
	c.mu.queued = append(q[:i], q[i+1:]...)
	c.mu.frames--
	return true
}

// send queues a response or error frame. It is dropped if the connection has
// failed: the caller's side fails the call anyway.
func (c *conn) send(kind frameKind, id uint64, method uint8, payload []byte) {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	c.mu.pending = appendFrame(c.mu.pending, kind, id, method, payload)
	c.mu.frames++
	c.mu.Unlock()
	c.kick()
}

// writeLoop owns the socket's write side. It swaps the pending buffer with a
// spare one under the lock and writes the whole batch outside it, so callers
// keep queueing while a write is in flight.
func (c *conn) writeLoop() {
	var spare []byte
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		// The goroutine that woke us usually hands us its time slice at once
		// (the scheduler's runnext), before the other callers or handlers
		// made runnable alongside it have queued their frames. Yielding once
		// lets them in, so a burst leaves in one write instead of one each.
		runtime.Gosched()
		c.mu.Lock()
		batch, frames := c.mu.pending, c.mu.frames
		c.mu.pending, c.mu.frames = spare[:0], 0
		// Every queued request is now in batch and so may reach the peer.
		c.mu.queued = c.mu.queued[:0]
		c.mu.Unlock()
		if len(batch) == 0 {
			spare = batch
			continue
		}
		if c.writeTimeout > 0 {
			// A peer that stops reading must not hold our calls forever: the
			// deadline breaks the connection and fails them promptly.
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		}
		if _, err := c.nc.Write(batch); err != nil {
			c.fail(fmt.Errorf("write: %w", err))
			return
		}
		c.metrics.wrote(frames)
		spare = batch
		if cap(spare) > keepBufMaxSize {
			spare = nil
		}
	}
}

// readResponses runs on dialled conns: it matches responses to calls by id.
func (c *conn) readResponses(fr *frameReader) {
	for {
		f, err := fr.read(c.maxIn)
		if err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
		if f.kind == kindRequest {
			c.fail(fmt.Errorf("%w: request frame on an outbound connection", ErrProtocol))
			return
		}
		c.mu.Lock()
		ch, ok := c.mu.calls[f.id]
		delete(c.mu.calls, f.id)
		c.mu.Unlock()
		if !ok {
			continue // the caller gave up
		}
		if f.kind == kindError {
			ch <- result{err: &RemoteError{Peer: c.peer, Message: string(f.payload)}}
		} else {
			ch <- result{payload: f.payload}
		}
	}
}

// serveRequests runs on accepted conns: requests go to a pool of worker
// goroutines that live as long as the connection, at most len(sem) of them;
// when all are busy the loop stops reading, so a flooding peer meets TCP
// backpressure rather than making us spawn without bound. Long-lived workers
// keep the stacks they grew through Pebble's deep calls: a goroutine per
// request spent a tenth of a cluster node's CPU growing fresh stacks.
func (c *conn) serveRequests(fr *frameReader, h Handler, sem chan struct{}, wg *sync.WaitGroup) {
	work := make(chan frame)
	workers := 0
	for {
		f, err := fr.read(c.maxIn)
		if err != nil {
			c.fail(fmt.Errorf("read: %w", err))
			return
		}
		if f.kind != kindRequest {
			c.fail(fmt.Errorf("%w: frame kind %d on an inbound connection", ErrProtocol, f.kind))
			return
		}
		select {
		case work <- f: // an idle worker took it
			continue
		default:
		}
		if workers < cap(sem) {
			workers++
			first := f
			wg.Go(func() {
				c.serve(h, first)
				for {
					select {
					case f := <-work:
						c.serve(h, f)
					case <-c.done:
						return
					}
				}
			})
			continue
		}
		select {
		case work <- f:
		case <-c.done:
			return
		}
	}
}

func (c *conn) serve(h Handler, f frame) {
	resp, err := c.runHandler(h, f)
	if c.ctx.Err() != nil {
		// The connection is gone (or the transport closing); the caller
		// learns that from the connection, not from an error we cannot send.
		return
	}
	if err != nil {
		msg := err.Error()
		if len(msg) > maxErrorMessage {
			msg = msg[:maxErrorMessage]
		}
		c.send(kindError, f.id, f.method, []byte(msg))
		return
	}
	if n := frameOverhead + len(resp); n > c.maxOut {
		c.logger.Warn("response exceeds frame limit", "peer", c.peerID, "method", f.method, "bytes", n, "limit", c.maxOut)
		c.send(kindError, f.id, f.method, fmt.Appendf(nil, "%v: response of %d bytes exceeds limit %d", ErrFrameTooLarge, n, c.maxOut))
		return
	}
	c.send(kindResponse, f.id, f.method, resp)
}

// runHandler turns a handler panic into an error for the caller: one bad
// request must not take the node down with every other connection.
func (c *conn) runHandler(h Handler, f frame) (resp []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.logger.Error("handler panicked", "peer", c.peerID, "method", f.method, "panic", r, "stack", string(debug.Stack()))
			resp, err = nil, fmt.Errorf("internal error in method %d", f.method)
		}
	}()
	return h(c.ctx, c.peerID, f.method, f.payload)
}

// fail closes the connection once and fails every outstanding call: calls
// whose frames were still queued are reported not sent, the rest may have
// been applied.
func (c *conn) fail(cause error) {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	c.mu.closed = true
	calls, queued := c.mu.calls, c.mu.queued
	c.mu.calls, c.mu.queued, c.mu.pending, c.mu.frames = nil, nil, nil, 0
	c.mu.Unlock()

	c.cancel()
	close(c.done)
	_ = c.nc.Close()
	if !errors.Is(cause, ErrClosed) && !errors.Is(cause, io.EOF) && !errors.Is(cause, net.ErrClosed) {
		c.logger.Debug("connection failed", "peer", c.peer, "peer_node", c.peerID, "err", cause, "outstanding", len(calls))
	}
	for id, ch := range calls {
		_, unsent := slices.BinarySearchFunc(queued, id, byID)
		if unsent {
			ch <- result{err: notSent(fmt.Errorf("%w: %s: %w", errNotWritten, c.peer, cause))}
		} else {
			ch <- result{err: fmt.Errorf("%w: %s: %w", ErrConnectionLost, c.peer, cause)}
		}
	}
}

func byID(f queuedFrame, id uint64) int { return cmp.Compare(f.id, id) }
