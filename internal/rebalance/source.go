package rebalance

import (
	"encoding/binary"

	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/storage"
)

// Source is the store a node serves pages from. *storage.Store implements it.
type Source interface {
	ScanRange(from, to uint64, fn func(token uint64, key []byte, rec *record.Record) error) error
}

// Store is what a puller needs locally: a source for its own pages and the
// progress keyspace. *storage.Store implements it.
type Store interface {
	Source
	Keyspace(prefix byte) *storage.Keyspace
}

// maxPageBytes caps what a puller may ask for in one page, so a bad request
// cannot make a source buffer its whole store.
const maxPageBytes = 16 << 20

// ServePage answers a MethodPage request from src: the records of the segment
// from the cursor on, up to about the byte budget. A page never ends inside a
// token, so a cursor is always a token boundary; one oversized record still
// goes out alone.
func ServePage(src Source, payload []byte) ([]byte, error) {
	req, err := decodePageRequest(payload)
	if err != nil {
		return nil, err
	}
	budget := int(min(req.maxBytes, maxPageBytes))
	out := make([]byte, 9, 9+min(budget, 1<<20)+1024)
	done := true
	next := req.seg.to
	var last uint64
	err = src.ScanRange(req.cursor, req.seg.to, func(token uint64, key []byte, rec *record.Record) error {
		if len(out) >= budget && token != last {
			done, next = false, token
			return storage.ErrStop
		}
		last = token
		out = appendRecord(out, key, rec)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if done {
		out[0] = 1
	}
	binary.BigEndian.PutUint64(out[1:], next)
	return out, nil
}
