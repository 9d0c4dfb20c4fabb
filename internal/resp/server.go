// Package resp serves the Redis protocol (RESP2 and RESP3) on a node's client
// port: it parses commands with its own bounded reader, runs them against the
// node's data path (Backend) with single-node Redis 7 semantics, and encodes
// replies exactly as Redis does, so redis-cli, redis-benchmark and go-redis work
// unmodified. CLUSTER SLOTS and its kin describe the node's ring as Redis
// Cluster hash slots (cmd_cluster.go), so cluster-mode clients send each key
// straight to a replica of it; commands ringkv does not serve are refused with
// the reason (refused.go).
//
// Each connection is served by one goroutine, or on Linux first by an event
// loop while it sends only commands that never wait (loop.go): either parses
// every command already buffered, runs them in order, and flushes the replies
// once the input is drained, which is what makes pipelining cheap.
//
// Read-modify-write commands (SET with NX, XX, KEEPTTL; SETNX, GETEX, EXPIRE and
// its variants, PERSIST) read the key at the connection's consistency level and
// then write conditionally. They are NOT atomic: a concurrent writer to the same
// key, on this or any other node, can slip in between the read and the write,
// and the last write wins by version as usual. DEL, UNLINK, GETDEL and SET … GET
// without a condition are a single write that reports the value it replaced.
package resp

import (
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

	"github.com/ringkv/ringkv/internal/auth"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/sockio"
)

// Backend is the node's data path. Safe for concurrent use.
//
// Key and value slices passed in alias the connection's read buffer and are
// valid only for the duration of the call: an implementation that keeps them
// (a hint, a cache, a queued write) must copy them. Returned slices are owned by
// the caller.
type Backend interface {
	// Get returns the newest record the replicas at lvl know, tombstones and expired records included
	// (found=false when none has any). Callers decide liveness with rec.Live(Now().UnixMilli()).
	Get(ctx context.Context, key []byte, lvl replication.Level) (rec record.Record, found bool, err error)
	// Put writes m under a fresh version and returns the newest record the acknowledging replicas
	// held before it (prevFound=false when none), so DEL can count and SET…GET can answer in one round.
	Put(ctx context.Context, key []byte, m replication.Mutation, lvl replication.Level) (prev record.Record, prevFound bool, err error)
	// Scan returns up to about count live keys in token order starting at cursor; next==0 when the walk is done.
	Scan(ctx context.Context, cursor uint64, count int, lvl replication.Level) (keys [][]byte, next uint64, err error)
	DBSize(ctx context.Context) (int64, error) // an estimate
	Now() time.Time                            // the node's wall clock: EX/PX/TTL arithmetic uses it
}

// Config configures a Server. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// Addr is the listen address used by Start.
	Addr string
	// MaxKeyBytes and MaxValueBytes are the data model's limits (design §2).
	MaxKeyBytes   int
	MaxValueBytes int
	// MaxBulkBytes bounds one protocol argument. It is a little above
	// MaxValueBytes so that an oversized value gets the clear "value too large"
	// error instead of a protocol error that closes the connection.
	MaxBulkBytes int
	// MaxArgs bounds the elements of one command (Redis allows 1M too).
	MaxArgs int
	// MaxQueryBytes bounds the bytes one unfinished command may hold buffered.
	MaxQueryBytes int
	// MaxClients bounds open connections; extra ones get Redis' error and are closed.
	MaxClients int
	// IdleTimeout closes a connection that sends nothing for this long.
	IdleTimeout time.Duration
	// ReadTimeout closes a connection whose command has begun to arrive
	// but is not complete this long after, and bounds a TLS handshake: a
	// client that trickles a large command cannot hold its buffer forever.
	ReadTimeout time.Duration
	// MaxClientMemory caps the query buffers of all connections together
	// beyond each one's initial 16 KiB (which MaxClients bounds): past it the
	// connections holding the largest buffers are closed, as Redis'
	// maxmemory-clients. 0 means no cap.
	MaxClientMemory int64
	// TLS, when set, makes the port speak only TLS. Such connections are
	// served by goroutines: the event loops read raw sockets.
	TLS *tls.Config
	// WriteTimeout bounds how long a reply may wait on a client that does not
	// read, so a stuck client cannot pin a goroutine and its buffers forever.
	WriteTimeout time.Duration
	// Password enables AUTH for the "default" user; empty means no auth.
	// Ignored when Auth is set.
	Password string
	// Auth verifies AUTH and HELLO ... AUTH credentials and gives each
	// user its rights; nil builds one from Password.
	Auth *auth.Authenticator
	// DefaultLevel is a new connection's consistency level.
	DefaultLevel replication.Level
	// ConcurrentPipeline runs the plain GETs and SETs of a pipeline as
	// batches (see batch), through the backend's GetBatcher and BatchPutter
	// when it has them. Off, every command runs alone, in order.
	ConcurrentPipeline bool
	// EventLoops is how many event loops serve connections on Linux while
	// they send only commands that never wait (see loop.go): 0 means half
	// the CPUs, at least one; negative means none, a goroutine per
	// connection from the start.
	EventLoops int
	// Loading, when set, is asked before every command that reads or writes
	// keys: while it returns an error the command is answered
	// "LOADING <error>", as Redis answers while it loads its dataset, and
	// clients such as go-redis retry. It must be cheap (an atomic load).
	Loading func() error
	// RequestTimeout is how long the backend may take per request; the
	// backend enforces it (the coordinator bounds every replica request).
	RequestTimeout time.Duration
	// Cluster returns the ring as slot ranges for the CLUSTER commands; nil
	// (or an empty view) describes a single node holding every slot.
	Cluster func() ClusterView
	// Info returns extra fields for the "# Ringkv" section of INFO; may be nil.
	Info func() map[string]string
	// Started is when the node started: INFO's uptime counts from it, so
	// that it agrees with the node's other figures. Zero: from New.
	Started time.Time
	// MemoryInfo returns the "# Memory" section of INFO in Redis' field
	// names (used_memory, maxmemory...); may be nil.
	MemoryInfo func() map[string]string
	// Logger receives connection and protocol events; nil discards them.
	Logger *slog.Logger
	// Registerer receives the package's metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// DefaultConfig returns the defaults, each chosen for a reason noted inline.
func DefaultConfig() Config {
	return Config{
		Addr:          "127.0.0.1:7379",
		MaxKeyBytes:   8 << 10,  // design §2
		MaxValueBytes: 16 << 20, // design §2
		// Room for the largest value plus headroom, see the field comment.
		MaxBulkBytes: 16<<20 + 64<<10,
		MaxArgs:      1 << 20, // Redis' own multibulk limit
		// An MSET of a few maximal values fits; a client cannot hold more.
		MaxQueryBytes: 64 << 20,
		MaxClients:    10000, // Redis' default maxclients
		// Redis closes no idle clients by default; we do, after long enough that
		// pooled clients (go-redis keeps idle conns 30 min) see few closures.
		IdleTimeout: time.Hour,
		// A maximal value arrives in 30 s at 0.6 MB/s.
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
		DefaultLevel: replication.DefaultLevel,
		// Above go-redis' 3 s read timeout would be pointless; below it lets the
		// client see our TIMEOUT error rather than its own.
		RequestTimeout: 2 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxKeyBytes <= 0 {
		c.MaxKeyBytes = d.MaxKeyBytes
	}
	if c.MaxValueBytes <= 0 {
		c.MaxValueBytes = d.MaxValueBytes
	}
	if c.MaxBulkBytes <= 0 {
		c.MaxBulkBytes = max(c.MaxValueBytes, c.MaxKeyBytes) + 64<<10
	}
	if c.MaxArgs <= 0 {
		c.MaxArgs = d.MaxArgs
	}
	if c.MaxQueryBytes <= 0 {
		c.MaxQueryBytes = max(d.MaxQueryBytes, 2*c.MaxBulkBytes)
	}
	// An inline command must always fit.
	c.MaxQueryBytes = max(c.MaxQueryBytes, c.MaxBulkBytes+maxHeaderLine*2, maxInline+2)
	if c.MaxClients <= 0 {
		c.MaxClients = d.MaxClients
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.DefaultLevel == 0 {
		c.DefaultLevel = d.DefaultLevel
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports settings that cannot work together.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.DefaultLevel < replication.One || c.DefaultLevel > replication.All:
		return fmt.Errorf("resp: %w: %v", replication.ErrBadLevel, c.DefaultLevel)
	case c.MaxBulkBytes < c.MaxValueBytes || c.MaxBulkBytes < c.MaxKeyBytes:
		return errors.New("resp: max bulk bytes is below the key or value limit")
	case c.MaxClientMemory < 0:
		return errors.New("resp: max client memory is negative")
	}
	return nil
}

// Server serves RESP clients. Create it with New.
type Server struct {
	cfg Config
	b   Backend
	// The backend's batch interfaces, nil when it lacks them; resolved once
	// rather than by a type assertion per pipeline.
	putBatcher BatchPutter
	getBatcher GetBatcher
	soloReader SoloReader
	log        *slog.Logger
	m          *metrics
	commands   map[string]*command
	started    time.Time

	// baseCtx parents every backend call; it is cancelled only when a graceful
	// Shutdown runs out of time.
	baseCtx context.Context
	cancel  context.CancelFunc

	// clientMem is the query-buffer memory of all connections beyond their
	// initial buffers; evictMu serialises the choice of whom to close.
	clientMem atomic.Int64
	evictMu   sync.Mutex
	// sampled rate-limits the lines clients can provoke (logsample.go).
	sampled sampledLogs

	nextID   atomic.Int64
	closing  atomic.Bool
	addr     atomic.Pointer[string]
	conns    sync.WaitGroup
	accepted atomic.Int64

	loopsOnce sync.Once
	mu        struct {
		sync.Mutex
		listeners map[net.Listener]struct{}
		conns     map[*conn]struct{}
		loops     []*eventLoop // started by the first Serve
		nextLoop  int
	}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("resp: server closed")

// New returns a Server for b. It panics if cfg does not Validate: the config
// package validates user input first, so an invalid one here is a wiring bug.
func New(cfg Config, b Backend) *Server {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	if cfg.Auth == nil {
		// With only a password there is no users file to fail on.
		a, err := auth.New(auth.Config{Password: cfg.Password, Logger: cfg.Logger})
		if err != nil {
			panic(err)
		}
		cfg.Auth = a
	}
	s := &Server{
		cfg:     cfg,
		b:       b,
		log:     cfg.Logger.With("component", "resp"),
		m:       newMetrics(cfg.Registerer),
		started: cfg.Started,
		sampled: newSampledLogs(),
	}
	if s.started.IsZero() {
		s.started = time.Now()
	}
	s.putBatcher, _ = b.(BatchPutter)
	s.getBatcher, _ = b.(GetBatcher)
	s.soloReader, _ = b.(SoloReader)
	s.commands = commandTable()
	for _, cmd := range s.commands {
		// Resolved once: a label lookup per command cost a few percent of a
		// pipelined GET.
		cmd.count = s.m.commands.With(cmd.name)
		cmd.latency = s.m.latency.With(cmd.name)
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "ringkv", Subsystem: "resp", Name: "client_buffer_bytes",
			Help: "Query-buffer memory all client connections hold beyond their initial buffers, which max-client-memory caps.",
		}, func() float64 { return float64(s.clientMem.Load()) }))
	}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	s.mu.listeners = make(map[net.Listener]struct{})
	s.mu.conns = make(map[*conn]struct{})
	return s
}

// Start listens on cfg.Addr and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("resp: listen: %w", err)
	}
	s.track(ln)
	go func() {
		if err := s.Serve(ln); err != nil && !errors.Is(err, ErrServerClosed) {
			s.log.Error("serve stopped", "err", err)
		}
	}()
	return nil
}

// Addr returns the address of the listener being served, or "" before.
func (s *Server) Addr() string {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return ""
}

func (s *Server) track(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.mu.listeners[ln] = struct{}{}
	a := ln.Addr().String()
	s.addr.Store(&a)
	return true
}

// Serve accepts connections on ln until Shutdown; it always returns an error,
// ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if !s.track(ln) {
		ln.Close()
		return ErrServerClosed
	}
	s.loopsOnce.Do(s.startLoops)
	if !s.cfg.Auth.Enabled() {
		if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
			s.log.Warn("RESP port is reachable beyond loopback and has no password: anyone who can connect can read and write all data",
				"addr", ln.Addr().String())
		}
	}
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of file descriptors and the like: back off like net/http.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed, retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("resp: accept: %w", err)
		}
		delay = 0
		s.accepted.Add(1)
		if c, onLoop := s.newConn(nc); c != nil && !onLoop {
			go s.serveConn(c)
		}
	}
}

// startLoops starts the event loops the config asks for, as many as can be.
func (s *Server) startLoops() {
	if !loopsSupported {
		return
	}
	var loops []*eventLoop
	for range numLoops(s.cfg.EventLoops) {
		l, err := newEventLoop(s)
		if err != nil {
			s.log.Warn("cannot start an event loop; connections get goroutines", "err", err)
			break
		}
		loops = append(loops, l)
		go l.run()
	}
	s.mu.Lock()
	s.mu.loops = loops
	closing := s.closing.Load()
	s.mu.Unlock()
	if closing { // Shutdown ran before the loops existed to be woken
		for _, l := range loops {
			l.wakeUp()
		}
	}
}

// newConn registers nc, or refuses it when the server is full or closing.
// onLoop says an event loop serves the connection; otherwise the caller
// starts its goroutine.
func (s *Server) newConn(nc net.Conn) (c *conn, onLoop bool) {
	s.mu.Lock()
	full := len(s.mu.conns) >= s.cfg.MaxClients
	if full || s.closing.Load() {
		s.mu.Unlock()
		if full {
			s.m.rejected.Inc()
			_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = nc.Write([]byte("-ERR max number of clients reached\r\n"))
		}
		nc.Close()
		return nil, false
	}
	var l *eventLoop
	fd := -1
	if s.cfg.TLS != nil {
		nc = tls.Server(sockio.Wrap(nc), s.cfg.TLS)
	} else if n := len(s.mu.loops); n > 0 {
		var err error
		if fd, err = dupFD(nc); err == nil {
			l = s.mu.loops[s.mu.nextLoop%n]
			s.mu.nextLoop++
		} else {
			s.log.Warn("cannot give a connection to an event loop; it gets a goroutine", "err", err)
			fd = -1
		}
	}
	c = newConn(s, nc, fd)
	s.mu.conns[c] = struct{}{}
	s.conns.Add(1)
	s.m.conns.Inc()
	if l != nil {
		l.add(c) // under s.mu: see eventLoop.add
	}
	s.mu.Unlock()
	if l != nil {
		nc.Close() // the loop has its own descriptor
	}
	return c, l != nil
}

func (s *Server) dropConn(c *conn) {
	c.tally.Flush()
	s.clientMem.Add(-c.bufMem.Swap(0))
	s.mu.Lock()
	delete(s.mu.conns, c)
	s.mu.Unlock()
	s.m.conns.Dec()
	s.conns.Done()
}

func (s *Server) numConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mu.conns)
}

// Shutdown stops accepting, lets every connection finish the commands it has
// already received and send their replies, then closes it. If ctx ends first,
// in-flight backend calls are cancelled and the connections closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for ln := range s.mu.listeners {
		ln.Close()
	}
	// An idle connection is blocked reading; an expired deadline wakes it, and
	// the loop sees closing before it reads again (see serveConn).
	for c := range s.mu.conns {
		// A loop's connections run nothing between its events; woken, the
		// loop hands them to goroutines, which see closing and close.
		if c.nc != nil {
			_ = c.nc.SetReadDeadline(time.Now())
		}
	}
	loops := s.mu.loops
	for _, l := range loops {
		l.wakeUp()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		for _, l := range loops {
			<-l.done
		}
		s.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.mu.conns {
			if c.nc != nil {
				c.nc.Close()
			}
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
