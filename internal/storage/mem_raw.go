package storage

import (
	"bytes"
	"sync"

	"github.com/google/btree"
)

// rawSpaces holds the memory engine's raw keyspaces (hints, metadata) in
// ordered B-trees. They are small (metadata) or transient (hints drain
// once their target is back), so a per-entry allocation is no concern for
// the garbage collector here, unlike for records.
type rawSpaces struct {
	mu    sync.Mutex
	trees map[byte]*btree.BTreeG[rawItem]
	bytes int64 // keys and values held
}

// rawItem is one entry; v is never modified once stored, so a tree's clone
// may share it.
type rawItem struct {
	k, v []byte
}

func rawLess(a, b rawItem) bool { return bytes.Compare(a.k, b.k) < 0 }

func newRawSpaces() *rawSpaces {
	return &rawSpaces{trees: map[byte]*btree.BTreeG[rawItem]{}}
}

func (r *rawSpaces) treeLocked(prefix byte) *btree.BTreeG[rawItem] {
	t := r.trees[prefix]
	if t == nil {
		t = btree.NewG(32, rawLess)
		r.trees[prefix] = t
	}
	return t
}

// set stores copies of k and v.
func (r *rawSpaces) set(prefix byte, k, v []byte) {
	it := rawItem{k: bytes.Clone(k), v: bytes.Clone(v)}
	if it.v == nil {
		it.v = []byte{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.treeLocked(prefix).ReplaceOrInsert(it); ok {
		r.bytes -= int64(len(old.k) + len(old.v))
	}
	r.bytes += int64(len(it.k) + len(it.v))
}

func (r *rawSpaces) delete(prefix byte, k []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.treeLocked(prefix).Delete(rawItem{k: k}); ok {
		r.bytes -= int64(len(old.k) + len(old.v))
	}
}

func (r *rawSpaces) get(prefix byte, k []byte) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	it, ok := r.treeLocked(prefix).Get(rawItem{k: k})
	if !ok {
		return nil, false
	}
	return bytes.Clone(it.v), true
}

// snapshot returns a copy-on-write clone of prefix's tree: later writes do
// not show in it, and walking it needs no lock, so a walker may write.
func (r *rawSpaces) snapshot(prefix byte) *btree.BTreeG[rawItem] {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.treeLocked(prefix).Clone()
}

// prefixes returns the keyspaces that hold anything.
func (r *rawSpaces) prefixes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ps []byte
	for p, t := range r.trees {
		if t.Len() > 0 {
			ps = append(ps, p)
		}
	}
	return ps
}

func (r *rawSpaces) size() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bytes
}

// iterate walks prefix's entries from from on, on a snapshot.
func (r *rawSpaces) iterate(prefix byte, from []byte, fn func(k, v []byte) error) error {
	var err error
	r.snapshot(prefix).AscendGreaterOrEqual(rawItem{k: from}, func(it rawItem) bool {
		err = fn(it.k, it.v)
		return err == nil
	})
	return err
}
