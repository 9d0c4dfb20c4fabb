package replication

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/ringkv/ringkv/internal/ring"
)

// recordingPrefetcher notes the keys of every PrefetchTokens call: a token
// is noted as the key of names that has it.
type recordingPrefetcher struct {
	mu    sync.Mutex
	calls [][]string
	names map[uint64]string
}

func (p *recordingPrefetcher) PrefetchTokens(tokens []uint64) {
	var ks []string
	for _, t := range tokens {
		name, ok := p.names[t]
		if !ok {
			name = fmt.Sprintf("token %#x", t)
		}
		ks = append(ks, name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, ks)
}

// take returns the calls so far and forgets them.
func (p *recordingPrefetcher) take() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls
	p.calls = nil
	return c
}

func strs(keys [][]byte) []string {
	var s []string
	for _, k := range keys {
		s = append(s, string(k))
	}
	return s
}

// Batched reads and writes prefetch exactly the keys the local replica is
// about to read or apply, once per batch, on the coordinator and on the
// peers that serve its batch requests; the results are what they were.
func TestBatchesPrefetchTheirLocalKeys(t *testing.T) {
	c := newSimCluster(t, 3)
	keys := keysOf("k", 16)
	want := strs(keys)
	names := make(map[uint64]string)
	for _, k := range keys {
		names[ring.Token(k)] = string(k)
	}
	var recs []*recordingPrefetcher
	for _, n := range c.nodes {
		if n.coord.prefetcher == nil {
			t.Fatal("storage.Store does not implement Prefetcher")
		}
		r := &recordingPrefetcher{names: names}
		n.coord.prefetcher = r
		recs = append(recs, r)
	}
	co := c.nodes[0].coord
	muts := make([]Mutation, len(keys))
	for i := range muts {
		muts[i] = Mutation{Value: fmt.Appendf(nil, "v%d", i)}
	}

	// ALL: every node applies every key; the coordinator prefetches them
	// before its local applies, each peer before serving its batch.
	for i, err := range co.PutBatch(t.Context(), keys, muts, All) {
		if err != nil {
			t.Fatalf("PutBatch k%d: %v", i, err)
		}
	}
	for n, r := range recs {
		if got := r.take(); len(got) != 1 || !slices.Equal(got[0], want) {
			t.Fatalf("PutBatch ALL: node %d prefetched %q, want one call with the 16 keys", n, got)
		}
	}

	// QUORUM reads: the coordinator reads every key locally and asks one
	// peer for all of them.
	for i, r := range co.GetBatch(t.Context(), keys, Quorum) {
		if r.Err != nil || !r.Found || string(r.Rec.Value) != fmt.Sprint("v", i) {
			t.Fatalf("GetBatch QUORUM k%d: %q %v %v", i, r.Rec.Value, r.Found, r.Err)
		}
	}
	if got := recs[0].take(); len(got) != 1 || !slices.Equal(got[0], want) {
		t.Fatalf("GetBatch QUORUM: coordinator prefetched %q", got)
	}
	if a, b := recs[1].take(), recs[2].take(); len(a)+len(b) != 1 || !slices.Equal(slices.Concat(a, b)[0], want) {
		t.Fatalf("GetBatch QUORUM: peers prefetched %q and %q, want one of them the 16 keys", a, b)
	}

	// A hot key is read through the single-key path, so it is left out.
	co.cfg.HotKeys = &countingHotKeys{hot: "k3", seen: map[string]int{}}
	defer func() { co.cfg.HotKeys = nil }()
	for i, r := range co.GetBatch(t.Context(), keys, One) {
		if r.Err != nil || !r.Found || string(r.Rec.Value) != fmt.Sprint("v", i) {
			t.Fatalf("GetBatch ONE k%d: %q %v %v", i, r.Rec.Value, r.Found, r.Err)
		}
	}
	wantCold := slices.DeleteFunc(slices.Clone(want), func(k string) bool { return k == "k3" })
	if got := recs[0].take(); len(got) != 1 || !slices.Equal(got[0], wantCold) {
		t.Fatalf("GetBatch ONE with a hot key: prefetched %q, want %q", got, wantCold)
	}

	// A batch of one key has nothing to overlap: no prefetch.
	co.GetBatch(t.Context(), keys[:1], One)
	co.PutBatch(t.Context(), keys[:1], muts[:1], One)
	if got := recs[0].take(); len(got) != 0 {
		t.Fatalf("single-key batches prefetched %q", got)
	}
}
