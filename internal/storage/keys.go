package storage

import (
	"encoding/binary"
	"fmt"
)

// Keyspace prefixes; see the package comment for the layout.
const (
	prefixRecord   byte = 'r'
	prefixDeadline byte = 'x'

	// PrefixHints is the keyspace hinted handoff keeps its queue in.
	PrefixHints byte = 'h'
	// PrefixMeta is the keyspace for node metadata (identity, ring state).
	PrefixMeta byte = 'm'
)

const (
	recordHeaderLen   = 1 + 8
	deadlineHeaderLen = 1 + 8 + 8
)

// recordKey returns 'r' + token + key.
func recordKey(token uint64, key []byte) []byte {
	return appendRecordKey(make([]byte, 0, recordHeaderLen+len(key)), token, key)
}

// appendRecordKey appends recordKey(token, key) to dst.
func appendRecordKey(dst []byte, token uint64, key []byte) []byte {
	dst = append(dst, prefixRecord)
	dst = binary.BigEndian.AppendUint64(dst, token)
	return append(dst, key...)
}

// recordBound returns the first Pebble key of token: 'r' + token.
func recordBound(token uint64) []byte {
	buf := make([]byte, 0, recordHeaderLen)
	buf = append(buf, prefixRecord)
	return binary.BigEndian.AppendUint64(buf, token)
}

// parseRecordKey splits a record key; the returned key aliases k.
func parseRecordKey(k []byte) (token uint64, key []byte, err error) {
	if len(k) < recordHeaderLen || k[0] != prefixRecord {
		return 0, nil, fmt.Errorf("%w: malformed record key %q", ErrCorrupt, k)
	}
	return binary.BigEndian.Uint64(k[1:]), k[recordHeaderLen:], nil
}

// deadlineKey returns 'x' + deadline + token + key.
func deadlineKey(deadlineMS int64, token uint64, key []byte) []byte {
	buf := make([]byte, 0, deadlineHeaderLen+len(key))
	buf = append(buf, prefixDeadline)
	buf = binary.BigEndian.AppendUint64(buf, uint64(deadlineMS))
	buf = binary.BigEndian.AppendUint64(buf, token)
	return append(buf, key...)
}

// deadlineBound returns the first index key at deadlineMS.
func deadlineBound(deadlineMS int64) []byte {
	buf := make([]byte, 0, 1+8)
	buf = append(buf, prefixDeadline)
	return binary.BigEndian.AppendUint64(buf, uint64(deadlineMS))
}

// parseDeadlineKey splits an index key; the returned key aliases k.
func parseDeadlineKey(k []byte) (deadlineMS int64, token uint64, key []byte, err error) {
	if len(k) < deadlineHeaderLen || k[0] != prefixDeadline {
		return 0, 0, nil, fmt.Errorf("%w: malformed deadline key %q", ErrCorrupt, k)
	}
	return int64(binary.BigEndian.Uint64(k[1:])), binary.BigEndian.Uint64(k[9:]), k[deadlineHeaderLen:], nil
}

// prefixEnd returns the smallest key above every key that starts with p, or nil
// when there is none (p == 0xff), which Pebble reads as "no upper bound".
func prefixEnd(p byte) []byte {
	if p == 0xff {
		return nil
	}
	return []byte{p + 1}
}
