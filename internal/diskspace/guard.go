package diskspace

import "github.com/prometheus/client_golang/prometheus"

// recordOverhead approximates what the engine stores beside a record's key
// and value (version, expiry, framing, index entries): the reserve absorbs
// the error, the estimate only has to keep a burst from running through it.
const recordOverhead = 64

// Guard is a node's data-disk guard: a Monitor whose verdict every stored
// write passes, whatever path brought it (client, read repair, hint,
// anti-entropy, stream), with the metrics that show it. A nil *Guard guards
// nothing: an in-memory node, or one whose free space cannot be measured.
type Guard struct {
	mon *Monitor
	// hintsDropped counts hints not stored because the disk was full.
	hintsDropped prometheus.Counter
}

// NewGuard measures the disk of cfg.Dir, registers the disk metrics with reg
// and starts the readings: a node restarted on a full disk then refuses
// writes from its first request on. When free space cannot be measured it
// logs why and returns nil: refusing to start for want of a safeguard would
// take a node down, and the engine's own errors still stop writes on a full
// disk.
func NewGuard(cfg Config, reg prometheus.Registerer) *Guard {
	mon, err := New(cfg)
	if err != nil {
		if cfg.Logger != nil {
			cfg.Logger.Warn("free disk space is not watched; a full disk will fail writes with the engine's own errors", "err", err)
		}
		return nil
	}
	g := &Guard{mon: mon, hintsDropped: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "ringkv", Name: "disk_full_hints_dropped_total",
		Help: "Hints this coordinator did not store because its data disk was full; anti-entropy repairs their targets.",
	})}
	if reg != nil {
		reg.MustRegister(g.hintsDropped,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: "ringkv", Name: "disk_full",
				Help: "1 while the data disk's free space is below --disk-reserve and writes are refused, else 0.",
			}, func() float64 {
				if mon.Full() {
					return 1
				}
				return 0
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: "ringkv", Name: "disk_free_bytes",
				Help: "Bytes available to the node on the data disk at the last reading.",
			}, func() float64 { return float64(mon.Free()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: "ringkv", Name: "disk_reserve_bytes",
				Help: "Free space below which the data disk counts as full.",
			}, func() float64 { return float64(mon.Reserve()) }),
		)
	}
	if mon.Full() {
		mon.cfg.Logger.Error("starting on a full disk: reads are served, writes refused until space is freed",
			"dir", cfg.Dir, "free_bytes", mon.Free(), "reserve_bytes", mon.Reserve())
	}
	mon.Start()
	return g
}

// Close stops the readings.
func (g *Guard) Close() {
	if g != nil {
		g.mon.Close()
	}
}

// Monitor is the guard's monitor, nil for a nil guard.
func (g *Guard) Monitor() *Monitor {
	if g == nil {
		return nil
	}
	return g.mon
}

// Check admits the storing of a record of about size bytes (key and value)
// or refuses it while the disk is full. Deletes are refused too: a tombstone
// takes log space and frees none until a compaction, which itself needs the
// reserve.
func (g *Guard) Check(size int) error {
	if g == nil {
		return nil
	}
	return g.mon.Check(size + recordOverhead)
}

// Err is the disk's readiness: the error writes get while the disk is full,
// nil otherwise. A node that refuses writes cannot serve its share of QUORUM
// writes.
func (g *Guard) Err() error {
	if g == nil {
		return nil
	}
	return g.mon.Err()
}

// AdmitHint reports whether a hint of about size bytes may be stored, and
// counts the ones that may not. The hint queue writes to the store without
// the write guard, and a hint is what a coordinator may drop (its queue
// already does past --max-hint-bytes), since anti-entropy repairs the
// target.
func (g *Guard) AdmitHint(size int) bool {
	if g == nil {
		return true
	}
	if g.Check(size) != nil {
		g.hintsDropped.Inc()
		return false
	}
	return true
}
