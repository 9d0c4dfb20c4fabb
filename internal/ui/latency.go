package ui

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyTotals are the coordinator's cumulative request latency counts, all
// operations together.
type latencyTotals struct {
	count uint64
	upper []float64 // bucket bounds, seconds
	cum   []uint64  // cumulative counts per bound
}

const latencyFamily = "ringkv_coordinator_request_duration_seconds"

// readLatency reads the coordinator's latency histogram from g (every label
// set summed).
func readLatency(g prometheus.Gatherer) latencyTotals {
	var t latencyTotals
	mfs, err := g.Gather()
	if err != nil && mfs == nil {
		return t
	}
	for _, mf := range mfs {
		if mf.GetName() != latencyFamily {
			continue
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			t.count += h.GetSampleCount()
			for i, b := range h.GetBucket() {
				if i >= len(t.upper) {
					t.upper = append(t.upper, b.GetUpperBound())
					t.cum = append(t.cum, 0)
				}
				t.cum[i] += b.GetCumulativeCount()
			}
		}
	}
	return t
}

// point turns the difference between two totals into a sample.
func point(prev, cur latencyTotals, dt time.Duration, at time.Time) StatPoint {
	p := StatPoint{T: at.UnixMilli()}
	if cur.count < prev.count || dt <= 0 {
		return p
	}
	n := cur.count - prev.count
	p.Ops = float64(n) / dt.Seconds()
	if n == 0 {
		return p
	}
	want := (n*99 + 99) / 100 // ceil(0.99 n)
	for i, u := range cur.upper {
		var before uint64
		if i < len(prev.cum) {
			before = prev.cum[i]
		}
		if cur.cum[i]-before >= want {
			p.P99MS = u * 1000
			return p
		}
	}
	// Past the last bound: report the last bound, the most that is known.
	if len(cur.upper) > 0 {
		p.P99MS = cur.upper[len(cur.upper)-1] * 1000
	}
	return p
}
