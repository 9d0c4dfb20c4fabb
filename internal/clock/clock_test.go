package clock

import (
	"testing"
	"time"
)

func TestMonoMeasuresElapsedTime(t *testing.T) {
	a := Mono()
	time.Sleep(20 * time.Millisecond)
	b := Mono()
	if d := b - a; d < 20*time.Millisecond || d > 10*time.Second {
		t.Fatalf("Mono advanced %v over a 20ms sleep", d)
	}
}
