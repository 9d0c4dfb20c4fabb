package rebalance

import (
	"slices"

	"github.com/ringkv/ringkv/internal/ring"
)

// Task is one range a node must pull: the tokens t with Start < t <= End
// (wrapping when Start >= End), as ring.Range.
type Task struct {
	Start, End uint64
	// Leaving are the current replicas that are not future replicas: the
	// preferred sources.
	Leaving []ring.Node
	// Current is the whole current replica set, the fallback sources.
	Current []ring.Node
}

// Plan returns the ranges self is a future replica of but not a current one,
// in token order. Boundaries are the union of both rings' tokens, so each
// returned range has one current and one future replica set. Either ring may
// be empty; with no current owners there is nothing to pull.
func Plan(cur, fut *ring.Ring, self string) []Task {
	if cur.Len() == 0 || fut.Len() == 0 {
		return nil
	}
	var bounds []uint64
	for _, g := range cur.Ranges() {
		bounds = append(bounds, g.End)
	}
	for _, g := range fut.Ranges() {
		bounds = append(bounds, g.End)
	}
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	var out []Task
	for i, end := range bounds {
		start := bounds[(i+len(bounds)-1)%len(bounds)]
		f := fut.ReplicasForToken(end)
		c := cur.ReplicasForToken(end)
		if !hasNode(f, self) || hasNode(c, self) {
			continue
		}
		var leaving []ring.Node
		for _, n := range c {
			if !hasNode(f, n.ID) {
				leaving = append(leaving, n)
			}
		}
		out = append(out, Task{Start: start, End: end, Leaving: leaving, Current: c})
	}
	return out
}

func hasNode(set []ring.Node, id string) bool {
	for _, n := range set {
		if n.ID == id {
			return true
		}
	}
	return false
}

// segment is a half-open token interval [from, to) as storage.ScanRange takes
// it; to == 0 means the top of the ring.
type segment struct{ from, to uint64 }

// segments splits the ring range (start, end] into at most two ScanRange
// intervals.
func segments(start, end uint64) []segment {
	if start < end {
		return []segment{{start + 1, end + 1}} // end+1 == 0 is the top of the ring
	}
	// Wrapping, or the whole ring when start == end.
	var out []segment
	if start != ^uint64(0) {
		out = append(out, segment{start + 1, 0})
	}
	if end == ^uint64(0) {
		return append(out, segment{0, 0})
	}
	return append(out, segment{0, end + 1})
}
