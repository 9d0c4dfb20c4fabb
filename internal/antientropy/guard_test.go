package antientropy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type memMeta map[string][]byte

func (m memMeta) Get(k []byte) ([]byte, bool, error) { v, ok := m[string(k)]; return v, ok, nil }
func (m memMeta) Set(k, v []byte) error              { m[string(k)] = v; return nil }

func TestCheckRejoin(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	grace := time.Hour
	cases := []struct {
		name       string
		lastAlive  time.Duration // before now; 0 means never recorded
		hasData    bool
		allowStale bool
		refused    bool
	}{
		{"new node", 0, false, false, false},
		{"never recorded, with data", 0, true, false, false},
		{"restart within grace", 10 * time.Minute, true, false, false},
		{"down past grace with data", 2 * time.Hour, true, false, true},
		{"down past grace, wiped", 2 * time.Hour, false, false, false},
		{"down past grace, override", 2 * time.Hour, true, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			meta := memMeta{}
			if c.lastAlive != 0 {
				if err := MarkAlive(meta, now.Add(-c.lastAlive)); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckRejoin(meta, now, grace, c.hasData, c.allowStale, testLogger(t))
			if c.refused != (err != nil) {
				t.Fatalf("err = %v, want refused=%v", err, c.refused)
			}
			if err != nil {
				if !errors.Is(err, ErrStaleNode) {
					t.Fatalf("err = %v, want ErrStaleNode", err)
				}
				for _, want := range []string{"Wipe the data directory", "ringkv repair", "--allow-stale-data", "2h0m0s ago"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error lacks %q: %v", want, err)
					}
				}
			}
		})
	}
}

func TestLastAliveRoundTrip(t *testing.T) {
	meta := memMeta{}
	if _, ok, err := LastAlive(meta); ok || err != nil {
		t.Fatalf("empty: %v %v", ok, err)
	}
	at := time.UnixMilli(1_700_000_000_123)
	if err := MarkAlive(meta, at); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := LastAlive(meta); !ok || err != nil || !got.Equal(at) {
		t.Fatalf("got %v %v %v, want %v", got, ok, err, at)
	}
	meta[string(lastAliveKey)] = []byte{1, 2}
	if _, _, err := LastAlive(meta); err == nil {
		t.Fatal("corrupt record accepted")
	}
	if d := AliveInterval(4 * time.Hour); d != 10*time.Second {
		t.Fatalf("AliveInterval(4h) = %v", d)
	}
	if d := AliveInterval(3 * time.Second); d != 300*time.Millisecond {
		t.Fatalf("AliveInterval(3s) = %v", d)
	}
}
