package antientropy

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/ringkv/ringkv/internal/clock"
	"github.com/ringkv/ringkv/internal/record"
)

// The answering side of anti-entropy: a peer's range, leaf, fetch and
// push requests.

// Serve answers a peer's anti-entropy request. It is the transport handler
// for the service's methods and runs concurrently.
func (s *Service) Serve(_ context.Context, _ string, m uint8, payload []byte) ([]byte, error) {
	switch m {
	case methodFetch:
		return s.serveFetch(payload)
	case methodPush:
		return s.servePush(payload)
	}
	// The rest read the bucket hashes, which mean nothing until rebuilt.
	if !s.tree.Ready() {
		return nil, ErrNotReady
	}
	switch m {
	case methodRoot:
		start, end, err := decodeRange(payload)
		if err != nil {
			return nil, err
		}
		leaves := leavesOf(start, end)
		hs, err := s.tree.leafHashes(s.store, leaves)
		if err != nil {
			return nil, err
		}
		b := binary.BigEndian.AppendUint64(nil, rootOf(hs))
		return binary.AppendUvarint(b, uint64(len(leaves))), nil
	case methodLeaves:
		start, end, err := decodeRange(payload)
		if err != nil {
			return nil, err
		}
		hs, err := s.tree.leafHashes(s.store, leavesOf(start, end))
		if err != nil {
			return nil, err
		}
		return encodeHashes(hs), nil
	case methodDigests:
		leaves, idx, err := decodeLeaves(payload)
		if err != nil {
			return nil, err
		}
		var es []entry
		for _, i := range idx {
			if err := scanLeaf(s.store, leaves[i], func(_ uint64, key []byte, rec *record.Record) error {
				meta := *rec
				meta.Value = nil
				meta.Counter = bytes.Clone(rec.Counter) // compared by the peer (countersDiffer)
				meta.Version.Node = string([]byte(rec.Version.Node))
				es = append(es, entry{key: []byte(string(key)), rec: meta})
				return nil
			}); err != nil {
				return nil, err
			}
		}
		return encodeEntries(es), nil
	case methodRehash:
		leaves, idx, err := decodeLeaves(payload)
		if err != nil {
			return nil, err
		}
		for _, i := range idx {
			if leaves[i].whole {
				if err := s.tree.Rehash(s.store, leaves[i].bucket, leaves[i].bucket+1); err != nil {
					return nil, err
				}
			}
		}
		s.m.rehashed.Add(float64(len(idx)))
		return nil, nil
	}
	return nil, fmt.Errorf("antientropy: unknown method %d", m)
}

func decodeLeaves(payload []byte) ([]leaf, []int, error) {
	start, end, idx, err := decodeLeafReq(payload)
	if err != nil {
		return nil, nil, err
	}
	leaves := leavesOf(start, end)
	for _, i := range idx {
		if i < 0 || i >= len(leaves) {
			return nil, nil, fmt.Errorf("%w: leaf %d of %d", errWire, i, len(leaves))
		}
	}
	return leaves, idx, nil
}

// serveFetch answers with the records of a prefix of the keys asked for, as
// many as fit maxBatchBytes (at least one), and how many keys it covered.
func (s *Service) serveFetch(payload []byte) ([]byte, error) {
	keys, err := decodeKeys(payload)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errWire
	}
	var es []entry
	size, consumed := 0, 0
	for _, k := range keys {
		if consumed > 0 && size >= maxBatchBytes {
			break
		}
		consumed++
		rec, found, err := s.store.Get(k)
		if err != nil {
			return nil, err
		}
		if found {
			es = append(es, entry{key: k, rec: rec})
			size += len(k) + rec.EncodedLen()
		}
	}
	b := binary.AppendUvarint(nil, uint64(consumed))
	return append(b, encodeEntries(es)...), nil
}

func (s *Service) servePush(payload []byte) ([]byte, error) {
	es, err := decodeEntries(payload)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, e := range es {
		applied, err := s.apply(e.key, e.rec)
		if clock.IsClockSkew(err) {
			s.m.refused.Inc() // as in pull: skip it, repair the rest
			continue
		}
		if err != nil {
			return nil, err
		}
		if applied {
			n++
		}
	}
	return binary.AppendUvarint(nil, uint64(n)), nil
}
