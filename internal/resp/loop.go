package resp

import (
	"bytes"
	"errors"
	"net"
	"runtime"
	"time"

	"github.com/ringkv/ringkv/internal/clock"
)

// Event loops.
//
// A goroutine per connection pays, for every pipeline, a read that finds no
// input (Go's net.Conn tries the socket before it parks), a park and a
// wake-up: on a pipelined GET that is a fifth of the CPU, and it is why one
// node answered GETs at 0.77x redis-server's rate. On Linux, connections
// therefore start on an event loop: one goroutine per loop waits in epoll
// for every socket it holds and runs, inline, the commands that never wait,
// the plain GETs this node answers alone (SoloReader) and the commands that
// touch only the connection (command.waitless). The first command that may
// wait (a write, a read that asks a peer, anything else) moves the
// connection to its own goroutine for good, and that goroutine goes on from
// the command the loop stopped at. So does a reply the socket will not take
// at once: the loop never blocks on one client.

// SoloReader is a Backend that can say whether this node alone answers every
// read, at any level, without asking a peer: a single-node cluster. Only then
// may an event loop run a GET inline.
type SoloReader interface {
	ReadsAlone() bool
}

// errWouldBlock is a loop socket's EAGAIN.
var errWouldBlock = errors.New("resp: socket would block")

// connIO is a connection's byte stream: nc once it is set, else the event
// loop's non-blocking socket, fd. Replies that socket will not take without
// waiting are kept in pending, and the connection's goroutine sends them.
type connIO struct {
	nc      net.Conn
	fd      int
	pending []byte
}

func (x *connIO) Read(p []byte) (int, error) {
	if x.nc != nil {
		return x.nc.Read(p)
	}
	return readFD(x.fd, p)
}

func (x *connIO) Write(p []byte) (int, error) {
	if x.nc != nil {
		if err := x.flushPending(); err != nil {
			return 0, err
		}
		return x.nc.Write(p)
	}
	if len(x.pending) == 0 {
		n, err := writeFD(x.fd, p)
		if !errors.Is(err, errWouldBlock) {
			return n, err
		}
		x.pending = append(x.pending, p[n:]...)
		return len(p), nil
	}
	x.pending = append(x.pending, p...)
	return len(p), nil
}

// flushPending sends what the loop could not; nc is set.
func (x *connIO) flushPending() error {
	if len(x.pending) == 0 {
		return nil
	}
	_, err := x.nc.Write(x.pending)
	x.pending = nil
	return err
}

// loopStep is what a loop does with a connection once it has served what the
// socket had.
type loopStep int

const (
	loopKeep    loopStep = iota // wait for more input
	loopHandOff                 // move it to its own goroutine
	loopClose                   // the client has gone
)

// serveReady reads what the socket has and runs its commands, on the loop,
// as far as they never wait. alone is SoloReader's answer.
func (c *conn) serveReady(alone bool) loopStep {
	switch err := c.rd.Fill(); {
	case err == nil:
	case errors.Is(err, errWouldBlock):
		return loopKeep
	case errors.Is(err, errQueryBufferMax):
		return loopHandOff // the goroutine's Fill reports it, as it always has
	default:
		return loopClose // EOF or a reset
	}
	c.mark = clock.Mono()
	if c.rd.Cap() > initialBuf {
		// A large command is arriving: its goroutine waits for the rest,
		// where a deadline, and an eviction (clientmem.go), can reach it.
		return loopHandOff
	}
	for len(c.io.pending) == 0 {
		args, err := c.rd.Next()
		if err != nil || (args != nil && !c.waitless(args, alone)) {
			c.held, c.heldErr, c.hasHeld = args, err, true
			return loopHandOff
		}
		if args == nil {
			switch {
			case c.rd.Buffered() == 0:
				c.partialSince = 0
			case c.partialSince == 0:
				c.partialSince = c.loopSeen // the loop's sweep times it out
			}
			c.runBatch()
			if err := c.flush(); err != nil {
				return loopClose
			}
			if len(c.io.pending) > 0 || c.s.closing.Load() {
				// The goroutine sends the rest, or lingers and closes.
				return loopHandOff
			}
			return loopKeep
		}
		c.partialSince = 0
		if c.batchable(args) {
			c.add(args)
			continue
		}
		c.runBatch()
		c.exec(args)
	}
	// Replies are waiting on the client: the goroutine sends them and runs
	// the commands still buffered.
	return loopHandOff
}

// waitless reports whether args may run on an event loop.
func (c *conn) waitless(args [][]byte, alone bool) bool {
	if len(args[0]) == 3 && bytes.EqualFold(args[0], []byte("get")) {
		return alone
	}
	cmd := c.s.lookup(args[0])
	if cmd == nil || !cmd.waitless {
		return false
	}
	if cmd.noAuth && (cmd.name == "auth" || cmd.name == "hello") {
		return c.authQuick(args)
	}
	return true
}

// numLoops is how many event loops cfg asks for.
func numLoops(n int) int {
	switch {
	case n < 0:
		return 0
	case n > 0:
		return n
	}
	// Half the CPUs: a loop measured fastest alone on a 2-core box shared with
	// its client; the other half runs the goroutines of connections that
	// left the loops, the storage engine and the peers.
	return max(1, runtime.GOMAXPROCS(0)/2)
}

// sweepEvery is how often a loop looks for idle connections and commands
// that take too long to arrive.
func sweepEvery(idle, read time.Duration) time.Duration {
	return min(time.Second, max(min(idle, read)/4, time.Millisecond))
}
