package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ringkv/ringkv/internal/server"
)

// removeStaleAddrFile deletes what a previous run left at --addr-file before
// this one binds anything: a supervisor that waits for the file to appear
// must never read the ports of a process that is gone.
func removeStaleAddrFile(path string) error {
	if path == "" {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("server: --addr-file: removing the previous run's file: %w", err)
	}
	return nil
}

// writeAddrFile writes the node's bound addresses to path as JSON. It writes
// a temporary file beside path and renames it over path, so a reader sees
// no file or a whole one, never a half-written one. It does not fsync: after
// a crash the file would name a process that no longer listens anyway.
func writeAddrFile(path string, a server.Addrs) (err error) {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("server: --addr-file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("server: --addr-file: %w", err)
		}
	}()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return err
	}
	// CreateTemp makes the file 0600; addresses are no secret, and the
	// supervisor reading them may run as another user.
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
