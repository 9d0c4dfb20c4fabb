package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/diskspace"
	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/replication"
	"github.com/ringkv/ringkv/internal/storage"
)

// diskState is the data disk's guard: a monitor of its free space whose
// verdict every stored write passes (storage.Options.Guard). Nil monitor: an
// in-memory node, or a platform where free space cannot be measured.
type diskState struct {
	mon *diskspace.Monitor
	// hintsDropped counts hints not stored because the disk was full.
	hintsDropped prometheus.Counter
}

// recordOverhead approximates what the engine stores beside a record's key
// and value (version, expiry, framing, index entries): the reserve absorbs
// the error, the estimate only has to keep a burst from running through it.
const recordOverhead = 64

// startDiskGuard measures the data disk before storage opens, so that a node
// restarted on a full disk refuses writes from its first request on.
func (s *Server) startDiskGuard() error {
	if s.cfg.InMemory {
		return nil
	}
	mon, err := diskspace.New(diskspace.Config{
		Dir: s.cfg.DataDir, Reserve: uint64(s.cfg.DiskReserve),
		Logger: s.log.With("component", "diskspace"),
	})
	if err != nil {
		// Refusing to start over a missing measurement would take a node
		// down for want of a safeguard; run without it and say so.
		s.log.Warn("free disk space is not watched; a full disk will fail writes with the engine's own errors", "err", err)
		return nil
	}
	s.disk.mon = mon
	s.disk.hintsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "ringkv", Name: "disk_full_hints_dropped_total",
		Help: "Hints this coordinator did not store because its data disk was full; anti-entropy repairs their targets.",
	})
	s.reg.MustRegister(s.disk.hintsDropped,
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
	if mon.Full() {
		s.log.Error("starting on a full disk: reads are served, writes refused until space is freed",
			"dir", s.cfg.DataDir, "free_bytes", mon.Free(), "reserve_bytes", mon.Reserve())
	}
	mon.Start()
	return nil
}

func (s *Server) stopDiskGuard() {
	if s.disk.mon != nil {
		s.disk.mon.Close()
	}
}

// diskGuard is the disk's half of the storage write guard (storeGuard): it
// refuses every write, whatever path brought it (client, read repair, hint,
// anti-entropy, stream), while the disk is full. Deletes are refused too: a
// tombstone takes log space and frees none until a compaction, which itself
// needs the reserve.
func (s *Server) diskGuard(w storage.Guarded) error {
	if s.disk.mon == nil {
		return nil
	}
	return s.disk.mon.Check(w.Bytes + recordOverhead)
}

// diskReady is the readiness check for the data disk: a node that refuses
// writes cannot serve its share of QUORUM writes.
func (s *Server) diskReady() error {
	if s.disk.mon == nil {
		return nil
	}
	if err := s.disk.mon.Err(); err != nil {
		return &notReady{reason: reasonDisk, err: err}
	}
	return nil
}

// guardHints keeps hints off a full disk: the hint queue writes to the store
// directly, not through the write guard, and a hint is what a coordinator
// may drop (its queue already does when it is over --max-hint-bytes), since
// anti-entropy repairs the target.
func (s *Server) guardHints(h replication.Hinter) replication.Hinter {
	if s.disk.mon == nil {
		return h
	}
	return diskHints{h: h, s: s}
}

type diskHints struct {
	h replication.Hinter
	s *Server
}

func (d diskHints) Hint(target string, key []byte, rec *record.Record) {
	// The hint queue stores without the write guard, so it checks here.
	if d.s.disk.mon.Check(len(key)+len(rec.Value)+recordOverhead) != nil {
		d.s.disk.hintsDropped.Inc()
		return
	}
	d.h.Hint(target, key, rec)
}
