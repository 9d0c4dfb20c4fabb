package server

import (
	"errors"
	"fmt"

	"github.com/ringkv/ringkv/internal/rebalance"
)

// tokenSchemeKey records how the store's record tokens were derived. Records
// are ordered and partitioned by token, so a data directory written under one
// scheme is garbage under another: keys would sit in the wrong ranges for
// streaming, repair and SCAN.
var tokenSchemeKey = []byte("token-scheme")

// tokenScheme names the current derivation: the Redis Cluster hash slot in the
// high 14 bits, 50 bits of xxhash64 below (ring.Token).
const tokenScheme = "slot14-xxhash50"

// errOldTokens refuses a data directory from a build before hash slots.
var errOldTokens = errors.New("server: the data directory was written by an older ringkv whose key tokens predate hash slots; " +
	"this version cannot read it: start this node with a fresh --data-dir (and let it join the cluster to stream its data back), " +
	"or keep running the older build")

// checkTokenScheme refuses a data directory whose records were placed by
// another token scheme, and marks a fresh one with the current scheme. A
// directory without the mark is old if an earlier build left its lifecycle
// state (every started node writes it) or any record.
func (s *Server) checkTokenScheme() error {
	meta := s.store.Keyspace(rebalance.PrefixMeta)
	v, ok, err := meta.Get(tokenSchemeKey)
	if err != nil {
		return err
	}
	if ok {
		if string(v) != tokenScheme {
			return fmt.Errorf("server: the data directory's key tokens use scheme %q, this build %q: start with a fresh --data-dir", v, tokenScheme)
		}
		return nil
	}
	_, hadState, err := meta.Get(rebalance.NodeStateKey)
	if err != nil {
		return err
	}
	if hadState || s.store.ApproxCount() > 0 {
		return errOldTokens
	}
	return meta.Set(tokenSchemeKey, []byte(tokenScheme))
}
