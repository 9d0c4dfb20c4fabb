package auth

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/ringkv/ringkv/internal/auth/authtest"
)

// writeUsers writes a users file with alice (read, write) and root (admin).
func writeUsers(t *testing.T) string {
	t.Helper()
	return authtest.WriteUsersFile(t, nil,
		authtest.User{Name: "alice", Password: "alicepw", Rights: []string{"read", "write"}},
		authtest.User{Name: "root", Password: "rootpw", Rights: []string{"admin"}})
}

// fakeClock is a settable clock for the limiter and the log sampling.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock() *fakeClock               { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }
func ip(s string) netip.Addr             { return netip.MustParseAddr(s) }
func verify(a *Authenticator, u, p, src string) (Identity, error) {
	return a.Verify([]byte(u), []byte(p), ip(src), "resp")
}

func TestVerifyUsersAndDefault(t *testing.T) {
	a, err := New(Config{Password: "secret", UsersFile: writeUsers(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, pass string
		want       Identity
		err        error
	}{
		{"default", "secret", Identity{Name: "default", Rights: All}, nil},
		{"default", "secre", Identity{}, ErrWrongPass},
		{"alice", "alicepw", Identity{Name: "alice", Rights: Read | Write}, nil},
		{"alice", "rootpw", Identity{}, ErrWrongPass},
		{"root", "rootpw", Identity{Name: "root", Rights: Admin}, nil},
		{"mallory", "alicepw", Identity{}, ErrWrongPass},
	} {
		got, err := verify(a, tc.user, tc.pass, "10.0.0.1")
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("Verify(%s, %s) = %+v, %v; want %+v, %v", tc.user, tc.pass, got, err, tc.want, tc.err)
		}
	}
}

func TestDisabledAndNoDefaultPassword(t *testing.T) {
	a, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Enabled() {
		t.Fatal("no password nor users: want authentication off")
	}
	if id, err := verify(a, "anyone", "x", "10.0.0.1"); err != nil || id != Anonymous {
		t.Fatalf("auth off: got %+v, %v", id, err)
	}
	// With only a users file, the default user cannot log in at all.
	a, err = New(Config{UsersFile: writeUsers(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify(a, "default", "", "10.0.0.1"); !errors.Is(err, ErrWrongPass) {
		t.Fatalf("default user without --password: got %v, want ErrWrongPass", err)
	}
}

func TestCacheMakesRepeatQuick(t *testing.T) {
	a, err := New(Config{UsersFile: writeUsers(t)})
	if err != nil {
		t.Fatal(err)
	}
	if a.Quick([]byte("alice"), []byte("alicepw")) {
		t.Fatal("never verified: Quick must say a bcrypt is needed")
	}
	if _, err := verify(a, "alice", "alicepw", "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if !a.Quick([]byte("alice"), []byte("alicepw")) {
		t.Fatal("verified once: Quick must answer from the cache")
	}
	if a.Quick([]byte("alice"), []byte("alicepw2")) {
		t.Fatal("another password must not hit the cache")
	}
	// A failure is never cached as a success.
	_, _ = verify(a, "alice", "nope", "10.0.0.1")
	if a.Quick([]byte("alice"), []byte("nope")) {
		t.Fatal("a wrong password was cached")
	}
}

func TestFailedLoginsLimitedPerSource(t *testing.T) {
	clk := newClock()
	reg := prometheus.NewRegistry()
	a, err := New(Config{Password: "secret", FailBurst: 3, FailRate: 1, now: clk.now, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := verify(a, "default", "wrong", "10.0.0.1"); !errors.Is(err, ErrWrongPass) {
			t.Fatalf("failure %d: got %v, want ErrWrongPass", i, err)
		}
	}
	// The bucket is empty: even the right password is refused unchecked.
	if _, err := verify(a, "default", "secret", "10.0.0.1"); !errors.Is(err, ErrTooMany) {
		t.Fatalf("after the burst: got %v, want ErrTooMany", err)
	}
	// Another source is not affected.
	if _, err := verify(a, "default", "secret", "10.0.0.2"); err != nil {
		t.Fatalf("other source: %v", err)
	}
	// An IPv6 client is limited by its /64.
	for range 3 {
		_, _ = verify(a, "default", "wrong", "2001:db8::1")
	}
	if _, err := verify(a, "default", "secret", "2001:db8::2"); !errors.Is(err, ErrTooMany) {
		t.Fatalf("same /64: got %v, want ErrTooMany", err)
	}
	clk.add(time.Second)
	if _, err := verify(a, "default", "secret", "10.0.0.1"); err != nil {
		t.Fatalf("a second later one attempt is allowed again: %v", err)
	}
	if f, r := sum(t, reg, "ringkv_auth_failures_total"), sum(t, reg, "ringkv_auth_rate_limited_total"); f != 6 || r != 2 {
		t.Fatalf("metrics: %v failures, %v refused; want 6 and 2", f, r)
	}
}

func TestFailedLoginsLoggedSampled(t *testing.T) {
	clk := newClock()
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))
	a, err := New(Config{Password: "secret", FailBurst: 1000, LogEvery: 10 * time.Second, Logger: logger, now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	for range 500 {
		_, _ = verify(a, "default", "wrong", "10.0.0.1")
	}
	clk.add(11 * time.Second)
	_, _ = verify(a, "default", "wrong", "10.0.0.1")
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 log lines for 501 failures over 11 s, got %d:\n%s", len(lines), out)
	}
	// The second line carries the count of the 499 failures it summarizes
	// plus the one that triggered it.
	if !strings.Contains(lines[1], "failed=500") || !strings.Contains(lines[0], "source=10.0.0.1") {
		t.Fatalf("log lines lack the count or source:\n%s", out)
	}
	if strings.Contains(out, "secret") || strings.Contains(out, "wrong") {
		t.Fatalf("a password reached the log:\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestUsersFileErrors(t *testing.T) {
	h, _ := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	for name, data := range map[string]string{
		"plain password": "users:\n  - name: a\n    password: hunter2\n    rights: [read]\n",
		"bad right":      "users:\n  - name: a\n    password: \"" + string(h) + "\"\n    rights: [root]\n",
		"no rights":      "users:\n  - name: a\n    password: \"" + string(h) + "\"\n",
		"default":        "users:\n  - name: default\n    password: \"" + string(h) + "\"\n    rights: [read]\n",
		"unknown field":  "users:\n  - name: a\n    pasword: \"" + string(h) + "\"\n    rights: [read]\n",
		"duplicate":      "users:\n  - name: a\n    password: \"" + string(h) + "\"\n    rights: [read]\n  - name: a\n    password: \"" + string(h) + "\"\n    rights: [read]\n",
	} {
		if _, err := parseUsers([]byte(data)); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
}

func TestEmptyUsersFileWithoutPasswordRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte("users: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{UsersFile: path}); err == nil {
		t.Fatal("no users and no password: want an error, no one could log in")
	}
	if _, err := New(Config{UsersFile: path, Password: "pw"}); err != nil {
		t.Fatalf("no users but a password: %v", err)
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword(h, []byte("pw")) != nil {
		t.Fatal("hash does not verify its password")
	}
	if _, err := HashPassword(bytes.Repeat([]byte("x"), 73)); err == nil {
		t.Fatal("a password past bcrypt's 72 bytes was hashed")
	}
}

// sum adds up the counter name's series in reg.
func sum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}
