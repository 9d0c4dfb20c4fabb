package hotkeys

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/ring"
)

// Config configures a Tracker. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// Window is the span rates are measured over.
	Window time.Duration
	// Buckets is the number of sub-windows the window slides by.
	Buckets int
	// K is the number of keys Top reports; 4×K candidates are counted exactly.
	K int
	// MinRate is the rate (requests/s) at which a top-K key counts as hot for
	// IsHot.
	MinRate float64
	// RefreshInterval is how often Start's loop rotates buckets and publishes
	// a new snapshot; Top and IsHot are at most this old.
	RefreshInterval time.Duration
	// SketchBlocks is the width of each sub-window's sketch in 64-byte blocks;
	// rounded up to a power of two.
	SketchBlocks int

	Clock      clock.Clock
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// DefaultConfig returns the configuration a node runs with.
func DefaultConfig() Config {
	return Config{
		// Long enough that a key's rate is not one burst, short enough that an
		// operator sees a new hot key within seconds and an old one drops out.
		Window: 10 * time.Second,
		// 1 s steps: the window forgets in tenths, and ten sketch planes cost
		// 0.7 MiB with the default width.
		Buckets: 10,
		// A hundred keys is a screenful in `ringkv hotkeys` and more than any
		// mitigation needs.
		K: 100,
		// Below a hundred requests a second one key costs a replica nothing
		// worth spreading or caching.
		MinRate: 100,
		// Four snapshots a second: a new hot key is found in well under a
		// second, and a refresh (a few hundred candidates) costs microseconds.
		RefreshInterval: 250 * time.Millisecond,
		// 1024 blocks = 4096 cells per row: at 100k requests per sub-window of
		// mostly tail keys a cell carries ~25 colliding requests, far below
		// any rate worth reporting.
		SketchBlocks: 1024,
		Clock:        clock.System{},
	}
}

func (c *Config) setDefaults() {
	d := DefaultConfig()
	if c.Window <= 0 {
		c.Window = d.Window
	}
	if c.Buckets <= 0 {
		c.Buckets = d.Buckets
	}
	if c.K <= 0 {
		c.K = d.K
	}
	if c.MinRate <= 0 {
		c.MinRate = d.MinRate
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = d.RefreshInterval
	}
	if c.SketchBlocks <= 0 {
		c.SketchBlocks = d.SketchBlocks
	}
	c.SketchBlocks = 1 << bits.Len(uint(c.SketchBlocks-1))
	if c.Clock == nil {
		c.Clock = d.Clock
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// KeyRate is one key's standing in the window. `ringkv hotkeys` reads it, so
// its shape is declared with the other bodies in apitypes.
type KeyRate = apitypes.KeyRate

// Tracker finds the top keys by request rate over a sliding window. Observe,
// ObserveHashed, IsHot and Top are safe for concurrent use and never block on
// Refresh; Refresh serialises with itself.
type Tracker struct {
	cfg    Config
	span   time.Duration // one sub-window
	slots  int           // Buckets+1: the window plus the one being cleared
	maxCnd int
	log    *slog.Logger
	m      *trackerMetrics

	// Read on every Observe.
	cur         atomic.Uint32 // slot receiving counts
	admit       atomic.Uint32 // sketch estimate (current slot) to become a candidate
	pendingFull atomic.Bool
	snap        atomic.Pointer[snapshot]
	planes      []plane

	pmu     sync.Mutex
	pending map[string]uint64 // admitted since the last refresh: key → hash

	mu struct {
		sync.Mutex
		start    time.Time
		curStart time.Time
		cands    map[string]*candidate
	}

	stop chan struct{}
	done chan struct{}
}

// candidate is a key counted exactly, one counter per slot.
type candidate struct {
	key    string
	h      uint64
	counts []atomic.Uint64
	est    uint64 // window count at the last refresh; guarded by Tracker.mu
}

// snapshot is what a refresh publishes: immutable once stored.
type snapshot struct {
	table  []entry // open addressing, len a power of two, at least half empty
	mask   uint64
	top    []KeyRate
	rate   float64 // all requests per second in the window
	window time.Duration
}

// entry is a table slot. It repeats its candidate's hash so that a probe
// passing other candidates compares hashes in the table and follows the
// pointer only on a match: every request probes, and under a load with no
// hot keys the candidates it passed were a cache miss each, 3% of a single
// node's CPU under pipelined GETs.
type entry struct {
	h   uint64
	c   *candidate
	hot bool
}

func (s *snapshot) find(h uint64, key []byte) *entry {
	if len(s.table) == 0 {
		return nil
	}
	for i := h & s.mask; ; i = (i + 1) & s.mask {
		e := &s.table[i]
		if e.c == nil {
			return nil
		}
		if e.h == h && e.c.key == string(key) {
			return e
		}
	}
}

// NewTracker builds a tracker; it counts at once, and its snapshot (Top, IsHot)
// advances on Refresh, which Start calls periodically.
func NewTracker(cfg Config) (*Tracker, error) {
	cfg.setDefaults()
	// Sub-windows finer than a millisecond would rotate faster than any
	// refresh loop runs, so most of the window would never be counted.
	if cfg.Window/time.Duration(cfg.Buckets) < time.Millisecond {
		return nil, fmt.Errorf("hotkeys: window %v split into %d buckets is finer than 1ms", cfg.Window, cfg.Buckets)
	}
	t := &Tracker{
		cfg:     cfg,
		span:    cfg.Window / time.Duration(cfg.Buckets),
		slots:   cfg.Buckets + 1,
		maxCnd:  4 * cfg.K,
		log:     cfg.Logger.With("component", "hotkeys"),
		pending: make(map[string]uint64),
	}
	t.planes = make([]plane, t.slots)
	for i := range t.planes {
		t.planes[i] = newPlane(cfg.SketchBlocks)
	}
	now := cfg.Clock.Now()
	t.mu.start, t.mu.curStart = now, now
	t.mu.cands = make(map[string]*candidate)
	t.admit.Store(1)
	t.snap.Store(&snapshot{})
	m, err := newTrackerMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	t.m = m
	return t, nil
}

// Config returns the tracker's configuration with defaults applied.
func (t *Tracker) Config() Config { return t.cfg }

// Start refreshes the snapshot every RefreshInterval until Shutdown.
func (t *Tracker) Start() error {
	if t.stop != nil {
		return errors.New("hotkeys: tracker already started")
	}
	t.stop, t.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(t.done)
		tick := time.NewTicker(t.cfg.RefreshInterval)
		defer tick.Stop()
		for {
			select {
			case <-t.stop:
				return
			case <-tick.C:
				t.Refresh()
			}
		}
	}()
	return nil
}

// Shutdown stops the refresh loop. Observe keeps working (it only counts).
func (t *Tracker) Shutdown(ctx context.Context) error {
	if t.stop == nil {
		return nil
	}
	select {
	case <-t.done:
		return nil
	default:
	}
	close(t.stop)
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Observe counts one request for key. It does not retain key. Safe for
// concurrent use; it allocates only when a key becomes a candidate.
func (t *Tracker) Observe(key []byte) { t.ObserveHashed(ring.Token(key), key) }

// ObserveHashed is Observe for a caller that already has the key's ring token
// (ring.Token(key): its hash slot above 50 bits of xxhash64, the bits the
// sketch and the table use), saving the hash. It returns IsHotHashed(h, key)
// as well: both look the key up in the same table, and a coordinator wants
// both for every request.
func (t *Tracker) ObserveHashed(h uint64, key []byte) (hot bool) {
	slot := t.cur.Load()
	if e := t.snap.Load().find(h, key); e != nil {
		e.c.counts[slot].Add(1)
		return e.hot
	}
	if t.planes[slot].add(h) < t.admit.Load() || t.pendingFull.Load() {
		return false
	}
	t.pmu.Lock()
	if _, ok := t.pending[string(key)]; !ok {
		if len(t.pending) >= t.maxCnd {
			t.pendingFull.Store(true)
		} else {
			t.pending[string(key)] = h
		}
	}
	t.pmu.Unlock()
	return false
}

// IsHot reports whether key is among the top K with a rate of at least
// MinRate, as of the last refresh. It is a lock-free table lookup.
func (t *Tracker) IsHot(key []byte) bool { return t.IsHotHashed(ring.Token(key), key) }

// IsHotHashed is IsHot with the key's ring token already computed.
func (t *Tracker) IsHotHashed(h uint64, key []byte) bool {
	e := t.snap.Load().find(h, key)
	return e != nil && e.hot
}

// Top returns up to n of the top keys, highest rate first, as of the last
// refresh; n <= 0 means all K. The slice is the caller's.
func (t *Tracker) Top(n int) []KeyRate {
	top := t.snap.Load().top
	if n <= 0 || n > len(top) {
		n = len(top)
	}
	return slices.Clone(top[:n])
}

// Totals returns the rate of all requests in the window and the span of the
// window measured so far, as of the last refresh.
func (t *Tracker) Totals() (rate float64, window time.Duration) {
	s := t.snap.Load()
	return s.rate, s.window
}

// Refresh slides the window to the clock's now, re-ranks the candidates and
// publishes a new snapshot for Top and IsHot.
func (t *Tracker) Refresh() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Clock.Now()
	t.rotateLocked(now)

	// Take the keys admitted since the last refresh.
	t.pmu.Lock()
	pending := t.pending
	t.pending = make(map[string]uint64, len(pending))
	t.pendingFull.Store(false)
	t.pmu.Unlock()
	for k, h := range pending {
		if _, ok := t.mu.cands[k]; !ok {
			t.mu.cands[k] = &candidate{key: k, h: h, counts: make([]atomic.Uint64, t.slots)}
		}
	}

	cur := int(t.cur.Load())
	window := t.windowSlots(cur)
	var total uint64
	for _, s := range window {
		total += t.planes[s].total()
	}
	ranked := make([]*candidate, 0, len(t.mu.cands))
	for _, c := range t.mu.cands {
		var exact uint64
		for _, s := range window {
			exact += c.counts[s].Load()
		}
		total += exact
		c.est = exact + t.sketchEstimate(c.h, window)
		ranked = append(ranked, c)
	}
	slices.SortFunc(ranked, func(a, b *candidate) int {
		if c := cmp.Compare(b.est, a.est); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	})
	// Drop what no longer ranks, and idle keys, folding their exact counts
	// back into the sketch so a returning key is judged on its whole window.
	keep := len(ranked)
	for keep > 0 && ranked[keep-1].est == 0 {
		keep--
	}
	keep = min(keep, t.maxCnd)
	for _, c := range ranked[keep:] {
		delete(t.mu.cands, c.key)
		for s := range t.slots {
			if n := c.counts[s].Load(); n > 0 {
				t.planes[s].addN(c.h, n)
			}
		}
	}
	ranked = ranked[:keep]

	covered := now.Sub(t.mu.curStart) + time.Duration(t.cfg.Buckets-1)*t.span
	covered = min(covered, now.Sub(t.mu.start))
	covered = max(covered, time.Millisecond)
	secs := covered.Seconds()

	// A key joins the candidates once its count in the current sub-window
	// reaches what the weakest candidate averages per sub-window; until the
	// candidates are full, any key may join.
	admit := uint64(1)
	if keep == t.maxCnd {
		// While less than a sub-window has passed, the current one is the
		// whole window.
		admit = max(1, uint64(float64(ranked[keep-1].est)*min(1, t.span.Seconds()/secs)))
	}
	t.admit.Store(uint32(min(admit, uint64(^uint32(0)))))

	snap := &snapshot{rate: float64(total) / secs, window: covered}
	size := 1 << bits.Len(uint(2*len(ranked)))
	snap.table, snap.mask = make([]entry, size), uint64(size-1)
	nTop := min(len(ranked), t.cfg.K)
	snap.top = make([]KeyRate, nTop)
	hot := 0
	for i, c := range ranked {
		isHot := false
		if i < nTop {
			kr := KeyRate{Key: c.key, Rate: float64(c.est) / secs}
			if total > 0 {
				kr.Share = float64(c.est) / float64(total)
			}
			isHot = kr.Rate >= t.cfg.MinRate
			kr.Hot = isHot
			snap.top[i] = kr
		}
		if isHot {
			hot++
		}
		j := c.h & snap.mask
		for snap.table[j].c != nil {
			j = (j + 1) & snap.mask
		}
		snap.table[j] = entry{h: c.h, c: c, hot: isHot}
	}
	t.snap.Store(snap)
	t.m.update(snap, len(ranked), hot)
}

// rotateLocked advances the current slot to now, clearing each slot as it
// leaves the window so it is empty when it becomes current again.
func (t *Tracker) rotateLocked(now time.Time) {
	for i := 0; now.Sub(t.mu.curStart) >= t.span && i < t.slots; i++ {
		next := (int(t.cur.Load()) + 1) % t.slots
		t.cur.Store(uint32(next))
		t.mu.curStart = t.mu.curStart.Add(t.span)
		t.clearSlotLocked((next + 1) % t.slots)
	}
	// Idle for more than a whole window: every slot is clear already.
	if behind := now.Sub(t.mu.curStart); behind >= t.span {
		t.mu.curStart = now.Add(-(behind % t.span))
	}
}

func (t *Tracker) clearSlotLocked(s int) {
	t.planes[s].clear()
	for _, c := range t.mu.cands {
		c.counts[s].Store(0)
	}
}

// windowSlots lists the slots in the window: the current one and the
// Buckets-1 before it.
func (t *Tracker) windowSlots(cur int) []int {
	w := make([]int, t.cfg.Buckets)
	for i := range w {
		w[i] = (cur - i + t.slots) % t.slots
	}
	return w
}

// sketchEstimate is h's count-min estimate over the window: per row, the sum
// of its cells over the window's planes; then the smallest row.
func (t *Tracker) sketchEstimate(h uint64, window []int) uint64 {
	est := ^uint64(0)
	for r := range sketchRows {
		var sum uint64
		for _, s := range window {
			p := &t.planes[s]
			sum += uint64(p.cells[p.cellIndex(h, r)].Load())
		}
		est = min(est, sum)
	}
	return est
}
