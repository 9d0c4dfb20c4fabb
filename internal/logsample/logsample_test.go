package logsample

import (
	"testing"
	"time"
)

func TestSamplerCountsWhatItHolds(t *testing.T) {
	now := time.Unix(1000, 0)
	s := New(time.Second)
	s.now = func() time.Time { return now }
	if ok, n := s.Allow(); !ok || n != 0 {
		t.Fatalf("first event: ok=%v suppressed=%d, want true 0", ok, n)
	}
	for range 5 {
		if ok, _ := s.Allow(); ok {
			t.Fatal("event inside the interval was let through")
		}
	}
	now = now.Add(time.Second)
	if ok, n := s.Allow(); !ok || n != 5 {
		t.Fatalf("after the interval: ok=%v suppressed=%d, want true 5", ok, n)
	}
}

func TestKeyedBoundsKinds(t *testing.T) {
	k := NewKeyed(time.Hour, 2)
	if ok, _ := k.Allow("a"); !ok {
		t.Fatal("first a held back")
	}
	if ok, _ := k.Allow("b"); !ok {
		t.Fatal("first b held back: one kind's flood hid another")
	}
	if ok, _ := k.Allow("c"); !ok {
		t.Fatal("first overflow kind held back")
	}
	if ok, _ := k.Allow("d"); ok {
		t.Fatal("second overflow kind got its own sampler past maxKeys")
	}
	if len(k.byKey) != 2 {
		t.Fatalf("tracking %d kinds, want 2", len(k.byKey))
	}
}
