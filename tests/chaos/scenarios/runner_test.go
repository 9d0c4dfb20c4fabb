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

// cluster is what a scenario runs against: the faults, the client view,
// each node's local view of a key, and the anti-entropy the convergence
// check relies on (range roots, not reads, must show the replicas healed).
type cluster interface {
	failpoint.Cluster
	traffic.KV
	// Versions returns the local version of key on each of its replicas in
	// the current ring ("" when absent).
	Versions(ctx context.Context, key string) ([]string, error)
	// WaitHealthy waits until every member is up and sees every other member
	// up and normal.
	WaitHealthy(ctx context.Context) error
	// RangeRoots returns, per member id, the root of every range it replicates.
	RangeRoots(ctx context.Context) (map[string][]checker.RangeRoot, error)
	// Repair starts an on-demand anti-entropy pass on every member.
	Repair(ctx context.Context) error
	// RepairInterval is the nodes' continuous anti-entropy period.
	RepairInterval() time.Duration
}

type runConfig struct {
	name     string
	seed     uint64
	duration time.Duration
	// calm is the fault-free time before the first fault and after each heal;
	// hold is how long each fault lasts.
	calm, hold time.Duration
	// atFormation are injected first, as soon as the traffic starts on the
	// cluster just formed, without the calm before them.
	atFormation []failpoint.Failpoint
	faults      []failpoint.Failpoint
	traffic     traffic.Config
	// convergeWithin is the polling margin added to two repair periods: how
	// long after heal the replicas must agree (the passive wait, before an
	// explicit repair).
	convergeWithin time.Duration
}

// envDuration reads RINGKV_CHAOS_DURATION, else def.
func envDuration(t testing.TB, def time.Duration) time.Duration {
	t.Helper()
	return envDurationNamed(t, "RINGKV_CHAOS_DURATION", def)
}

// envDurationNamed reads the duration in environment variable name, else def.
func envDurationNamed(t testing.TB, name string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
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

	// The run lasts rc.duration, and longer when that is too short to inject
	// every fault once (a join or decommission takes as long as it takes):
	// the traffic goes on until both are done.
	ctx := t.Context()
	tctx, stop := context.WithTimeout(ctx, rc.duration)
	defer stop()
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	done := make(chan struct{})
	go func() { defer close(done); traffic.Run(trafficCtx, c, rec, rc.traffic, rc.seed) }()

	firstRound := true // every fault not injected once yet: holds and calms run in full
	sleep := func(d time.Duration) {
		end := tctx.Done()
		if firstRound {
			end = ctx.Done()
		}
		select {
		case <-end:
		case <-time.After(d):
		}
	}
	inject := func(fp failpoint.Failpoint) {
		rec.Avail.SetPhase(fp.Name + " during")
		at := time.Since(start)
		desc, heal, err := fp.Inject(ctx, c, rnd) // a join or decommission returns when done
		if err != nil {
			t.Fatalf("injecting %s: %v", desc, err)
		}
		sum.Faults = append(sum.Faults, fmt.Sprintf("%6.1fs (+%4.1fs to inject) %s", at.Seconds(), (time.Since(start)-at).Seconds(), desc))
		t.Logf("fault: %s", desc)
		sleep(rc.hold)
		if err := heal(ctx); err != nil {
			t.Fatalf("healing %s: %v", desc, err)
		}
		rec.Avail.SetPhase(fp.Name + " after")
		sleep(rc.calm)
	}
	for _, fp := range rc.atFormation {
		inject(fp)
	}
	if len(rc.atFormation) == 0 {
		sleep(rc.calm)
	}
	for i := 0; len(rc.faults) > 0 && (i < len(rc.faults) || tctx.Err() == nil); i++ {
		firstRound = i < len(rc.faults)
		fp := rc.faults[i%len(rc.faults)]
		if !firstRound {
			fp = rc.faults[rnd.IntN(len(rc.faults))] // every fault once, then at random
		}
		inject(fp)
	}
	firstRound = false
	<-tctx.Done()
	stopTraffic()
	<-done
	sum.Duration = time.Since(start)
	rec.Avail.SetPhase("checks")

	healed := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := c.WaitHealthy(wctx); err != nil {
		t.Fatalf("cluster did not recover after heal: %v", err)
	}
	sum.SettleTime = time.Since(healed)
	settled := time.Now()
	ops := rec.Ops()
	sum.Count(ops)
	keys := checker.Keys(ops)

	readAt := func(level string) checker.ReadFunc {
		return func(ctx context.Context, key string) (string, bool, error) {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			m := c.Members()
			return c.Get(rctx, m[rnd.IntN(len(m))], key, level)
		}
	}

	for _, i := range c.Members() {
		sum.Members = append(sum.Members, fmt.Sprintf("n%d", i+1))
	}

	// Convergence first, while nothing but the cluster itself touches the
	// data: the checks below read at QUORUM, and their read repair would
	// otherwise hide a replica that anti-entropy (or hints) never fixed.
	div := convergeByAntiEntropy(t, c, keys, rc, &sum, settled)

	var lost []string
	sum.WriteOnceChecked, lost = checker.LostWrites(ctx, ops, readAt(traffic.Quorum))
	sum.LostWrites = len(lost)
	var ctrViol []checker.Violation
	sum.CountersChecked, ctrViol = checker.Counters(ctx, ops, readAt(traffic.Quorum))
	sum.CounterErrors = len(ctrViol)
	var regViol []checker.Violation
	sum.RegistersChecked, regViol = checker.Registers(ops, time.Minute)
	sum.LinearizabilityViolations = len(regViol)
	resurrected, expired := checker.Resurrections(ops, 2*failpoint.MaxSkew+200*time.Millisecond)
	var back []checker.Violation
	sum.DeletesChecked, back = checker.FinalDeletes(ctx, ops, readAt(traffic.Quorum))
	resurrected = append(resurrected, back...)
	sum.Resurrections, sum.ExpiredReads = len(resurrected), len(expired)

	sum.Divergent = len(div)

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
	for _, v := range ctrViol {
		t.Errorf("counter %s", v)
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
	if !sum.ConvergedPassively {
		t.Errorf("invariant 2: replicas did not converge within two anti-entropy periods (+%v polling margin) of the heal; %s", rc.convergeWithin, sum.ConvergedBy)
	}

	if rc.traffic.CounterWorkers > 0 && sum.CountersChecked == 0 {
		t.Errorf("counter workload made no progress")
	}
	if sum.WriteOnceChecked == 0 || sum.RegistersChecked == 0 {
		t.Errorf("workload made no progress: %d acknowledged write-once keys, %d registers", sum.WriteOnceChecked, sum.RegistersChecked)
	}
	if t.Failed() {
		t.Logf("FAILED: rerun with RINGKV_CHAOS_SEED=%d", rc.seed)
	}
	return sum
}

// convergeByAntiEntropy is invariant 2: within two repair periods (plus the
// polling margin rc.convergeWithin) of every member being up and normal
// again, the replicas of every range report identical roots and every key
// the run wrote has one version on all its replicas, with no read and no
// request from the checker. If that passive wait fails, it asks every member for a repair
// and requires agreement after it; the run then reports that continuous
// anti-entropy alone did not converge.
func convergeByAntiEntropy(t *testing.T, c cluster, keys []string, rc runConfig, sum *report.Summary, settled time.Time) []string {
	t.Helper()
	ctx := t.Context()
	var div []string
	var rootsAgreed time.Time
	// checkStart is when the latest check read the roots: with no traffic,
	// a check that passes shows the replicas agreed then, however long its
	// key-by-key confirmation takes (many seconds for tens of thousands of
	// keys), so that is the convergence time, and the deadline applies to it.
	var checkStart time.Time
	check := func() bool {
		checkStart = time.Now()
		byNode, err := c.RangeRoots(ctx)
		if err != nil {
			div = []string{"range roots: " + err.Error()}
			return false
		}
		sum.RangesChecked, div = checker.RootsDiffer(byNode)
		if len(div) > 0 {
			return false
		}
		if rootsAgreed.IsZero() {
			rootsAgreed = time.Now()
			t.Logf("range roots agree %v after the members were up and normal; confirming key by key",
				rootsAgreed.Sub(settled).Round(time.Millisecond))
		}
		// Roots agree: confirm key by key, which also catches a root that
		// hides a difference (or a bucket hash that missed an apply).
		if div, err = checker.Divergent(ctx, keys, c.Versions); err != nil {
			div = []string{"replica versions: " + err.Error()}
		}
		return len(div) == 0
	}
	poll := func(within time.Duration) bool {
		deadline := time.Now().Add(within)
		for {
			ok := check()
			if ok || checkStart.After(deadline) {
				return ok && !checkStart.After(deadline)
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return false
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	sum.ConvergedBy = "continuous anti-entropy"
	// The periods count from when every member is back up and normal: a
	// pass cannot reach a peer that gossip still marks down.
	passive := 2*c.RepairInterval() + rc.convergeWithin
	if poll(passive) {
		sum.ConvergedPassively = true
		sum.ConvergenceTime = checkStart.Sub(settled)
		sum.ConfirmTime = time.Since(checkStart)
		return nil
	}
	t.Logf("replicas differ %v after heal with continuous anti-entropy (period %v); first: %s",
		passive, c.RepairInterval(), strings.Join(div[:min(3, len(div))], "; "))
	sum.ConvergedBy = "explicit repair on every member"
	if err := c.Repair(ctx); err != nil {
		t.Fatalf("starting repair: %v", err)
	}
	ok := poll(2*c.RepairInterval() + rc.convergeWithin)
	sum.ConvergenceTime = checkStart.Sub(settled)
	sum.ConfirmTime = time.Since(checkStart)
	if ok {
		return nil
	}
	return div
}
