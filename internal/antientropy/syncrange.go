package antientropy

import (
	"bytes"
	"context"
	"fmt"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
)

// The comparing side of anti-entropy: one range against one peer, from the
// roots down to the differing keys, then pulling and pushing them.

// SyncResult is what one range comparison did.
type SyncResult struct {
	// Mismatch: the roots differed.
	Mismatch bool
	// Pulled records came from the peer into this node; Pushed went the other
	// way.
	Pulled, Pushed int
}

// SyncRange makes this node's and the peer's copies of the ring range
// (start, end] identical: roots first, then leaf hashes, then the records of
// the differing leaves, each newer side's records going to the other.
func (s *Service) SyncRange(ctx context.Context, addr string, start, end uint64) (SyncResult, error) {
	var res SyncResult
	if !s.tree.Ready() {
		return res, ErrNotReady
	}
	leaves := leavesOf(start, end)
	local, err := s.tree.leafHashes(s.store, leaves)
	if err != nil {
		return res, err
	}
	p, err := s.call(ctx, addr, methodRoot, appendRange(nil, start, end))
	if err != nil {
		return res, err
	}
	r := reader{buf: p}
	peerRoot, n := r.u64(), r.uvarint()
	if err := r.done(); err != nil {
		return res, err
	}
	if int(n) != len(leaves) {
		return res, fmt.Errorf("%w: %d leaves, we have %d", ErrRingChanged, n, len(leaves))
	}
	if peerRoot == rootOf(local) {
		return res, nil
	}
	res.Mismatch = true

	p, err = s.call(ctx, addr, methodLeaves, appendRange(nil, start, end))
	if err != nil {
		return res, err
	}
	theirs, err := decodeHashes(p)
	if err != nil {
		return res, err
	}
	if len(theirs) != len(leaves) {
		return res, fmt.Errorf("%w: %d leaf hashes, we have %d", ErrRingChanged, len(theirs), len(leaves))
	}
	var diff []int
	for i := range leaves {
		if local[i] != theirs[i] {
			diff = append(diff, i)
		}
	}
	for len(diff) > 0 {
		batch := diff[:min(len(diff), maxLeavesPerDigest)]
		diff = diff[len(batch):]
		pulled, pushed, err := s.repairLeaves(ctx, addr, start, end, leaves, batch)
		res.Pulled += pulled
		res.Pushed += pushed
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// repairLeaves exchanges the records of the leaves idx with the peer.
func (s *Service) repairLeaves(ctx context.Context, addr string, start, end uint64, leaves []leaf, idx []int) (pulled, pushed int, err error) {
	p, err := s.call(ctx, addr, methodDigests, encodeLeafReq(start, end, idx))
	if err != nil {
		return 0, 0, err
	}
	theirList, err := decodeEntries(p)
	if err != nil {
		return 0, 0, err
	}
	theirs := make(map[string]*record.Record, len(theirList))
	for i := range theirList {
		theirs[string(theirList[i].key)] = &theirList[i].rec
	}
	ours := make(map[string]*record.Record, len(theirList))
	for _, i := range idx {
		if err := scanLeaf(s.store, leaves[i], func(_ uint64, key []byte, rec *record.Record) error {
			// The scan's memory is reused: keep what the comparison needs.
			ours[string(key)] = &record.Record{Version: rec.Version, Tombstone: rec.Tombstone, Counter: bytes.Clone(rec.Counter)}
			return nil
		}); err != nil {
			return 0, 0, err
		}
	}
	var pull, push [][]byte
	differs := make(map[int]bool, len(idx)) // bucket → some key differs
	for k, t := range theirs {
		if o, ok := ours[k]; !ok || t.Version.Compare(o.Version) > 0 || countersDiffer(t, o) {
			pull = append(pull, []byte(k))
			differs[BucketOf(tokenOf(k))] = true
		}
	}
	for k, o := range ours {
		if t, ok := theirs[k]; !ok || o.Version.Compare(t.Version) > 0 || countersDiffer(t, o) {
			push = append(push, []byte(k))
			differs[BucketOf(tokenOf(k))] = true
		}
	}
	if pulled, err = s.pull(ctx, addr, pull); err != nil {
		return pulled, 0, err
	}
	if pushed, err = s.push(ctx, addr, push); err != nil {
		return pulled, pushed, err
	}

	// Leaves that differ with every record equal mean a drifted bucket hash on
	// one side (see the package comment): both sides recompute it.
	var clean []int
	for _, i := range idx {
		if leaves[i].whole && !differs[leaves[i].bucket] {
			clean = append(clean, i)
		}
	}
	if len(clean) > 0 {
		for _, i := range clean {
			if err := s.tree.Rehash(s.store, leaves[i].bucket, leaves[i].bucket+1); err != nil {
				return pulled, pushed, err
			}
		}
		s.m.rehashed.Add(float64(len(clean)))
		if _, err := s.call(ctx, addr, methodRehash, encodeLeafReq(start, end, clean)); err != nil {
			return pulled, pushed, err
		}
	}
	return pulled, pushed, nil
}

// pull fetches keys from the peer and applies them here.
func (s *Service) pull(ctx context.Context, addr string, keys [][]byte) (int, error) {
	n := 0
	for len(keys) > 0 {
		batch := keys[:min(len(keys), maxKeysPerBatch)]
		p, err := s.call(ctx, addr, methodFetch, encodeKeys(batch))
		if err != nil {
			return n, err
		}
		r := reader{buf: p}
		consumed := int(r.uvarint())
		if r.err != nil || consumed < 1 || consumed > len(batch) {
			return n, errWire
		}
		es, err := decodeEntries(r.buf)
		if err != nil {
			return n, err
		}
		keys = keys[consumed:]
		if err := waitN(ctx, s.lim, len(es)); err != nil {
			return n, err
		}
		for _, e := range es {
			applied, err := s.apply(e.key, e.rec)
			if clock.IsClockSkew(err) {
				// Refused again on every round while it stays in our
				// future; the rest of the range is still repaired.
				s.m.refused.Inc()
				continue
			}
			if err != nil {
				return n, fmt.Errorf("antientropy: applying pulled record: %w", err)
			}
			if applied {
				n++
			}
		}
	}
	s.m.repaired.WithLabelValues("pull").Add(float64(n))
	return n, nil
}

// push sends our current records of keys to the peer.
func (s *Service) push(ctx context.Context, addr string, keys [][]byte) (int, error) {
	n := 0
	var batch []entry
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := waitN(ctx, s.lim, len(batch)); err != nil {
			return err
		}
		p, err := s.call(ctx, addr, methodPush, encodeEntries(batch))
		if err != nil {
			return err
		}
		r := reader{buf: p}
		applied := r.uvarint()
		if err := r.done(); err != nil {
			return err
		}
		n += int(applied)
		batch, size = batch[:0], 0
		return nil
	}
	for _, k := range keys {
		rec, found, err := s.store.Get(k)
		if err != nil {
			return n, err
		}
		if !found {
			continue // purged since the scan; nothing to send
		}
		batch = append(batch, entry{key: k, rec: rec})
		size += len(k) + rec.EncodedLen()
		if len(batch) >= maxKeysPerBatch || size >= maxBatchBytes {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	err := flush()
	s.m.repaired.WithLabelValues("push").Add(float64(n))
	return n, err
}

func (s *Service) call(ctx context.Context, addr string, m uint8, payload []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	return s.net.Call(ctx, addr, m, payload)
}

// countersDiffer reports whether a and b are two states of one counter
// that each may hold increments the other lacks, whatever their versions:
// both sides then send theirs, and each stores the merge.
func countersDiffer(a, b *record.Record) bool {
	return record.Mergeable(a, b) && !bytes.Equal(a.Counter, b.Counter)
}
