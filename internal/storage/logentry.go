package storage

import (
	"encoding/binary"
	"fmt"
)

// The memory engine's log entries. The log (package applog) frames and
// checksums them; their content is the engine's:
//
//	'r' len(key)(uvarint) key record.Encode()   a record write
//	's' prefix len(k)(uvarint) k v              a raw keyspace Set
//	'd' prefix k                                a raw keyspace Delete
//
// A record entry holds no token: replay recomputes it from the key, eight
// bytes a record saved on disk for a hash that costs nanoseconds.
const (
	entryRecord    byte = 'r'
	entryRawSet    byte = 's'
	entryRawDelete byte = 'd'
)

// appendRecordEntry appends the entry of key's write of an encoded record.
func appendRecordEntry(dst, key, enc []byte) []byte {
	dst = append(dst, entryRecord)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	return append(dst, enc...)
}

// recordEntryHeaderLen is the length of a record entry before the encoded
// record.
func recordEntryHeaderLen(key []byte) int {
	return 1 + uvarintLen(uint64(len(key))) + len(key)
}

func appendRawSetEntry(dst []byte, prefix byte, k, v []byte) []byte {
	dst = append(dst, entryRawSet, prefix)
	dst = binary.AppendUvarint(dst, uint64(len(k)))
	dst = append(dst, k...)
	return append(dst, v...)
}

func appendRawDeleteEntry(dst []byte, prefix byte, k []byte) []byte {
	dst = append(dst, entryRawDelete, prefix)
	return append(dst, k...)
}

// parseLenPrefixed splits uvarint(len(a)) a b.
func parseLenPrefixed(b []byte) (a, rest []byte, err error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return nil, nil, fmt.Errorf("%w: log entry with a bad key length", ErrCorrupt)
	}
	return b[w : w+int(n)], b[w+int(n):], nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
