package scenarios

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/tests/chaos/checker"
	"github.com/ringkv/ringkv/tests/chaos/failpoint"
	"github.com/ringkv/ringkv/tests/chaos/report"
	"github.com/ringkv/ringkv/tests/chaos/traffic"
)

// cluster is what a scenario runs against: the faults, the client view, and
// each node's local view of a key for the convergence check.
type cluster interface {
	failpoint.Cluster
	traffic.KV
	// Versions returns every node's local version of key ("" when absent).
	Versions(ctx context.Context, key string) ([]string, error)
	// WaitHealthy waits until every node is up and sees every other as up.
	WaitHealthy(ctx context.Context) error
}

type runConfig struct {
	name     string
	seed     uint64
	duration time.Duration
	// calm is the fault-free time before the first fault and after each heal;
	// hold is how long each fault lasts.
	calm, hold time.Duration
	faults     []failpoint.Failpoint
	traffic    traffic.Config
	// convergeWithin bounds the wait for replicas to agree after heal.
	convergeWithin time.Duration
}

// envDuration reads RINGKV_CHAOS_DURATION, else def.
func envDuration(t testing.TB, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv("RINGKV_CHAOS_DURATION")
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("RINGKV_CHAOS_DURATION=%q: %v", s, err)
	}
	return d
}

// seeds returns RINGKV_CHAOS_SEED when set (one run, reproducing it), else n
// fresh seeds.
func seeds(t testing.TB, n int) []uint64 {
	t.Helper()
	if s := os.Getenv("RINGKV_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("RINGKV_CHAOS_SEED=%q: %v", s, err)
		}
		return []uint64{v}
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = rand.Uint64() >> 1
	}
	return out
}

// run drives one scenario end to end and fails t on any violated invariant.
func run(t *testing.T, c cluster, rc runConfig) report.Summary {
	t.Helper()
	t.Logf("chaos %s: seed %d (rerun with RINGKV_CHAOS_SEED=%d)", rc.name, rc.seed, rc.seed)
	sum := report.Summary{Scenario: rc.name, Seed: rc.seed}
	rnd := rand.New(rand.NewPCG(rc.seed, 0xfa017))
	rec := traffic.NewRecorder()
	start := time.Now()

	tctx, stop := context.WithTimeout(t.Context(), rc.duration)
	defer stop()
	done := make(chan struct{})
	go func() { defer close(done); traffic.Run(tctx, c, rec, rc.traffic, rc.seed) }()

	ctx := t.Context()
	sleep := func(d time.Duration) {
		select {
		case <-tctx.Done():
		case <-time.After(d):
		}
	}
	sleep(rc.calm)
	for i := 0; tctx.Err() == nil && len(rc.faults) > 0; i++ {
		fp := rc.faults[i%len(rc.faults)]
		if i >= len(rc.faults) {
			fp = rc.faults[rnd.IntN(len(rc.faults))] // every fault once, then at random
		}
		rec.Avail.SetPhase(fp.Name + " during")
		desc, heal, err := fp.Inject(ctx, c, rnd)
		if err != nil {
			t.Fatalf("injecting %s: %v", desc, err)
		}
		sum.Faults = append(sum.Faults, fmt.Sprintf("%6.1fs %s", time.Since(start).Seconds(), desc))
		t.Logf("fault: %s", desc)
		sleep(rc.hold)
		if err := heal(ctx); err != nil {
			t.Fatalf("healing %s: %v", desc, err)
		}
		rec.Avail.SetPhase(fp.Name + " after")
		sleep(rc.calm)
	}
	<-done
	sum.Duration = time.Since(start)
	rec.Avail.SetPhase("checks")

	healed := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := c.WaitHealthy(wctx); err != nil {
		t.Fatalf("cluster did not recover after heal: %v", err)
	}
	ops := rec.Ops()
	sum.Count(ops)
	keys := checker.Keys(ops)

	// Convergence by hints alone first: what the cluster does without help.
	div, err := waitConverged(ctx, c, keys, rc.convergeWithin)
	if err != nil {
		t.Fatal(err)
	}
	sum.ConvergedPassively = len(div) == 0
	if !sum.ConvergedPassively {
		t.Logf("%d keys still differ %v after heal without reads (hints only); first: %s",
			len(div), rc.convergeWithin, strings.Join(div[:min(3, len(div))], "; "))
	}

	readAt := func(level string) checker.ReadFunc {
		return func(ctx context.Context, key string) (string, bool, error) {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return c.Get(rctx, rnd.IntN(c.Nodes()), key, level)
		}
	}
	var lost []string
	sum.WriteOnceChecked, lost = checker.LostWrites(ctx, ops, readAt(traffic.Quorum))
	sum.LostWrites = len(lost)
	var regViol []checker.Violation
	sum.RegistersChecked, regViol = checker.Registers(ops, time.Minute)
	sum.LinearizabilityViolations = len(regViol)
	resurrected, expired := checker.Resurrections(ops, 2*failpoint.MaxSkew+200*time.Millisecond)
	var back []checker.Violation
	sum.DeletesChecked, back = checker.FinalDeletes(ctx, ops, readAt(traffic.Quorum))
	resurrected = append(resurrected, back...)
	sum.Resurrections, sum.ExpiredReads = len(resurrected), len(expired)

	// Until anti-entropy lands, reads are what heal a replica that missed a
	// write and its hint: one ALL read of each differing key repairs it.
	if len(div) > 0 {
		for _, d := range div {
			key, _, _ := strings.Cut(d, ": ")
			if _, _, err := readAt(traffic.All)(ctx, key); err != nil {
				t.Logf("repair read %s: %v", key, err)
			}
		}
		if div, err = waitConverged(ctx, c, keys, rc.convergeWithin); err != nil {
			t.Fatal(err)
		}
	}
	sum.Divergent = len(div)
	sum.ConvergenceTime = time.Since(healed)

	var b strings.Builder
	sum.Print(&b)
	b.WriteString("\n")
	report.PrintAvailability(&b, rec.Avail.Rows())
	t.Log("\n" + b.String())

	for _, l := range lost {
		t.Errorf("lost write: %s", l)
	}
	for _, v := range regViol {
		t.Errorf("register %s", v)
	}
	for _, v := range resurrected {
		t.Errorf("resurrection %s", v)
	}
	for _, v := range expired {
		t.Errorf("expired read %s", v)
	}
	for _, d := range div {
		t.Errorf("replicas still differ after repair: %s", d)
	}
	if sum.WriteOnceChecked == 0 || sum.RegistersChecked == 0 {
		t.Errorf("workload made no progress: %d acknowledged write-once keys, %d registers", sum.WriteOnceChecked, sum.RegistersChecked)
	}
	if t.Failed() {
		t.Logf("FAILED: rerun with RINGKV_CHAOS_SEED=%d", rc.seed)
	}
	return sum
}

// waitConverged polls until every key's replicas agree or within passes, and
// returns the keys that still differ.
func waitConverged(ctx context.Context, c cluster, keys []string, within time.Duration) ([]string, error) {
	deadline := time.Now().Add(within)
	for {
		div, err := checker.Divergent(ctx, keys, c.Versions)
		if err != nil {
			return nil, fmt.Errorf("reading replica versions: %w", err)
		}
		if len(div) == 0 || time.Now().After(deadline) {
			return div, nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}
