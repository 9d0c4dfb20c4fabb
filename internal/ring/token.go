package ring

import "github.com/cespare/xxhash/v2"

// Token returns the position of key on the ring. Storage orders records by it,
// so a token range is a contiguous range on disk.
func Token(key []byte) uint64 { return xxhash.Sum64(key) }
