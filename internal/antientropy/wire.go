package antientropy

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ringkv/ringkv/internal/peermethod"
	"github.com/ringkv/ringkv/internal/record"
)

// Peer methods; their numbers and payloads are in the one table of peer
// methods (internal/peermethod).
const (
	methodRoot    = peermethod.AERoot
	methodLeaves  = peermethod.AELeaves
	methodDigests = peermethod.AEDigests
	methodFetch   = peermethod.AEFetch
	methodPush    = peermethod.AEPush
	methodRehash  = peermethod.AERehash
)

var errWire = errors.New("antientropy: malformed message")

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// reader decodes a message; the first error sticks, so decoders check once.
type reader struct {
	buf []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.err = errWire
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *reader) u64() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.buf) < 8 {
		r.err = errWire
		return 0
	}
	v := binary.BigEndian.Uint64(r.buf)
	r.buf = r.buf[8:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.buf)) {
		r.err = errWire
		return nil
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b
}

// count reads a element count, refusing one the remaining bytes cannot hold
// (each element takes at least min bytes), so a corrupt count cannot make the
// decoder allocate without bound.
func (r *reader) count(min int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.buf)/min) {
		r.err = errWire
	}
	if r.err != nil {
		return 0
	}
	return int(n)
}

func (r *reader) record() record.Record {
	b := r.bytes()
	if r.err != nil {
		return record.Record{}
	}
	rec, err := record.Decode(b)
	if err != nil {
		r.err = fmt.Errorf("%w: %w", errWire, err)
	}
	return rec
}

func (r *reader) done() error {
	if r.err == nil && len(r.buf) != 0 {
		r.err = errWire
	}
	return r.err
}

func appendRange(dst []byte, start, end uint64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, start)
	return binary.BigEndian.AppendUint64(dst, end)
}

func encodeLeafReq(start, end uint64, idx []int) []byte {
	b := appendRange(make([]byte, 0, 16+2+3*len(idx)), start, end)
	b = binary.AppendUvarint(b, uint64(len(idx)))
	for _, i := range idx {
		b = binary.AppendUvarint(b, uint64(i))
	}
	return b
}

func decodeLeafReq(p []byte) (start, end uint64, idx []int, err error) {
	r := reader{buf: p}
	start, end = r.u64(), r.u64()
	n := r.count(1)
	for range n {
		idx = append(idx, int(r.uvarint()))
	}
	return start, end, idx, r.done()
}

func decodeRange(p []byte) (start, end uint64, err error) {
	r := reader{buf: p}
	start, end = r.u64(), r.u64()
	return start, end, r.done()
}

// entry is one record in a message: a digest (Value nil) or a whole record.
type entry struct {
	key []byte
	rec record.Record
}

func encodeEntries(es []entry) []byte {
	size := 10
	for i := range es {
		size += 10 + len(es[i].key) + es[i].rec.EncodedLen()
	}
	b := binary.AppendUvarint(make([]byte, 0, size), uint64(len(es)))
	for i := range es {
		b = appendBytes(b, es[i].key)
		b = binary.AppendUvarint(b, uint64(es[i].rec.EncodedLen()))
		b = es[i].rec.AppendEncode(b)
	}
	return b
}

// decodeEntries decodes entries whose keys and values alias p.
func decodeEntries(p []byte) ([]entry, error) {
	r := reader{buf: p}
	n := r.count(2)
	es := make([]entry, 0, n)
	for range n {
		k := r.bytes()
		rec := r.record()
		if r.err != nil {
			break
		}
		es = append(es, entry{key: k, rec: rec})
	}
	return es, r.done()
}

func encodeKeys(keys [][]byte) []byte {
	size := 10
	for _, k := range keys {
		size += 5 + len(k)
	}
	b := binary.AppendUvarint(make([]byte, 0, size), uint64(len(keys)))
	for _, k := range keys {
		b = appendBytes(b, k)
	}
	return b
}

func decodeKeys(p []byte) ([][]byte, error) {
	r := reader{buf: p}
	n := r.count(1)
	keys := make([][]byte, 0, n)
	for range n {
		keys = append(keys, r.bytes())
	}
	return keys, r.done()
}

func encodeHashes(hs []uint64) []byte {
	b := make([]byte, 0, 8*len(hs))
	for _, h := range hs {
		b = binary.BigEndian.AppendUint64(b, h)
	}
	return b
}

func decodeHashes(p []byte) ([]uint64, error) {
	if len(p)%8 != 0 {
		return nil, errWire
	}
	out := make([]uint64, len(p)/8)
	for i := range out {
		out[i] = binary.BigEndian.Uint64(p[8*i:])
	}
	return out, nil
}
