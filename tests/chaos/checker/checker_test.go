package checker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/tests/chaos/traffic"
)

func TestRootsDiffer(t *testing.T) {
	r := func(start, end, root uint64, reps ...string) RangeRoot {
		return RangeRoot{Start: start, End: end, Root: root, Replicas: reps}
	}
	tests := []struct {
		name   string
		byNode map[string][]RangeRoot
		ranges int
		want   []string // substrings, one per expected diff
	}{
		{
			name: "agree",
			byNode: map[string][]RangeRoot{
				"n1": {r(0, 10, 7, "n1", "n2"), r(10, 20, 9, "n2", "n1")},
				"n2": {r(0, 10, 7, "n1", "n2"), r(10, 20, 9, "n2", "n1")},
			},
			ranges: 2,
		},
		{
			name: "root differs",
			byNode: map[string][]RangeRoot{
				"n1": {r(0, 10, 7, "n1", "n2")},
				"n2": {r(0, 10, 8, "n1", "n2")},
			},
			ranges: 1, want: []string{"n1 has root 7, n2 has 8"},
		},
		{
			name: "replica silent",
			byNode: map[string][]RangeRoot{
				"n1": {r(0, 10, 7, "n1", "n2")},
				"n2": {},
			},
			ranges: 1, want: []string{"replica n2 does not report it"},
		},
		{
			name: "rings differ",
			byNode: map[string][]RangeRoot{
				"n1": {r(0, 10, 7, "n1", "n2")},
				"n2": {r(0, 10, 7, "n2", "n1")},
			},
			ranges: 1, want: []string{"n1 places it on [n1,n2], n2 on [n2,n1]"},
		},
		{
			name: "placed on a non-member",
			byNode: map[string][]RangeRoot{
				"n1": {r(0, 10, 7, "n1", "n4")},
			},
			ranges: 1, want: []string{"placed on n4, which is not a member"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ranges, diffs := RootsDiffer(tt.byNode)
			if ranges != tt.ranges {
				t.Errorf("ranges = %d, want %d", ranges, tt.ranges)
			}
			if len(diffs) != len(tt.want) {
				t.Fatalf("diffs = %q, want %d matching %q", diffs, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(diffs[i], w) {
					t.Errorf("diff %d = %q, want it to say %q", i, diffs[i], w)
				}
			}
		})
	}
}

func TestDivergent(t *testing.T) {
	vs := map[string][]string{"a": {"v1", "v1", "v1"}, "b": {"v1", "", "v1"}, "c": {"", ""}}
	div, err := Divergent(context.Background(), []string{"a", "b", "c"}, func(_ context.Context, key string) ([]string, error) {
		return vs[key], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(div) != 1 || !strings.HasPrefix(div[0], "b: ") {
		t.Fatalf("Divergent = %q, want only b", div)
	}
}

func TestRegistersIndeterminateWrites(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	put := func(v string, call, ret int, out traffic.Outcome) traffic.Op {
		return traffic.Op{Workload: "register", Kind: traffic.Put, Key: "r", Value: v, Call: at(call), Return: at(ret), Outcome: out}
	}
	get := func(v string, call, ret int) traffic.Op {
		return traffic.Op{Workload: "register", Kind: traffic.Get, Key: "r", Value: v, Found: v != "", Call: at(call), Return: at(ret)}
	}
	tests := []struct {
		name string
		ops  []traffic.Op
		ok   bool
	}{
		{"unknown write seen late, nothing acknowledged after", []traffic.Op{
			put("1", 0, 10, traffic.OK), put("2", 20, 30, traffic.Indeterminate), get("2", 500, 510)}, true},
		{"unknown write seen before the next acknowledged one returned", []traffic.Op{
			put("1", 0, 10, traffic.Indeterminate), put("2", 20, 30, traffic.OK), get("1", 25, 27), get("2", 40, 41)}, true},
		// Its coordinator stamped it after the writer's next write (seed
		// 534383179860291039): it is the newest version, and stays so.
		{"unknown write seen after a newer one was acknowledged", []traffic.Op{
			put("1", 0, 10, traffic.Indeterminate), put("2", 20, 30, traffic.OK), get("1", 40, 41), get("1", 50, 51)}, true},
		// Stamped later still, after a read had returned the newer write.
		{"unknown write wins after the newer one was read", []traffic.Op{
			put("1", 0, 10, traffic.Indeterminate), put("2", 20, 30, traffic.OK), get("2", 40, 41), get("1", 50, 51)}, true},
		// It takes effect once: having won, it is not overtaken by the
		// older write, and having been seen and then lost, it does not win
		// again (a QUORUM read that returned it repaired it to a quorum).
		{"newer write read back after the unknown one won", []traffic.Op{
			put("1", 0, 10, traffic.Indeterminate), put("2", 20, 30, traffic.OK), get("1", 40, 41), get("2", 50, 51)}, false},
		{"unknown write seen before the newer one, then after it was read", []traffic.Op{
			put("1", 0, 10, traffic.Indeterminate), put("2", 20, 30, traffic.OK), get("1", 25, 27), get("2", 40, 41), get("1", 50, 51)}, false},
		// An acknowledged write is still never overtaken by an older one.
		{"acknowledged write read back after the next acknowledged one", []traffic.Op{
			put("1", 0, 10, traffic.OK), put("2", 20, 30, traffic.Indeterminate), put("3", 40, 50, traffic.OK), get("2", 45, 46), get("1", 60, 61)}, false},
		{"stale read after an acknowledged write", []traffic.Op{
			put("1", 0, 10, traffic.OK), put("2", 20, 30, traffic.OK), get("1", 40, 41)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, viol := Registers(tt.ops, 10*time.Second)
			if keys != 1 {
				t.Fatalf("checked %d keys", keys)
			}
			if got := len(viol) == 0; got != tt.ok {
				t.Fatalf("linearizable = %v, want %v: %v", got, tt.ok, viol)
			}
		})
	}
}

// A partition's worth of overlapping unknown writes (none observed) between
// acknowledged ones, with reads all along, checks at once: the shape that
// made long runs' histories uncheckable.
func TestRegistersManyUnknownWrites(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var ops []traffic.Op
	last := ""
	for v := 1; v <= 200; v++ {
		op := traffic.Op{Workload: "register", Kind: traffic.Put, Key: "r", Value: fmt.Sprint(v), Call: at(v * 10), Return: at(v*10 + 5)}
		if v%50 > 10 { // 40 unknown writes in every 50
			op.Outcome = traffic.Indeterminate
		} else {
			last = op.Value
		}
		ops = append(ops, op)
		ops = append(ops, traffic.Op{Workload: "register", Kind: traffic.Get, Key: "r", Value: last, Found: last != "", Call: at(v*10 + 6), Return: at(v*10 + 7)})
	}
	start := time.Now()
	if _, viol := Registers(ops, 10*time.Second); len(viol) > 0 {
		t.Fatalf("violations: %v", viol[0].What)
	}
	t.Logf("checked %d operations in %v", len(ops), time.Since(start))
}

func TestCounters(t *testing.T) {
	inc := func(key, delta string, out traffic.Outcome) traffic.Op {
		return traffic.Op{Workload: "counter", Kind: traffic.Incr, Key: key, Value: delta, Outcome: out}
	}
	ops := []traffic.Op{
		inc("a", "3", traffic.OK), inc("a", "4", traffic.OK), inc("a", "5", traffic.Indeterminate), inc("a", "100", traffic.Failed),
		inc("b", "2", traffic.OK),
		inc("c", "1", traffic.OK), inc("c", "1", traffic.OK),
		inc("d", "6", traffic.Indeterminate),
	}
	// a may read 7 or 12; b has lost its increment; c counted one twice;
	// d's only increment is of unknown outcome, so nothing is fine too.
	values := map[string]string{"a": "12", "b": "", "c": "3"}
	read := func(_ context.Context, key string) (string, bool, error) {
		v, ok := values[key]
		return v, ok && v != "", nil
	}
	checked, viol := Counters(t.Context(), ops, read)
	if checked != 4 {
		t.Fatalf("checked %d counters, want 4", checked)
	}
	var bad []string
	for _, v := range viol {
		bad = append(bad, v.Key)
	}
	if fmt.Sprint(bad) != "[b c]" {
		t.Fatalf("violations on %v, want [b c]: %v", bad, viol)
	}
	values["a"] = "13"
	if _, viol := Counters(t.Context(), ops[:4], read); len(viol) != 1 || !strings.Contains(viol[0].What, "reads 13") {
		t.Fatalf("a value above every increment passed: %v", viol)
	}
}
