package storage

import (
	"errors"
	"fmt"
)

// Keyspace is a raw, ordered sub-keyspace of the store for another component
// (hints, metadata). Its keys are the component's own; the Keyspace adds and
// strips the one-byte prefix. Writes follow the store's SyncMode. It is safe for
// concurrent use; it orders nothing between concurrent writers of one key.
type Keyspace struct {
	s      *Store
	prefix byte
}

// Keyspace returns the sub-keyspace under prefix, such as PrefixHints or
// PrefixMeta. It panics on the record and deadline index prefixes: a caller
// writing there would corrupt the store's invariants, a programming error.
func (s *Store) Keyspace(prefix byte) *Keyspace {
	if prefix == prefixRecord || prefix == prefixDeadline {
		panic(fmt.Sprintf("storage: keyspace prefix %q is reserved", prefix))
	}
	return &Keyspace{s: s, prefix: prefix}
}

// Set stores v under k.
func (ks *Keyspace) Set(k, v []byte) error {
	if err := ks.s.acquire(); err != nil {
		return err
	}
	defer ks.s.release()
	return ks.s.eng.rawSet(ks.prefix, k, v)
}

// Get returns a copy of the value under k and whether it exists.
func (ks *Keyspace) Get(k []byte) ([]byte, bool, error) {
	if err := ks.s.acquire(); err != nil {
		return nil, false, err
	}
	defer ks.s.release()
	return ks.s.eng.rawGet(ks.prefix, k)
}

// Delete removes k; deleting a missing key is not an error.
func (ks *Keyspace) Delete(k []byte) error {
	if err := ks.s.acquire(); err != nil {
		return err
	}
	defer ks.s.release()
	return ks.s.eng.rawDelete(ks.prefix, k)
}

// Iterate calls fn for each entry with key >= from, in key order, on a
// consistent snapshot taken when it starts. k and v are valid only during fn.
// fn returning ErrStop ends the iteration with a nil error; any other error
// ends it and is returned. fn may call Set and Delete, on this or any
// keyspace.
func (ks *Keyspace) Iterate(from []byte, fn func(k, v []byte) error) error {
	if err := ks.s.acquire(); err != nil {
		return err
	}
	defer ks.s.release()
	err := ks.s.eng.rawIterate(ks.prefix, from, fn)
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}
