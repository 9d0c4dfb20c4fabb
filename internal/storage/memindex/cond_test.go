package memindex

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// TestPutIfDeleteIf runs apply-if-newer against the model: a value is an
// 8-byte version, PutIf keeps the newer, DeleteIf removes only the version
// it was told.
func TestPutIfDeleteIf(t *testing.T) {
	ix := New(Options{ShardBits: 2, ChunkSize: pageSize})
	defer ix.Close()
	m := model{}
	r := rand.New(rand.NewPCG(11, 12))
	ver := func(v []byte) uint64 { return binary.BigEndian.Uint64(v) }
	for op := range 20000 {
		key := fmt.Sprintf("k%d", r.IntN(300))
		k := mkey{xxhash.Sum64String(key), key}
		cur, had := m[k]
		v := binary.BigEndian.AppendUint64(nil, r.Uint64N(1000))
		v = append(v, bytes.Repeat([]byte{'x'}, r.IntN(300))...)
		if r.IntN(4) == 0 {
			calls := 0
			got := ix.DeleteIf(k.tok, []byte(key), func(stored []byte) bool {
				calls++
				if !bytes.Equal(stored, cur) {
					t.Fatalf("op %d: DeleteIf saw %d bytes, model has %d", op, len(stored), len(cur))
				}
				return ver(stored) < ver(v)
			})
			want := had && ver(cur) < ver(v)
			if got != want || calls != map[bool]int{true: 1, false: 0}[had] {
				t.Fatalf("op %d: DeleteIf = %v after %d calls, want %v", op, got, calls, want)
			}
			if want {
				delete(m, k)
			}
			continue
		}
		got := ix.PutIf(k.tok, []byte(key), v, func(stored []byte) bool {
			if !bytes.Equal(stored, cur) {
				t.Fatalf("op %d: PutIf saw %d bytes, model has %d", op, len(stored), len(cur))
			}
			return ver(stored) < ver(v)
		})
		want := !had || ver(cur) < ver(v)
		if got != want {
			t.Fatalf("op %d: PutIf = %v, want %v", op, got, want)
		}
		if want {
			m[k] = v
		}
	}
	check(t, ix, m)
}
