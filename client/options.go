package client

import (
	"fmt"
	"time"
)

// Level is a consistency level: how many of a key's replicas must answer a
// read, or acknowledge a write, before the call returns. With N replicas, ONE
// is 1, QUORUM is N/2+1 and ALL is N. Reads at QUORUM see every write
// acknowledged at QUORUM before the read began, as long as no write to the key
// is concurrent with the read.
type Level uint8

const (
	// DefaultLevel is the zero Level: the Config's Consistency, or Quorum when
	// that is unset too.
	DefaultLevel Level = iota
	// One answers after one replica; fastest, may read a stale value.
	One
	// Quorum answers after a majority of the replicas.
	Quorum
	// All answers after every replica; fails while any replica is down.
	All
)

func (l Level) String() string {
	switch l {
	case DefaultLevel:
		return "DEFAULT"
	case One:
		return "ONE"
	case Quorum:
		return "QUORUM"
	case All:
		return "ALL"
	}
	return fmt.Sprintf("Level(%d)", uint8(l))
}

func (l Level) valid() bool { return l <= All }

// callOptions are the options every call accepts.
type callOptions struct {
	level   Level
	noCache bool
}

// Option tunes one call. Options returned by WithConsistency and NoCache are
// accepted by every method, Set and Scan included.
type Option interface {
	SetOption
	ScanOption
	applyCall(*callOptions)
}

// SetOption tunes one Set: WithTTL, KeepTTL, NX, XX, or any Option.
type SetOption interface{ applySet(*setOptions) }

// ScanOption tunes a Scan: Match, Count, or any Option.
type ScanOption interface{ applyScan(*scanOptions) }

type setOptions struct {
	callOptions
	ttl     time.Duration
	keepTTL bool
	nx, xx  bool
}

type scanOptions struct {
	callOptions
	match string
	count int
}

type levelOption Level

func (o levelOption) applyCall(c *callOptions) { c.level = Level(o) }
func (o levelOption) applySet(s *setOptions)   { s.level = Level(o) }
func (o levelOption) applyScan(s *scanOptions) { s.level = Level(o) }

// WithConsistency runs the call at level l instead of the client's default.
func WithConsistency(l Level) Option { return levelOption(l) }

type noCacheOption struct{}

func (noCacheOption) applyCall(c *callOptions) { c.noCache = true }
func (noCacheOption) applySet(s *setOptions)   { s.noCache = true }
func (noCacheOption) applyScan(s *scanOptions) { s.noCache = true }

// NoCache makes a Get bypass the near cache: it always asks the cluster (and
// refreshes the cached entry with the answer). Other calls ignore it.
func NoCache() Option { return noCacheOption{} }

type setFunc func(*setOptions)

func (f setFunc) applySet(s *setOptions) { f(s) }

// WithTTL makes the key expire ttl after the write (millisecond precision).
// Without it, Set stores the key with no expiry, dropping any previous TTL.
func WithTTL(ttl time.Duration) SetOption { return setFunc(func(s *setOptions) { s.ttl = ttl }) }

// KeepTTL keeps the TTL the key already has (Redis' SET KEEPTTL).
func KeepTTL() SetOption { return setFunc(func(s *setOptions) { s.keepTTL = true }) }

// NX writes only if the key does not exist; Set returns ErrNotSet otherwise.
// The check is a read at the call's level followed by a write, not an atomic
// operation: two concurrent NX writers of one key may both succeed.
func NX() SetOption { return setFunc(func(s *setOptions) { s.nx = true }) }

// XX writes only if the key exists; Set returns ErrNotSet otherwise. Like NX,
// it is a read followed by a write, not atomic.
func XX() SetOption { return setFunc(func(s *setOptions) { s.xx = true }) }

type scanFunc func(*scanOptions)

func (f scanFunc) applyScan(s *scanOptions) { f(s) }

// Match keeps only the keys matching the glob pattern (Redis' MATCH: * ? [..]
// and \ escapes). The filter runs on the server after each page is read, so a
// page may hold few or no keys; the iterator simply goes on.
func Match(pattern string) ScanOption { return scanFunc(func(s *scanOptions) { s.match = pattern }) }

// Count is the number of keys to ask each node for per page (default 100).
func Count(n int) ScanOption { return scanFunc(func(s *scanOptions) { s.count = n }) }
