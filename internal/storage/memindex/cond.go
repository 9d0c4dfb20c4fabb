package memindex

// PutIf stores val for (token, key) unless a value is stored and
// replace(stored) returns false; it reports whether it stored val. It is
// apply-if-newer in one call: the engine's read of the stored record, its
// version comparison and its write share one lock hold and one probe (the
// write's own probe then finds the slot in cache), where Get then Put pay
// two and copy the old value out. replace runs under the shard's write
// lock: it must not call the Index, and stored is valid only during the
// call.
func (ix *Index) PutIf(token uint64, key, val []byte, replace func(stored []byte) bool) bool {
	sh := ix.shardOf(token)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if i := sh.findLocked(token, key); i >= 0 {
		if _, _, old := sh.entryLocked(sh.mu.tab[i].loc()); !replace(old) {
			return false
		}
	}
	sh.putLocked(ix, token, key, val)
	sh.publishLocked()
	return true
}

// DeleteIf removes (token, key) if it is stored and del(stored) returns
// true, and reports whether it removed it: the engine purges a tombstone
// or an expired record only if a newer write has not replaced it since it
// decided to. del runs under the shard's write lock, as PutIf's replace.
func (ix *Index) DeleteIf(token uint64, key []byte, del func(stored []byte) bool) bool {
	sh := ix.shardOf(token)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i := sh.findLocked(token, key)
	if i < 0 {
		return false
	}
	if _, _, old := sh.entryLocked(sh.mu.tab[i].loc()); !del(old) {
		return false
	}
	sh.deleteLocked(ix, token, key)
	sh.publishLocked()
	return true
}
