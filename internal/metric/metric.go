// Package metric holds the request-path counters and latency histograms
// that every GET and SET updates, exported through Prometheus.
//
// Prometheus' own Counter and Histogram keep each series in one set of
// atomic words, so two cores updating the same series hand its cache lines
// back and forth on every request: on a pipelined single-node GET the four
// updates a request made (command count and latency, coordinator count and
// latency) were 13% of the server's CPU. The types here spread a series over
// cache-line-sized shards, and a Tally lets the one goroutine that owns a
// connection add up a run of observations of the same series in plain
// memory and publish them in one go. Collect sums the shards: scraping costs
// more, requests cost less, which is the trade a server that is scraped every
// few seconds and serves hundreds of thousands of requests a second wants.
//
// What a scrape sees is exact up to the observations still held in Tallies,
// which their owners publish before they reply to a client (see Tally).
package metric

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// shards is how many copies of a series exist: enough that the cores of a
// large machine rarely pick the same one at once, few enough that Collect's
// sum stays cheap. A power of two, so a random number's low bits pick one.
const shards = 16

// pad puts a 64-byte cache line between neighbouring shards, so that the
// words two shards update never share one.
type pad [64]byte

// shard picks a shard for an update from a goroutine that owns none: the
// runtime's per-thread random source costs a few nanoseconds and no shared
// write.
func shard() int { return int(rand.Uint32() & (shards - 1)) }

// counterShard is one copy of a counter's value.
type counterShard struct {
	n atomic.Uint64
	_ [56]byte
}

// Counter is a monotonic count. The zero value is not usable; get one from
// a CounterVec.
type Counter struct {
	labels []string
	shards [shards]counterShard
}

// Inc adds one.
func (c *Counter) Inc() { c.shards[shard()].n.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) {
	if n != 0 {
		c.shards[shard()].n.Add(n)
	}
}

// Value returns the count so far.
func (c *Counter) Value() uint64 {
	var sum uint64
	for i := range c.shards {
		sum += c.shards[i].n.Load()
	}
	return sum
}

// CounterVec is a family of Counters that differ in their label values. It
// is a prometheus.Collector.
type CounterVec struct {
	desc *prometheus.Desc
	kids family[Counter]
}

// NewCounterVec returns a counter family named like prometheus.CounterOpts
// would name it.
func NewCounterVec(opts prometheus.CounterOpts, labels []string) *CounterVec {
	name := prometheus.BuildFQName(opts.Namespace, opts.Subsystem, opts.Name)
	return &CounterVec{
		desc: prometheus.NewDesc(name, opts.Help, labels, opts.ConstLabels),
		kids: family[Counter]{fresh: func(values []string) *Counter { return &Counter{labels: values} }},
	}
}

// With returns the Counter for the label values, creating it on first use.
// Callers on a hot path resolve their Counters once and keep them.
func (v *CounterVec) With(values ...string) *Counter { return v.kids.with(values) }

// Sum returns the total of every Counter in the family.
func (v *CounterVec) Sum() uint64 {
	var sum uint64
	for _, c := range v.kids.all() {
		sum += c.Value()
	}
	return sum
}

// Describe implements prometheus.Collector.
func (v *CounterVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

// Collect implements prometheus.Collector.
func (v *CounterVec) Collect(ch chan<- prometheus.Metric) {
	for _, c := range v.kids.all() {
		ch <- prometheus.MustNewConstMetric(v.desc, prometheus.CounterValue, float64(c.Value()), c.labels...)
	}
}

// maxBuckets bounds a histogram's buckets, so that a Tally needs no
// allocation of its own.
const maxBuckets = 31

// histShard is one copy of a histogram's counts: counts[i] observations fell
// in bucket i (the last one is +Inf), and sum is their total in nanoseconds.
type histShard struct {
	counts [maxBuckets + 1]atomic.Uint64
	sum    atomic.Int64
	_      pad
}

// Histogram counts durations into buckets. The zero value is not usable; get
// one from a HistogramVec.
type Histogram struct {
	labels []string
	bounds []int64 // upper bounds in nanoseconds, ascending, shared by the family
	shards [shards]histShard
}

// bucket returns the index of the first bucket whose upper bound holds d:
// len(bounds) for the +Inf bucket.
func (h *Histogram) bucket(d time.Duration) int {
	ns := int64(d)
	// A linear scan: the bounds fit in two cache lines and most requests
	// land in the first few buckets.
	for i, b := range h.bounds {
		if ns <= b {
			return i
		}
	}
	return len(h.bounds)
}

// Observe counts one duration.
func (h *Histogram) Observe(d time.Duration) {
	s := &h.shards[shard()]
	s.counts[h.bucket(d)].Add(1)
	s.sum.Add(int64(d))
}

// ObserveN counts n requests that each took d, as the keys of one batch do,
// with one update instead of n.
func (h *Histogram) ObserveN(d time.Duration, n uint64) {
	if n == 0 {
		return
	}
	s := &h.shards[shard()]
	s.counts[h.bucket(d)].Add(n)
	s.sum.Add(int64(d) * int64(n))
}

// totals sums the shards: counts per bucket and the sum in nanoseconds.
func (h *Histogram) totals() (counts [maxBuckets + 1]uint64, sum int64) {
	for i := range h.shards {
		s := &h.shards[i]
		for b := 0; b <= len(h.bounds); b++ {
			counts[b] += s.counts[b].Load()
		}
		sum += s.sum.Load()
	}
	return counts, sum
}

// Count returns how many durations were observed.
func (h *Histogram) Count() uint64 {
	counts, _ := h.totals()
	var n uint64
	for _, c := range counts {
		n += c
	}
	return n
}

// snapshot returns the total count, the sum in seconds, and the cumulative
// counts per upper bound in seconds, as prometheus.NewConstHistogram takes
// them.
func (h *Histogram) snapshot(upper []float64) (uint64, float64, map[float64]uint64) {
	counts, sum := h.totals()
	cum := make(map[float64]uint64, len(upper))
	var total uint64
	for b := range h.bounds {
		total += counts[b]
		cum[upper[b]] = total
	}
	total += counts[len(h.bounds)]
	return total, time.Duration(sum).Seconds(), cum
}

// HistogramVec is a family of Histograms with the same buckets that differ in
// their label values. It is a prometheus.Collector.
type HistogramVec struct {
	desc  *prometheus.Desc
	upper []float64 // bucket bounds in seconds, for the export
	kids  family[Histogram]
}

// NewHistogramVec returns a histogram family named like
// prometheus.HistogramOpts would name it. opts.Buckets are upper bounds in
// seconds, ascending, at most 31 of them (+Inf is implied); the request path
// records durations, so bounds are kept as whole nanoseconds.
func NewHistogramVec(opts prometheus.HistogramOpts, labels []string) *HistogramVec {
	upper := append([]float64(nil), opts.Buckets...)
	if len(upper) > 0 && math.IsInf(upper[len(upper)-1], 1) {
		upper = upper[:len(upper)-1]
	}
	if len(upper) == 0 || len(upper) > maxBuckets || !sort.Float64sAreSorted(upper) {
		panic("metric: a histogram needs 1 to 31 ascending bucket bounds")
	}
	bounds := make([]int64, len(upper))
	for i, u := range upper {
		bounds[i] = int64(u * float64(time.Second))
	}
	name := prometheus.BuildFQName(opts.Namespace, opts.Subsystem, opts.Name)
	return &HistogramVec{
		desc:  prometheus.NewDesc(name, opts.Help, labels, opts.ConstLabels),
		upper: upper,
		kids: family[Histogram]{fresh: func(values []string) *Histogram {
			return &Histogram{labels: values, bounds: bounds}
		}},
	}
}

// With returns the Histogram for the label values, creating it on first use.
func (v *HistogramVec) With(values ...string) *Histogram { return v.kids.with(values) }

// Describe implements prometheus.Collector.
func (v *HistogramVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

// Collect implements prometheus.Collector.
func (v *HistogramVec) Collect(ch chan<- prometheus.Metric) {
	for _, h := range v.kids.all() {
		n, sum, cum := h.snapshot(v.upper)
		ch <- prometheus.MustNewConstHistogram(v.desc, n, sum, cum, h.labels...)
	}
}

// family holds a vector's children by their label values.
type family[T any] struct {
	fresh func(values []string) *T // a new child; values are its own
	mu    sync.Mutex
	kids  map[string]*T
}

// with returns the child for values, creating it on first use.
func (f *family[T]) with(values []string) *T {
	key := labelKey(values)
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.kids[key]
	if !ok {
		if f.kids == nil {
			f.kids = map[string]*T{}
		}
		k = f.fresh(append([]string(nil), values...))
		f.kids[key] = k
	}
	return k
}

// all returns every child, for Collect and Sum.
func (f *family[T]) all() []*T {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*T, 0, len(f.kids))
	for _, k := range f.kids {
		out = append(out, k)
	}
	return out
}

// labelKey joins label values with a byte no label value of ours contains.
func labelKey(values []string) string {
	n := 0
	for _, s := range values {
		n += len(s) + 1
	}
	b := make([]byte, 0, n)
	for _, s := range values {
		b = append(b, s...)
		b = append(b, 0xff)
	}
	return string(b)
}

// Tally adds up observations of one series at a time, in plain memory, for
// the single goroutine that owns it; Flush publishes them. Switching to
// another series publishes the one before. A connection's goroutine keeps a
// Tally and flushes it before it writes its replies, so that a client that
// has read a reply also finds it counted.
//
// The zero value is an empty Tally.
type Tally struct {
	h      *Histogram
	c      *Counter
	calls  uint64
	sum    int64
	counts [maxBuckets + 1]uint64
	used   uint64 // bit b set: counts[b] != 0
}

// Call counts one call of c. A Tally holds one counter's calls at a time,
// beside one histogram's durations.
func (t *Tally) Call(c *Counter) {
	if t.c != c {
		t.flushCalls()
		t.c = c
	}
	t.calls++
}

// Observe counts one duration of h.
func (t *Tally) Observe(h *Histogram, d time.Duration) {
	if t.h != h {
		t.flushHist()
		t.h = h
	}
	b := h.bucket(d)
	t.counts[b]++
	t.used |= 1 << b
	t.sum += int64(d)
}

// Flush publishes what the Tally holds and empties it.
func (t *Tally) Flush() {
	t.flushCalls()
	t.flushHist()
}

func (t *Tally) flushCalls() {
	if t.c != nil && t.calls != 0 {
		t.c.Add(t.calls)
	}
	t.calls = 0
}

func (t *Tally) flushHist() {
	if t.h == nil || t.used == 0 {
		return
	}
	s := &t.h.shards[shard()]
	for used := t.used; used != 0; used &= used - 1 {
		b := bits.TrailingZeros64(used)
		s.counts[b].Add(t.counts[b])
		t.counts[b] = 0
	}
	s.sum.Add(t.sum)
	t.sum = 0
	t.used = 0
}
