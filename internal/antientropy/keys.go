package antientropy

import "github.com/ringkv/ringkv/internal/ring"

// tokenOf is the ring token of a key held as a map key.
func tokenOf(k string) uint64 { return ring.Token([]byte(k)) }
