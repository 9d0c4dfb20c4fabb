package membership

import (
	"errors"
	"strings"
	"testing"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []Meta{
		{ID: "n1"},
		{ID: "node-7", Zone: "eu-west-1a", ClientAddr: "10.0.0.7:6379", PeerAddr: "10.0.0.7:7000", HTTPAddr: "[::1]:8080", State: Leaving},
		{ID: "x", State: Removed},
	} {
		b, err := m.encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeMeta(b)
		if err != nil || got != m {
			t.Errorf("decode(encode(%+v)) = %+v, %v", m, got, err)
		}
	}
}

func TestMetaLimits(t *testing.T) {
	if _, err := (Meta{ID: "n", Zone: strings.Repeat("z", 600)}).encode(); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("oversized meta: err = %v, want ErrMetaTooLarge", err)
	}
	good, _ := Meta{ID: "n1", Zone: "z"}.encode()
	for name, b := range map[string][]byte{
		"empty":       nil,
		"version 0":   {0, 0},
		"bad state":   {metaVersion, 9, 0, 0, 0, 0, 0},
		"truncated":   good[:len(good)-1],
		"huge length": {metaVersion, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		if _, err := decodeMeta(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	// A newer encoder may append fields: they are ignored.
	if got, err := decodeMeta(append(good, 1, 2, 3)); err != nil || got.ID != "n1" {
		t.Errorf("trailing bytes: %+v, %v", got, err)
	}
}

func TestStateNames(t *testing.T) {
	for s := Joining; s <= Removed; s++ {
		got, err := ParseState(s.String())
		if err != nil || got != s {
			t.Errorf("ParseState(%q) = %v, %v", s.String(), got, err)
		}
	}
	if _, err := ParseState("down"); err == nil {
		t.Error("ParseState(down) succeeded")
	}
}

func FuzzDecodeMeta(f *testing.F) {
	seed, _ := Meta{ID: "n1", Zone: "z", ClientAddr: "a:1", PeerAddr: "b:2", HTTPAddr: "c:3", State: Normal}.encode()
	f.Add(seed)
	f.Add([]byte{metaVersion, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same value.
		re, err := m.encode()
		if err != nil {
			return // decoded from more than MetaMaxSize bytes
		}
		if got, err := decodeMeta(re); err != nil || got != m {
			t.Fatalf("re-decode %+v: %+v, %v", m, got, err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for name, c := range map[string]Config{
		"no id":       {},
		"meta id":     {NodeID: "a", Meta: Meta{ID: "b"}},
		"bad addr":    {NodeID: "a", BindAddr: "nohostport"},
		"bad port":    {NodeID: "a", BindAddr: "127.0.0.1:99999"},
		"bad key":     {NodeID: "a", Keys: [][]byte{make([]byte, 16), []byte("short")}},
		"bad profile": {NodeID: "a", Profile: "wan9"},
		"big meta":    {NodeID: "a", Meta: Meta{Zone: strings.Repeat("z", 600)}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate passed", name)
		}
	}
	ok := Config{NodeID: "a", BindAddr: "127.0.0.1:0", Profile: ProfileLocal, Keys: [][]byte{make([]byte, 16)}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}
