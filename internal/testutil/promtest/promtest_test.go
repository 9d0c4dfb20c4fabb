package promtest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// recorder is a testing.TB that records a failure instead of ending the test.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               { r.TB.Helper() }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

func TestValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total"}, []string{"l"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"})
	reg.MustRegister(c, g)
	c.WithLabelValues("a").Add(2)
	c.WithLabelValues("b").Add(3)
	g.Set(-1.5)
	if v := Value(t, reg, "c_total"); v != 5 {
		t.Fatalf("counter summed over its series: %v, want 5", v)
	}
	if v := Value(t, reg, "g"); v != -1.5 {
		t.Fatalf("gauge: %v", v)
	}
	r := &recorder{TB: t}
	if Value(r, reg, "absent"); !r.failed {
		t.Fatal("a metric the registry lacks did not fail the test")
	}
}
