package ring

import "slices"

// SlotRange is a run of hash slots, First to Last inclusive, that one replica
// set holds.
type SlotRange struct {
	First, Last int
	// Replicas is shared with the Ring that produced it: read-only.
	Replicas []Node
}

// SlotRanges describes the ring as Redis Cluster does: hash slot ranges in
// slot order, together covering 0..Slots-1, each with the replicas of every
// key in it, primary first. Neighbouring vnode ranges with the same replicas
// are merged. Exact because vnode tokens are slot ends: no slot straddles two
// vnode ranges. An empty ring has none.
func (r *Ring) SlotRanges() []SlotRange {
	if len(r.tokens) == 0 {
		return nil
	}
	var out []SlotRange
	add := func(first, last int, reps []Node) {
		if first > last {
			return
		}
		if n := len(out); n > 0 && out[n-1].Last+1 == first && slices.Equal(out[n-1].Replicas, reps) {
			out[n-1].Last = last
			return
		}
		out = append(out, SlotRange{First: first, Last: last, Replicas: reps})
	}
	if len(r.tokens) == 1 {
		add(0, Slots-1, r.sets[0])
		return out
	}
	// The range ending at the lowest token wraps past the top of the ring:
	// its head (slot 0 up) comes first, its tail (after the highest token)
	// last.
	wrapStart := SlotOf(r.tokens[len(r.tokens)-1]) + 1
	add(0, SlotOf(r.tokens[0]), r.sets[0])
	for i := 1; i < len(r.tokens); i++ {
		add(SlotOf(r.tokens[i-1])+1, SlotOf(r.tokens[i]), r.sets[i])
	}
	add(wrapStart, Slots-1, r.sets[0])
	return out
}
