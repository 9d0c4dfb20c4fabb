package clock

import (
	"testing"
	"time"
)

// The guard is asked on every apply and on every read that picks a
// version; the jump detector on every coordinated write of a clustered node.
func BenchmarkGuardCheck(b *testing.B) {
	g := NewGuard(NewOffset(System{}, 0), 500*time.Millisecond)
	ts := MakeTimestamp(time.Now().UnixMilli(), 0)
	for b.Loop() {
		if g.Check(ts) != nil {
			b.Fatal("refused")
		}
	}
}

func BenchmarkJumpDetector(b *testing.B) {
	wall := NewOffset(System{}, 0)
	for _, armed := range []bool{false, true} {
		j := NewJumpDetector(400 * time.Millisecond)
		name := "disarmed"
		if armed {
			j.Arm(Gap(wall))
			name = "armed"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if j.Jumped(wall) != 0 {
					b.Fatal("jumped")
				}
			}
		})
	}
	// What a write pays: it has read the monotonic clock already.
	j := NewJumpDetector(400 * time.Millisecond)
	j.Arm(Gap(wall))
	b.Run("armed-write-path", func(b *testing.B) {
		mono, i := Mono(), 0
		for b.Loop() {
			if i++; i%1024 == 0 {
				mono = Mono() // a write reads it just before
			}
			if j.JumpedAt(wall, mono) != 0 {
				b.Fatal("jumped")
			}
		}
	})
}
