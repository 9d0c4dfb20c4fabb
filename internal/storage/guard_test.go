package storage

import (
	"errors"
	"testing"
)

// TestGuardRefusesOnEveryWritePath checks that Options.Guard turns a write
// away on both write paths, alone, with its own error, and stores nothing.
func TestGuardRefusesOnEveryWritePath(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		errNo := errors.New("guard says no")
		// The guard refuses by what it is told: a 7-byte key with a 1-byte value.
		s := openTest(t, Options{Engine: engine, Guard: func(w Guarded) error {
			if w.Bytes == len("refused")+1 {
				return errNo
			}
			return nil
		}})
		if _, err := s.Apply([]byte("refused"), val(1, "n1", "v")); !errors.Is(err, errNo) {
			t.Fatalf("Apply of a refused write: err = %v, want the guard's", err)
		}
		ws := []Write{
			{Key: []byte("ok"), Rec: val(1, "n1", "a")},
			{Key: []byte("refused"), Rec: val(2, "n1", "b")},
		}
		s.ApplyBatch(ws)
		if ws[0].Err != nil || !ws[0].Result.Applied {
			t.Fatalf("the allowed write of the batch: %+v", ws[0])
		}
		if !errors.Is(ws[1].Err, errNo) {
			t.Fatalf("the refused write of the batch: err = %v, want the guard's", ws[1].Err)
		}
		if _, found, err := s.Get([]byte("refused")); err != nil || found {
			t.Fatalf("a refused key was stored: found=%v err=%v", found, err)
		}
		if rec, found, err := s.Get([]byte("ok")); err != nil || !found || string(rec.Value) != "a" {
			t.Fatalf("Get(ok) = %q %v %v", rec.Value, found, err)
		}
	})
}
