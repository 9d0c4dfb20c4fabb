package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is what one run measured, after the warmup.
type Result struct {
	Mode  string   `json:"mode"` // "closed" or "open"
	Addrs []string `json:"addrs"`
	// Cluster is set when the target was a Redis Cluster; Addrs are then
	// its masters, as CLUSTER SLOTS listed them at the start.
	Cluster bool `json:"cluster,omitempty"`
	// Redirects counts the -MOVED and -ASK replies followed, warmup
	// included: zero on a cluster whose slots stayed put.
	Redirects   int64   `json:"redirects,omitempty"`
	Conns       int     `json:"conns"`
	Pipeline    int     `json:"pipeline"`
	Rate        float64 `json:"rate,omitempty"` // open loop: requests per second asked for
	Keys        int     `json:"keys"`
	Dist        string  `json:"dist"`
	Ratio       string  `json:"ratio"`
	ValueSize   int     `json:"value_size"`
	Consistency string  `json:"consistency,omitempty"`
	// Due is, in an open loop, how many requests the schedule called for in
	// the measured window. Fewer completed means the server fell behind, and
	// the percentiles describe only the requests that got an answer.
	Due int64 `json:"due,omitempty"`
	// Seconds is how long the measurement ran.
	Seconds float64 `json:"seconds"`
	// Ops has one entry per request type that ran, then "ALL".
	Ops []OpStats `json:"ops"`
	// ErrorSamples counts each distinct error reply (the first few kinds).
	ErrorSamples map[string]int64 `json:"error_samples,omitempty"`
}

// OpStats is one request type's numbers. Latencies are in milliseconds.
type OpStats struct {
	Op        string  `json:"op"`
	Count     int64   `json:"count"`
	Errors    int64   `json:"errors"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50       float64 `json:"p50_ms"`
	P90       float64 `json:"p90_ms"`
	P99       float64 `json:"p99_ms"`
	P999      float64 `json:"p999_ms"`
	Max       float64 `json:"max_ms"`
}

// Total returns the "ALL" row.
func (r *Result) Total() OpStats {
	for _, o := range r.Ops {
		if o.Op == "ALL" {
			return o
		}
	}
	return OpStats{Op: "ALL"}
}

// Op returns the row of one request type (zero when it did not run).
func (r *Result) Op(op Op) OpStats {
	for _, o := range r.Ops {
		if o.Op == op.String() {
			return o
		}
	}
	return OpStats{Op: op.String()}
}

func (r *run) result(workers []*worker, finished time.Time) *Result {
	c := r.cfg
	res := &Result{
		Mode: "closed", Addrs: c.Addrs, Conns: len(workers), Pipeline: c.Pipeline,
		Keys: c.Keys, Dist: c.Dist, Ratio: c.Ratio.String(), ValueSize: c.ValueSize,
		Consistency: c.Consistency,
	}
	if c.Rate > 0 {
		res.Mode, res.Rate = "open", c.Rate
	}
	if r.slots != nil {
		res.Cluster, res.Addrs = true, r.slots.addrs
		for _, w := range workers {
			res.Redirects += w.cl.redirects
		}
	}
	res.Seconds = max(finished.Sub(r.measureStart).Seconds(), 0)
	if c.Rate > 0 {
		until := finished
		if !r.end.IsZero() && r.end.Before(until) {
			until = r.end
		}
		for _, w := range workers {
			res.Due += max(w.sched.due(until)-w.sched.due(r.measureStart.Add(-1)), 0)
		}
	}

	all := hdrhistogram.New(histMinUS, histMaxUS, histDigits)
	var allErrs int64
	for op := range numOps {
		h := hdrhistogram.New(histMinUS, histMaxUS, histDigits)
		var errs int64
		for _, w := range workers {
			h.Merge(w.hist[op])
			errs += w.errs[op]
		}
		if h.TotalCount() == 0 {
			continue
		}
		all.Merge(h)
		allErrs += errs
		res.Ops = append(res.Ops, stats(op.String(), h, errs, res.Seconds))
	}
	res.Ops = append(res.Ops, stats("ALL", all, allErrs, res.Seconds))
	for _, w := range workers {
		for msg, n := range w.errSample {
			if res.ErrorSamples == nil {
				res.ErrorSamples = map[string]int64{}
			}
			if _, ok := res.ErrorSamples[msg]; ok || len(res.ErrorSamples) < maxErrorSamples {
				res.ErrorSamples[msg] += n
			}
		}
	}
	return res
}

func stats(name string, h *hdrhistogram.Histogram, errs int64, seconds float64) OpStats {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	s := OpStats{Op: name, Count: h.TotalCount(), Errors: errs}
	if seconds > 0 {
		s.OpsPerSec = float64(s.Count) / seconds
	}
	if s.Count > 0 {
		s.P50, s.P90, s.P99 = ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(90)), ms(h.ValueAtQuantile(99))
		s.P999, s.Max = ms(h.ValueAtQuantile(99.9)), ms(h.Max())
	}
	return s
}

// WriteTable prints r for people: a summary line, one row per request type
// and the error replies seen.
func (r *Result) WriteTable(w io.Writer) error {
	mode := "closed loop"
	if r.Mode == "open" {
		mode = fmt.Sprintf("open loop at %s req/s", strconv.FormatFloat(r.Rate, 'f', -1, 64))
	}
	lvl := ""
	if r.Consistency != "" {
		lvl = ", consistency " + r.Consistency
	}
	target := ""
	if r.Cluster {
		target = fmt.Sprintf(", Redis Cluster of %d masters (%d redirects followed)", len(r.Addrs), r.Redirects)
	}
	fmt.Fprintf(w, "%s, %d conns, pipeline %d, %d keys (%s), ratio %s, %d-byte values%s%s, %.1fs measured\n",
		mode, r.Conns, r.Pipeline, r.Keys, r.Dist, r.Ratio, r.ValueSize, lvl, target, r.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "OP\tCOUNT\tOPS/S\tERRORS\tP50 ms\tP90 ms\tP99 ms\tP99.9 ms\tMAX ms\t")
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	for _, o := range r.Ops {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%d\t%s\t%s\t%s\t%s\t%s\t\n", o.Op, o.Count, o.OpsPerSec, o.Errors, f(o.P50), f(o.P90), f(o.P99), f(o.P999), f(o.Max))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if tot := r.Total(); r.Mode == "open" && float64(tot.Count) < 0.99*float64(r.Due) {
		fmt.Fprintf(w, "FELL BEHIND: %d of the %d requests due in the measured window completed (%.1f%%); the rate is above what the server sustains\n",
			tot.Count, r.Due, 100*float64(tot.Count)/float64(max(r.Due, 1)))
	}
	msgs := slices.SortedFunc(func(yield func(string) bool) {
		for m := range r.ErrorSamples {
			if !yield(m) {
				return
			}
		}
	}, func(a, b string) int { return cmp.Compare(r.ErrorSamples[b], r.ErrorSamples[a]) })
	for _, m := range msgs {
		fmt.Fprintf(w, "error reply ×%d: %s\n", r.ErrorSamples[m], m)
	}
	return nil
}

// WriteJSON prints r as one indented JSON object, for scripts.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// progress prints a live line every interval until ctx ends: the rate and
// mean latency of the last interval, counting warmup, so a stall shows at once.
func (r *run) progress(ctx context.Context, workers []*worker, start time.Time, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(r.cfg.ProgressInterval)
	defer t.Stop()
	var lastOps, lastErrs, lastLat int64
	last := start
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			var ops, errs, lat int64
			for _, w := range workers {
				ops += w.liveOps.Load()
				errs += w.liveErrs.Load()
				lat += w.liveLatUS.Load()
			}
			dOps, dLat := ops-lastOps, lat-lastLat
			mean := 0.0
			if dOps > 0 {
				mean = float64(dLat) / float64(dOps) / 1000
			}
			phase := ""
			if now.Before(r.measureStart) {
				phase = " (warmup)"
			}
			line := fmt.Sprintf("%6.1fs  %9.0f ops/s  mean %7.3f ms  errors %d  total %d%s",
				now.Sub(start).Seconds(), float64(dOps)/now.Sub(last).Seconds(), mean, errs-lastErrs, ops, phase)
			fmt.Fprintln(r.cfg.Progress, strings.TrimRight(line, " "))
			lastOps, lastErrs, lastLat, last = ops, errs, lat, now
		}
	}
}
