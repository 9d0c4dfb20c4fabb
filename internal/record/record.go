// Package record defines the unit ringkv stores and replicates: a value with a
// version and an expiry, its binary encoding, and the last-write-wins order that
// every replica, read, repair, hint and stream uses to pick a winner.
package record

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ringkv/ringkv/internal/clock"
)

// Version orders writes to one key: the coordinator's HLC timestamp, then the
// coordinator's node id as a tie-break so that two coordinators that pick the
// same timestamp still agree on a single winner everywhere.
type Version struct {
	TS   clock.Timestamp
	Node string
}

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than o.
func (v Version) Compare(o Version) int {
	if c := cmp.Compare(v.TS, o.TS); c != 0 {
		return c
	}
	return cmp.Compare(v.Node, o.Node)
}

// IsZero reports whether v is the zero version, which no write carries.
func (v Version) IsZero() bool { return v.TS == 0 && v.Node == "" }

func (v Version) String() string { return v.TS.String() + "@" + v.Node }

// Record is one key's state on a replica. A delete is a record too (a tombstone),
// so that the delete wins over older values wherever they turn up.
type Record struct {
	Value   []byte
	Version Version
	// ExpireAt is the absolute expiry in unix milliseconds; 0 means never. It is
	// absolute so every replica expires the key at the same instant.
	ExpireAt  int64
	Tombstone bool
	// Counter, when not nil, makes the record a counter (see Counter): it
	// holds the counter's encoded state, and Value its decimal value, so
	// that every read serves a counter as the string Redis would.
	Counter []byte
}

// Live reports whether the record holds a value a read may return at nowMS. An
// expired record is absent from the instant of expiry, before any purge runs.
func (r *Record) Live(nowMS int64) bool {
	return !r.Tombstone && (r.ExpireAt == 0 || nowMS < r.ExpireAt)
}

// Compare orders two records of the same key by last-write-wins: the newer version
// wins. Equal versions come from the same write and should be identical; if they
// are not (a bug, or corruption), a fixed order still makes every replica pick
// the same one: tombstone over value, later expiry over earlier, then bytes.
func Compare(a, b *Record) int {
	if c := CompareMeta(a, b); c != 0 {
		return c
	}
	if c := bytes.Compare(a.Value, b.Value); c != 0 {
		return c
	}
	// Two merges of a counter can share a version and a value but not a
	// state; the order still has to tell them apart.
	return bytes.Compare(a.Counter, b.Counter)
}

// CompareMeta is Compare without its last tie-break, the values' bytes: it
// orders a record against one whose value a replica sent only as a digest.
func CompareMeta(a, b *Record) int {
	if c := a.Version.Compare(b.Version); c != 0 {
		return c
	}
	if a.Tombstone != b.Tombstone {
		if a.Tombstone {
			return 1
		}
		return -1
	}
	return cmpExpiry(a.ExpireAt, b.ExpireAt)
}

// cmpExpiry orders expiries with 0 (never) as the latest.
func cmpExpiry(a, b int64) int {
	switch {
	case a == b:
		return 0
	case a == 0:
		return 1
	case b == 0:
		return -1
	}
	return cmp.Compare(a, b)
}

// Newer reports whether a wins over b.
func Newer(a, b *Record) bool { return Compare(a, b) > 0 }

// formatV1 is the first byte of every encoded record. Decoders refuse other
// values, so a future format can be rolled out alongside this one.
const formatV1 byte = 1

const (
	flagTombstone byte = 1 << 0
	// flagCounter marks a counter record: its state follows the node id.
	// Decoders from before counters refuse the flag ("unknown flags"),
	// rather than read the state as part of the value.
	flagCounter byte = 1 << 1
)

// headerLen is format + flags + ts + expireAt.
const headerLen = 1 + 1 + 8 + 8

// Errors returned by Decode.
var (
	ErrShort   = errors.New("record: encoding too short")
	ErrFormat  = errors.New("record: unknown format version")
	ErrCorrupt = errors.New("record: corrupt encoding")
)

// EncodedLen returns the number of bytes Encode will produce.
func (r *Record) EncodedLen() int {
	n := headerLen + uvarintLen(uint64(len(r.Version.Node))) + len(r.Version.Node) + len(r.Value)
	if r.Counter != nil {
		n += uvarintLen(uint64(len(r.Counter))) + len(r.Counter)
	}
	return n
}

// AppendEncode appends r's encoding to dst:
//
//	format(1) flags(1) ts(8, BE) expireAt(8, BE) len(node)(uvarint) node
//	[len(counter)(uvarint) counter, with flagCounter] value
//
// The value is last so it needs no length and decodes without a copy.
func (r *Record) AppendEncode(dst []byte) []byte {
	var flags byte
	if r.Tombstone {
		flags |= flagTombstone
	}
	if r.Counter != nil && !r.Tombstone {
		flags |= flagCounter
	}
	dst = append(dst, formatV1, flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Version.TS))
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.ExpireAt))
	dst = binary.AppendUvarint(dst, uint64(len(r.Version.Node)))
	dst = append(dst, r.Version.Node...)
	if flags&flagCounter != 0 {
		dst = binary.AppendUvarint(dst, uint64(len(r.Counter)))
		dst = append(dst, r.Counter...)
	}
	return append(dst, r.Value...)
}

// Encode returns r's encoding in a new slice.
func (r *Record) Encode() []byte {
	return r.AppendEncode(make([]byte, 0, r.EncodedLen()))
}

// Expiring reports whether the encoded record buf is a value with an expiry
// (not a tombstone), from its header alone: what counting a store's expiring
// keys needs, without decoding each record. A short buffer is not.
func Expiring(buf []byte) bool {
	if len(buf) < headerLen {
		return false
	}
	return buf[1]&flagTombstone == 0 && binary.BigEndian.Uint64(buf[10:]) != 0
}

// Decode parses an encoding made by Encode. The returned record's Value aliases
// buf; callers that keep it past buf's lifetime must copy it.
func Decode(buf []byte) (Record, error) {
	var r Record
	if len(buf) < headerLen {
		return r, ErrShort
	}
	if buf[0] != formatV1 {
		return r, fmt.Errorf("%w: %d", ErrFormat, buf[0])
	}
	flags := buf[1]
	if flags&^(flagTombstone|flagCounter) != 0 || flags == flagTombstone|flagCounter {
		return r, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, flags)
	}
	r.Tombstone = flags&flagTombstone != 0
	r.Version.TS = clock.Timestamp(binary.BigEndian.Uint64(buf[2:]))
	r.ExpireAt = int64(binary.BigEndian.Uint64(buf[10:]))
	if r.ExpireAt < 0 {
		return r, fmt.Errorf("%w: negative expiry", ErrCorrupt)
	}
	rest := buf[headerLen:]
	n, w := binary.Uvarint(rest)
	// A length in more bytes than needed (0x80 0x00 for 0) would give one
	// record two encodings; refuse it so every record has exactly one.
	if w <= 0 || w != uvarintLen(n) || n > uint64(len(rest)-w) {
		return r, fmt.Errorf("%w: bad node id length", ErrCorrupt)
	}
	rest = rest[w:]
	r.Version.Node = internNode(rest[:n])
	rest = rest[n:]
	if flags&flagCounter != 0 {
		n, w := binary.Uvarint(rest)
		if w <= 0 || w != uvarintLen(n) || n > uint64(len(rest)-w) {
			return r, fmt.Errorf("%w: bad counter length", ErrCorrupt)
		}
		// Never nil for a counter, even one with an empty state.
		r.Counter = rest[w : uint64(w)+n : uint64(w)+n]
		rest = rest[uint64(w)+n:]
		if _, err := DecodeCounter(r.Counter); err != nil {
			return r, err
		}
	}
	r.Value = rest
	if r.Tombstone && len(r.Value) != 0 {
		return r, fmt.Errorf("%w: tombstone with a value", ErrCorrupt)
	}
	return r, nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// Clone returns a copy of r whose Value does not alias r's.
func (r *Record) Clone() Record {
	c := *r
	if r.Value != nil {
		c.Value = bytes.Clone(r.Value)
	}
	if r.Counter != nil {
		c.Counter = bytes.Clone(r.Counter)
	}
	return c
}
