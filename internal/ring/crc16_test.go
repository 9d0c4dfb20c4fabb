package ring

import (
	"math/rand/v2"
	"testing"
)

// crc16Bytewise is CRC-16/XMODEM a bit at a time, straight from its
// definition: the reference the table-driven crc16 must match.
func crc16Bytewise(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// Every length around the eight-byte steps, with random and extreme bytes.
func TestCRC16MatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 70 {
		for trial := range 50 {
			b := make([]byte, n)
			for i := range b {
				switch trial {
				case 0:
					b[i] = 0
				case 1:
					b[i] = 0xff
				default:
					b[i] = byte(rng.Uint32())
				}
			}
			if got, want := crc16(b), crc16Bytewise(b); got != want {
				t.Fatalf("crc16(%x) = %#04x, want %#04x", b, got, want)
			}
		}
	}
}

func BenchmarkCRC16Key(b *testing.B) {
	key := []byte("key:000000123456")
	b.SetBytes(int64(len(key)))
	for b.Loop() {
		crc16(key)
	}
}

// A whole token of a redis-benchmark key: hash-tag search, CRC16, xxhash.
func BenchmarkTokenKey(b *testing.B) {
	key := []byte("key:000000123456")
	for b.Loop() {
		Token(key)
	}
}
