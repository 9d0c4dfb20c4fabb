package peermethod

import "testing"

// TestNoMethodsCollide keeps the table a table: every number is one method,
// every name is used once, and each method lies in its owner's block, which
// is how the server routes it.
func TestNoMethodsCollide(t *testing.T) {
	byNum := map[uint8]string{}
	byName := map[string]bool{}
	for _, m := range All {
		if other, ok := byNum[m.Num]; ok {
			t.Errorf("method %d is both %s and %s", m.Num, other, m.Name)
		}
		byNum[m.Num] = m.Name
		if byName[m.Name] {
			t.Errorf("method name %s is used twice", m.Name)
		}
		byName[m.Name] = true
		if owner, ok := OwnerOf(m.Num); !ok || owner != m.Owner {
			t.Errorf("method %s (%d) belongs to %s but its number routes to %q", m.Name, m.Num, m.Owner, owner)
		}
	}
}

func TestOwnerOfRefusesNumbersNoBlockHolds(t *testing.T) {
	for _, m := range []uint8{48, 63, 80, 255} {
		if owner, ok := OwnerOf(m); ok {
			t.Errorf("OwnerOf(%d) = %s, want none", m, owner)
		}
	}
}
