package ring

import (
	"bytes"

	"github.com/cespare/xxhash/v2"
)

// Slots is the number of Redis Cluster hash slots. A key's slot is the high
// SlotBits bits of its token, so a cluster-mode client that computes the slot
// the Redis way finds the key's replicas in CLUSTER SLOTS.
const (
	Slots    = 16384
	SlotBits = 14
	// slotShift moves a slot into the high bits of a token; the low bits
	// spread the keys of one slot (and of one hash tag) in token order.
	slotShift = 64 - SlotBits
	lowMask   = 1<<slotShift - 1
)

// Token returns the position of key on the ring: its hash slot in the high 14
// bits and 50 bits of xxhash64 of the whole key below. Storage orders records
// by it, so a token range is a contiguous range on disk, and a slot is a
// contiguous run of tokens that lies within one vnode range (vnode tokens sit
// on slot boundaries, see NodeTokens).
func Token(key []byte) uint64 {
	return uint64(Slot(key))<<slotShift | xxhash.Sum64(key)&lowMask
}

// Slot returns key's Redis Cluster hash slot: CRC16 (XMODEM) mod 16384 of the
// key, or of its hash tag, the bytes between the first '{' and the first '}'
// after it when there are any, so keys sharing a tag share a slot.
func Slot(key []byte) int {
	// IndexByte scans a word or more at a time: a byte loop here cost as
	// much as the CRC of a 16-byte key.
	if i := bytes.IndexByte(key, '{'); i >= 0 {
		if j := bytes.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) & (Slots - 1))
}

// SlotOf returns the slot a token lies in.
func SlotOf(t uint64) int { return int(t >> slotShift) }

// slotEnd is the last token of slot s. Vnode tokens are slot ends: a range
// (Start, End] then holds whole slots, the ones after Start's and up to End's.
func slotEnd(s uint64) uint64 { return s<<slotShift | lowMask }

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial 0), Redis Cluster's
// key hash. It takes eight bytes a step (slicing-by-8): the eight lookups are
// independent, where a byte at a time each lookup waits for the last one's
// result. A key's token is taken several times per request on every node,
// and byte-at-a-time CRC was 5% of a single node's CPU under pipelined SETs.
func crc16(b []byte) uint16 {
	var crc uint16
	t := &crc16Tables
	for len(b) >= 8 {
		crc = t[7][byte(crc>>8)^b[0]] ^ t[6][byte(crc)^b[1]] ^ t[5][b[2]] ^ t[4][b[3]] ^
			t[3][b[4]] ^ t[2][b[5]] ^ t[1][b[6]] ^ t[0][b[7]]
		b = b[8:]
	}
	for _, c := range b {
		crc = crc<<8 ^ t[0][byte(crc>>8)^c]
	}
	return crc
}

// crc16Tables[k][x] is the CRC of byte x followed by k zero bytes. Since the
// CRC is linear, the CRC of eight bytes is the XOR of each byte's entry in the
// table for the bytes after it (the first two XORed with the running CRC).
var crc16Tables = func() (t [8][256]uint16) {
	for i := range 256 {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[0][i] = crc
	}
	for k := 1; k < len(t); k++ {
		for i := range 256 {
			p := t[k-1][i]
			t[k][i] = p<<8 ^ t[0][p>>8]
		}
	}
	return t
}()
