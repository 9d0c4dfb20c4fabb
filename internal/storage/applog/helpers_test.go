package applog

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// tlogHandler sends the log's lines to t.Log and keeps the warnings so that a
// test can assert what was said.
type tlogHandler struct {
	t     testing.TB
	mu    *sync.Mutex
	warns *[]string
	attrs []slog.Attr
}

func (h tlogHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h tlogHandler) Handle(_ context.Context, r slog.Record) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	h.t.Log(b.String())
	if r.Level >= slog.LevelWarn {
		h.mu.Lock()
		*h.warns = append(*h.warns, b.String())
		h.mu.Unlock()
	}
	return nil
}
func (h tlogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return h
}
func (h tlogHandler) WithGroup(string) slog.Handler { return h }

type testLogger struct {
	*slog.Logger
	mu    sync.Mutex
	warns []string
}

func newTestLogger(t testing.TB) *testLogger {
	t.Helper()
	tl := &testLogger{}
	tl.Logger = slog.New(tlogHandler{t: t, mu: &tl.mu, warns: &tl.warns})
	return tl
}

func (tl *testLogger) Warnings() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]string(nil), tl.warns...)
}

// replayed collects what Open replays, as strings (replay's slice is only
// valid during the call).
type replayed struct {
	mu      sync.Mutex
	entries []string
}

func (r *replayed) add(e []byte) error {
	r.mu.Lock()
	r.entries = append(r.entries, string(e))
	r.mu.Unlock()
	return nil
}

func (r *replayed) set() map[string]int {
	m := map[string]int{}
	for _, e := range r.entries {
		m[e]++
	}
	return m
}

func mustOpen(t testing.TB, opts Options) (*Log, *replayed) {
	t.Helper()
	r := &replayed{}
	l, err := Open(opts, r.add)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l, r
}

func entry(i int) []byte {
	return []byte(fmt.Sprintf("entry-%06d-%s", i, bytes.Repeat([]byte{'x'}, i%97)))
}

// countingFS counts writes and syncs of files, to prove group commit. A
// delay makes each write take as long as a disk's would, so that appenders
// arrive while one is in progress whatever the scheduler does.
type countingFS struct {
	vfs.FS
	writes, syncs atomic.Int64
	delay         time.Duration
}

func (fs *countingFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, fs: fs}, nil
}

type countingFile struct {
	vfs.File
	fs *countingFS
}

func (f *countingFile) Write(p []byte) (int, error) {
	f.fs.writes.Add(1)
	time.Sleep(f.fs.delay)
	return f.File.Write(p)
}
func (f *countingFile) Sync() error     { f.fs.syncs.Add(1); return f.File.Sync() }
func (f *countingFile) SyncData() error { f.fs.syncs.Add(1); return f.File.SyncData() }
