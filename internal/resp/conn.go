package resp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/ringkv/ringkv/internal/auth"
	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/metric"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/sockio"
)

// unauthLimits are what a client may send before AUTH when a password is set;
// Redis uses the same numbers so that an unauthenticated client cannot make the
// server buffer large commands.
var unauthLimits = Limits{MaxArgs: 10, MaxBulk: 16 << 10, MaxQuery: 256 << 10}

// conn is one client connection. Only the goroutine or event loop serving it
// touches it, except nc, which Shutdown may close or give a deadline.
type conn struct {
	s *Server
	// nc is nil while an event loop serves the connection (see loop.go);
	// it is set, under s.mu, when the connection moves to a goroutine.
	nc net.Conn
	// io is what rd and w read and write through: nc, or the loop's socket.
	io           connIO
	rd           *Reader
	w            *Writer
	raddr, laddr net.Addr
	// held is a command, or a parse error, that an event loop read but
	// handed to the connection's goroutine to run (hasHeld says which).
	held    [][]byte
	heldErr error
	hasHeld bool
	// loopSeen is when the connection last had input on its event loop
	// (clock.Mono), for the loop's idle sweep.
	loopSeen time.Duration

	id      int64
	created time.Time
	authed  bool
	// user and rights are who the client authenticated as and what it may do.
	user    string
	rights  auth.Rights
	level   replication.Level
	name    string
	libName string
	libVer  string
	lastCmd string
	quit    bool // close after flushing, for QUIT
	// inMulti is set by a refused MULTI until EXEC or DISCARD: commands in
	// between are refused, not run (see notRun).
	inMulti bool
	batch   batch // plain GETs and SETs of a pipeline, run concurrently
	// tally holds the metric updates of the commands since the last reply
	// write; flush publishes them first.
	tally metric.Tally
	// mark is when the next command began (clock.Mono): when its input
	// arrived, or when the command before it in the same input ended.
	// Timing a command from the mark reads the clock once per command
	// instead of twice.
	mark time.Duration
	// partialSince is when the command now arriving began (clock.Mono),
	// 0 when none has: ReadTimeout counts from it.
	partialSince time.Duration
	// bufMem is the read buffer's size beyond its initial one; evicted says
	// the server chose to close the connection to stay within
	// MaxClientMemory (clientmem.go). Both are read by other connections.
	bufMem  atomic.Int64
	evicted atomic.Bool
	// shown is what CLIENT LIST on another connection reports of this
	// one's own fields: a copy published on every change, since they are
	// written by this connection's goroutine alone.
	shown atomic.Pointer[connShown]
}

// connShown is the part of a connection CLIENT LIST reads from elsewhere.
type connShown struct {
	name, user, libName, libVer string
	proto                       int
}

// publish makes the connection's name, user and library visible to CLIENT
// LIST on other connections.
func (c *conn) publish() {
	c.shown.Store(&connShown{name: c.name, user: c.user, libName: c.libName, libVer: c.libVer, proto: c.w.proto})
}

// newConn returns the conn for nc; fd >= 0 is nc's socket duplicated for an
// event loop, and the caller then closes nc.
func newConn(s *Server, nc net.Conn, fd int) *conn {
	c := &conn{
		s:       s,
		id:      s.nextID.Add(1),
		created: time.Now(),
		authed:  !s.cfg.Auth.Enabled(),
		level:   s.cfg.DefaultLevel,
		raddr:   nc.RemoteAddr(),
		laddr:   nc.LocalAddr(),
		io:      connIO{fd: fd},
	}
	if c.authed {
		c.user, c.rights = auth.Anonymous.Name, auth.Anonymous.Rights
	}
	if fd < 0 {
		c.nc, c.io.nc = nc, sockio.Wrap(nc)
	}
	c.rd = NewReader(&c.io, c.limits())
	c.rd.SetGrowHook(c.growBuffer)
	c.w = newWriter(bufio.NewWriterSize(&c.io, 16<<10))
	c.publish()
	return c
}

func (c *conn) limits() Limits {
	if !c.authed {
		return unauthLimits
	}
	cfg := &c.s.cfg
	return Limits{MaxArgs: cfg.MaxArgs, MaxBulk: cfg.MaxBulkBytes, MaxQuery: cfg.MaxQueryBytes}
}

func (s *Server) serveConn(c *conn) {
	defer s.dropConn(c)
	// linger is set where the server hangs up on a client that may still be
	// sending: its last replies must reach it (see lingerClose).
	linger := false
	defer func() {
		if linger {
			lingerClose(c.nc)
			return
		}
		c.nc.Close()
	}()
	log := s.log.With("client", c.raddr.String(), "id", c.id)
	if tc, ok := c.nc.(*tls.Conn); ok {
		// The handshake is input like a command's: bounded by ReadTimeout.
		_ = tc.SetDeadline(time.Now().Add(s.cfg.ReadTimeout))
		if err := tc.Handshake(); err != nil {
			s.m.closed.WithLabelValues("tls_handshake").Inc()
			s.sampled.tls.log(log, slog.LevelInfo, "TLS handshake failed, closing connection", "err", err)
			return
		}
	}
	// Replies an event loop could not send without waiting go first.
	_ = c.nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if err := c.io.flushPending(); err != nil {
		log.Debug("write failed", "err", err)
		return
	}
	for {
		args, err := c.held, c.heldErr
		if c.hasHeld {
			c.held, c.heldErr, c.hasHeld = nil, nil, false
		} else {
			args, err = c.rd.Next()
		}
		if err != nil {
			var pe *ProtocolError
			switch {
			case errors.As(err, &pe):
				c.runBatch() // the commands before the bad one get their replies
				s.m.protocolErrors.Inc()
				s.sampled.protocol.log(log, slog.LevelInfo, "protocol error, closing connection", "err", err)
				c.w.Error("ERR " + pe.Error())
				_ = c.flush()
				linger = true
			case errors.Is(err, errHTTP):
				s.m.protocolErrors.Inc()
				s.sampled.http.log(log, slog.LevelWarn, "possible security attack: HTTP request on the RESP port, connection dropped")
			}
			return
		}
		if args != nil {
			c.partialSince = 0
			if c.batchable(args) {
				c.add(args)
				continue
			}
			c.runBatch()
			c.exec(args)
			if c.quit {
				_ = c.flush()
				linger = true
				return
			}
			continue
		}
		// Input drained: run what is batched (its arguments alias the read
		// buffer, which Fill reuses), then send every reply in one write.
		c.runBatch()
		if err := c.flush(); err != nil {
			log.Debug("write failed", "err", err)
			return
		}
		if err := c.nc.SetReadDeadline(c.readDeadline()); err != nil {
			return
		}
		// Checked after setting the deadline, so that Shutdown's or an
		// eviction's expired deadline cannot be overwritten unseen.
		if s.closing.Load() {
			linger = true
			return
		}
		if c.evicted.Load() {
			return
		}
		if err := c.rd.Fill(); err != nil {
			switch {
			case errors.Is(err, io.EOF):
			case s.closing.Load():
				linger = true
			case c.evicted.Load(), errors.Is(err, errClientMemory):
				// Logged and counted where it was chosen (clientmem.go).
			case errors.Is(err, os.ErrDeadlineExceeded) && c.partialSince != 0:
				s.m.closed.WithLabelValues("read_timeout").Inc()
				s.sampled.readTimeout.log(log, slog.LevelInfo, "read timeout: a command took too long to arrive, closing connection",
					"timeout", s.cfg.ReadTimeout, "buffered_bytes", c.rd.Buffered())
			case errors.Is(err, os.ErrDeadlineExceeded):
				s.m.closed.WithLabelValues("idle").Inc()
				log.Debug("idle timeout, closing connection")
			case errors.Is(err, errQueryBufferMax):
				s.m.protocolErrors.Inc()
				c.w.Error("ERR " + err.Error())
				_ = c.flush()
				linger = true
			default:
				log.Debug("read failed", "err", err)
			}
			return
		}
		c.mark = clock.Mono()
		_ = c.nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	}
}

// readDeadline is when the connection's next read gives up: IdleTimeout
// from now while no command has begun to arrive, and ReadTimeout from the
// start of one that has.
func (c *conn) readDeadline() time.Time {
	now := time.Now()
	if c.rd.Buffered() == 0 {
		c.partialSince = 0
		return now.Add(c.s.cfg.IdleTimeout)
	}
	mono := clock.Mono()
	if c.partialSince == 0 {
		c.partialSince = mono
	}
	left := c.s.cfg.ReadTimeout - (mono - c.partialSince)
	return now.Add(min(left, c.s.cfg.IdleTimeout))
}

// flush publishes the tallied metrics, then writes the buffered replies: a
// client that has its reply finds its command counted.
func (c *conn) flush() error {
	c.tally.Flush()
	return c.w.Flush()
}

// lingerTimeout bounds how long a closing connection drains unread input.
const lingerTimeout = 500 * time.Millisecond

// lingerClose half-closes nc and discards what the client still sends for a
// moment before closing. Closing a socket with unread input makes the kernel
// send a RST, and a RST destroys replies the client has not read yet: the
// answers to commands that did run would be lost.
func lingerClose(nc net.Conn) {
	defer nc.Close()
	cw, ok := nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, io.LimitReader(nc, 1<<20))
}

// ctx returns the context for one command's backend calls. It carries no
// deadline of its own: the backend bounds every replica request by the same
// request timeout, and a timer per command cost 6% of a pipelined GET's CPU.
// Shutdown still cancels it through baseCtx.
func (c *conn) ctx() (context.Context, context.CancelFunc) {
	return c.s.baseCtx, noCancel
}

func noCancel() {}

// nowMS is the node's wall clock in unix ms, the base of all TTL arithmetic.
func (c *conn) nowMS() int64 { return c.s.b.Now().UnixMilli() }
