// Package promtest reads metrics back in tests. It is apart from testutil,
// which imports only the standard library, so that only the tests that read
// metrics link Prometheus through it.
package promtest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Value is the sum over the series of the gauge or counter name that g
// holds. It fails tb when g holds no such metric: a test that reads a
// metric back means it to exist.
func Value(tb testing.TB, g prometheus.Gatherer, name string) float64 {
	tb.Helper()
	mfs, err := g.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var v float64
		for _, m := range mf.GetMetric() {
			v += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
		return v
	}
	tb.Fatalf("no metric %s", name)
	return 0
}
