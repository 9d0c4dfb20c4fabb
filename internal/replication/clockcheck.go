package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/apitypes"
	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/peermethod"
)

// MethodTime asks a replica for its wall clock: → 8 bytes, unix nanoseconds.
// The clock check measures each peer's offset with it.
const MethodTime = peermethod.Time

// ClockCheckConfig configures a ClockCheck.
type ClockCheckConfig struct {
	// Interval between rounds of clock readings from every live peer. One
	// second: a clock that jumps is seen within a few seconds, at the cost
	// of one tiny request per peer per second.
	Interval time.Duration
	// Threshold is how far from its peers' clocks a node's clock may be,
	// beyond the measurement's uncertainty, before it stops coordinating
	// writes. Default 80% of the guard's maximum skew: the node steps back
	// before its versions are far enough ahead for the other replicas to
	// refuse them, which would leave writes half applied.
	Threshold time.Duration
	Logger    *slog.Logger
	// Registerer receives ringkv_clock_offset_seconds{peer},
	// ringkv_clock_skewed and ringkv_clock_guard_refused_total.
	Registerer prometheus.Registerer
}

// ClockCheck measures this node's clock against its live peers' and, while
// it is further from a majority of them than the threshold, makes the
// coordinator refuse writes (clock.ErrSkewed) and the guard measure versions
// against the peers' time. It resumes by itself once the clock is back.
// Reads go on: they stamp nothing, and the guard keeps the versions a
// skewed clock stamped out of their answers.
type ClockCheck struct {
	cfg   ClockCheckConfig
	c     *Coordinator
	guard *clock.Guard
	est   *clock.Estimator
	jump  *clock.JumpDetector
	kick  chan struct{} // a round now: the jump detector fired
	log   *slog.Logger
	m     *clockMetrics

	state atomic.Pointer[clock.Assessment]
	// mu serializes apply: the loop and a test's Round may both call it.
	mu sync.Mutex
	// Logging is bounded: a state change is logged at once unless the last
	// log line is younger than logEvery, refusals once per logEvery.
	lastLog     time.Duration
	lastRefused uint64
	lastSkewed  bool

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// logEvery bounds how often the clock check logs.
const logEvery = 10 * time.Second

// NewClockCheck returns a clock check for c, which must have been built with
// a guard (Config.Guard). Nothing runs until Start.
func NewClockCheck(cfg ClockCheckConfig, c *Coordinator) (*ClockCheck, error) {
	if c.cfg.Guard == nil {
		return nil, errors.New("replication: a clock check needs the coordinator's guard")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Threshold <= 0 {
		cfg.Threshold = c.cfg.Guard.MaxSkew() * 4 / 5
	}
	if cfg.Logger == nil {
		cfg.Logger = c.log
	}
	k := &ClockCheck{
		cfg: cfg, c: c, guard: c.cfg.Guard,
		// The latest sample alone: a round judges the clocks as they are
		// now, so that a jump, or a clock coming back, is seen in one
		// round. Queueing on a trip only widens that sample's uncertainty,
		// which Assess allows for.
		est:  clock.NewEstimator(1, 5*cfg.Interval),
		jump: clock.NewJumpDetector(cfg.Threshold),
		kick: make(chan struct{}, 1),
		log:  cfg.Logger.With("component", "clockcheck"),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	c.clockCheck.Store(k)
	c.cfg.Guard.TrustOwn(c.hlc)
	k.state.Store(&clock.Assessment{})
	k.m = newClockMetrics(cfg.Registerer, k.guard)
	return k, nil
}

// Start begins the rounds.
func (k *ClockCheck) Start() {
	go k.run()
}

// Shutdown stops the rounds and lets writes through again.
func (k *ClockCheck) Shutdown(ctx context.Context) error {
	k.once.Do(func() { close(k.stop) })
	select {
	case <-k.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// State returns the latest assessment of this node's clock.
func (k *ClockCheck) State() clock.Assessment { return *k.state.Load() }

// Threshold returns the offset beyond which the node refuses writes.
func (k *ClockCheck) Threshold() time.Duration { return k.cfg.Threshold }

// Err is the reason this node refuses writes, nil when it does not.
func (k *ClockCheck) Err() error { return k.State().Err() }

// Status reports the clock as GET /v1/clock answers it: the latest
// assessment, the thresholds, and what the guard refused.
func (k *ClockCheck) Status() apitypes.ClockStatus {
	a := k.State()
	st := apitypes.ClockStatus{
		Skewed: a.Skewed, OffsetMS: a.Offset.Milliseconds(),
		ThresholdMS: k.cfg.Threshold.Milliseconds(), MaxClockSkewMS: k.guard.MaxSkew().Milliseconds(),
		GuardRefused: k.guard.Refused(), Peers: []apitypes.PeerClockStatus{},
	}
	if err := a.Err(); err != nil {
		st.Error = err.Error()
	}
	for _, p := range a.Peers {
		st.Peers = append(st.Peers, apitypes.PeerClockStatus{Peer: p.Peer, OffsetMS: p.Offset.Milliseconds(), UncertaintyMS: ceilMS(p.Uncertainty)})
	}
	return st
}

// ceilMS rounds up, so that a sub-millisecond uncertainty does not read as
// none.
func ceilMS(d time.Duration) int64 { return int64((d + time.Millisecond - 1) / time.Millisecond) }

func (k *ClockCheck) run() {
	defer close(k.done)
	t := time.NewTicker(k.cfg.Interval)
	defer t.Stop()
	for {
		k.Round(context.Background())
		select {
		case <-k.stop:
			k.c.clockCheck.Store(nil)
			k.c.setWriteGate(nil)
			return
		case <-t.C:
		case <-k.kick:
		}
	}
}

// Round reads every live peer's clock once and reassesses this node's; the
// loop calls it every Interval, and tests may call it directly.
func (k *ClockCheck) Round(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, min(k.cfg.Interval, k.c.cfg.RequestTimeout))
	defer cancel()
	gap := clock.Gap(k.c.hlc.Wall())
	var peers []string
	var wg sync.WaitGroup
	for _, r := range k.c.topo.Nodes() {
		if r.ID == k.c.cfg.NodeID || !r.Up {
			continue
		}
		peers = append(peers, r.ID)
		wg.Go(func() {
			s, err := k.c.ReadPeerClock(ctx, r.Addr)
			if err != nil {
				k.m.probeErrors.Inc()
				return
			}
			k.est.Observe(r.ID, s)
		})
	}
	wg.Wait()
	a := clock.Assess(k.est.Estimates(peers, clock.Mono(), clock.Gap(k.c.hlc.Wall())), k.cfg.Threshold)
	k.apply(&a, gap)
}

// jumped is the coordinator's check before a write: an error if the wall
// clock stepped since the last round that found it right, and then a round
// at once to confirm it.
func (k *ClockCheck) jumped(mono time.Duration) error {
	d := k.jump.JumpedAt(k.c.hlc.Wall(), mono)
	if d == 0 {
		return nil
	}
	select {
	case k.kick <- struct{}{}:
	default:
	}
	return clock.JumpErr(d)
}

// apply publishes an assessment made from samples taken after the clock
// read gap (clock.Gap): the write gate, the guard, the jump detector,
// metrics, logs.
func (k *ClockCheck) apply(a *clock.Assessment, gap int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if a.Measured > 0 && abs64(clock.Gap(k.c.hlc.Wall())-gap) > int64(k.cfg.Threshold) {
		// The clock stepped during the round: its samples may be from
		// either side of the step, and a correction measured before it
		// but recorded after it would be off by the step until the next
		// round (the guard's correction follows steps from the moment it
		// is set). Keep what is in force, which follows the step, and
		// measure again at once.
		select {
		case k.kick <- struct{}{}:
		default:
		}
		return
	}
	k.state.Store(a)
	k.guard.SetCorrection(a.Correction)
	k.guard.SetAlone(a.Measured == 0)
	// Only with peers that agree with the wall clock: their guards refuse
	// every version the rewind lets this node stamp again. A node alone
	// keeps its HLC monotonic through any step of its clock.
	if !a.Skewed && a.Measured > 0 && k.c.hlc.Rewind(k.guard.MaxSkew()) {
		// The clock ran ahead and came back; see HLC.Rewind.
		k.log.Warn("clock came back from ahead of its peers: versions are stamped from the wall clock again")
	}
	switch {
	case a.Skewed:
		// The gate refuses writes; the detector's base stays that of the
		// last good clock.
	case a.Measured == 0:
		// No peer to agree with: a node alone follows its clock wherever
		// it steps, its HLC keeping its versions in order.
		k.jump.Disarm()
	case abs64(clock.Gap(k.c.hlc.Wall())-gap) <= int64(k.cfg.Threshold):
		// The peers agree with the clock as it read before the samples,
		// and it has not stepped since: the detector's new base.
		k.jump.Arm(gap)
	}
	k.c.setWriteGate(a.Err())
	k.m.set(a)

	now := clock.Mono()
	quiet := k.lastLog != 0 && now-k.lastLog < logEvery
	if a.Skewed != k.lastSkewed && !quiet {
		k.lastSkewed, k.lastLog = a.Skewed, now
		if a.Skewed {
			k.log.Error("clock skew: this node's clock is off from its peers'; refusing to coordinate writes",
				"offset", clock.Round(a.Offset), "threshold", k.cfg.Threshold, "peers_off", a.Off, "peers_measured", a.Measured)
		} else {
			k.log.Info("clock back within the guard; coordinating writes again", "offset", clock.Round(a.Offset))
		}
	}
	if n := k.guard.Refused(); n != k.lastRefused && (now-k.lastLog >= logEvery || k.lastLog == 0) {
		k.log.Warn("refused records stamped too far ahead of this node's clock", "refused", n-k.lastRefused,
			"max_clock_skew", k.guard.MaxSkew(), "correction", clock.Round(k.guard.Correction()))
		k.lastRefused, k.lastLog = n, now
	}
}

// ReadPeerClock reads the wall clock of the peer at addr once.
func (c *Coordinator) ReadPeerClock(ctx context.Context, addr string) (clock.Sample, error) {
	wall := c.hlc.Wall()
	gap := clock.Gap(wall)
	sent, start := wall.Now(), clock.Mono()
	resp, err := c.net.Call(ctx, addr, MethodTime, nil)
	rtt := clock.Mono() - start
	if err != nil {
		return clock.Sample{}, err
	}
	if len(resp) != 8 {
		return clock.Sample{}, errWire
	}
	peer := time.Unix(0, int64(binary.BigEndian.Uint64(resp)))
	s := clock.Measure(sent, peer, rtt, start+rtt)
	s.Gap = gap
	return s, nil
}

// serveTime answers MethodTime.
func (c *Coordinator) serveTime() []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(c.hlc.Wall().Now().UnixNano()))
}

// writeGate holds the error writes are refused with, nil when they are not.
type writeGate struct{ err error }

func (c *Coordinator) setWriteGate(err error) {
	if err == nil {
		c.gate.Store(nil)
		return
	}
	c.gate.Store(&writeGate{err: err})
}

// writeRefused returns why this node refuses to coordinate a write, nil
// when it does not: two atomic loads and a wall clock reading on every
// write. mono is the write's start (clock.Mono), read just before.
func (c *Coordinator) writeRefused(mono time.Duration) error {
	if g := c.gate.Load(); g != nil {
		return g.err
	}
	if k := c.clockCheck.Load(); k != nil {
		return k.jumped(mono)
	}
	return nil
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// sometimes says yes at most once per interval: bounded logging for what
// can happen on every request.
type sometimes struct{ last atomic.Int64 } // Mono of the last yes, +1

func (s *sometimes) allow(every time.Duration) bool {
	now := int64(clock.Mono()) + 1
	last := s.last.Load()
	if last != 0 && now-last < int64(every) {
		return false
	}
	return s.last.CompareAndSwap(last, now)
}
