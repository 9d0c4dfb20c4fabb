package antientropy

import (
	"bytes"
	"testing"

	"github.com/ringkv/ringkv/internal/record"
)

func TestEntriesRoundTrip(t *testing.T) {
	in := []entry{
		{key: []byte("a"), rec: value(1, "x")},
		{key: []byte("bb"), rec: tomb(2)},
		{key: []byte{0, 0xff}, rec: record.Record{Value: []byte{}, Version: ver(3, "n2"), ExpireAt: 99}},
	}
	out, err := decodeEntries(encodeEntries(in))
	if err != nil || len(out) != len(in) {
		t.Fatalf("decode: %d %v", len(out), err)
	}
	for i := range in {
		if !bytes.Equal(in[i].key, out[i].key) || record.Compare(&in[i].rec, &out[i].rec) != 0 {
			t.Fatalf("entry %d: %+v, want %+v", i, out[i], in[i])
		}
	}
	start, end, idx, err := decodeLeafReq(encodeLeafReq(7, 3, []int{0, 5, 300}))
	if err != nil || start != 7 || end != 3 || len(idx) != 3 || idx[2] != 300 {
		t.Fatalf("leaf request: %d %d %v %v", start, end, idx, err)
	}
}

// FuzzDecode: no input makes a decoder panic or allocate past its input.
func FuzzDecode(f *testing.F) {
	f.Add(encodeEntries([]entry{{key: []byte("k"), rec: value(1, "v")}}))
	f.Add(encodeLeafReq(1, 2, []int{1, 2, 3}))
	f.Add(encodeKeys([][]byte{[]byte("a"), []byte("b")}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, p []byte) {
		_, _ = decodeEntries(p)
		_, _, _, _ = decodeLeafReq(p)
		_, _ = decodeKeys(p)
		_, _ = decodeHashes(p)
		if leaves, idx, err := decodeLeaves(p); err == nil {
			for _, i := range idx {
				_ = leaves[i]
			}
		}
	})
}
