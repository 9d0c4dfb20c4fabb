package admin

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeClock is a wall clock at a fixed time plus the offset set.
type fakeClock struct{ off time.Duration }

func (c *fakeClock) Get() time.Duration  { return c.off }
func (c *fakeClock) Set(d time.Duration) { c.off = d }
func (c *fakeClock) Now() time.Time      { return time.UnixMilli(1_000_000).Add(c.off) }

// fakeDisk is a disk with 100 bytes free.
type fakeDisk struct{ reserve uint64 }

func (d *fakeDisk) SetReserve(n uint64) {
	if n == 0 {
		n = 10
	}
	d.reserve = n
}
func (d *fakeDisk) Reserve() uint64 { return d.reserve }
func (d *fakeDisk) Free() uint64    { return 100 }
func (d *fakeDisk) Full() bool      { return d.reserve > 100 }

func debugMux(d Debug) http.Handler {
	mux := http.NewServeMux()
	MountDebug(mux, d)
	return mux
}

// The clock offset is read and set within a day either way; anything else
// is a 400 that leaves it alone.
func TestClockOffset(t *testing.T) {
	clk := &fakeClock{}
	h := debugMux(Debug{Clock: clk})
	if rec := do(h, "GET", "/debug/clock-offset"); rec.Code != http.StatusOK ||
		rec.Body.String() != `{"offset":"0s","offset_ms":0,"now_ms":1000000}`+"\n" {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "POST", "/debug/clock-offset?d=-1.5s"); rec.Code != http.StatusOK || clk.off != -1500*time.Millisecond ||
		rec.Body.String() != `{"offset":"-1.5s","offset_ms":-1500,"now_ms":998500}`+"\n" {
		t.Fatalf("POST d=-1.5s: %d %s", rec.Code, rec.Body)
	}
	for _, d := range []string{"25h", "-25h", "soon", ""} {
		if rec := do(h, "POST", "/debug/clock-offset?d="+d); rec.Code != http.StatusBadRequest || clk.off != -1500*time.Millisecond {
			t.Fatalf("POST d=%s: %d %s, offset now %v", d, rec.Code, rec.Body, clk.off)
		}
	}
}

// The disk reserve is set by ?bytes=, 0 restoring the configured one; an
// in-memory node has no disk to set it on.
func TestDiskReserve(t *testing.T) {
	disk := &fakeDisk{reserve: 10}
	h := debugMux(Debug{Clock: &fakeClock{}, Disk: disk})
	if rec := do(h, "POST", "/debug/disk-reserve?bytes=200"); rec.Code != http.StatusOK ||
		rec.Body.String() != "reserve 200 bytes, free 100 bytes, full true\n" {
		t.Fatalf("bytes=200: %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "POST", "/debug/disk-reserve?bytes=0"); rec.Body.String() != "reserve 10 bytes, free 100 bytes, full false\n" {
		t.Fatalf("bytes=0: %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "POST", "/debug/disk-reserve?bytes=-1"); rec.Code != http.StatusBadRequest || disk.reserve != 10 {
		t.Fatalf("bytes=-1: %d %s", rec.Code, rec.Body)
	}
	if rec := do(debugMux(Debug{Clock: &fakeClock{}}), "POST", "/debug/disk-reserve?bytes=1"); rec.Code != http.StatusConflict ||
		!strings.Contains(rec.Body.String(), "in-memory") {
		t.Fatalf("in-memory node: %d %s", rec.Code, rec.Body)
	}
}

// The profiler is mounted beside the controls, its cmdline through the
// redacting handler.
func TestProfilerMounted(t *testing.T) {
	h := debugMux(Debug{Clock: &fakeClock{}})
	rec := do(h, "GET", "/debug/pprof/cmdline")
	if rec.Code != http.StatusOK || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("cmdline: %d", rec.Code)
	}
	if rec := do(h, "GET", "/debug/pprof/"); rec.Code != http.StatusOK {
		t.Fatalf("pprof index: %d", rec.Code)
	}
}

func TestRedactArgs(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"ringkv", "server", "--password", "hunter2", "--node-id", "n1"},
			[]string{"ringkv", "server", "--password", redacted, "--node-id", "n1"}},
		{[]string{"ringkv", "server", "--password=hunter2"}, []string{"ringkv", "server", "--password=" + redacted}},
		{[]string{"ringkv", "-password", "hunter2"}, []string{"ringkv", "-password", redacted}},
		{[]string{"ringkv", "--node-id", "password", "--users-file", "/u.yaml"},
			[]string{"ringkv", "--node-id", "password", "--users-file", "/u.yaml"}},
		{[]string{"ringkv", "--password"}, []string{"ringkv", "--password"}},
	} {
		if got := redactArgs(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("redactArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
