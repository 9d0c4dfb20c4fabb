// Package diskspace watches the free space of the filesystem that holds a
// node's data directory and turns a nearly full disk into a refusal of new
// writes, before the storage engine itself runs out of space in the middle of
// a write, a flush or a compaction it cannot finish.
//
// A Monitor keeps a reserve: below it the disk counts as full and Check
// refuses every write with an error wrapping ErrDiskFull. The reserve is what
// the engine may still need to finish what it had started (a log record being
// appended, a flush, a rewrite) and to restart. The state clears by itself
// once space is freed, as etcd's NOSPACE alarm does but without an operator's
// disarm, and only once free space is a quarter of the reserve above it, so
// that a compaction freeing a little space does not make the state flap.
//
// Free space is read with statfs once a second, by the first write after a
// reading is 50 ms old (another process may be filling the same disk), and
// whenever the writes let through since the last reading may have eaten
// into the reserve: each Check charges the write's size against the last
// reading, so a burst of large writes cannot overrun the reserve between two
// readings. A reading costs a few microseconds (BenchmarkStatfs), twenty a
// second nothing measurable; Check reads no clock: a ticker marks the
// reading stale.
package diskspace

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// ErrDiskFull is what every refusal wraps; test with errors.Is.
var ErrDiskFull = errors.New("diskspace: disk full")

// FullError says which filesystem is full and by how much.
type FullError struct {
	Dir     string // the data directory
	Free    uint64 // bytes available to the node when last measured
	Reserve uint64 // the reserve it fell below
	// Write is the size of a write refused alone because it would have
	// gone into the reserve; 0 when the disk is below the reserve.
	Write uint64
}

func (e *FullError) Error() string {
	if e.Write > 0 {
		return fmt.Sprintf("disk full: %s has %s free, and a write of %s would go into the reserve of %s; refused",
			e.Dir, mb(e.Free), mb(e.Write), mb(e.Reserve))
	}
	return fmt.Sprintf("disk full: %s has %s free, below the reserve of %s; writes refused until space is freed",
		e.Dir, mb(e.Free), mb(e.Reserve))
}

// Refused says the write was refused before anything was stored, so a
// coordinator knows it did not land (replication treats it as definite).
func (e *FullError) Refused() bool { return true }

// Is makes errors.Is(err, ErrDiskFull) hold.
func (e *FullError) Is(target error) bool { return target == ErrDiskFull }

func mb(n uint64) string {
	if n < 10<<20 {
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d MB", n>>20)
}

// Defaults.
const (
	// DefaultMaxReserve caps the automatic reserve: 256 MiB holds a log
	// segment's rewrite or a few memtable flushes on any engine we ship.
	DefaultMaxReserve = 256 << 20
	// defaultReservePercent of the filesystem on small ones, where 256 MiB
	// would be most of the disk.
	defaultReservePercent = 5
	// minReserve: below 1 MiB even a single large value would not fit.
	minReserve = 1 << 20
	// DefaultInterval between two readings when no write prompts one.
	DefaultInterval = time.Second
	// staleAfter is the age past which a write has the reading renewed
	// first: a filler writing 1 GB/s takes 50 MB in that time, which is
	// what the reserve is for.
	staleAfter = 50 * time.Millisecond
)

// Config configures a Monitor.
type Config struct {
	// Dir is the data directory; it need not exist yet (its nearest existing
	// parent is measured, which is on the same filesystem once it is made).
	Dir string
	// Reserve in bytes; 0 picks min(256 MiB, 5% of the filesystem), at least
	// 1 MiB.
	Reserve uint64
	// Interval between readings; 0 means DefaultInterval.
	Interval time.Duration
	// Logger receives one line per transition, never one per write.
	Logger *slog.Logger
	// Statfs measures a directory's filesystem: bytes available to this
	// process and total size. nil means the operating system's statfs; tests
	// pass their own.
	Statfs func(dir string) (avail, total uint64, err error)
}

// Monitor tracks one filesystem. Its methods are safe for concurrent use;
// Check and Full are a few atomic loads on the write path.
type Monitor struct {
	cfg Config
	// reserve is the reserve in force; auto the one New chose, which a
	// SetReserve(0) restores.
	reserve atomic.Uint64
	auto    uint64
	full    atomic.Bool
	// avail is the last reading less what Check let through since; it
	// goes negative rather than wrapping.
	avail    atomic.Int64
	measured atomic.Uint64 // the last reading itself, for metrics and errors
	// stale says the last reading is at least staleAfter old; the first
	// write that sees it reads again.
	stale   atomic.Bool
	total   atomic.Uint64
	mu      sync.Mutex // serialises readings and transitions
	lastErr error      // guarded by mu: the last statfs failure, logged once
	stop    chan struct{}
	done    chan struct{}
	kick    chan struct{}
}

// New measures the filesystem once, so that a node started on a full disk
// knows it before it serves anything, and returns the monitor; Start begins
// the periodic readings.
func New(cfg Config) (*Monitor, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Statfs == nil {
		cfg.Statfs = statfs
	}
	m := &Monitor{cfg: cfg, kick: make(chan struct{}, 1)}
	avail, total, err := cfg.Statfs(existingParent(cfg.Dir))
	if err != nil {
		return nil, fmt.Errorf("diskspace: measuring %s: %w", cfg.Dir, err)
	}
	m.auto = cfg.Reserve
	if m.auto == 0 {
		m.auto = max(min(DefaultMaxReserve, total*defaultReservePercent/100), minReserve)
	}
	m.reserve.Store(m.auto)
	m.apply(avail, total)
	return m, nil
}

// existingParent returns dir or its nearest ancestor that exists.
func existingParent(dir string) string {
	d, err := filepath.Abs(dir)
	if err != nil {
		d = dir
	}
	for {
		if _, err := os.Stat(d); err == nil {
			return d
		}
		p := filepath.Dir(d)
		if p == d {
			return d
		}
		d = p
	}
}

// Start begins reading free space every Interval until Close.
func (m *Monitor) Start() {
	m.stop, m.done = make(chan struct{}), make(chan struct{})
	go m.run()
}

func (m *Monitor) run() {
	defer close(m.done)
	tick := min(staleAfter, m.cfg.Interval)
	t := time.NewTicker(tick)
	defer t.Stop()
	idle := time.Duration(0)
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.stale.Store(true)
			if idle += tick; idle < m.cfg.Interval {
				continue
			}
		case <-m.kick:
		}
		idle = 0
		m.Refresh()
	}
}

// Close stops the readings. The last state stays readable.
func (m *Monitor) Close() {
	if m.stop != nil {
		close(m.stop)
		<-m.done
		m.stop = nil
	}
}

// Kick asks for a reading now without waiting for it: call it after a write
// failed with ENOSPC, which means the reserve was too small for what the
// engine had in flight.
func (m *Monitor) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Refresh reads free space now and updates the state.
func (m *Monitor) Refresh() {
	avail, total, err := m.cfg.Statfs(existingParent(m.cfg.Dir))
	if err != nil {
		m.mu.Lock()
		// Keep the last state: a failing statfs says nothing about space,
		// and logging each second's failure would flood the log.
		if m.lastErr == nil || m.lastErr.Error() != err.Error() {
			m.cfg.Logger.Warn("cannot measure free disk space; keeping the last reading", "dir", m.cfg.Dir, "err", err)
		}
		m.lastErr = err
		m.mu.Unlock()
		return
	}
	m.apply(avail, total)
}

// apply records a reading and makes the transition it calls for.
func (m *Monitor) apply(avail, total uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastErr = nil
	m.measured.Store(avail)
	m.total.Store(total)
	m.avail.Store(int64(min(avail, 1<<62)))
	wasFull, reserve := m.full.Load(), m.reserve.Load()
	switch {
	case !wasFull && avail < reserve:
		m.full.Store(true)
		m.cfg.Logger.Error("disk full: refusing writes until space is freed; reads go on",
			"dir", m.cfg.Dir, "free_bytes", avail, "reserve_bytes", reserve, "total_bytes", total)
	case wasFull && avail >= reserve+reserve/4:
		m.full.Store(false)
		m.cfg.Logger.Info("disk space freed: accepting writes again",
			"dir", m.cfg.Dir, "free_bytes", avail, "reserve_bytes", reserve, "total_bytes", total)
	}
}

// SetReserve changes the reserve (0: back to the one New chose) and reads
// free space at once. The fault suite makes a node's disk full this way,
// through a debug endpoint, where filling a real disk is not possible.
func (m *Monitor) SetReserve(n uint64) {
	if n == 0 {
		n = m.auto
	}
	m.reserve.Store(n)
	m.Refresh()
}

// Full reports whether writes are being refused.
func (m *Monitor) Full() bool { return m.full.Load() }

// Free returns the bytes available at the last reading.
func (m *Monitor) Free() uint64 { return m.measured.Load() }

// Total returns the filesystem's size at the last reading.
func (m *Monitor) Total() uint64 { return m.total.Load() }

// Reserve returns the reserve in bytes.
func (m *Monitor) Reserve() uint64 { return m.reserve.Load() }

// Err returns the error a write gets while the disk is full, nil otherwise.
func (m *Monitor) Err() error {
	if !m.full.Load() {
		return nil
	}
	return &FullError{Dir: m.cfg.Dir, Free: m.measured.Load(), Reserve: m.reserve.Load()}
}

// Check admits a write of about size bytes or refuses it with a *FullError.
// It charges size against the last reading; once the writes let through
// since then could have reached the reserve, it reads again before it
// answers, so the reserve holds between two ticks whatever the write rate.
func (m *Monitor) Check(size int) error {
	if m.stale.Load() && m.stale.CompareAndSwap(true, false) {
		m.Refresh() // one writer reads again; the others go on with the last reading
	}
	if m.full.Load() {
		return m.Err()
	}
	if m.avail.Add(-int64(size)) >= int64(m.reserve.Load()) {
		return nil
	}
	m.Refresh()
	if m.full.Load() {
		return m.Err()
	}
	// Admitted against a fresh reading: charge it there.
	if reserve := m.reserve.Load(); m.avail.Add(-int64(size)) < int64(reserve) {
		// Space for the reserve but not for this write on top of it: refuse
		// this one alone; the disk is not full for smaller writes.
		m.avail.Add(int64(size))
		return &FullError{Dir: m.cfg.Dir, Free: m.measured.Load(), Reserve: reserve, Write: uint64(size)}
	}
	return nil
}
