package replication

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ringkv/ringkv/internal/peermethod"
	"github.com/ringkv/ringkv/internal/record"
)

// RPC methods a replica serves; their numbers are in the one table of peer
// methods (internal/peermethod).
const (
	MethodApply = peermethod.Apply // key + record → applied, prev
	MethodGet   = peermethod.Get   // key → record
	MethodScan  = peermethod.Scan  // cursor + count → keys, covered-up-to
	MethodCount = peermethod.Count // → approximate record count
)

var errWire = errors.New("replication: malformed message")

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func readBytes(buf []byte) (b, rest []byte, err error) {
	n, w := binary.Uvarint(buf)
	if w <= 0 || n > uint64(len(buf)-w) {
		return nil, nil, errWire
	}
	return buf[w : w+int(n)], buf[w+int(n):], nil
}

// encodeApply: key, record.
func encodeApply(key []byte, rec *record.Record) []byte {
	return appendApply(make([]byte, 0, applyLen(key, rec)), key, rec)
}

func appendApply(dst, key []byte, rec *record.Record) []byte {
	return rec.AppendEncode(appendBytes(dst, key))
}

// applyLen is the length of encodeApply's output.
func applyLen(key []byte, rec *record.Record) int {
	return uvarintLen(uint64(len(key))) + len(key) + rec.EncodedLen()
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

func decodeApply(p []byte) (key []byte, rec record.Record, err error) {
	key, rest, err := readBytes(p)
	if err != nil {
		return nil, rec, err
	}
	rec, err = record.Decode(rest)
	return key, rec, err
}

const (
	flagApplied   = 1 << 0
	flagPrevFound = 1 << 1
)

// appendApplyResp: flags, prev record (if found).
func appendApplyResp(dst []byte, applied bool, prev *record.Record, prevFound bool) []byte {
	var f byte
	if applied {
		f |= flagApplied
	}
	if !prevFound {
		return append(dst, f)
	}
	return prev.AppendEncode(append(dst, f|flagPrevFound))
}

func decodeApplyResp(p []byte) (applied bool, prev record.Record, prevFound bool, err error) {
	if len(p) < 1 {
		return false, prev, false, errWire
	}
	applied = p[0]&flagApplied != 0
	if p[0]&flagPrevFound == 0 {
		return applied, prev, false, nil
	}
	prev, err = record.Decode(p[1:])
	return applied, prev, err == nil, err
}

// encodeGetResp: found byte, record.
func encodeGetResp(rec *record.Record, found bool) []byte {
	n := 1
	if found {
		n += rec.EncodedLen()
	}
	return appendGetResp(make([]byte, 0, n), rec, found)
}

func appendGetResp(dst []byte, rec *record.Record, found bool) []byte {
	if !found {
		return append(dst, 0)
	}
	return rec.AppendEncode(append(dst, 1))
}

func decodeGetResp(p []byte) (rec record.Record, found bool, err error) {
	if len(p) < 1 {
		return rec, false, errWire
	}
	if p[0] == 0 {
		return rec, false, nil
	}
	rec, err = record.Decode(p[1:])
	return rec, err == nil, err
}

// scanPage is one replica's answer to a scan: live keys in token order, and how
// far the replica's walk got (inclusive), or Done when it reached the ring's end.
type scanPage struct {
	Tokens  []uint64
	Keys    [][]byte
	Covered uint64
	Done    bool
}

func encodeScan(cursor uint64, count int) []byte {
	b := binary.BigEndian.AppendUint64(nil, cursor)
	return binary.AppendUvarint(b, uint64(count))
}

func decodeScan(p []byte) (cursor uint64, count int, err error) {
	if len(p) < 9 {
		return 0, 0, errWire
	}
	c, w := binary.Uvarint(p[8:])
	if w <= 0 || c > 1<<20 {
		return 0, 0, errWire
	}
	return binary.BigEndian.Uint64(p), int(c), nil
}

func (s *scanPage) encode() []byte {
	var b []byte
	if s.Done {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint64(b, s.Covered)
	b = binary.AppendUvarint(b, uint64(len(s.Keys)))
	for i, k := range s.Keys {
		b = binary.BigEndian.AppendUint64(b, s.Tokens[i])
		b = appendBytes(b, k)
	}
	return b
}

func decodeScanPage(p []byte) (scanPage, error) {
	var s scanPage
	if len(p) < 9 {
		return s, errWire
	}
	s.Done = p[0] == 1
	s.Covered = binary.BigEndian.Uint64(p[1:])
	n, w := binary.Uvarint(p[9:])
	if w <= 0 || n > uint64(len(p)) {
		return s, errWire
	}
	rest := p[9+w:]
	s.Keys = make([][]byte, 0, n)
	s.Tokens = make([]uint64, 0, n)
	for range n {
		if len(rest) < 8 {
			return s, errWire
		}
		tok := binary.BigEndian.Uint64(rest)
		k, r, err := readBytes(rest[8:])
		if err != nil {
			return s, err
		}
		s.Tokens = append(s.Tokens, tok)
		s.Keys = append(s.Keys, k)
		rest = r
	}
	if len(rest) != 0 {
		return s, fmt.Errorf("%w: %d trailing bytes", errWire, len(rest))
	}
	return s, nil
}
