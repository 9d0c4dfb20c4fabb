package hotkeys

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// topMetricKeys is how many ranks the per-rank gauge has. Its only label is
// the rank: key names are data, so they stay out of the metrics (where anyone
// who reads them, and every series ever created, would keep them) and are
// served by GET /v1/hotkeys to the admin right alone.
const topMetricKeys = 10

type trackerMetrics struct {
	keyRate *prometheus.GaugeVec
	rate    prometheus.Gauge
	tracked prometheus.Gauge
	hot     prometheus.Gauge
}

func newTrackerMetrics(reg prometheus.Registerer) (*trackerMetrics, error) {
	m := &trackerMetrics{
		keyRate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ringkv", Subsystem: "hotkeys", Name: "key_rate",
			Help: "Request rate (per second, over the hot-key window) of this node's top keys, by rank (1 = hottest; 0 when fewer keys were seen). The keys' names are in GET /v1/hotkeys.",
		}, []string{"rank"}),
		rate: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ringkv", Subsystem: "hotkeys", Name: "request_rate",
			Help: "Rate of all requests this node observed over the hot-key window, per second.",
		}),
		tracked: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ringkv", Subsystem: "hotkeys", Name: "candidates",
			Help: "Keys counted exactly as hot-key candidates.",
		}),
		hot: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ringkv", Subsystem: "hotkeys", Name: "hot_keys",
			Help: "Top keys at or above the hot rate, which the mitigations act on.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.keyRate, m.rate, m.tracked, m.hot} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *trackerMetrics) update(s *snapshot, candidates, hot int) {
	for i := range topMetricKeys {
		rate := 0.0
		if i < len(s.top) {
			rate = s.top[i].Rate
		}
		m.keyRate.WithLabelValues(strconv.Itoa(i + 1)).Set(rate)
	}
	m.rate.Set(s.rate)
	m.tracked.Set(float64(candidates))
	m.hot.Set(float64(hot))
}

type cacheMetrics struct {
	hits, misses, fills, dropped, invalidations, evictions prometheus.Counter
	entries, bytes                                         prometheus.GaugeFunc
}

func newCacheMetrics(reg prometheus.Registerer, c *Cache) (*cacheMetrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "ringkv", Subsystem: "hotkeys", Name: name, Help: help})
	}
	// Sizes are read at scrape time rather than kept in gauges on every fill
	// and removal.
	gauge := func(name, help string, f func() float64) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "ringkv", Subsystem: "hotkeys", Name: name, Help: help}, f)
	}
	m := &cacheMetrics{
		hits:          counter("cache_hits_total", "Reads answered from the hot-key cache."),
		misses:        counter("cache_misses_total", "Hot-key cache lookups that found nothing younger than the TTL."),
		fills:         counter("cache_fills_total", "Records stored in the hot-key cache after a read."),
		dropped:       counter("cache_fills_dropped_total", "Fills discarded because a local write invalidated their key's shard while they read."),
		invalidations: counter("cache_invalidations_total", "Local writes that invalidated a hot-key cache entry or shard."),
		evictions:     counter("cache_evictions_total", "Entries evicted from the hot-key cache to stay within its bounds."),
		entries: gauge("cache_entries", "Entries in the hot-key cache.", func() float64 {
			n, _ := c.Len()
			return float64(n)
		}),
		bytes: gauge("cache_bytes", "Key and value bytes held by the hot-key cache.", func() float64 {
			_, b := c.Len()
			return float64(b)
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.hits, m.misses, m.fills, m.dropped, m.invalidations, m.evictions, m.entries, m.bytes} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
