package rebalance

import (
	"encoding/binary"
	"errors"

	"github.com/ringkv/ringkv/internal/peermethod"
	"github.com/ringkv/ringkv/internal/record"
)

// Peer methods; their numbers are in the one table of peer methods
// (internal/peermethod).
const (
	MethodPage   = peermethod.RebalancePage   // segment + cursor + byte budget → records, next cursor
	MethodStatus = peermethod.RebalanceStatus // → view fingerprint, ranges left to pull
	MethodMark   = peermethod.RebalanceMark   // node id + state → mark it cluster-wide
)

var errWire = errors.New("rebalance: malformed message")

// pageRequest asks a source for the records of one segment from cursor on.
type pageRequest struct {
	seg      segment
	cursor   uint64 // next token to send; seg.from at first
	maxBytes uint32
}

func (r pageRequest) encode() []byte {
	b := make([]byte, 0, 28)
	b = binary.BigEndian.AppendUint64(b, r.seg.from)
	b = binary.BigEndian.AppendUint64(b, r.seg.to)
	b = binary.BigEndian.AppendUint64(b, r.cursor)
	return binary.BigEndian.AppendUint32(b, r.maxBytes)
}

func decodePageRequest(p []byte) (pageRequest, error) {
	if len(p) != 28 {
		return pageRequest{}, errWire
	}
	return pageRequest{
		seg:      segment{binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:])},
		cursor:   binary.BigEndian.Uint64(p[16:]),
		maxBytes: binary.BigEndian.Uint32(p[24:]),
	}, nil
}

// A page response is: done (1 byte), next cursor (8), then records, each a
// uvarint key length, the key, a uvarint record length and the encoded record.

// StatusReply is what a node says about its part in a topology change.
type StatusReply struct {
	// Fingerprint identifies the node's view of member states; nodes that
	// agree on it route every write alike.
	Fingerprint uint64
	// Remaining is the number of ranges it still has to pull.
	Remaining int
}

func (s StatusReply) Encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, s.Fingerprint)
	return binary.AppendUvarint(b, uint64(s.Remaining))
}

// DecodeStatus is the inverse of StatusReply.Encode.
func DecodeStatus(p []byte) (StatusReply, error) {
	if len(p) < 9 {
		return StatusReply{}, errWire
	}
	n, k := binary.Uvarint(p[8:])
	if k <= 0 || k != len(p)-8 {
		return StatusReply{}, errWire
	}
	return StatusReply{Fingerprint: binary.BigEndian.Uint64(p), Remaining: int(n)}, nil
}

// EncodeMark and DecodeMark carry a cluster-decided state for a node.
func EncodeMark(id string, state uint8) []byte {
	return append([]byte{state}, id...)
}

// DecodeMark is the inverse of EncodeMark.
func DecodeMark(p []byte) (id string, state uint8, err error) {
	if len(p) < 2 {
		return "", 0, errWire
	}
	return string(p[1:]), p[0], nil
}

func appendRecord(b, key []byte, rec *record.Record) []byte {
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	b = binary.AppendUvarint(b, uint64(rec.EncodedLen()))
	return rec.AppendEncode(b)
}

// decodePage calls fn for each record of a page response and returns the
// next cursor and whether the segment is finished.
func decodePage(p []byte, fn func(key []byte, rec record.Record) error) (next uint64, done bool, err error) {
	if len(p) < 9 {
		return 0, false, errWire
	}
	done, next = p[0] == 1, binary.BigEndian.Uint64(p[1:])
	p = p[9:]
	for len(p) > 0 {
		kl, k := binary.Uvarint(p)
		if k <= 0 || kl > uint64(len(p)-k) {
			return 0, false, errWire
		}
		key := p[k : k+int(kl)]
		p = p[k+int(kl):]
		rl, k := binary.Uvarint(p)
		if k <= 0 || rl > uint64(len(p)-k) {
			return 0, false, errWire
		}
		rec, err := record.Decode(p[k : k+int(rl)])
		if err != nil {
			return 0, false, err
		}
		p = p[k+int(rl):]
		if err := fn(key, rec); err != nil {
			return 0, false, err
		}
	}
	return next, done, nil
}
