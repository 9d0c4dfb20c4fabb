package storage

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is a point-in-time snapshot of the store's counters and Pebble's
// state, for the admin endpoints and status command.
type Metrics struct {
	// Engine is the engine's name (EngineMemory, EnginePebble).
	Engine string
	// MemoryBytes is the memory the data holds: the memory engine's index
	// and records, Pebble's memtables and block cache. MaxMemoryBytes is
	// Options.MaxMemory (0: no limit); OOMRefused counts the writes it
	// refused.
	MemoryBytes, MaxMemoryBytes int64
	OOMRefused                  uint64
	// The memory engine's log: its size on disk (snapshot and segments),
	// the live bytes it would shrink to, the compactions done and the
	// bytes they wrote, whether one runs now, and write errors.
	LogBytes, LogLiveBytes              int64
	LogCompactions, LogCompactionBytes  uint64
	LogCompacting                       bool
	LogWriteErrors, LogCompactionErrors uint64
	LogTornTailsTruncated, LogSalvaged  uint64
	// Records estimates stored records, tombstones included (see ApproxCount).
	Records int64
	// Applies counts writes that were stored; StaleApplies those refused
	// because the stored record was as new or newer; DeadDropped dead records
	// (tombstones, expired values) that arrived past their GC deadline for a
	// key with nothing stored, and so were not stored at all.
	Applies, StaleApplies, DeadDropped uint64
	// Expired counts live records converted to tombstones at expiry; GCPurged
	// tombstones removed after GCGrace; StaleIndexEntries deadline index
	// entries dropped because their record had changed since.
	Expired, GCPurged, StaleIndexEntries uint64
	// SyncErrors counts failed periodic WAL syncs.
	SyncErrors uint64
	// FlushPurged counts records removed below the flush barrier
	// (FLUSHALL); FlushDropped writes that arrived below it, not stored.
	FlushPurged, FlushDropped uint64
	// BackgroundJobsLowered counts the flushes and compactions that ran at
	// low CPU priority (Options.LowPriorityBackground); BackgroundLowerErrors
	// those whose thread's priority could not be lowered, and ran at the
	// node's.
	BackgroundJobsLowered, BackgroundLowerErrors uint64
	// RowCacheComplete is true while every stored record is in the row
	// cache, so that reads of absent keys and writes of new ones skip
	// Pebble; the first eviction ends it until a restart.
	RowCacheComplete bool
	// Row cache lookups that found the record, that did not, and entries
	// evicted to stay within RowCacheSize.
	RowCacheHits, RowCacheMisses, RowCacheEvictions uint64

	// DiskUsageBytes is what the data directory occupies on disk (allocated
	// blocks, as du counts them), measured at most every 10 s; 0 for a
	// store kept in memory.
	DiskUsageBytes uint64

	// Pebble's own figures.
	MemTableBytes    uint64
	BlockCacheBytes  int64
	BlockCacheHits   int64
	BlockCacheMisses int64
	Flushes          int64
	Compactions      int64
	CompactionDebt   uint64
	ReadAmp          int
}

// counters are the store's own monotonic counters.
type counters struct {
	applies, staleApplies, deadDropped atomic.Uint64
	expired, gcPurged, staleIndex      atomic.Uint64
	syncErrors, oomRefused             atomic.Uint64
	bgLowered, bgLowerErrors           atomic.Uint64
	flushPurged, flushDropped          atomic.Uint64
}

// collector exports Metrics to Prometheus. It takes one snapshot per scrape,
// because each Pebble metrics read takes the DB mutex.
type collector struct {
	s     *Store
	descs map[string]*prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

func newCollector(s *Store) *collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("ringkv", "storage", name), help, nil, nil)
	}
	return &collector{s: s, descs: map[string]*prometheus.Desc{
		"records":            d("records", "Estimated number of stored records, tombstones included."),
		"memory":             d("memory_bytes", "Memory the stored data holds (memory engine: index and records; pebble: memtables and block cache)."),
		"max_memory":         d("max_memory_bytes", "The --max-memory limit; 0 when unlimited."),
		"oom_refused":        d("oom_refused_total", "Writes refused because used memory was past --max-memory."),
		"log_bytes":          d("log_bytes", "Size of the memory engine's log: snapshot and segments."),
		"log_live":           d("log_live_bytes", "Bytes the memory engine's log would hold after a compaction."),
		"log_compactions":    d("log_compactions_total", "Log compactions completed."),
		"log_compacted":      d("log_compaction_written_bytes_total", "Bytes written by log compactions."),
		"log_compacting":     d("log_compacting", "1 while a log compaction runs."),
		"log_write_errors":   d("log_write_errors_total", "Log appends or syncs that failed (the writes failed with them)."),
		"log_compact_errors": d("log_compaction_errors_total", "Log compactions that failed."),
		"applies":            d("applies_total", "Writes stored."),
		"stale_applies":      d("stale_applies_total", "Writes refused because the stored record was as new or newer."),
		"dead_dropped":       d("dead_dropped_total", "Dead records that arrived past their GC deadline and were not stored."),
		"expired":            d("expired_total", "Records converted to tombstones at expiry."),
		"gc_purged":          d("gc_purged_total", "Tombstones purged after the GC grace period."),
		"flush_purged":       d("flush_purged_total", "Records removed below the FLUSHALL barrier."),
		"flush_dropped":      d("flush_dropped_total", "Writes that arrived below the FLUSHALL barrier, not stored."),
		"stale_index":        d("stale_index_entries_total", "Deadline index entries dropped because their record had changed."),
		"sync_errors":        d("sync_errors_total", "Failed periodic WAL syncs."),
		"bg_lowered":         d("background_jobs_lowered_total", "Pebble flushes and compactions run at low CPU priority."),
		"bg_lower_errors":    d("background_lower_errors_total", "Pebble flushes and compactions whose thread priority could not be lowered."),
		"row_cache_complete": d("row_cache_complete", "1 while every stored record is in the row cache (absent keys skip Pebble), 0 after the first eviction."),
		"row_cache_hits":     d("row_cache_hits_total", "Row cache lookups that found the record."),
		"row_cache_misses":   d("row_cache_misses_total", "Row cache lookups that did not find the record."),
		"row_cache_evicted":  d("row_cache_evictions_total", "Row cache entries evicted to stay within its size."),
		"disk_usage":         d("disk_usage_bytes", "Disk space the data directory occupies (allocated blocks, as du counts them; either engine), measured at most every 10 s."),
		"memtable":           d("memtable_bytes", "Bytes held by Pebble memtables."),
		"block_cache":        d("block_cache_bytes", "Bytes held by the Pebble block cache."),
		"block_cache_hits":   d("block_cache_hits_total", "Pebble block cache hits."),
		"block_cache_misses": d("block_cache_misses_total", "Pebble block cache misses."),
		"flushes":            d("flushes_total", "Pebble memtable flushes."),
		"compactions":        d("compactions_total", "Pebble compactions."),
		"compaction_debt":    d("compaction_debt_bytes", "Estimated bytes Pebble must compact to reach a stable shape."),
		"read_amplification": d("read_amplification", "Pebble read amplification."),
	}}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := c.s.Metrics()
	gauge := func(name string, v float64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, v)
	}
	counter := func(name string, v float64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, v)
	}
	gauge("records", float64(m.Records))
	gauge("memory", float64(m.MemoryBytes))
	gauge("max_memory", float64(m.MaxMemoryBytes))
	counter("oom_refused", float64(m.OOMRefused))
	gauge("log_bytes", float64(m.LogBytes))
	gauge("log_live", float64(m.LogLiveBytes))
	counter("log_compactions", float64(m.LogCompactions))
	counter("log_compacted", float64(m.LogCompactionBytes))
	compacting := 0.0
	if m.LogCompacting {
		compacting = 1
	}
	gauge("log_compacting", compacting)
	counter("log_write_errors", float64(m.LogWriteErrors))
	counter("log_compact_errors", float64(m.LogCompactionErrors))
	counter("applies", float64(m.Applies))
	counter("stale_applies", float64(m.StaleApplies))
	counter("dead_dropped", float64(m.DeadDropped))
	counter("expired", float64(m.Expired))
	counter("gc_purged", float64(m.GCPurged))
	counter("flush_purged", float64(m.FlushPurged))
	counter("flush_dropped", float64(m.FlushDropped))
	counter("stale_index", float64(m.StaleIndexEntries))
	counter("sync_errors", float64(m.SyncErrors))
	counter("bg_lowered", float64(m.BackgroundJobsLowered))
	counter("bg_lower_errors", float64(m.BackgroundLowerErrors))
	complete := 0.0
	if m.RowCacheComplete {
		complete = 1
	}
	gauge("row_cache_complete", complete)
	counter("row_cache_hits", float64(m.RowCacheHits))
	counter("row_cache_misses", float64(m.RowCacheMisses))
	counter("row_cache_evicted", float64(m.RowCacheEvictions))
	gauge("disk_usage", float64(m.DiskUsageBytes))
	gauge("memtable", float64(m.MemTableBytes))
	gauge("block_cache", float64(m.BlockCacheBytes))
	counter("block_cache_hits", float64(m.BlockCacheHits))
	counter("block_cache_misses", float64(m.BlockCacheMisses))
	counter("flushes", float64(m.Flushes))
	counter("compactions", float64(m.Compactions))
	gauge("compaction_debt", float64(m.CompactionDebt))
	gauge("read_amplification", float64(m.ReadAmp))
}
