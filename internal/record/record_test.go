package record

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"testing/quick"

	"github.com/ringkv/ringkv/internal/clock"
)

func TestCompare(t *testing.T) {
	ts := clock.MakeTimestamp(1000, 0)
	v := func(tsv clock.Timestamp, node string) Version { return Version{TS: tsv, Node: node} }
	tests := []struct {
		name string
		a, b Record
		want int
	}{
		{"newer ts wins", Record{Version: v(ts+1, "a")}, Record{Version: v(ts, "b")}, 1},
		{"older ts loses", Record{Version: v(ts, "z")}, Record{Version: v(ts+1, "a")}, -1},
		{"node breaks ts tie", Record{Version: v(ts, "b")}, Record{Version: v(ts, "a")}, 1},
		{"newer value beats older tombstone", Record{Version: v(ts+1, "a"), Value: []byte("x")}, Record{Version: v(ts, "a"), Tombstone: true}, 1},
		{"newer tombstone beats older value", Record{Version: v(ts+1, "a"), Tombstone: true}, Record{Version: v(ts, "a"), Value: []byte("x")}, 1},
		{"same version: tombstone wins", Record{Version: v(ts, "a"), Tombstone: true}, Record{Version: v(ts, "a"), Value: []byte("x")}, 1},
		{"same version: no expiry beats expiry", Record{Version: v(ts, "a")}, Record{Version: v(ts, "a"), ExpireAt: 5}, 1},
		{"same version: later expiry wins", Record{Version: v(ts, "a"), ExpireAt: 6}, Record{Version: v(ts, "a"), ExpireAt: 5}, 1},
		{"same version: bytes decide", Record{Version: v(ts, "a"), Value: []byte("b")}, Record{Version: v(ts, "a"), Value: []byte("a")}, 1},
		{"identical", Record{Version: v(ts, "a"), Value: []byte("a")}, Record{Version: v(ts, "a"), Value: []byte("a")}, 0},
		{"expired newer still wins (expiry is not age)", Record{Version: v(ts+1, "a"), ExpireAt: 1}, Record{Version: v(ts, "a")}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Compare(&tt.a, &tt.b); got != tt.want {
				t.Fatalf("Compare = %d, want %d", got, tt.want)
			}
			if got := Compare(&tt.b, &tt.a); got != -tt.want {
				t.Fatalf("reverse Compare = %d, want %d", got, -tt.want)
			}
		})
	}
}

func TestLive(t *testing.T) {
	tests := []struct {
		r    Record
		now  int64
		want bool
	}{
		{Record{}, 100, true},
		{Record{ExpireAt: 101}, 100, true},
		{Record{ExpireAt: 100}, 100, false}, // expires at the instant, as Redis does
		{Record{ExpireAt: 99}, 100, false},
		{Record{Tombstone: true}, 100, false},
	}
	for _, tt := range tests {
		if got := tt.r.Live(tt.now); got != tt.want {
			t.Errorf("%+v.Live(%d) = %v, want %v", tt.r, tt.now, got, tt.want)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	f := func(value []byte, ts uint64, node string, expire uint32, tomb bool) bool {
		r := Record{Value: value, Version: Version{TS: clock.Timestamp(ts), Node: node}, ExpireAt: int64(expire), Tombstone: tomb}
		if tomb {
			r.Value = nil
		}
		enc := r.Encode()
		if len(enc) != r.EncodedLen() {
			return false
		}
		got, err := Decode(enc)
		if err != nil {
			t.Log(err)
			return false
		}
		return Compare(&got, &r) == 0 && got.Version == r.Version && bytes.Equal(got.Value, r.Value) &&
			got.ExpireAt == r.ExpireAt && got.Tombstone == r.Tombstone
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := (&Record{Value: []byte("v"), Version: Version{TS: 7, Node: "n1"}}).Encode()
	tomb := (&Record{Version: Version{TS: 7, Node: "n1"}, Tombstone: true}).Encode()
	tests := []struct {
		name string
		buf  []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"short", good[:5], ErrShort},
		{"format", append([]byte{9}, good[1:]...), ErrFormat},
		{"flags", append([]byte{1, 0x80}, good[2:]...), ErrCorrupt},
		{"node length past end", good[:headerLen+1], ErrCorrupt},
		{"tombstone with value", append(tomb, 'x'), ErrCorrupt},
		{"no varint", good[:headerLen], ErrCorrupt},
		{"non-minimal varint", append(append(append([]byte{}, good[:headerLen]...), 0x82, 0x00), "n1v"...), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.buf); !errors.Is(err, tt.want) {
				t.Fatalf("Decode err = %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add((&Record{Value: []byte("hello"), Version: Version{TS: 99, Node: "n1"}, ExpireAt: 5}).Encode())
	f.Add((&Record{Version: Version{TS: 1, Node: ""}, Tombstone: true}).Encode())
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff})
	// Found by the fuzzer: a node id length in two bytes (0x80 0x00).
	f.Add([]byte{1, 0, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x80, 0x00})
	ctr := Record{Version: Version{TS: 7, Node: "n2"}}
	ctr.SetCounter(&Counter{Incarnation: Version{TS: 3, Node: "n1"}, Base: -4, Entries: []CounterEntry{{Node: "n1", P: 300, N: 2}, {Node: "n2", P: 1}}})
	f.Add(ctr.Encode())
	f.Fuzz(func(t *testing.T, buf []byte) {
		r, err := Decode(buf)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to the same bytes: no two encodings
		// of one record, so hashes of encodings agree across replicas.
		if got := r.Encode(); !bytes.Equal(got, buf) {
			t.Fatalf("re-encode differs:\n in  %x\n out %x", buf, got)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	r := Record{Value: make([]byte, 100), Version: Version{TS: 1 << 40, Node: "node-1"}}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendEncode(buf[:0])
	}
}

func BenchmarkDecode(b *testing.B) {
	enc := (&Record{Value: make([]byte, 100), Version: Version{TS: 1 << 40, Node: "node-1"}}).Encode()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// Decoding a record whose node id was seen before allocates nothing: the id
// comes from the intern table and the value aliases the buffer.
func TestDecodeInternsNodeIDs(t *testing.T) {
	r := Record{Value: []byte("v"), Version: Version{TS: 42, Node: "node-7"}}
	enc := r.Encode()
	first, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		got, err := Decode(enc)
		if err != nil || got.Version != r.Version {
			t.Fatalf("Decode: %+v, %v", got.Version, err)
		}
	}); n != 0 {
		t.Errorf("Decode allocates %.1f objects for a known node id, want 0", n)
	}
	// A different id in the same slot replaces it and still decodes right.
	for i := range 200 {
		other := Record{Version: Version{TS: 1, Node: fmt.Sprintf("n%d", i)}}
		got, err := Decode(other.Encode())
		if err != nil || got.Version.Node != other.Version.Node {
			t.Fatalf("Decode(%q): %q, %v", other.Version.Node, got.Version.Node, err)
		}
	}
	again, err := Decode(enc)
	if err != nil || again.Version.Node != first.Version.Node {
		t.Fatalf("Decode after churn: %q, %v", again.Version.Node, err)
	}
}
