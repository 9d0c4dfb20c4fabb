// Package checker holds the chaos suite's verdicts on a recorded history: the
// invariants of design §12 that ringkv promises, each as a function from a
// history (and, where it needs the cluster, a read function) to violations.
package checker

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/ringkv/ringkv/tests/chaos/traffic"
)

// ReadFunc reads a key at QUORUM (or whatever the caller binds) after faults heal.
type ReadFunc func(ctx context.Context, key string) (value string, found bool, err error)

// LostWrites re-reads every acknowledged write-once key and returns how many
// it checked and the keys that are missing or wrong (invariant 1). A read that
// keeps failing counts as lost: a checker that cannot look must not pass.
func LostWrites(ctx context.Context, ops []traffic.Op, read ReadFunc) (checked int, lost []string) {
	for _, op := range ops {
		if op.Workload != "write-once" || op.Kind != traffic.Put || op.Outcome != traffic.OK {
			continue
		}
		checked++
		var err error
		for attempt := range 10 {
			var v string
			var found bool
			if v, found, err = read(ctx, op.Key); err == nil {
				if !found || v != op.Value {
					lost = append(lost, fmt.Sprintf("%s: acknowledged at %s, read found=%v value=%q",
						op.Key, op.Return.Format("15:04:05.000"), found, v))
				}
				break
			}
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
		}
		if err != nil {
			lost = append(lost, fmt.Sprintf("%s: unreadable after retries: %v", op.Key, err))
		}
	}
	return checked, lost
}

// Counters reads every counter the history added to and checks its value
// against the increments: it must be at least the sum of the acknowledged
// ones and at most that plus the sum of those whose outcome is unknown
// (each may or may not have counted; the workload adds only positive
// amounts). A read that keeps failing is a violation.
func Counters(ctx context.Context, ops []traffic.Op, read ReadFunc) (checked int, violations []Violation) {
	type bounds struct{ lo, hi int64 }
	sums := map[string]*bounds{}
	hist := byKey(ops, "counter")
	for _, key := range sortedKeys(hist) {
		b := &bounds{}
		sums[key] = b
		for _, op := range hist[key] {
			d, err := strconv.ParseInt(op.Value, 10, 64)
			if op.Kind != traffic.Incr || err != nil || d < 0 {
				violations = append(violations, Violation{Key: key, What: fmt.Sprintf("not a positive increment: %s", op)})
				continue
			}
			switch op.Outcome {
			case traffic.OK:
				b.lo += d
				b.hi += d
			case traffic.Indeterminate:
				b.hi += d
			}
		}
	}
	for _, key := range sortedKeys(hist) {
		checked++
		b := sums[key]
		var v string
		var found bool
		var err error
		for attempt := range 10 {
			if v, found, err = read(ctx, key); err == nil {
				break
			}
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
		}
		if err != nil {
			violations = append(violations, Violation{Key: key, What: fmt.Sprintf("unreadable after retries: %v", err)})
			continue
		}
		n := int64(0)
		if found {
			if n, err = strconv.ParseInt(v, 10, 64); err != nil {
				violations = append(violations, Violation{Key: key, What: fmt.Sprintf("reads %q, not an integer", v), History: hist[key]})
				continue
			}
		}
		if n < b.lo || n > b.hi {
			violations = append(violations, Violation{Key: key,
				What: fmt.Sprintf("reads %d; acknowledged increments sum to %d, with the unknown ones %d", n, b.lo, b.hi), History: hist[key]})
		}
	}
	return checked, violations
}

// Violation is one broken invariant with the history that shows it.
type Violation struct {
	Key     string
	What    string
	History []traffic.Op
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", v.Key, v.What)
	for _, op := range v.History {
		fmt.Fprintf(&b, "    %s\n", op)
	}
	return b.String()
}

func byKey(ops []traffic.Op, workload string) map[string][]traffic.Op {
	m := map[string][]traffic.Op{}
	for _, op := range ops {
		if op.Workload == workload {
			m[op.Key] = append(m[op.Key], op)
		}
	}
	return m
}

func sortedKeys(m map[string][]traffic.Op) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// registerModel is a last-write-wins register written by one writer with
// increasing values 1, 2, 3…. An acknowledged write's version is newer than
// every earlier write the writer saw acknowledged, so a write of a value older
// than the register's newest has no effect, as ringkv drops a record older
// than the one a replica holds. A write whose outcome the writer never
// learned is different: its coordinator stamps the version when it reads
// the request, and a coordinator that stalled (a paused process, a long GC)
// with the request unread may stamp it after the writer, having given up,
// sent the next one through another connection; it then carries the newer
// version and wins (seed 534383179860291039, docs/chaos.md). So an unknown
// write takes effect wherever porcupine places it; placed before a newer
// write it is overwritten, which covers the case where it lost. "" is the
// absent key.
var registerModel = porcupine.Model{
	Init: func() any { return registerState{} },
	Step: func(state, input, output any) (bool, any) {
		st, in := state.(registerState), input.(registerInput)
		if in.write {
			if in.unknown {
				return true, registerState{in.value, max(st.seq, in.seq)}
			}
			if in.seq > st.seq {
				return true, registerState{in.value, in.seq}
			}
			return true, st
		}
		return output.(string) == st.value, st
	},
	DescribeOperation: func(input, output any) string {
		in := input.(registerInput)
		if in.write {
			return fmt.Sprintf("put(%q)", in.value)
		}
		return fmt.Sprintf("get() -> %q", output)
	},
}

type registerState struct {
	value string
	seq   int // the newest write's sequence number, from its value
}

type registerInput struct {
	write   bool
	unknown bool // a write whose outcome is unknown (see registerModel)
	value   string
	seq     int
}

// writeInput is a register write; values are the writer's sequence numbers.
func writeInput(value string) registerInput {
	seq, err := strconv.Atoi(value)
	if err != nil {
		panic(fmt.Sprintf("checker: register value %q is not a sequence number", value))
	}
	return registerInput{write: true, value: value, seq: seq}
}

// Registers checks each single-writer register's history for
// linearizability with porcupine (invariant 5 and more: with one writer and
// QUORUM on both sides, ringkv's reads must behave like one register). Failed
// writes and reads that errored are left out. A write whose outcome is
// unknown may take effect later (a hint, a replica that applied it), so it
// may be linearized anywhere after its call, and may even win over a later
// write (see registerModel). Its return is bounded by the later of the next
// acknowledged write's return and the return of the last read that returned
// its value: every read that returns it must follow its placement, so no
// valid order places it later than that; with no later acknowledged write it
// stays open. Bounding it keeps porcupine's search small on long runs, where
// hundreds of open-ended writes made a 10-minute history uncheckable. A check
// porcupine cannot finish in timeout is a failure, not a pass.
func Registers(ops []traffic.Op, timeout time.Duration) (keys int, violations []Violation) {
	hist := byKey(ops, "register")
	for _, key := range sortedKeys(hist) {
		keys++
		h := hist[key]
		// nextAck[i]: the return of the first acknowledged write called
		// after write i returned (the writer is sequential).
		nextAck := make([]int64, len(h))
		next := int64(math.MaxInt64)
		order := make([]int, len(h))
		for i := range order {
			order[i] = i
		}
		sort.Slice(order, func(a, b int) bool { return h[order[a]].Call.After(h[order[b]].Call) })
		for _, i := range order {
			op := h[i]
			if op.Kind != traffic.Put {
				continue
			}
			nextAck[i] = next
			if op.Outcome == traffic.OK {
				next = op.Return.UnixNano()
			}
		}
		// An unknown write no read ever returned is left out: whether or not
		// it took effect, it can be placed just before the next write, where
		// it is invisible, so it decides nothing; kept, porcupine would try
		// every subset of a fault's worth of them.
		seen := map[string]bool{}
		lastSeen := map[string]int64{} // the latest return of a read of each value
		for _, op := range h {
			if op.Kind == traffic.Get && op.Outcome == traffic.OK && op.Found {
				seen[op.Value] = true
				lastSeen[op.Value] = max(lastSeen[op.Value], op.Return.UnixNano())
			}
		}
		var pops []porcupine.Operation
		for i, op := range h {
			switch {
			case op.Kind == traffic.Put && op.Outcome == traffic.Indeterminate && !seen[op.Value]:
			case op.Kind == traffic.Put && op.Outcome == traffic.OK:
				pops = append(pops, porcupine.Operation{Input: writeInput(op.Value), Call: op.Call.UnixNano(), Return: op.Return.UnixNano()})
			case op.Kind == traffic.Put && op.Outcome == traffic.Indeterminate:
				in := writeInput(op.Value)
				in.unknown = true
				pops = append(pops, porcupine.Operation{Input: in, Call: op.Call.UnixNano(), Return: max(nextAck[i], lastSeen[op.Value])})
			case op.Kind == traffic.Get && op.Outcome == traffic.OK:
				v := ""
				if op.Found {
					v = op.Value
				}
				pops = append(pops, porcupine.Operation{Input: registerInput{}, Output: v, Call: op.Call.UnixNano(), Return: op.Return.UnixNano()})
			}
		}
		switch porcupine.CheckOperationsTimeout(registerModel, pops, timeout) {
		case porcupine.Ok:
		case porcupine.Illegal:
			violations = append(violations, Violation{Key: key, What: "history is not linearizable", History: hist[key]})
		default:
			violations = append(violations, Violation{Key: key, What: fmt.Sprintf("linearizability check inconclusive after %v", timeout), History: hist[key]})
		}
	}
	return keys, violations
}

// Resurrections checks the delete/TTL workload (invariants 3 and 4):
//   - a QUORUM or ALL read that starts after an acknowledged QUORUM delete
//     returned must not find the key (ONE may still see a replica the delete
//     has not reached: stale, not resurrected);
//   - no read at any level that starts later than the put's return + TTL +
//     margin may find a TTL key. margin covers the clock disagreement between
//     the coordinator that set the expiry and the replica that answers.
func Resurrections(ops []traffic.Op, margin time.Duration) (resurrected, expiredReads []Violation) {
	hist := byKey(ops, "delete-ttl")
	for _, key := range sortedKeys(hist) {
		h := hist[key]
		var put, del *traffic.Op
		for i := range h {
			switch {
			case h[i].Kind == traffic.Put:
				put = &h[i]
			case h[i].Kind == traffic.Del && h[i].Outcome == traffic.OK:
				del = &h[i]
			}
		}
		if put == nil || put.Outcome != traffic.OK {
			continue
		}
		for _, op := range h {
			if op.Kind != traffic.Get || op.Outcome != traffic.OK || !op.Found {
				continue
			}
			if del != nil && op.Level != traffic.One && op.Call.After(del.Return) {
				resurrected = append(resurrected, Violation{Key: key, What: fmt.Sprintf("read at %s found the key after its delete was acknowledged", op.Level), History: h})
				break
			}
			if put.TTL > 0 && op.Call.After(put.Return.Add(put.TTL+margin)) {
				expiredReads = append(expiredReads, Violation{Key: key, What: fmt.Sprintf("read at %s returned the key %v after it expired", op.Level, op.Call.Sub(put.Return.Add(put.TTL)).Round(time.Millisecond)), History: h})
				break
			}
		}
	}
	return resurrected, expiredReads
}

// FinalDeletes re-reads, after heal, every key whose delete was acknowledged
// or whose TTL has long passed, and reports those that came back.
func FinalDeletes(ctx context.Context, ops []traffic.Op, read ReadFunc) (checked int, back []Violation) {
	hist := byKey(ops, "delete-ttl")
	now := time.Now()
	for _, key := range sortedKeys(hist) {
		h := hist[key]
		gone := false
		for _, op := range h {
			if (op.Kind == traffic.Del && op.Outcome == traffic.OK) ||
				(op.Kind == traffic.Put && op.Outcome == traffic.OK && op.TTL > 0 && now.After(op.Return.Add(op.TTL+5*time.Second))) {
				gone = true
			}
		}
		if !gone {
			continue
		}
		checked++
		if v, found, err := read(ctx, key); err == nil && found {
			back = append(back, Violation{Key: key, What: fmt.Sprintf("came back after heal with %q", v), History: h})
		}
	}
	return checked, back
}

// Keys returns every key the history wrote, for the convergence check.
func Keys(ops []traffic.Op) []string {
	seen := map[string]bool{}
	var keys []string
	for _, op := range ops {
		if op.Kind != traffic.Get && !seen[op.Key] {
			seen[op.Key] = true
			keys = append(keys, op.Key)
		}
	}
	sort.Strings(keys)
	return keys
}

// VersionsFunc returns the local version string of key on each of its
// current replicas ("" where a replica holds nothing). Nodes that are not a
// replica of key (any more) are left out: they may keep what they streamed
// away.
type VersionsFunc func(ctx context.Context, key string) ([]string, error)

// Divergent returns the keys whose replicas disagree (invariant 2).
func Divergent(ctx context.Context, keys []string, versions VersionsFunc) ([]string, error) {
	var out []string
	for _, k := range keys {
		vs, err := versions(ctx, k)
		if err != nil {
			return nil, err
		}
		for _, v := range vs[1:] {
			if v != vs[0] {
				out = append(out, fmt.Sprintf("%s: %q", k, vs))
				break
			}
		}
	}
	return out, nil
}

// RangeRoot is one node's anti-entropy root of one token range it replicates,
// as GET /v1/repair/status?roots=true reports it.
type RangeRoot struct {
	Start    uint64   `json:"start"`
	End      uint64   `json:"end"`
	Replicas []string `json:"replicas"`
	Root     uint64   `json:"root"`
}

// RootsDiffer compares every node's range roots (invariant 2 as anti-entropy
// sees it) and returns what disagrees: a range whose replicas report
// different roots, a range a replica does not report, or nodes that place a
// range on different replicas (their rings differ). byNode holds the current
// members only; it returns how many distinct ranges it compared.
func RootsDiffer(byNode map[string][]RangeRoot) (ranges int, diffs []string) {
	type span struct{ start, end uint64 }
	type seen struct {
		root     uint64
		node     string
		replicas string
	}
	first := map[span]seen{}
	reported := map[span]map[string]bool{}
	nodes := make([]string, 0, len(byNode))
	for id := range byNode {
		nodes = append(nodes, id)
	}
	sort.Strings(nodes)
	for _, id := range nodes {
		for _, r := range byNode[id] {
			k := span{r.Start, r.End}
			reps := strings.Join(r.Replicas, ",")
			if reported[k] == nil {
				reported[k] = map[string]bool{}
			}
			reported[k][id] = true
			f, ok := first[k]
			switch {
			case !ok:
				first[k] = seen{r.Root, id, reps}
			case f.replicas != reps:
				diffs = append(diffs, fmt.Sprintf("range (%x,%x]: %s places it on [%s], %s on [%s]", r.Start, r.End, f.node, f.replicas, id, reps))
			case f.root != r.Root:
				diffs = append(diffs, fmt.Sprintf("range (%x,%x]: %s has root %x, %s has %x", r.Start, r.End, f.node, f.root, id, r.Root))
			}
		}
	}
	spans := make([]span, 0, len(first))
	for k := range first {
		spans = append(spans, k)
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for _, k := range spans {
		for _, rep := range strings.Split(first[k].replicas, ",") {
			if _, member := byNode[rep]; member && !reported[k][rep] {
				diffs = append(diffs, fmt.Sprintf("range (%x,%x]: replica %s does not report it", k.start, k.end, rep))
			} else if !member {
				diffs = append(diffs, fmt.Sprintf("range (%x,%x]: placed on %s, which is not a member", k.start, k.end, rep))
			}
		}
	}
	return len(first), diffs
}
