package storage

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
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

func (ks *Keyspace) key(k []byte) []byte {
	buf := make([]byte, 0, 1+len(k))
	return append(append(buf, ks.prefix), k...)
}

// Set stores v under k.
func (ks *Keyspace) Set(k, v []byte) error {
	if err := ks.s.acquire(); err != nil {
		return err
	}
	defer ks.s.release()
	if err := ks.s.db.Set(ks.key(k), v, ks.s.wo); err != nil {
		return fmt.Errorf("storage: keyspace %q set: %w", ks.prefix, err)
	}
	return nil
}

// Get returns a copy of the value under k and whether it exists.
func (ks *Keyspace) Get(k []byte) ([]byte, bool, error) {
	if err := ks.s.acquire(); err != nil {
		return nil, false, err
	}
	defer ks.s.release()
	v, closer, err := ks.s.db.Get(ks.key(k))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("storage: keyspace %q get: %w", ks.prefix, err)
	}
	defer closer.Close()
	return bytes.Clone(v), true, nil
}

// Delete removes k; deleting a missing key is not an error.
func (ks *Keyspace) Delete(k []byte) error {
	if err := ks.s.acquire(); err != nil {
		return err
	}
	defer ks.s.release()
	if err := ks.s.db.Delete(ks.key(k), ks.s.wo); err != nil {
		return fmt.Errorf("storage: keyspace %q delete: %w", ks.prefix, err)
	}
	return nil
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
	it, err := ks.s.db.NewIter(&pebble.IterOptions{
		LowerBound: ks.key(from),
		UpperBound: prefixEnd(ks.prefix),
	})
	if err != nil {
		return fmt.Errorf("storage: keyspace %q iterate: %w", ks.prefix, err)
	}
	err = func() error {
		for valid := it.First(); valid; valid = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				return fmt.Errorf("storage: keyspace %q iterate: %w", ks.prefix, err)
			}
			if err := fn(it.Key()[1:], v); err != nil {
				return err
			}
		}
		return nil
	}()
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("storage: keyspace %q iterate: %w", ks.prefix, cerr)
	}
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}
