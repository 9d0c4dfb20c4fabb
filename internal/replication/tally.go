package replication

import (
	"errors"
	"fmt"

	"github.com/ringkv/ringkv/internal/record"
	"github.com/ringkv/ringkv/internal/storage"
)

// writeTally is the quorum rule of one write, the only one: Put and PutBatch
// both count their replicas' answers here, so that a write gets the same
// verdict, and the same error, whichever path carried it.
//
// A write goes to every live replica of its key, and to the pending ones
// (nodes taking over part of its range): each pending replica raises the
// acks required by one, and its ack counts as any other (see
// Topology.Pending). A down replica is not sent the write but gets a hint,
// which may land it later.
//
// The verdict, once done, is final: outcomes that come after it are not
// counted, as Put stops reading them.
type writeTally struct {
	lvl  Level
	need int // acks that make the write succeed
	n    int // replicas, pending ones included
	up   int // of them, the live ones: each is sent the write
	// unanswered counts the replicas sent the write that have not answered.
	unanswered int
	acks       int
	// mayHaveLanded is set once a replica may hold the write without having
	// acknowledged it (a hint, an answer lost on the way): a failed write is
	// then TIMEOUT, its outcome unknown, and no longer UNAVAILABLE.
	mayHaveLanded bool
	lastErr       error
	// newer is the newest version that an acknowledging replica held over
	// the write, so that the write was not applied there (see Put).
	newer *record.Record
}

// newWriteTally starts the tally of a write at lvl to n replicas and
// pending more, up of all of them live. Every live one is sent the write,
// so all outcomes are counted against it from the start.
func newWriteTally(lvl Level, n, pending, up int) writeTally {
	total := n + pending
	return writeTally{
		lvl:           lvl,
		need:          lvl.Required(n) + pending,
		n:             total,
		up:            up,
		unanswered:    up,
		mayHaveLanded: up < total, // the down ones get hints
	}
}

// check returns UNAVAILABLE when too few replicas are live for the write
// ever to get its acks: it is then not sent at all.
func (t *writeTally) check() error {
	if t.up < t.need {
		return fmt.Errorf("%w: %s write needs %d of %d replicas, %d up", ErrUnavailable, t.lvl, t.need, t.n, t.up)
	}
	return nil
}

// done reports whether the verdict is in: the acks are there, every replica
// sent the write answered, or too few are left unanswered to bring the
// acks and the write already may have landed (TIMEOUT). While every answer
// says the write is not there, the replicas still out decide between
// UNAVAILABLE and TIMEOUT: their requests are on the wire and may land.
func (t *writeTally) done() bool {
	switch {
	case t.acks >= t.need || t.unanswered == 0:
		return true
	case t.acks+t.unanswered >= t.need:
		return false
	}
	return t.acks > 0 || t.mayHaveLanded
}

// ack counts a replica's acknowledgement. newer, when not nil, is a version
// newer than the write that the replica held, so that it did not apply the
// write: still an ack (the replica holds the key at least as new), and the
// write goes again under a newer version (see Put).
func (t *writeTally) ack(newer *record.Record) {
	if t.done() {
		return
	}
	t.unanswered--
	t.acks++
	if newer != nil && (t.newer == nil || record.Newer(newer, t.newer)) {
		t.newer = newer
	}
}

// fail counts a replica's failure. A definite one (its refusal, a request
// never sent) says the write is not there; any other may have landed.
func (t *writeTally) fail(err error) {
	if t.done() {
		return
	}
	t.unanswered--
	t.lastErr = err
	if !definite(err) {
		t.mayHaveLanded = true
	}
}

// abandon ends the wait for the replicas yet to answer, with err (the
// client's cancellation, the request timeout): their requests are out, so
// the write may have landed on any of them.
func (t *writeTally) abandon(err error) {
	if t.done() {
		return
	}
	t.unanswered = 0
	t.lastErr = err
	t.mayHaveLanded = true
}

// err is the verdict of a done tally: nil when the write got its acks;
// the refusal's own error when nothing acknowledged it and the last
// failure was a refusal for memory (a client gets Redis' OOM reply, not a
// TIMEOUT); TIMEOUT when it may have landed somewhere; UNAVAILABLE when it
// certainly landed nowhere.
func (t *writeTally) err() error {
	switch {
	case t.acks >= t.need:
		return nil
	case t.acks == 0 && errors.Is(t.lastErr, storage.ErrOutOfMemory):
		return fmt.Errorf("replication: %s write refused: %w", t.lvl, t.lastErr)
	case t.acks > 0 || t.mayHaveLanded:
		return fmt.Errorf("%w: %s write got %d of %d acks: %w", ErrTimeout, t.lvl, t.acks, t.need, t.lastErr)
	}
	return fmt.Errorf("%w: %s write reached no replica: %w", ErrUnavailable, t.lvl, t.lastErr)
}

// writeReplicas returns the replicas a write of the key whose token is tok
// goes to, the pending ones after the others, and the tally of its answers at
// lvl. The slice is the topology's own when no replica is pending, and must
// not be modified.
func (c *Coordinator) writeReplicas(tok uint64, lvl Level) ([]Replica, writeTally) {
	reps := c.topo.ReplicasAt(tok)
	n := len(reps)
	pending := c.topo.PendingAt(tok)
	if len(pending) > 0 {
		reps = append(append(make([]Replica, 0, n+len(pending)), reps...), pending...)
	}
	return reps, newWriteTally(lvl, n, len(pending), countUp(reps))
}

// tallyApplied counts the answer of a replica that took a write of rec
// without error (applied says whether rec went in, prev is what it held
// before) and reports whether it was an ack: it is not when the replica
// kept a version from the future over rec, one no read returns, or a
// QUORUM read could miss the write.
func (c *Coordinator) tallyApplied(t *writeTally, applied, prevFound bool, prev, rec *record.Record) bool {
	sup := superseding(applied, prevFound, prev, rec)
	switch {
	case sup == nil:
		t.ack(nil)
	case c.future(sup):
		t.fail(errHeldFuture)
		return false
	default:
		held := *sup // only this escapes, not every write's answer
		t.ack(&held)
	}
	return true
}

// refusal marks an error as a replica's definite refusal of a write: it
// was not applied there (see definite).
type refusal struct{ error }

func (r refusal) Unwrap() error { return r.error }

// Refused says the write was not applied.
func (refusal) Refused() bool { return true }
