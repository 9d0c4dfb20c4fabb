package hotkeys

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringkv/ringkv/internal/clock"
)

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newTestTracker(t testing.TB, cfg Config) (*Tracker, *clock.Manual) {
	t.Helper()
	clk := clock.NewManual(epoch)
	cfg.Clock = clk
	tr, err := NewTracker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr, clk
}

func keyOf(i int) []byte { return fmt.Appendf(nil, "user:%07d", i) }

// zipfWorkload returns n request indexes over keys keys, Zipf-distributed with
// exponent s, from a fixed seed.
func zipfWorkload(s float64, keys, n int) []int {
	z := rand.NewZipf(rand.New(rand.NewPCG(42, 0)), s, 1, uint64(keys-1))
	w := make([]int, n)
	for i := range w {
		w[i] = int(z.Uint64())
	}
	return w
}

// TestZipfPrecision feeds 1M requests over 100k keys with Zipf s=1.2 (a
// realistic skew) over 5 s of manual time, refreshing as Start would, and
// compares Top with the exact counts.
func TestZipfPrecision(t *testing.T) {
	const keys, requests = 100_000, 1_000_000
	tr, clk := newTestTracker(t, Config{K: 100})
	keyBytes := make([][]byte, keys)
	for i := range keyBytes {
		keyBytes[i] = keyOf(i)
	}
	exact := make([]int, keys)
	for i, k := range zipfWorkload(1.2, keys, requests) {
		exact[k]++
		tr.Observe(keyBytes[k])
		if i%1000 == 999 {
			clk.Advance(5 * time.Millisecond) // 200k requests/s
		}
		if i%50_000 == 49_999 {
			tr.Refresh() // every 250 ms, as the default loop does
		}
	}
	tr.Refresh()

	order := make([]int, keys)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(exact[b], exact[a]) })
	got := tr.Top(0)
	if len(got) != 100 {
		t.Fatalf("Top returned %d keys, want 100", len(got))
	}
	precision := func(n int) float64 {
		want := map[string]bool{}
		for _, k := range order[:n] {
			want[string(keyBytes[k])] = true
		}
		hits := 0
		for _, kr := range got[:n] {
			if want[kr.Key] {
				hits++
			}
		}
		return float64(hits) / float64(n)
	}
	p10, p100 := precision(10), precision(100)
	t.Logf("precision@10 = %.2f, precision@100 = %.2f", p10, p100)
	// The top ten are far apart in a Zipf law and must be exact; near rank
	// 100 neighbours differ by under 1%, so a few swaps across the cut are
	// sampling noise, not error.
	if p10 != 1 {
		t.Errorf("precision@10 = %.2f, want 1", p10)
	}
	if p100 < 0.95 {
		t.Errorf("precision@100 = %.2f, want >= 0.95", p100)
	}

	// Rates: 1M requests over 5 s of manual time.
	rate, window := tr.Totals()
	if window != 5*time.Second {
		t.Errorf("window = %v, want 5s", window)
	}
	if math.Abs(rate-requests/5) > requests/5*0.001 {
		t.Errorf("total rate = %.0f/s, want %d/s", rate, requests/5)
	}
	for i, kr := range got[:10] {
		want := float64(exact[order[i]]) / 5
		if math.Abs(kr.Rate-want) > want*0.01 {
			t.Errorf("rank %d %s: rate %.1f, want %.1f ±1%%", i+1, kr.Key, kr.Rate, want)
		}
		if wantShare := float64(exact[order[i]]) / requests; math.Abs(kr.Share-wantShare) > wantShare*0.01 {
			t.Errorf("rank %d %s: share %.4f, want %.4f", i+1, kr.Key, kr.Share, wantShare)
		}
	}
	if n := len(tr.mu.cands); n > 4*100 {
		t.Errorf("%d candidates, bound is %d", n, 4*100)
	}
}

// TestWindowForgets checks that a key hot in one window is gone from Top and
// IsHot one window after its traffic stops, while a newly hot key appears.
func TestWindowForgets(t *testing.T) {
	tr, clk := newTestTracker(t, Config{Window: 10 * time.Second, Buckets: 10, K: 10, MinRate: 50})
	old, fresh := []byte("old-hot"), []byte("new-hot")
	// 10 s of "old-hot" at 1000/s plus background.
	step := func(key []byte, perStep int) {
		for range perStep {
			tr.Observe(key)
		}
		tr.Observe(keyOf(rand.IntN(1000)))
		clk.Advance(100 * time.Millisecond)
		tr.Refresh()
	}
	for range 100 {
		step(old, 100)
	}
	if !tr.IsHot(old) || tr.Top(1)[0].Key != "old-hot" {
		t.Fatalf("old-hot not hot after 10 s at 1000/s: %+v", tr.Top(3))
	}
	if r := tr.Top(1)[0].Rate; math.Abs(r-1000) > 20 {
		t.Fatalf("old-hot rate %.1f, want ~1000", r)
	}
	// Half a window of "new-hot": old-hot's rate halves.
	for range 50 {
		step(fresh, 100)
	}
	// The window slides by whole sub-windows: right after a rotation it spans
	// 9 s, so each key shows 5 s or 4 s of traffic over it.
	top := tr.Top(2)
	if len(top) != 2 || top[0].Rate+top[1].Rate < 980 || top[0].Rate+top[1].Rate > 1020 {
		t.Fatalf("after half a window: %+v, want two keys sharing ~1000/s", top)
	}
	for _, kr := range top {
		if math.Abs(kr.Rate-500) > 1000/9+10 {
			t.Errorf("after half a window %s rate %.1f, want 500 ± one sub-window", kr.Key, kr.Rate)
		}
	}
	// Another half window and a bucket: old-hot has left the window.
	for range 60 {
		step(fresh, 100)
	}
	if tr.IsHot(old) {
		t.Error("old-hot still hot a window after its traffic stopped")
	}
	for _, kr := range tr.Top(0) {
		if kr.Key == "old-hot" {
			t.Errorf("old-hot still in Top: %+v", kr)
		}
	}
	if !tr.IsHot(fresh) || tr.Top(1)[0].Key != "new-hot" {
		t.Errorf("new-hot not the hottest: %+v", tr.Top(3))
	}

	// Idle for longer than the window: everything is forgotten.
	clk.Advance(time.Minute)
	tr.Refresh()
	if top := tr.Top(0); len(top) != 0 || tr.IsHot(fresh) {
		t.Errorf("after a minute idle Top = %+v, IsHot(new-hot) = %v", top, tr.IsHot(fresh))
	}
}

// TestHotNeedsMinRate: a uniform, low-rate workload has top keys but no hot
// ones.
func TestHotNeedsMinRate(t *testing.T) {
	tr, clk := newTestTracker(t, Config{K: 10, MinRate: 100})
	for range 10 {
		for i := range 1000 {
			tr.Observe(keyOf(i % 100)) // 100 keys at 100 requests/s each... over 10 s: 10/s
		}
		clk.Advance(time.Second)
		tr.Refresh()
	}
	if len(tr.Top(0)) == 0 {
		t.Fatal("no top keys")
	}
	for i := range 100 {
		if tr.IsHot(keyOf(i)) {
			t.Fatalf("%s at 10/s is hot with MinRate 100", keyOf(i))
		}
	}
	for range 2000 {
		tr.Observe([]byte("spike"))
	}
	tr.Refresh()
	if !tr.IsHot([]byte("spike")) {
		t.Fatalf("spike (200/s over the window) not hot: %+v", tr.Top(3))
	}
}

// TestEvictionKeepsCounts: keys that fall out of the candidates and come back
// are judged on their whole window, because eviction folds their counts into
// the sketch.
func TestEvictionKeepsCounts(t *testing.T) {
	tr, clk := newTestTracker(t, Config{K: 1}) // 4 candidates
	for range 100 {
		tr.Observe([]byte("a"))
	}
	tr.Refresh()
	// Crowd "a" out with four hotter keys.
	for i := range 4 {
		for range 200 {
			tr.Observe(keyOf(i))
		}
	}
	tr.Refresh()
	tr.Refresh()
	if _, ok := tr.mu.cands["a"]; ok {
		t.Fatalf("a not evicted: %v", len(tr.mu.cands))
	}
	for range 250 {
		tr.Observe([]byte("a"))
	}
	clk.Advance(time.Second)
	tr.Refresh()
	top := tr.Top(1)
	if len(top) != 1 || top[0].Key != "a" || top[0].Rate < 350 {
		t.Fatalf("a with 350 requests in 1 s: Top = %+v", top)
	}
}

// TestConcurrentObserve runs observers against a refresh loop (for the race
// detector) and checks no count is lost while the clock stands still.
func TestConcurrentObserve(t *testing.T) {
	reg := prometheus.NewRegistry()
	tr, clk := newTestTracker(t, Config{K: 10, Registerer: reg})
	const workers, per = 4, 50_000
	work := zipfWorkload(1.1, 5000, per)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				tr.Refresh()
				_ = tr.Top(5)
				time.Sleep(time.Millisecond)
			}
		}
	}()
	for w := range workers {
		wg.Go(func() {
			for i, k := range work {
				tr.Observe(keyOf((k + w*int(i%2)) % 5000))
				_ = tr.IsHot(keyOf(k))
			}
		})
	}
	wg.Wait()
	close(stop)
	clk.Advance(time.Second)
	tr.Refresh()
	rate, _ := tr.Totals()
	// Evictions racing observers may drop a handful of counts; nothing else
	// may.
	if want := float64(workers * per); rate < want*0.999 || rate > want {
		t.Errorf("total %.0f requests in 1 s, want %.0f", rate, want)
	}
	if n := seriesCount(t, reg, "ringkv_hotkeys_key_rate"); n != topMetricKeys {
		t.Errorf("%d key_rate series, want %d", n, topMetricKeys)
	}
}

func TestObserveDoesNotAllocate(t *testing.T) {
	tr, _ := newTestTracker(t, Config{K: 10})
	hot, tail := []byte("hot"), []byte("tail")
	for range 1000 {
		tr.Observe(hot)
	}
	tr.Refresh()
	for i := range 100 { // fill the candidates so the tail key stays out
		for range 10 {
			tr.Observe(keyOf(i))
		}
	}
	tr.Refresh()
	for name, k := range map[string][]byte{"candidate": hot, "sketch": tail} {
		if n := testing.AllocsPerRun(1000, func() { tr.Observe(k) }); n != 0 {
			t.Errorf("Observe(%s key) allocates %.1f times", name, n)
		}
		if n := testing.AllocsPerRun(1000, func() { tr.IsHot(k) }); n != 0 {
			t.Errorf("IsHot(%s key) allocates %.1f times", name, n)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	if _, err := NewTracker(Config{Window: time.Millisecond, Buckets: 10}); err == nil {
		t.Error("100µs buckets accepted")
	}
	tr, err := NewTracker(Config{SketchBlocks: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Config().SketchBlocks; got != 1024 {
		t.Errorf("SketchBlocks rounded to %d, want 1024", got)
	}
}

func TestStartShutdown(t *testing.T) {
	tr, err := NewTracker(Config{RefreshInterval: time.Millisecond, MinRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(); err == nil {
		t.Error("second Start accepted")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !tr.IsHot([]byte("k")) {
		if time.Now().After(deadline) {
			t.Fatal("the refresh loop never published k as hot")
		}
		tr.Observe([]byte("k"))
		time.Sleep(100 * time.Microsecond)
	}
	if err := tr.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := tr.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkObserve(b *testing.B) {
	const keys = 100_000
	keyBytes := make([][]byte, keys)
	for i := range keyBytes {
		keyBytes[i] = keyOf(i)
	}
	work := zipfWorkload(1.2, keys, 1<<20)
	setup := func(b *testing.B) *Tracker {
		b.Helper()
		tr, err := NewTracker(Config{})
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range work[:200_000] {
			tr.Observe(keyBytes[k])
		}
		tr.Refresh()
		b.ReportAllocs()
		b.ResetTimer()
		return tr
	}
	b.Run("zipf", func(b *testing.B) {
		tr := setup(b)
		for i := 0; b.Loop(); i++ {
			tr.Observe(keyBytes[work[i&(len(work)-1)]])
		}
	})
	b.Run("zipf-parallel", func(b *testing.B) {
		tr := setup(b)
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(len(work))
			for pb.Next() {
				tr.Observe(keyBytes[work[i&(len(work)-1)]])
				i++
			}
		})
	})
	b.Run("one-hot-key-parallel", func(b *testing.B) {
		tr := setup(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				tr.Observe(keyBytes[0])
			}
		})
	})
	b.Run("tail-parallel", func(b *testing.B) {
		tr := setup(b)
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(keys)
			for pb.Next() {
				tr.Observe(keyBytes[50_000+i%50_000])
				i++
			}
		})
	})
}

func BenchmarkIsHot(b *testing.B) {
	tr, err := NewTracker(Config{})
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range zipfWorkload(1.2, 1000, 100_000) {
		tr.Observe(keyOf(k))
	}
	tr.Refresh()
	hot, cold := keyOf(0), []byte("cold")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tr.IsHot(hot)
			tr.IsHot(cold)
		}
	})
}

func BenchmarkRefresh(b *testing.B) {
	tr, err := NewTracker(Config{})
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range zipfWorkload(1.2, 100_000, 1_000_000) {
		tr.Observe(keyOf(k))
	}
	b.ReportAllocs()
	for b.Loop() {
		tr.Refresh()
	}
}

func seriesCount(t *testing.T, g prometheus.Gatherer, name string) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// TestMetricsByRankNotName: the per-key gauge is labelled by rank alone, so no
// key name reaches the metrics and the series stay the same ten however many
// keys have been hot; the names, and whether each is hot, are in Top.
func TestMetricsByRankNotName(t *testing.T) {
	reg := prometheus.NewRegistry()
	tr, clk := newTestTracker(t, Config{K: 20, MinRate: 50, Registerer: reg})
	for round := range 3 {
		for range 200 {
			tr.Observe(fmt.Appendf(nil, "secret:%d", round))
		}
		tr.Observe([]byte("cold"))
		clk.Advance(time.Second)
		tr.Refresh()
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var series int
	for _, mf := range mfs {
		if mf.GetName() != "ringkv_hotkeys_key_rate" {
			continue
		}
		for _, m := range mf.GetMetric() {
			series++
			for _, l := range m.GetLabel() {
				if l.GetName() != "rank" {
					t.Errorf("label %s=%q: want the rank alone", l.GetName(), l.GetValue())
				}
			}
		}
	}
	if series != topMetricKeys {
		t.Errorf("%d key_rate series, want %d", series, topMetricKeys)
	}
	top := tr.Top(0)
	if len(top) < 2 {
		t.Fatalf("top %+v", top)
	}
	for _, k := range top {
		if want := k.Rate >= 50; k.Hot != want {
			t.Errorf("%s at %.1f/s: hot %v, want %v", k.Key, k.Rate, k.Hot, want)
		}
	}
	if !top[0].Hot || top[len(top)-1].Key != "cold" || top[len(top)-1].Hot {
		t.Errorf("want a hot secret first and cold last, not hot: %+v", top)
	}
}
