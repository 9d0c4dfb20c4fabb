package metric

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func gather(t *testing.T, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// metricFor returns the family's series whose first label has value v.
func metricFor(t *testing.T, mf *dto.MetricFamily, v string) *dto.Metric {
	t.Helper()
	for _, m := range mf.GetMetric() {
		if m.GetLabel()[0].GetValue() == v {
			return m
		}
	}
	t.Fatalf("%s has no series %q", mf.GetName(), v)
	return nil
}

func TestCounterVecSumsEveryShard(t *testing.T) {
	v := NewCounterVec(prometheus.CounterOpts{Namespace: "x", Name: "calls_total", Help: "h"}, []string{"cmd"})
	get, set := v.With("get"), v.With("set")
	if v.With("get") != get {
		t.Fatal("With returned a second counter for the same labels")
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				get.Inc()
			}
			set.Add(3)
		})
	}
	wg.Wait()
	if got := get.Value(); got != 8000 {
		t.Fatalf("get counted %d, want 8000", got)
	}
	mf := gather(t, v)["x_calls_total"]
	if got := metricFor(t, mf, "get").GetCounter().GetValue(); got != 8000 {
		t.Fatalf("exported get = %v, want 8000", got)
	}
	if got := metricFor(t, mf, "set").GetCounter().GetValue(); got != 24 {
		t.Fatalf("exported set = %v, want 24", got)
	}
}

func TestHistogramBucketsAndSum(t *testing.T) {
	v := NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "x", Name: "took_seconds", Help: "h",
		Buckets: []float64{0.001, 0.01, 0.1},
	}, []string{"cmd"})
	h := v.With("get")
	for _, d := range []time.Duration{
		500 * time.Microsecond, time.Millisecond, // ≤ 1 ms: the bound is inclusive
		5 * time.Millisecond,
		time.Second, // +Inf only
	} {
		h.Observe(d)
	}
	h.ObserveN(2*time.Millisecond, 3) // three requests of one batch
	h.ObserveN(time.Second, 0)        // none
	var tl Tally
	tl.Observe(h, 50*time.Millisecond)
	tl.Observe(h, 60*time.Millisecond)
	if got := h.Count(); got != 7 {
		t.Fatalf("before Flush Count = %d, want 7: a Tally publishes only when flushed", got)
	}
	tl.Flush()
	tl.Flush() // a second flush adds nothing
	m := metricFor(t, gather(t, v)["x_took_seconds"], "get").GetHistogram()
	if m.GetSampleCount() != 9 {
		t.Fatalf("count = %d, want 9", m.GetSampleCount())
	}
	wantSum := (500*time.Microsecond + time.Millisecond + 5*time.Millisecond + time.Second + 6*time.Millisecond + 110*time.Millisecond).Seconds()
	if d := m.GetSampleSum() - wantSum; d > 1e-9 || d < -1e-9 {
		t.Fatalf("sum = %v, want %v", m.GetSampleSum(), wantSum)
	}
	want := []uint64{2, 6, 8} // cumulative: ≤1ms, ≤10ms, ≤100ms
	for i, b := range m.GetBucket() {
		if b.GetCumulativeCount() != want[i] {
			t.Fatalf("bucket ≤%v = %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want[i])
		}
	}
}

func TestTallySwitchingSeriesPublishesTheOneBefore(t *testing.T) {
	cv := NewCounterVec(prometheus.CounterOpts{Name: "c", Help: "h"}, []string{"cmd"})
	hv := NewHistogramVec(prometheus.HistogramOpts{Name: "h", Help: "h", Buckets: []float64{1}}, []string{"cmd"})
	getC, setC := cv.With("get"), cv.With("set")
	getH, setH := hv.With("get"), hv.With("set")
	var tl Tally
	for range 3 {
		tl.Call(getC)
		tl.Observe(getH, time.Millisecond)
	}
	tl.Call(setC)
	tl.Observe(setH, time.Millisecond)
	if getC.Value() != 3 || getH.Count() != 3 {
		t.Fatalf("after switching to set: get counted %d calls and %d durations, want 3 and 3", getC.Value(), getH.Count())
	}
	if setC.Value() != 0 || setH.Count() != 0 {
		t.Fatal("the current series was published before Flush")
	}
	tl.Flush()
	if setC.Value() != 1 || setH.Count() != 1 {
		t.Fatalf("after Flush set counted %d and %d, want 1 and 1", setC.Value(), setH.Count())
	}
}

func TestHistogramConcurrentObserveAndCollect(t *testing.T) {
	v := NewHistogramVec(prometheus.HistogramOpts{Name: "h", Help: "h", Buckets: prometheus.ExponentialBuckets(20e-6, 2.5, 14)}, []string{"cmd"})
	h := v.With("get")
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			var tl Tally
			for j := range 2000 {
				if i%2 == 0 {
					h.Observe(time.Duration(j) * time.Microsecond)
				} else {
					tl.Observe(h, time.Duration(j)*time.Microsecond)
				}
			}
			tl.Flush()
		})
	}
	wg.Go(func() {
		for range 20 {
			gather(t, v)
		}
	})
	wg.Wait()
	if got := h.Count(); got != 8000 {
		t.Fatalf("count = %d, want 8000", got)
	}
}

func TestNewHistogramVecRejectsBadBuckets(t *testing.T) {
	for _, b := range [][]float64{nil, {2, 1}, make([]float64, 32)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("buckets %v accepted", b)
				}
			}()
			NewHistogramVec(prometheus.HistogramOpts{Name: "h", Help: "h", Buckets: b}, nil)
		}()
	}
}
