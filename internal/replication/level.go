// Package replication is the coordinator of design §4: it turns one client
// request into reads or writes on the key's replicas, waits for the number of
// answers the request's consistency level asks for, resolves versions by
// last-write-wins, repairs stale replicas, and leaves hints for missed writes.
package replication

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ringkv/ringkv/internal/transport"
)

// Level is a per-request consistency level.
type Level uint8

// Consistency levels. R and W are 1, ⌊N/2⌋+1 and N respectively.
const (
	One Level = iota + 1
	Quorum
	All
)

// DefaultLevel is used when a request names none.
const DefaultLevel = Quorum

func (l Level) String() string {
	switch l {
	case One:
		return "ONE"
	case Quorum:
		return "QUORUM"
	case All:
		return "ALL"
	}
	return fmt.Sprintf("Level(%d)", uint8(l))
}

// ParseLevel parses ONE, QUORUM or ALL, in any case.
func ParseLevel(s string) (Level, error) {
	switch strings.ToUpper(s) {
	case "ONE":
		return One, nil
	case "QUORUM":
		return Quorum, nil
	case "ALL":
		return All, nil
	}
	return 0, fmt.Errorf("%w: %q (want ONE, QUORUM or ALL)", ErrBadLevel, s)
}

// Required returns how many replicas out of n must answer at level l.
func (l Level) Required(n int) int {
	switch l {
	case One:
		return 1
	case All:
		return n
	}
	return n/2 + 1
}

// Errors a coordinator returns. UNAVAILABLE means the request was not attempted
// because too few replicas are alive; TIMEOUT means it was attempted and too few
// answered in time, so a write may or may not have been applied.
var (
	ErrUnavailable = errors.New("replication: not enough live replicas, request not attempted")
	ErrTimeout     = errors.New("replication: too few replicas answered in time, a write may have been applied")
	ErrBadLevel    = errors.New("replication: unknown consistency level")
	// ErrNotMember refuses a client request, unattempted, on a node that was
	// removed from the cluster: it no longer replicates any key.
	ErrNotMember = errors.New("replication: this node was removed from the cluster; send requests to a member")
)

// Mutation is a write a client asks for; the coordinator gives it a version.
type Mutation struct {
	Value []byte
	// ExpireAt is the absolute expiry in unix ms; 0 means never.
	ExpireAt  int64
	Tombstone bool
}

// definite reports whether a replica's write error means the write was not
// applied there: the peer's own refusal, a request never sent, or a local
// refusal that says so (a storage guard's error with a Refused method, such
// as a full disk's). Anything else may have landed.
func definite(err error) bool {
	var r interface{ Refused() bool }
	return transport.IsRemote(err) || transport.NotSent(err) || (errors.As(err, &r) && r.Refused())
}
