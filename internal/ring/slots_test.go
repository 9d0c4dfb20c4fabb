package ring

import (
	"slices"
	"strconv"
	"testing"
)

// TestSlotMatchesRedis checks the slot function against values Redis
// Cluster's CLUSTER KEYSLOT gives, hash tags included.
func TestSlotMatchesRedis(t *testing.T) {
	if got := crc16([]byte("123456789")); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#x, want 0x31c3 (CRC-16/XMODEM check value)", got)
	}
	for _, tc := range []struct {
		key  string
		slot int
	}{
		{"foo", 12182},
		{"bar", 5061},
		{"key:000000000000", 13053},
		{"{user1000}.following", 3443},
		{"{user1000}.followers", 3443},
		{"user1000", 3443},
		// An empty tag hashes the whole key; the tag ends at the first '}'
		// after the first '{'. Values from Redis 7's CLUSTER KEYSLOT.
		{"foo{}{bar}", 8363},
		{"foo{{bar}}zap", 4015},
		{"{bar", 4015},
		{"foo{bar}{zap}", 5061},
		{"{", 4092},
	} {
		if got := Slot([]byte(tc.key)); got != tc.slot {
			t.Errorf("Slot(%q) = %d, want %d", tc.key, got, tc.slot)
		}
		if got := SlotOf(Token([]byte(tc.key))); got != tc.slot {
			t.Errorf("SlotOf(Token(%q)) = %d, want %d", tc.key, got, tc.slot)
		}
	}
}

// TestSlotRangesAgreeWithReplicas checks that the slot ranges cover every
// slot once, in order, and that every key's replicas are those of its slot's
// range: what a cluster-mode client relies on.
func TestSlotRangesAgreeWithReplicas(t *testing.T) {
	for _, tc := range []struct{ nodes, vnodes, rf int }{{1, 1, 3}, {3, 64, 3}, {3, 1, 2}, {10, 64, 3}, {100, 64, 3}} {
		t.Run(strconv.Itoa(tc.nodes)+"x"+strconv.Itoa(tc.vnodes), func(t *testing.T) {
			r := New(makeNodes(tc.nodes, 3), tc.vnodes, tc.rf)
			sr := r.SlotRanges()
			next := 0
			bySlot := make([][]Node, Slots)
			for i, g := range sr {
				if g.First != next || g.Last < g.First {
					t.Fatalf("range %d is [%d, %d], want it to start at %d", i, g.First, g.Last, next)
				}
				if i > 0 && slices.Equal(sr[i-1].Replicas, g.Replicas) {
					t.Errorf("ranges %d and %d have the same replicas and were not merged", i-1, i)
				}
				for s := g.First; s <= g.Last; s++ {
					bySlot[s] = g.Replicas
				}
				next = g.Last + 1
			}
			if next != Slots {
				t.Fatalf("slot ranges end at %d, want %d", next-1, Slots-1)
			}
			for i := range 20000 {
				k := []byte("key-" + strconv.Itoa(i))
				if got, want := bySlot[Slot(k)], r.Replicas(k); !slices.Equal(got, want) {
					t.Fatalf("key %s slot %d: slot range replicas %v, ring replicas %v", k, Slot(k), got, want)
				}
			}
			// Both ends of every slot lie in the same vnode range.
			for s := range uint64(Slots) {
				lo, hi := s<<slotShift, slotEnd(s)
				if a, b := r.index(lo), r.index(hi); a != b {
					t.Fatalf("slot %d straddles vnode ranges %d and %d", s, a, b)
				}
			}
		})
	}
}

// TestHashTagsColocate checks that keys sharing a hash tag share replicas.
func TestHashTagsColocate(t *testing.T) {
	r := New(makeNodes(10, 0), 64, 3)
	want := r.Replicas([]byte("{order:42}"))
	for i := range 100 {
		k := []byte("{order:42}:line:" + strconv.Itoa(i))
		if got := r.Replicas(k); !slices.Equal(got, want) {
			t.Fatalf("%s: replicas %v, want those of its tag %v", k, got, want)
		}
	}
}
